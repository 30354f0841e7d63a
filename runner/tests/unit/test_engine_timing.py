"""The engine's clocks driven by hand (FakeTimers): heartbeat timeout, execution timeout, retry
backoff, cancelled timers. No test sleeps; time moves only with `timers.advance`."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import pytest

from ryax_runner.application.engine import Engine, EngineSettings
from ryax_runner.application.messages import (
    CancelOrder,
    DeployOrder,
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    Heartbeat,
    RegisterWorker,
    Report,
    StepStateReported,
)
from ryax_runner.domain.deployment import Deployment, DeploymentState, StepState
from ryax_runner.domain.run import ExecutionResult, ExecutionState, Outcome, Run, RunState
from ryax_runner.domain.site import SiteState, site_id_for
from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    StepDefinition,
    StepSettings,
    TriggerDefinition,
    WorkflowDefinition,
)

from .fakes import FakeChannel, FakeClock, FakeRecorder, FakeStore, FakeTimers

HEARTBEAT_TIMEOUT = 6.0
BACKOFF = 10.0
GRACE = 5.0


def processor(step_id: str, settings: StepSettings) -> StepDefinition:
    return StepDefinition(
        step_id=step_id,
        action_id=step_id,
        action_version="1",
        action_kind="processor",
        inputs=(IO(name="x", type="string"),),
        outputs=(IO(name="y", type="string"),),
        input_values=(("x", ReferenceInput(step_id="t", output_name="x")),),
        parent_step_ids=("t",),
        settings=settings,
    )


def definition(*steps: StepDefinition) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="t",
        action_id="t",
        action_version="1",
        action_kind="trigger",
        outputs=(IO(name="x", type="string"),),
    )
    return WorkflowDefinition(
        steps=(trigger, *steps), trigger=TriggerDefinition(step_id="t", http_endpoint=True)
    )


@dataclass
class Rig:
    engine: Engine
    timers: FakeTimers
    recorder: FakeRecorder
    channels: dict[str, FakeChannel] = field(default_factory=dict)
    seqs: dict[str, count[int]] = field(default_factory=dict)

    def register(self, site: str) -> FakeChannel:
        channel = self.channels[site] = FakeChannel()
        self.engine.register_worker(
            RegisterWorker(worker_id=f"w-{site}", site_name=site, backend_kind="local"), channel
        )
        return channel

    def report(self, site: str, message: Report) -> None:
        seq = self.seqs.setdefault(site, count(1))
        self.engine.report(site_id_for(site), next(seq), message)

    def ready(self, site: str, *steps: str) -> None:
        for step in steps:
            self.report(
                site, StepStateReported(deployment_id="d1", step_id=step, state=StepState.READY)
            )

    async def deploy(self, *steps: StepDefinition) -> Deployment:
        d = await self.engine.deploy_workflow(
            DeployWorkflow(
                message_id="m1",
                deployment_id="d1",
                project_id="p",
                workflow_id="w",
                workflow_name="wf",
                snapshot_id="s",
                definition=definition(*steps),
            )
        )
        assert d is not None
        return d

    def fail(self, site: str, order: ExecuteOrder) -> None:
        result = ExecutionResult(outcome=Outcome.FAILED, error="boom")
        self.report(site, ExecutionEnded(execution_id=order.execution_id, result=result))

    def executes(self, site: str, step: str = "a") -> list[ExecuteOrder]:
        return [o for o in self.channels[site].of(ExecuteOrder) if o.step_id == step]

    def live_for(self, seconds: float, *, heard: tuple[str, ...] = ()) -> None:
        """Let time pass a second at a time, the `heard` sites sending heartbeats."""
        for _ in range(int(seconds)):
            self.timers.advance(1.0)
            for site in heard:
                self.report(site, Heartbeat(seq=0))


@pytest.fixture
def rig() -> Rig:
    clock = FakeClock()
    timers, recorder = FakeTimers(clock), FakeRecorder()
    engine = Engine(
        recorder=recorder,
        store=FakeStore(),
        clock=clock,
        timers=timers,
        settings=EngineSettings(
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT,
            retry_backoff_seconds=BACKOFF,
            timeout_grace_seconds=GRACE,
        ),
    )
    return Rig(engine=engine, timers=timers, recorder=recorder)


def execution(run: Run, order: ExecuteOrder) -> ExecutionState:
    return next(e.state for e in run.executions.values() if e.id == order.execution_id)


async def test_a_silent_site_goes_offline_its_executions_lost_and_steps_placed_again(
    rig: Rig,
) -> None:
    await rig.engine.start()  # arms the heartbeat monitor
    rig.register("s1")
    d = await rig.deploy(processor("a", StepSettings(retries=1)))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = rig.executes("s1")
    s2 = rig.register("s2")
    rig.live_for(HEARTBEAT_TIMEOUT, heard=("s2",))
    assert rig.engine.sites[site_id_for("s1")].state is SiteState.ONLINE  # silent 6 s: not > 6

    rig.timers.advance(0.5)  # the next look of the monitor
    s1 = rig.engine.sites[site_id_for("s1")]
    assert s1.state is SiteState.OFFLINE and "no message for 6.5 s" in s1.state_reason
    assert rig.channels["s1"].closed == "site declared offline"
    assert execution(run, first) is ExecutionState.FAILED and not run.state.is_terminal
    assert [o.step_id for o in s2.of(DeployOrder)] == ["a"]  # placed again, on s2
    assert d.steps["a"].site_id == site_id_for("s2")
    assert rig.engine.sites[site_id_for("s2")].state is SiteState.ONLINE

    rig.ready("s2", "a")
    rig.live_for(BACKOFF - 1, heard=("s2",))
    assert not rig.executes("s2")  # the retry waits for its backoff
    rig.live_for(1, heard=("s2",))
    [retry] = rig.executes("s2")
    assert retry.execution_id != first.execution_id
    assert d.state is DeploymentState.DEPLOYED


async def test_a_heartbeat_before_the_timeout_keeps_the_site_online(rig: Rig) -> None:
    await rig.engine.start()
    channel = rig.register("s1")
    site = rig.engine.sites[site_id_for("s1")]
    rig.timers.advance(5.0)
    rig.report("s1", Heartbeat(seq=1))
    rig.timers.advance(HEARTBEAT_TIMEOUT)  # 11 s since registration, 6 s since the heartbeat
    assert site.state is SiteState.ONLINE and not channel.closed
    rig.timers.advance(0.5)
    assert site.state is SiteState.OFFLINE and channel.closed


async def test_an_execution_without_result_times_out_and_is_cancelled_on_its_worker(
    rig: Rig,
) -> None:
    channel = rig.register("s1")
    d = await rig.deploy(processor("a", StepSettings(timeout_seconds=60)))
    rig.ready("s1", "a")
    rig.timers.advance(3.0)
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [order] = rig.executes("s1")
    assert order.timeout_seconds == 60

    rig.timers.advance(60 + GRACE - 0.01)
    assert execution(run, order) is ExecutionState.DISPATCHED and not channel.of(CancelOrder)
    rig.timers.advance(0.01)
    assert execution(run, order) is ExecutionState.FAILED
    assert run.state is RunState.FAILED and "timed out: no result 60 s" in run.reason
    [cancel] = channel.of(CancelOrder)
    assert cancel.execution_id == order.execution_id and cancel.reason == "timed out"
    assert not rig.engine.links[site_id_for("s1")].executions
    assert not rig.timers.pending


async def test_a_retry_is_dispatched_after_its_backoff_and_not_before(rig: Rig) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a", StepSettings(retries=2)))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    rig.timers.advance(2.0)
    rig.fail("s1", rig.executes("s1")[0])

    rig.timers.advance(BACKOFF - 0.01)
    assert len(rig.executes("s1")) == 1
    rig.timers.advance(0.01)
    assert len(rig.executes("s1")) == 2  # attempt 2, BACKOFF after the failure
    rig.fail("s1", rig.executes("s1")[1])

    rig.timers.advance(2 * BACKOFF - 0.01)  # the backoff doubles
    assert len(rig.executes("s1")) == 2
    rig.timers.advance(0.01)
    assert len(rig.executes("s1")) == 3
    assert [e.attempt for e in run.executions.values() if e.step_id == "a"] == [1, 2, 3]


async def test_cancelling_a_run_cancels_its_timers(rig: Rig) -> None:
    channel = rig.register("s1")
    d = await rig.deploy(
        processor("a", StepSettings(retries=1)), processor("b", StepSettings(timeout_seconds=60))
    )
    rig.ready("s1", "a", "b")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    rig.fail("s1", rig.executes("s1", "a")[0])  # a's retry is due in BACKOFF seconds
    [b] = rig.executes("s1", "b")  # b's timeout is due in 60 + GRACE seconds
    assert rig.timers.pending == 2

    rig.engine.cancel_run("p", run.id, "cancelled by a user")
    assert run.state is RunState.CANCELLED
    assert [o.execution_id for o in channel.of(CancelOrder)] == [b.execution_id]
    # The retry is gone; b's timeout guards b until its worker confirms the cancellation.
    assert rig.timers.due_times() == [60 + GRACE]
    result = ExecutionResult(outcome=Outcome.CANCELLED)
    rig.report("s1", ExecutionEnded(execution_id=b.execution_id, result=result))
    assert not rig.timers.pending and run.id not in rig.engine.runs

    sent = len(channel.sent)
    rig.timers.advance(1000.0)
    assert len(channel.sent) == sent and len(rig.executes("s1", "a")) == 1
