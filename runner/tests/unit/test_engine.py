"""The engine with fakes: protocol rules (report_seq, acks, reconcile), deployment and run
orchestration, worker loss."""

from __future__ import annotations

import pytest

from ryax_kit.core import AsyncioTimers
from ryax_runner.application.engine import Engine, EngineSettings, SiteTaken
from ryax_runner.application.messages import (
    DeployOrder,
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    Heartbeat,
    Registered,
    RegisterWorker,
    ReportAck,
    ReportedStep,
    StepStateReported,
    TriggerFired,
    UndeployOrder,
    UndeployWorkflow,
)
from ryax_runner.domain.deployment import Deployment, DeploymentState, StepState
from ryax_runner.domain.run import ExecutionResult, ExecutionState, Outcome, RunState
from ryax_runner.domain.site import site_id_for
from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    StepDefinition,
    StepSettings,
    TriggerDefinition,
    WorkflowDefinition,
)

from .fakes import FakeChannel, FakeClock, FakeRecorder, FakeStore, site_credential


def definition(retries: int = 0, http: bool = True) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="t",
        action_id="t",
        action_version="1",
        action_kind="trigger",
        outputs=(IO(name="x", type="string"),),
    )
    step = StepDefinition(
        step_id="a",
        action_id="a",
        action_version="1",
        action_kind="processor",
        inputs=(IO(name="x", type="string"),),
        outputs=(IO(name="y", type="string"),),
        input_values=(("x", ReferenceInput(step_id="t", output_name="x")),),
        parent_step_ids=("t",),
        settings=StepSettings(retries=retries),
    )
    return WorkflowDefinition(
        steps=(trigger, step), trigger=TriggerDefinition(step_id="t", http_endpoint=http)
    )


@pytest.fixture
def parts() -> tuple[Engine, FakeRecorder, FakeStore]:
    recorder, store = FakeRecorder(), FakeStore()
    engine = Engine(
        recorder=recorder,
        store=store,
        clock=FakeClock(),
        timers=AsyncioTimers(),
        settings=EngineSettings(retry_backoff_seconds=0.0),
    )
    return engine, recorder, store


def register(
    engine: Engine,
    channel: FakeChannel,
    *,
    worker: str = "w1",
    site: str = "s1",
    last_seen: int = 0,
    running: frozenset[str] = frozenset(),
    deployed: tuple[ReportedStep, ...] = (),
) -> Registered:
    return engine.register_worker(
        RegisterWorker(
            worker_id=worker,
            site_name=site,
            backend_kind="local",
            credential=site_credential(engine, site),
            last_seen_order_seq=last_seen,
            running_execution_ids=running,
            deployed_steps=deployed,
        ),
        channel,
    )


async def deploy(engine: Engine, retries: int = 0, http: bool = True) -> Deployment:
    d = await engine.deploy_workflow(
        DeployWorkflow(
            message_id="m1",
            deployment_id="d1",
            project_id="p",
            workflow_id="w",
            workflow_name="wf",
            snapshot_id="s",
            definition=definition(retries, http),
        )
    )
    assert d is not None
    return d


def ready(engine: Engine, seq: int, site: str = "s1", step: str = "a") -> None:
    engine.report(
        site_id_for(site),
        seq,
        StepStateReported(deployment_id="d1", step_id=step, state=StepState.READY),
    )


async def test_registered_first_then_deploy_and_ready(parts) -> None:  # type: ignore[no-untyped-def]
    engine, recorder, _ = parts
    channel = FakeChannel()
    reply = register(engine, channel)
    assert channel.sent[0] == reply and reply.last_report_seq == 0
    d = await deploy(engine)
    order = channel.of(DeployOrder)[0]
    assert order.order_seq == 1 and order.step_id == "a" and not order.is_trigger
    assert d.state is DeploymentState.DEPLOYING
    ready(engine, 1)
    assert d.state is DeploymentState.DEPLOYED
    assert [e.state for e in recorder.events] == ["deploying", "deployed"]  # type: ignore[attr-defined]
    assert recorder.claims == ["m1"]


