"""The runner's one scheduler of the built-in timer triggers (emitgw, crongw, runonce).

No process per timer: one loop in the runner (the runner that holds the lease, so one runner
fires) looks every `tick_seconds` at the deployed workflows whose trigger is a timer, starts a
run through the engine (as the HTTP endpoint does) when one is due, and records the next due
time (`TimerStore`). The misfire policy and the once-only rule are in `domain/timers.py`: a
fire's run id is derived from its due time; the run is committed before the next due time is,
and a due fire whose run is already recorded is not made again.

Time comes from the `Clock` (dates) and the `Timers` (the loop), so tests move it by hand and
call `tick()` themselves.
"""

from __future__ import annotations

import asyncio
import logging
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, tzinfo

from ..domain.deployment import Deployment, DeploymentId
from ..domain.errors import Conflict, InvalidInput, Unavailable
from ..domain.run import RunId
from ..domain.timers import (
    TIMER_KINDS,
    Fire,
    IntervalSchedule,
    NoMoreSchedule,
    Schedule,
    TimerKind,
    TimerSpec,
    TimerState,
    first_due,
)
from ..domain.values import Value
from .engine import Engine
from .ports import Clock, CronCalendar, TimerHandle, Timers, TimerStore

log = logging.getLogger(__name__)
#: A fire this late (seconds) is logged as a misfire (the runner was down, or the workflow
#: could not take runs, when it was due).
LATE_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class SchedulerSettings:
    #: How often due timers are looked for (the timers' resolution).
    tick_seconds: float = 0.5
    #: The smallest interval of emitgw (the studio checks the same bound).
    min_interval_seconds: int = 1


class Scheduler:
    def __init__(
        self,
        *,
        engine: Engine,
        store: TimerStore,
        calendar: CronCalendar,
        clock: Clock,
        timers: Timers,
        settings: SchedulerSettings | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
        self._calendar = calendar
        self._clock = clock
        self._timers = timers
        self.settings = settings or SchedulerSettings()
        self._known: dict[str, TimerState] = {}
        self._specs: dict[str, tuple[TimerSpec, Schedule | None]] = {}
        self._handle: TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Runs started by timers, and those of them started late (a misfire), since start.
        self.fired = 0
        self.fired_late = 0

    @property
    def timers(self) -> dict[str, TimerState]:
        """The timers known, by deployment id (read by tests and metrics)."""
        return dict(self._known)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the recorded schedules, then look for due timers every tick."""
        self._known = {t.deployment_id: t for t in await self._store.load()}
        self._stopping = False
        log.info("scheduler started", extra={"timers": len(self._known)})
        self._arm()

    async def stop(self) -> None:
        self._stopping = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _arm(self) -> None:
        if not self._stopping:
            self._handle = self._timers.call_later(self.settings.tick_seconds, self._due)

    def _due(self) -> None:
        self._handle = None
        self._task = asyncio.get_running_loop().create_task(self._run_tick(), name="timers")

    async def _run_tick(self) -> None:
        try:
            await self.tick()
        except Exception:
            log.exception("timer tick failed (tried again at the next tick)")
        finally:
            self._arm()

    # -- one pass --------------------------------------------------------------------------------

    async def tick(self) -> list[Fire]:
        """Forget the timers of undeployed workflows, start those of newly deployed ones, fire
        the due ones. Returns the fires made (or recognised as made before a restart)."""
        deployments = self._engine.deployments
        for deployment_id in list(self._known):
            d = deployments.get(DeploymentId(deployment_id))
            if d is None or d.is_gone or d.definition.trigger.builtin not in TIMER_KINDS:
                await self._store.delete(deployment_id)
                self._known.pop(deployment_id, None)
                self._specs.pop(deployment_id, None)
                log.info("timer stopped", extra={"deployment_id": deployment_id})
        fires: list[Fire] = []
        for d in list(deployments.values()):
            if d.definition.trigger.builtin not in TIMER_KINDS or not d.is_active:
                continue
            try:
                fire = await self._tick_one(d)
            except Exception:  # one timer's trouble never stops the others
                log.exception("timer tick failed", extra={"deployment_id": d.id})
                continue
            if fire is not None:
                fires.append(fire)
        return fires

    def _spec(self, d: Deployment) -> tuple[TimerSpec, Schedule | None]:
        found = self._specs.get(d.id)
        if found is None:
            spec = TimerSpec.of(d.definition, self.settings.min_interval_seconds)
            assert spec is not None  # the trigger is a timer
            cron = (
                self._calendar.schedule(spec.cron, spec.timezone)
                if spec.kind is TimerKind.CRON
                else None
            )
            found = self._specs[d.id] = (spec, cron)
        return found

    async def _tick_one(self, d: Deployment) -> Fire | None:
        now = self._clock.now()
        try:
            spec, cron = self._spec(d)
        except InvalidInput as exc:
            self._engine.fail_deployment(d, f"the trigger's settings: {exc}")
            return None
        state = self._known.get(d.id)
        if state is None:
            first = first_due(spec, now, cron)
            if first is None:
                self._engine.fail_deployment(d, f"cron {spec.cron!r} never fires")
                return None
            state = TimerState.start(
                deployment_id=d.id, project_id=d.project_id, spec=spec, first=first
            )
            await self._store.save(state)
            self._known[d.id] = state
            log.info(
                "timer started",
                extra={"deployment_id": d.id, "kind": str(spec.kind), "first": first.isoformat()},
            )
        schedule: Schedule
        if spec.kind is TimerKind.EVERY:
            schedule = IntervalSchedule(anchor=state.anchor_at, seconds=spec.interval_seconds)
        elif cron is not None:
            schedule = cron
        else:
            schedule = NoMoreSchedule()
        fire = state.plan(now, schedule)
        if fire is None:
            return None
        if RunId(fire.run_id) in self._engine.runs or await self._store.run_recorded(fire.run_id):
            log.info(
                "timer fire already made before a restart; not made again",
                extra={"deployment_id": d.id, "run_id": fire.run_id},
            )
        else:
            outputs = self._outputs(fire, spec)
            try:
                self._engine.start_run(d, outputs, origin="timer", run_id=RunId(fire.run_id))
            except (Unavailable, Conflict) as exc:
                log.info("timer fire put off", extra={"deployment_id": d.id, "why": str(exc)})
                return None
            await self._engine.durable()  # the run is recorded before the next due time
            late = fire.late_seconds >= LATE_SECONDS or fire.missed > 0
            self.fired += 1
            self.fired_late += int(late)
            (log.warning if late else log.info)(
                "timer fired late (misfire: one run for the missed due times)"
                if late
                else "timer fired",
                extra={
                    "deployment_id": d.id,
                    "run_id": fire.run_id,
                    "scheduled_at": fire.scheduled_at.isoformat(),
                    "late_seconds": round(fire.late_seconds, 3),
                    "missed": fire.missed,
                },
            )
        state = state.fired(fire)
        await self._store.save(state)
        self._known[d.id] = state
        return fire

    @staticmethod
    def _outputs(fire: Fire, spec: TimerSpec) -> dict[str, Value]:
        zone: tzinfo = UTC
        if spec.kind is TimerKind.CRON:
            zone = _zone(spec.timezone)
        return {
            "scheduled_at": fire.scheduled_at.astimezone(zone).isoformat(),
            "late_seconds": round(fire.late_seconds, 3),
            "missed": fire.missed,
        }


def _zone(name: str) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC
