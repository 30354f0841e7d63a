"""The built-in timer triggers the runner runs itself: what they are, and when they fire.

A timer is kept per deployment whose trigger is `emitgw` (every N seconds), `crongw` (a cron
expression in a time zone) or `runonce` (once). Its next due time is recorded; the scheduler
fires a run when it is due and records the following due time.

Misfire policy (due times that passed while the runner was down, or while the workflow could
not take runs): they are folded into ONE run, started as soon as the runner can, whose trigger
outputs say so (`scheduled_at` the first missed due time, `late_seconds`, `missed` the number
of further due times folded in); the schedule then goes on from the first due time after now.
Never several runs for one outage, never none. Each fire has a run id derived from the
deployment and its due time, so a fire whose run was recorded but whose next due time was not
(the runner stopped in between) is recognised on restart and not made again.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from .errors import InvalidInput
from .values import Value
from .workflow import StaticInput, WorkflowDefinition


class TimerKind(StrEnum):
    EVERY = "emitgw"
    CRON = "crongw"
    ONCE = "runonce"


TIMER_KINDS = frozenset(k.value for k in TimerKind)
#: Due times counted in one misfire at most (beyond: the count says so, the schedule jumps).
MAX_COUNTED_MISSES = 10_000
#: The largest emitgw interval (ten years; the studio checks the same bound).
MAX_INTERVAL_SECONDS = 10 * 365 * 24 * 3600
_RUN_NAMESPACE = uuid.UUID("5b0f4c1e-7a53-4f0e-9a55-2f1d6c3e9b11")


class Schedule(Protocol):
    def after(self, moment: datetime) -> datetime | None:
        """The first due time strictly after `moment` (UTC), or None when there is none."""
        ...


@dataclass(frozen=True, kw_only=True)
class TimerSpec:
    """A timer's settings, read from the trigger step's static input values."""

    kind: TimerKind
    interval_seconds: int = 0
    cron: str = ""
    timezone: str = "UTC"

    @classmethod
    def of(cls, definition: WorkflowDefinition, min_interval_seconds: int) -> TimerSpec | None:
        """The timer of a workflow whose trigger is a built-in timer, else None; InvalidInput
        names a setting that is missing or wrong."""
        builtin = definition.trigger.builtin
        if builtin not in TIMER_KINDS:
            return None
        step = definition.step(definition.trigger.step_id)

        def static(name: str, default: Value = None) -> Value:
            source = step.source(name)
            if source is None:
                return default
            if not isinstance(source, StaticInput):
                raise InvalidInput(f"trigger.{name}", "must be a static value")
            return source.value

        kind = TimerKind(builtin)
        if kind is TimerKind.EVERY:
            interval = static("time")
            if isinstance(interval, bool) or not isinstance(interval, int):
                raise InvalidInput("trigger.time", "an integer number of seconds is required")
            if interval < min_interval_seconds:
                raise InvalidInput(
                    "trigger.time",
                    f"{interval} s; the interval must be at least {min_interval_seconds} s",
                )
            if interval > MAX_INTERVAL_SECONDS:
                raise InvalidInput(
                    "trigger.time", f"{interval} s; at most {MAX_INTERVAL_SECONDS} s (10 years)"
                )
            return cls(kind=kind, interval_seconds=interval)
        if kind is TimerKind.CRON:
            expression, zone = static("cron"), static("timezone", "UTC")
            if not isinstance(expression, str) or not expression.strip():
                raise InvalidInput("trigger.cron", "a cron expression is required")
            if not isinstance(zone, str):
                raise InvalidInput("trigger.timezone", "a time zone name is required")
            return cls(kind=kind, cron=expression.strip(), timezone=zone or "UTC")
        return cls(kind=kind)


@dataclass(frozen=True, kw_only=True)
class IntervalSchedule:
    """Every `seconds`, on the grid anchored at the first due time (no drift)."""

    anchor: datetime
    seconds: int

    def after(self, moment: datetime) -> datetime | None:
        if moment < self.anchor:
            return self.anchor
        steps = math.floor((moment - self.anchor).total_seconds() / self.seconds) + 1
        return self.anchor + timedelta(seconds=steps * self.seconds)


class NoMoreSchedule:
    """Run once: nothing after the first due time."""

    def after(self, moment: datetime) -> datetime | None:
        return None


@dataclass(frozen=True, kw_only=True)
class Fire:
    """One run to start for a timer."""

    run_id: str
    scheduled_at: datetime
    late_seconds: float
    missed: int
    #: The due time after this fire (None: the timer is done).
    next_fire_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class TimerState:
    """What is recorded of a timer (the `timers` table)."""

    deployment_id: str
    project_id: str
    kind: TimerKind
    #: The first due time: the interval grid's anchor.
    anchor_at: datetime
    #: None: done (a run-once that fired).
    next_fire_at: datetime | None
    last_fired_at: datetime | None = None
    last_run_id: str = ""
    fires: int = 0

    @classmethod
    def start(
        cls, *, deployment_id: str, project_id: str, spec: TimerSpec, first: datetime
    ) -> TimerState:
        return cls(
            deployment_id=deployment_id,
            project_id=project_id,
            kind=spec.kind,
            anchor_at=first,
            next_fire_at=first,
        )

    def run_id_for(self, due: datetime) -> str:
        """The run of the fire due at `due`: the same after a restart."""
        key = f"timer:{self.deployment_id}:{due.astimezone(UTC).isoformat()}"
        return str(uuid.uuid5(_RUN_NAMESPACE, key))

    def plan(self, now: datetime, schedule: Schedule) -> Fire | None:
        """The fire due at `now` (the misfire policy: due times passed are one fire), or None."""
        due = self.next_fire_at
        if due is None or now < due:
            return None
        missed = 0
        following = schedule.after(due)
        while following is not None and following <= now and missed < MAX_COUNTED_MISSES:
            missed += 1
            following = schedule.after(following)
        if following is not None and following <= now:
            following = schedule.after(now)
        return Fire(
            run_id=self.run_id_for(due),
            scheduled_at=due,
            late_seconds=max(0.0, (now - due).total_seconds()),
            missed=missed,
            next_fire_at=following,
        )

    def fired(self, fire: Fire) -> TimerState:
        return replace(
            self,
            next_fire_at=fire.next_fire_at,
            last_fired_at=fire.scheduled_at,
            last_run_id=fire.run_id,
            fires=self.fires + 1,
        )


def first_due(spec: TimerSpec, now: datetime, cron: Schedule | None) -> datetime | None:
    """When a new timer first fires: an interval after now, the cron's next time, or now."""
    if spec.kind is TimerKind.EVERY:
        return now + timedelta(seconds=spec.interval_seconds)
    if spec.kind is TimerKind.CRON:
        assert cron is not None
        return cron.after(now)
    return now