async def test_waiting_for_site_until_a_worker_registers(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = parts
    d = await deploy(engine)
    assert d.state is DeploymentState.WAITING_FOR_SITE
    channel = FakeChannel()
    register(engine, channel)
    assert channel.of(DeployOrder) and d.state is DeploymentState.DEPLOYING


async def test_report_applied_once_and_acked_after_commit(parts) -> None:  # type: ignore[no-untyped-def]
    engine, recorder, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    d = await deploy(engine)
    ready(engine, 5)
    assert not channel.of(ReportAck)  # nothing committed yet
    recorder.commit()
    assert channel.of(ReportAck)[-1].report_seq == 5
    run = engine.start_run(d, {"x": "hi"}, origin="http")
    execute = channel.of(ExecuteOrder)[0]
    assert execute.inputs == {"x": "hi"}
    result = ExecutionEnded(
        execution_id=execute.execution_id,
        result=ExecutionResult(outcome=Outcome.COMPLETED, outputs={"y": "ok"}),
    )
    engine.report(site_id_for("s1"), 6, result)
    engine.report(site_id_for("s1"), 6, result)  # re-sent after a reconnect: dropped
    assert engine.stats.duplicate_reports == 1
    assert run.state is RunState.COMPLETED and run.results == {"y": "ok"}
    waiter = engine.wait_for(run)
    assert (await waiter) is run
    recorder.commit()
    assert channel.of(ReportAck)[-1].report_seq == 6
    # A new stream of the same worker numbers on from the applied high-water mark.
    channel2 = FakeChannel()
    assert register(engine, channel2).last_report_seq == 6
    assert channel.closed


async def test_another_worker_cannot_take_an_online_site(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = parts
    register(engine, FakeChannel())
    with pytest.raises(SiteTaken):
        register(engine, FakeChannel(), worker="w2")


async def test_site_lost_runs_its_executions_again_when_it_is_back(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    d = await deploy(engine)  # no user retries: a lost execution runs again all the same
    ready(engine, 1)
    run = engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = channel.of(ExecuteOrder)
    engine.site_lost(site_id_for("s1"), "no message for 6.0 s")
    lost = run.executions[first.execution_id]  # type: ignore[index]
    assert lost.state is ExecutionState.LOST and "stopped responding" in lost.error
    assert run.state is RunState.RUNNING
    assert d.state is DeploymentState.WAITING_FOR_SITE  # the next attempt waits for a site
    channel2 = FakeChannel()
    register(
        engine,
        channel2,
        last_seen=first.order_seq,
        deployed=(ReportedStep(deployment_id="d1", step_id="a", state=StepState.READY),),
    )
    assert d.state is DeploymentState.DEPLOYED
    [again] = channel2.of(ExecuteOrder)
    assert again.execution_id != first.execution_id and again.inputs == {"x": "hi"}
    result = ExecutionResult(outcome=Outcome.COMPLETED, outputs={"y": "ok"})
    engine.report(
        site_id_for("s1"), 2, ExecutionEnded(execution_id=again.execution_id, result=result)
    )
    assert run.state is RunState.COMPLETED and run.results == {"y": "ok"}


async def test_reconcile_resends_unhandled_and_loses_forgotten(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    d = await deploy(engine)
    ready(engine, 1)
    r1 = engine.start_run(d, {"x": "1"}, origin="http")
    r2 = engine.start_run(d, {"x": "2"}, origin="http")
    r3 = engine.start_run(d, {"x": "3"}, origin="http")
    e1, e2, e3 = channel.of(ExecuteOrder)
    step = (ReportedStep(deployment_id="d1", step_id="a", state=StepState.READY),)
    # The worker handled orders up to e2: e1 still runs, e2 it forgot, e3 it never got.
    channel2 = FakeChannel()
    register(
        engine,
        channel2,
        last_seen=e2.order_seq,
        running=frozenset({e1.execution_id}),
        deployed=step,
    )
    assert not r1.state.is_terminal
    # e2 was lost with the worker's memory: it runs again, as attempt 2.
    lost = r2.executions[e2.execution_id]  # type: ignore[index]
    assert lost.state is ExecutionState.LOST and "no longer knows" in lost.error
    assert not r2.state.is_terminal
    resent = {o.run_id: o for o in channel2.of(ExecuteOrder)}
    assert set(resent) == {r2.id, r3.id}
    assert resent[r3.id].execution_id == e3.execution_id
    assert resent[r3.id].order_seq > e3.order_seq
    again = resent[r2.id]
    assert again.execution_id != e2.execution_id
    assert r2.executions[again.execution_id].retry_of == e2.execution_id  # type: ignore[index]
    assert not r3.state.is_terminal


async def test_fresh_worker_gets_desired_state_and_stale_steps_undeployed(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    await deploy(engine)
    ready(engine, 1)
    channel2 = FakeChannel()
    register(
        engine,
        channel2,
        deployed=(ReportedStep(deployment_id="old", step_id="x", state=StepState.READY),),
    )
    assert [o.step_id for o in channel2.of(DeployOrder)] == ["a"]
    assert [(o.deployment_id, o.step_id) for o in channel2.of(UndeployOrder)] == [("old", "x")]


async def test_trigger_new_run_and_crash_follow_the_deployment(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    d = await deploy(engine, http=False)
    assert {o.step_id: o.is_trigger for o in channel.of(DeployOrder)} == {"t": True, "a": False}
    ready(engine, 1, step="t")
    ready(engine, 2, step="a")
    assert d.state is DeploymentState.DEPLOYED
    engine.report(
        site_id_for("s1"), 3, TriggerFired(deployment_id="d1", step_id="t", outputs={"x": "tick"})
    )
    assert channel.of(ExecuteOrder)[0].inputs == {"x": "tick"}
    engine.report(
        site_id_for("s1"),
        4,
        StepStateReported(
            deployment_id="d1", step_id="t", state=StepState.FAILED, reason="exited with code 1"
        ),
    )
    assert d.state is DeploymentState.FAILED and "exited with code 1" in d.reason


async def test_a_trigger_run_while_the_other_steps_deploy_waits_for_them(parts) -> None:  # type: ignore[no-untyped-def]
    """A trigger ready before the rest fires at once: its run is taken (it was refused, the
    report failing), and its step is dispatched once that step is ready."""
    engine, _, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    d = await deploy(engine, http=False)
    ready(engine, 1, step="t")
    assert d.state is DeploymentState.DEPLOYING
    engine.report(
        site_id_for("s1"), 2, TriggerFired(deployment_id="d1", step_id="t", outputs={"x": "early"})
    )
    assert channel.of(ExecuteOrder) == []  # step a is not ready yet
    ready(engine, 3, step="a")
    assert d.state is DeploymentState.DEPLOYED
    assert [o.inputs for o in channel.of(ExecuteOrder)] == [{"x": "early"}]


async def test_undeploy_cancels_runs_and_undeploys_steps(parts) -> None:  # type: ignore[no-untyped-def]
    engine, _, store = parts
    channel = FakeChannel()
    register(engine, channel)
    d = await deploy(engine)
    ready(engine, 1)
    run = engine.start_run(d, {"x": "1"}, origin="http")
    await engine.undeploy_workflow(
        UndeployWorkflow(message_id="m2", deployment_id="d1", project_id="p")
    )
    assert run.state is RunState.CANCELLED and d.state is DeploymentState.UNDEPLOYING
    assert channel.of(UndeployOrder)
    engine.report(
        site_id_for("s1"),
        2,
        StepStateReported(deployment_id="d1", step_id="a", state=StepState.UNDEPLOYED),
    )
    assert d.state is DeploymentState.UNDEPLOYED and "d1" not in engine.deployments
    store.claimed.add("m2")
    assert (
        await engine.undeploy_workflow(
            UndeployWorkflow(message_id="m2", deployment_id="d1", project_id="p")
        )
        is None
    )


async def test_heartbeat_only_refreshes_liveness(parts) -> None:  # type: ignore[no-untyped-def]
    engine, recorder, _ = parts
    channel = FakeChannel()
    register(engine, channel)
    engine.report(site_id_for("s1"), 1, Heartbeat(seq=1))
    recorder.commit()
    assert channel.of(ReportAck)[-1].report_seq == 1
