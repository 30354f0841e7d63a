"""The built-in timer triggers with a fake clock: due times (interval grid, cron across DST in
a time zone), the misfire policy (one late run for an outage, never several, never none), the
once-only rule across a restart, and the scheduler driving the engine (fire, undeploy, bad
settings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ryax_runner.application.messages import DeployWorkflow, UndeployWorkflow
from ryax_runner.application.scheduler import Scheduler, SchedulerSettings
from ryax_runner.domain.deployment import DeploymentState
from ryax_runner.domain.errors import InvalidInput
from ryax_runner.domain.timers import (
    IntervalSchedule,
    NoMoreSchedule,
    TimerKind,
    TimerSpec,
    TimerState,
)
from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    StaticInput,
    StepDefinition,
    TriggerDefinition,
    WorkflowDefinition,
)
from ryax_runner.infrastructure.scheduling.cron import CronsimCalendar

from .rig import Rig, make_rig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OUTPUTS = (
    IO(name="scheduled_at", type="string"),
    IO(name="late_seconds", type="float"),
    IO(name="missed", type="integer"),
)


class FakeTimerStore:
    """The recorded schedules and run ids, in memory (kept across a "restart")."""

    def __init__(self) -> None:
        self.rows: dict[str, TimerState] = {}
        self.recorded_runs: set[str] = set()

    async def load(self) -> list[TimerState]:
        return list(self.rows.values())

    async def save(self, timer: TimerState) -> None:
        self.rows[timer.deployment_id] = timer

    async def delete(self, deployment_id: str) -> None:
        self.rows.pop(deployment_id, None)

    async def run_recorded(self, run_id: str) -> bool:
        return run_id in self.recorded_runs


def timer_definition(builtin: str, **values: Any) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="tick",
        action_id=builtin,
        action_version="1",
        action_kind="trigger",
        outputs=OUTPUTS,
        input_values=tuple((k, StaticInput(value=v)) for k, v in values.items()),
    )
    step = StepDefinition(
        step_id="a",
        action_id="a",
        action_version="1",
        action_kind="processor",
        inputs=(IO(name="x", type="string"),),
        input_values=(("x", ReferenceInput(step_id="tick", output_name="scheduled_at")),),
        parent_step_ids=("tick",),
    )
    return WorkflowDefinition(
        steps=(trigger, step),
        trigger=TriggerDefinition(
            step_id="tick", http_endpoint=False, fields=OUTPUTS, builtin=builtin
        ),
    )


# ---- due times ----------------------------------------------------------------------------------
def test_the_interval_grid_does_not_drift() -> None:
    grid = IntervalSchedule(anchor=T0, seconds=10)
    assert grid.after(T0 - timedelta(seconds=3)) == T0
    assert grid.after(T0) == T0 + timedelta(seconds=10)
    assert grid.after(T0 + timedelta(seconds=9.9)) == T0 + timedelta(seconds=10)
    assert grid.after(T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=20)
    assert grid.after(T0 + timedelta(seconds=1234.5)) == T0 + timedelta(seconds=1240)


def test_a_fire_is_planned_only_when_due_and_its_run_id_is_stable() -> None:
    spec = TimerSpec(kind=TimerKind.EVERY, interval_seconds=10)
    state = TimerState.start(deployment_id="d1", project_id="p", spec=spec, first=T0)
    grid = IntervalSchedule(anchor=T0, seconds=10)
    assert state.plan(T0 - timedelta(seconds=0.1), grid) is None
    fire = state.plan(T0 + timedelta(seconds=0.2), grid)
    assert fire is not None
    assert (fire.scheduled_at, fire.missed, fire.next_fire_at) == (
        T0,
        0,
        T0 + timedelta(seconds=10),
    )
    assert fire.late_seconds == pytest.approx(0.2)
    assert fire.run_id == state.run_id_for(T0) == state.plan(T0, grid).run_id  # type: ignore[union-attr]
    other = TimerState.start(deployment_id="d2", project_id="p", spec=spec, first=T0)
    assert other.run_id_for(T0) != fire.run_id
    after = state.fired(fire)
    assert (after.fires, after.last_fired_at, after.last_run_id) == (1, T0, fire.run_id)
    assert after.plan(T0 + timedelta(seconds=5), grid) is None


def test_misfire_an_outage_is_one_late_fire_then_the_grid_goes_on() -> None:
    spec = TimerSpec(kind=TimerKind.EVERY, interval_seconds=10)
    state = TimerState.start(deployment_id="d1", project_id="p", spec=spec, first=T0)
    grid = IntervalSchedule(anchor=T0, seconds=10)
    now = T0 + timedelta(seconds=95)  # due at 0, 10, ..., 90: ten due times passed
    fire = state.plan(now, grid)
    assert fire is not None
    assert (fire.scheduled_at, fire.missed, fire.late_seconds) == (T0, 9, 95.0)
    assert fire.next_fire_at == T0 + timedelta(seconds=100)
    assert state.fired(fire).plan(now, grid) is None  # never a second fire for the outage


def test_misfire_counts_at_most_a_bound_and_still_lands_after_now() -> None:
    spec = TimerSpec(kind=TimerKind.EVERY, interval_seconds=1)
    state = TimerState.start(deployment_id="d1", project_id="p", spec=spec, first=T0)
    now = T0 + timedelta(days=2)
    fire = state.plan(now, IntervalSchedule(anchor=T0, seconds=1))
    assert fire is not None and fire.missed == 10_000
    assert fire.next_fire_at == now + timedelta(seconds=1)


def test_run_once_fires_once() -> None:
    spec = TimerSpec(kind=TimerKind.ONCE)
    state = TimerState.start(deployment_id="d1", project_id="p", spec=spec, first=T0)
    fire = state.plan(T0 + timedelta(hours=5), NoMoreSchedule())
    assert fire is not None and fire.next_fire_at is None and fire.missed == 0
    assert state.fired(fire).plan(T0 + timedelta(days=9), NoMoreSchedule()) is None


def fires_between(expression: str, zone: str, start: datetime, end: datetime) -> list[str]:
    """Walk a fake clock minute by minute from `start`, firing whenever due."""
    cron = CronsimCalendar().schedule(expression, zone)
    spec = TimerSpec(kind=TimerKind.CRON, cron=expression, timezone=zone)
    first = cron.after(start)
    assert first is not None
    state = TimerState.start(deployment_id="d", project_id="p", spec=spec, first=first)
    fired: list[str] = []
    now = start
    while now < end:
        now += timedelta(minutes=1)
        fire = state.plan(now, cron)
        if fire is not None:
            assert fire.missed == 0
            fired.append(fire.scheduled_at.isoformat())
            state = state.fired(fire)
    return fired


def test_cron_in_a_time_zone_across_the_spring_gap() -> None:
    # Paris, 2026-03-29: 02:00 -> 03:00. 02:30 does not exist that day: one fire, at 03:00.
    fired = fires_between(
        "30 2 * * *",
        "Europe/Paris",
        datetime(2026, 3, 27, 12, tzinfo=UTC),
        datetime(2026, 3, 31, 12, tzinfo=UTC),
    )
    assert fired == [
        "2026-03-28T01:30:00+00:00",  # 02:30 CET
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST, the first instant after the gap
        "2026-03-30T00:30:00+00:00",  # 02:30 CEST
        "2026-03-31T00:30:00+00:00",
    ]


def test_cron_in_a_time_zone_across_the_autumn_repeat() -> None:
    # Paris, 2026-10-25: 03:00 -> 02:00. 02:30 happens twice: one fire (the first); an hourly
    # expression fires in both hours (they are two real hours).
    daily = fires_between(
        "30 2 * * *",
        "Europe/Paris",
        datetime(2026, 10, 24, 12, tzinfo=UTC),
        datetime(2026, 10, 26, 12, tzinfo=UTC),
    )
    assert daily == ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    hourly = fires_between(
        "0 * * * *",
        "Europe/Paris",
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 3, 30, tzinfo=UTC),
    )
    assert hourly == [
        "2026-10-25T00:00:00+00:00",  # 02:00 CEST
        "2026-10-25T01:00:00+00:00",  # 02:00 CET
        "2026-10-25T02:00:00+00:00",
        "2026-10-25T03:00:00+00:00",
    ]


def test_the_cron_calendar_names_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match=r"trigger\.cron"):
        CronsimCalendar().schedule("61 * * * *", "UTC")
    with pytest.raises(InvalidInput, match="unknown time zone 'Mars/Base'"):
        CronsimCalendar().schedule("* * * * *", "Mars/Base")


def test_the_spec_is_read_from_the_trigger_step() -> None:
    assert TimerSpec.of(timer_definition("emitgw", time=5), 1) == TimerSpec(
        kind=TimerKind.EVERY, interval_seconds=5
    )
    assert TimerSpec.of(timer_definition("crongw", cron=" 0 6 * * * "), 1) == TimerSpec(
        kind=TimerKind.CRON, cron="0 6 * * *", timezone="UTC"
    )
    with pytest.raises(InvalidInput, match="at least 10 s"):
        TimerSpec.of(timer_definition("emitgw", time=5), 10)
    with pytest.raises(InvalidInput, match="at most 315360000 s"):
        TimerSpec.of(timer_definition("emitgw", time=10**12), 1)
    with pytest.raises(InvalidInput, match=r"trigger\.time"):
        TimerSpec.of(timer_definition("emitgw", time="5"), 1)


# ---- the scheduler driving the engine -----------------------------------------------------------
class Setup:
    def __init__(self, store: FakeTimerStore | None = None) -> None:
        self.rig: Rig = make_rig()
        self.rig.timers.clock.current = T0  # type: ignore[attr-defined]
        self.store = store or FakeTimerStore()
        self.scheduler = self.new_scheduler()

    def new_scheduler(self) -> Scheduler:
        return Scheduler(
            engine=self.rig.engine,
            store=self.store,
            calendar=CronsimCalendar(),
            clock=self.rig.timers.clock,  # type: ignore[attr-defined]
            timers=self.rig.timers,
            settings=SchedulerSettings(tick_seconds=0.5, min_interval_seconds=2),
        )

    async def deploy(self, definition: WorkflowDefinition) -> Any:
        d = await self.rig.engine.deploy_workflow(
            DeployWorkflow(
                message_id="m1",
                deployment_id="d1",
                project_id="p",
                workflow_id="w",
                workflow_name="wf",
                snapshot_id="s",
                definition=definition,
            )
        )
        assert d is not None
        self.rig.register("s1")
        self.rig.ready("s1", "a")
        return d

    def advance(self, seconds: float) -> None:
        self.rig.timers.clock.advance(seconds)  # type: ignore[attr-defined]


@pytest.fixture
def setup() -> Setup:
    return Setup()


async def test_emitgw_fires_every_interval_through_the_engine(setup: Setup) -> None:
    d = await setup.deploy(timer_definition("emitgw", time=5))
    assert d.state is DeploymentState.DEPLOYED
    assert "tick" not in d.steps  # nothing deployed on a site for the trigger
    assert await setup.scheduler.tick() == []  # the timer starts: first due in 5 s
    assert setup.store.rows["d1"].next_fire_at == T0 + timedelta(seconds=5)
    setup.advance(4.9)
    assert await setup.scheduler.tick() == []
    setup.advance(0.2)
    [fire] = await setup.scheduler.tick()
    run = setup.rig.engine.runs[fire.run_id]  # type: ignore[index]
    assert run.origin == "timer" and run.deployment_id == "d1"
    outputs = run.executions[next(iter(run.executions))].outputs
    assert outputs == {
        "scheduled_at": "2026-01-01T00:00:05+00:00",
        "late_seconds": 0.1,
        "missed": 0,
    }
    assert setup.store.rows["d1"].next_fire_at == T0 + timedelta(seconds=10)
    assert await setup.scheduler.tick() == []
    setup.advance(5)
    assert len(await setup.scheduler.tick()) == 1
    assert setup.store.rows["d1"].fires == 2


async def test_a_restart_fires_a_missed_time_once_and_late(setup: Setup) -> None:
    await setup.deploy(timer_definition("emitgw", time=5))
    await setup.scheduler.tick()
    setup.advance(5.0)
    [first] = await setup.scheduler.tick()
    await setup.scheduler.stop()
    # The runner is down for a minute: due at 10, 15, ..., 65 (12 times).
    setup.advance(60.5)
    restarted = setup.new_scheduler()
    await restarted.start()
    [late] = await restarted.tick()
    assert late.run_id != first.run_id
    assert (late.scheduled_at, late.missed) == (T0 + timedelta(seconds=10), 11)
    assert late.late_seconds == pytest.approx(55.5)
    run = setup.rig.engine.runs[late.run_id]  # type: ignore[index]
    trigger_outputs = run.executions[next(iter(run.executions))].outputs
    assert trigger_outputs["missed"] == 11 and trigger_outputs["late_seconds"] == 55.5
    assert await restarted.tick() == []  # never a second run for the outage
    assert setup.store.rows["d1"].next_fire_at == T0 + timedelta(seconds=70)
    await restarted.stop()


async def test_a_fire_recorded_before_the_restart_is_not_made_again(setup: Setup) -> None:
    await setup.deploy(timer_definition("emitgw", time=5))
    await setup.scheduler.tick()
    before = setup.store.rows["d1"]
    # The run of the fire due at 5 s was committed, then the runner stopped before recording
    # the next due time: the record still says "due at 5 s".
    setup.store.recorded_runs.add(before.run_id_for(T0 + timedelta(seconds=5)))
    setup.advance(6)
    restarted = setup.new_scheduler()
    await restarted.start()
    runs_before = set(setup.rig.engine.runs)
    [fire] = await restarted.tick()
    assert fire.scheduled_at == T0 + timedelta(seconds=5)
    assert set(setup.rig.engine.runs) == runs_before  # no second run
    assert setup.store.rows["d1"].next_fire_at == T0 + timedelta(seconds=10)
    await restarted.stop()


async def test_undeploy_stops_the_timer(setup: Setup) -> None:
    await setup.deploy(timer_definition("emitgw", time=5))
    await setup.scheduler.tick()
    await setup.rig.engine.undeploy_workflow(
        UndeployWorkflow(message_id="m2", deployment_id="d1", project_id="p")
    )
    setup.advance(30)
    assert await setup.scheduler.tick() == []
    assert setup.store.rows == {} and setup.scheduler.timers == {}


async def test_run_once_fires_once_at_deploy(setup: Setup) -> None:
    await setup.deploy(timer_definition("runonce"))
    [fire] = await setup.scheduler.tick()
    assert fire.scheduled_at == T0 and fire.next_fire_at is None
    setup.advance(3600)
    assert await setup.scheduler.tick() == []
    restarted = setup.new_scheduler()
    await restarted.start()
    assert await restarted.tick() == []  # not again after a restart either
    await restarted.stop()


async def test_crongw_fires_on_its_expression(setup: Setup) -> None:
    await setup.deploy(timer_definition("crongw", cron="*/10 * * * *", timezone="Asia/Tokyo"))
    await setup.scheduler.tick()
    assert setup.store.rows["d1"].next_fire_at == T0 + timedelta(minutes=10)
    setup.advance(600)
    [fire] = await setup.scheduler.tick()
    run = setup.rig.engine.runs[fire.run_id]  # type: ignore[index]
    outputs = run.executions[next(iter(run.executions))].outputs
    assert outputs["scheduled_at"] == "2026-01-01T09:10:00+09:00"  # in the trigger's zone


@pytest.mark.parametrize(
    ("builtin", "values", "reason"),
    [
        ("emitgw", {"time": 1}, "trigger.time: 1 s; the interval must be at least 2 s"),
        ("crongw", {"cron": "0 0 * * * *"}, "6 fields; a cron expression has 5"),
        ("crongw", {"cron": "0 0 30 2 *"}, "'0 0 30 2 *': Bad day-of-month"),
        ("crongw", {"cron": "0 0 * * *", "timezone": "Nowhere/Land"}, "unknown time zone"),
    ],
)
async def test_bad_settings_fail_the_deployment_with_the_reason(
    setup: Setup, builtin: str, values: dict[str, Any], reason: str
) -> None:
    d = await setup.deploy(timer_definition(builtin, **values))
    assert await setup.scheduler.tick() == []
    assert d.state is DeploymentState.FAILED
    assert reason in d.reason
    assert setup.store.rows == {}
