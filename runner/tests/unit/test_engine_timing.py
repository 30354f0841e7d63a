"""The engine's clocks driven by hand (FakeTimers): heartbeat timeout, step timeouts, the wait for
a site, retry backoff, cancelled timers. No test sleeps; time moves only with `timers.advance`."""

from __future__ import annotations

from types import SimpleNamespace

from ryax_runner.application.messages import (
    CancelOrder,
    DeployOrder,
    ExecuteOrder,
    ExecutionEnded,
    Heartbeat,
)
from ryax_runner.application.ports import LoadedState
from ryax_runner.domain.deployment import DeploymentState
from ryax_runner.domain.run import (
    ExecutionResult,
    ExecutionState,
    Outcome,
    RunState,
)
from ryax_runner.domain.site import SiteState, site_id_for
from ryax_runner.domain.workflow import Resources, StepSettings
from ryax_runner.infrastructure.database.serialization import (
    SecretBox,
    deployment_from_row,
    deployment_row,
    execution_from_row,
    execution_row,
    run_from_row,
    run_row,
    site_from_row,
    site_row,
)

from .rig import (
    BACKOFF,
    GRACE,
    HEARTBEAT_TIMEOUT,
    REAP,
    SITE_WAIT,
    Rig,
    execution,
    make_rig,
    processor,
)


async def test_a_silent_site_goes_offline_its_executions_run_again_where_the_step_is_placed(
    rig: Rig,
) -> None:
    await rig.engine.start()  # arms the heartbeat monitor
    rig.register("s1")
    d = await rig.deploy(processor("a"))  # no user retries: a lost execution runs again anyway
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
    lost = execution(run, first)
    assert lost.state is ExecutionState.LOST and "site s1 stopped responding" in lost.error
    assert not run.state.is_terminal
    assert [o.step_id for o in s2.of(DeployOrder)] == ["a"]  # placed again, on s2
    assert d.steps["a"].site_id == site_id_for("s2")

    rig.ready("s2", "a")  # the next attempt goes out at once: no backoff for a lost one
    [again] = rig.executes("s2")
    assert (execution(run, again).attempt, execution(run, again).retry_of) == (2, lost.id)
    assert d.state is DeploymentState.DEPLOYED
    rig.complete("s2", again)
    assert run.state is RunState.COMPLETED and run.results == {"y": "ok"}


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


async def test_an_execution_without_result_times_out_fails_and_is_cancelled_on_its_worker(
    rig: Rig,
) -> None:
    await rig.engine.start()  # arms the reaper: first look at 6 s, then every 5 s
    channel = rig.register("s1")
    d = await rig.deploy(processor("a", StepSettings(timeout_seconds=60, retries=1)))
    rig.ready("s1", "a")
    rig.live_for(3, heard=("s1",))
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [order] = rig.executes("s1")
    assert order.timeout_seconds == 60

    rig.live_for(60 + GRACE, heard=("s1",))  # t = 68: the deadline (3 + 60 + 5)
    assert execution(run, order).state is ExecutionState.DISPATCHED
    assert not channel.of(CancelOrder)
    rig.live_for(REAP, heard=("s1",))  # the reaper's next look
    timed_out = execution(run, order)
    assert timed_out.state is ExecutionState.FAILED
    assert timed_out.error.startswith("timed out after 60 s: no result from site s1")
    [cancel] = channel.of(CancelOrder)
    assert cancel.execution_id == order.execution_id and cancel.reason == "timed out"
    assert order.execution_id not in rig.engine.links[site_id_for("s1")].executions
    # A failure of the step: its own retries apply (not the infrastructure budget).
    assert not run.state.is_terminal
    rig.live_for(BACKOFF, heard=("s1",))
    [_, retry] = rig.executes("s1")
    assert (execution(run, retry).attempt, execution(run, retry).infra_retries) == (2, 0)


async def test_every_execution_has_a_timeout(rig: Rig) -> None:
    await rig.engine.start()
    rig.register("s1")
    d = await rig.deploy(
        processor("a"),  # nothing set: the platform's default
        processor("b", StepSettings(resources=Resources(time_seconds=120))),  # the action's
        processor("c", StepSettings(timeout_seconds=60, resources=Resources(time_seconds=120))),
    )
    rig.ready("s1", "a", "b", "c")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    timeouts = {o.step_id: o.timeout_seconds for o in rig.channels["s1"].of(ExecuteOrder)}
    assert timeouts == {"a": 3600, "b": 120, "c": 60}

    rig.live_for(3600 + GRACE + REAP, heard=("s1",))
    [a] = rig.executes("s1", "a")
    assert execution(run, a).error.startswith("timed out after 3600 s")
    assert run.state is RunState.FAILED


async def test_an_execution_waiting_for_a_site_too_long_fails_with_the_placement_reason(
    rig: Rig,
) -> None:
    await rig.engine.start()
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = rig.executes("s1")
    rig.live_for(HEARTBEAT_TIMEOUT + 1)  # s1 falls silent for good; no other site
    assert execution(run, first).state is ExecutionState.LOST
    assert d.state is DeploymentState.WAITING_FOR_SITE
    assert d.reason == "step a: no site is online"

    rig.live_for(SITE_WAIT - 5)
    assert not run.state.is_terminal  # the next attempt still waits for a site
    rig.live_for(5 + REAP)
    [waited] = [e for e in run.executions.values() if e.retry_of == first.execution_id]
    assert waited.state is ExecutionState.FAILED
    assert waited.error == "no site could run step a for 100 s: step a: no site is online"
    assert run.state is RunState.FAILED and run.reason.endswith(waited.error)
    # The deployment keeps waiting, and says why.
    assert d.state is DeploymentState.WAITING_FOR_SITE
    assert d.reason == "step a: no site is online"


async def test_an_execution_that_finds_a_site_in_time_runs(rig: Rig) -> None:
    await rig.engine.start()
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    rig.live_for(HEARTBEAT_TIMEOUT + 1)  # s1 lost; its execution waits for a site
    rig.live_for(SITE_WAIT - 20)
    rig.register("s2")  # placed there
    rig.ready("s2", "a")
    [again] = rig.executes("s2")
    rig.live_for(30, heard=("s2",))  # past the wait deadline: dispatched, no longer waiting
    assert execution(run, again).state is ExecutionState.DISPATCHED
    rig.complete("s2", again)
    assert run.state is RunState.COMPLETED


async def test_restored_executions_keep_their_deadlines_from_before_the_restart() -> None:
    before = make_rig()
    before.register("s1")
    before.register("s2")
    d = await before.deploy(
        processor("a", StepSettings(timeout_seconds=60)),
        processor("b", StepSettings(timeout_seconds=30)),
    )
    before.ready("s1", "a")
    before.ready("s2", "b")
    slow = before.engine.start_run(d, {"x": "1"}, origin="http")
    [a] = before.executes("s1", "a")
    [b] = before.executes("s2", "b")
    box = SecretBox("k" * 32)

    after = make_rig()
    # Down for 50 s; s2 was recorded offline (its result never came).
    after.timers.clock.advance(50)  # type: ignore[union-attr]
    sites = [site_from_row(SimpleNamespace(**site_row(s))) for s in before.engine.sites.values()]
    next(s for s in sites if s.name == "s2").go_offline("no message for 6.5 s")
    after.store.loaded = LoadedState(
        sites=sites,
        deployments=[deployment_from_row(SimpleNamespace(**deployment_row(d, box)), box)],
        runs=[
            (
                run_from_row(SimpleNamespace(**run_row(slow, box)), d.definition, box),
                [
                    execution_from_row(SimpleNamespace(**execution_row(e, box)), box)
                    for e in slow.executions.values()
                ],
            )
        ],
    )
    await after.engine.start()
    run = after.engine.runs[slow.id]
    after.register("s1", last_seen=a.order_seq, running=frozenset({a.execution_id}), ready=("a",))
    assert run.executions[b.execution_id].state is ExecutionState.DISPATCHED  # type: ignore[index]
    after.live_for(HEARTBEAT_TIMEOUT, heard=("s1",))  # the reaper's first look: t = 6 s
    # b's deadline (30 + 5 s after its dispatch) passed while the runner was down, and its
    # site is offline: b was lost with it, and runs again (its next attempt waits for a site).
    lost = run.executions[b.execution_id]  # type: ignore[index]
    assert lost.state is ExecutionState.LOST and "site s2 is offline" in lost.error
    assert [e.attempt for e in run.executions.values() if e.retry_of == lost.id] == [2]
    # a's deadline is 60 + 5 s after its dispatch, not after the restart: 9 s from now.
    assert run.executions[a.execution_id].state is ExecutionState.DISPATCHED  # type: ignore[index]
    after.live_for(2 * REAP, heard=("s1",))
    timed_out = run.executions[a.execution_id]  # type: ignore[index]
    assert timed_out.state is ExecutionState.FAILED and "timed out after 60 s" in timed_out.error
    assert run.state is RunState.FAILED


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
    [b] = rig.executes("s1", "b")
    assert rig.timers.due_times() == [BACKOFF]

    rig.engine.cancel_run("p", run.id, "cancelled by a user")
    assert run.state is RunState.CANCELLED
    assert [o.execution_id for o in channel.of(CancelOrder)] == [b.execution_id]
    # The retry is gone; b is awaited until its worker confirms the cancellation.
    assert not rig.timers.pending and run.id in rig.engine.runs
    result = ExecutionResult(outcome=Outcome.CANCELLED)
    rig.report("s1", ExecutionEnded(execution_id=b.execution_id, result=result))
    assert run.id not in rig.engine.runs

    sent = len(channel.sent)
    rig.timers.advance(1000.0)
    assert len(channel.sent) == sent and len(rig.executes("s1", "a")) == 1
