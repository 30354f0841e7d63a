"""At-least-once steps and durable orders, with fakes and FakeTimers: an execution lost with its
worker runs again (the same site once back, or where its step is placed again) within the
infrastructure budget, apart from the step's retries; no order leaves before the state that
produced it is committed."""

from __future__ import annotations

import dataclasses

from ryax_runner.application.messages import (
    CancelOrder,
    DeployOrder,
    ExecuteOrder,
    ExecutionEnded,
    ExecutionProgressed,
    Registered,
    ReportAck,
)
from ryax_runner.domain.run import ExecutionResult, ExecutionState, Outcome, RunState
from ryax_runner.domain.site import site_id_for
from ryax_runner.domain.workflow import ReferenceInput, StepSettings

from .rig import BACKOFF, HEARTBEAT_TIMEOUT, INFRA_RETRIES, Rig, execution, make_rig, processor


async def test_a_restarted_worker_runs_the_lost_execution_again_and_the_run_completes(
    rig: Rig,
) -> None:
    await rig.engine.start()
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = rig.executes("s1")

    channel = rig.register("s1")  # the worker process restarted: it has nothing
    lost = execution(run, first)
    assert lost.state is ExecutionState.LOST
    assert lost.error == "worker lost: site s1 no longer knows the execution"
    assert [o.step_id for o in channel.of(DeployOrder)] == ["a"]
    assert not rig.executes("s1")  # the next attempt waits for the step to be ready again
    rig.ready("s1", "a")
    [again] = rig.executes("s1")
    retry = execution(run, again)
    assert (retry.attempt, retry.infra_retries, retry.retry_of) == (2, 1, lost.id)
    assert again.inputs == first.inputs
    rig.complete("s1", again)
    assert run.state is RunState.COMPLETED and run.results == {"y": "ok"}
    steps = sorted((e.attempt, e.state) for e in run.executions.values() if e.step_id == "a")
    assert steps == [(1, ExecutionState.LOST), (2, ExecutionState.COMPLETED)]


async def test_a_step_that_loses_its_worker_too_often_fails_the_run(rig: Rig) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a", StepSettings(retries=5)))  # user retries do not apply
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    for _ in range(INFRA_RETRIES):
        rig.register("s1")
        rig.ready("s1", "a")
    assert len(rig.executes("s1")) == 1 and not run.state.is_terminal  # attempt 3
    rig.register("s1")
    assert run.state is RunState.FAILED and run.failed_step_id == "a"
    assert run.reason == (
        f"step a lost its worker {INFRA_RETRIES + 1} times: "
        "worker lost: site s1 no longer knows the execution"
    )
    assert [e.state for e in run.executions.values() if e.step_id == "a"] == [
        ExecutionState.LOST
    ] * (INFRA_RETRIES + 1)


async def test_a_site_lost_for_good_its_execution_runs_where_the_step_is_placed(
    rig: Rig,
) -> None:
    await rig.engine.start()
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = rig.executes("s1")
    rig.register("s2")
    rig.live_for(HEARTBEAT_TIMEOUT + 1, heard=("s2",))  # s1 is gone
    assert d.steps["a"].site_id == site_id_for("s2")
    rig.ready("s2", "a")
    [again] = rig.executes("s2")
    assert execution(run, again).retry_of == first.execution_id
    rig.complete("s2", again, "from s2")
    assert run.state is RunState.COMPLETED and run.results == {"y": "from s2"}


async def test_a_late_result_of_a_lost_attempt_is_ignored_and_its_worker_told_to_stop(
    rig: Rig,
) -> None:
    await rig.engine.start()
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = rig.executes("s1")
    rig.register("s2")
    rig.live_for(HEARTBEAT_TIMEOUT + 1, heard=("s2",))  # s1 cut off: first is lost
    rig.ready("s2", "a")
    [again] = rig.executes("s2")

    # s1 was only cut off: it comes back still running the lost attempt, and is told to stop.
    back = rig.register("s1", last_seen=first.order_seq, running=frozenset({first.execution_id}))
    [cancel] = back.of(CancelOrder)
    assert cancel.execution_id == first.execution_id
    # Its result, when it comes, changes nothing.
    rig.complete("s1", first, "late")
    assert execution(run, first).state is ExecutionState.LOST
    assert execution(run, again).state is ExecutionState.DISPATCHED
    rig.complete("s2", again, "the one")
    rig.complete("s2", again, "a duplicate")  # applied once
    assert run.state is RunState.COMPLETED and run.results == {"y": "the one"}


async def test_user_retries_are_not_spent_by_lost_attempts(rig: Rig) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a", StepSettings(retries=1)))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    rig.register("s1")  # lost twice: still the step's first try
    rig.ready("s1", "a")
    rig.register("s1")
    rig.ready("s1", "a")
    [third] = rig.executes("s1")
    rig.fail("s1", third)  # the step's own failure: retried once, after its backoff
    assert not run.state.is_terminal
    rig.timers.advance(BACKOFF)
    [_, fourth] = rig.executes("s1")
    assert (execution(run, fourth).attempt, execution(run, fourth).user_attempt) == (4, 2)
    rig.fail("s1", fourth)
    assert run.state is RunState.FAILED
    assert run.reason == "step a failed (after 4 attempts): boom"


async def test_orders_leave_only_once_their_state_is_committed() -> None:
    rig = make_rig(hold_orders=True)
    channel = rig.register("s1")
    assert isinstance(channel.sent[0], Registered)  # not an order: at once
    d = await rig.deploy(processor("a"), processor("b"))  # deploy_workflow awaits durable()
    assert [o.step_id for o in channel.of(DeployOrder)] == ["a", "b"]
    rig.ready("s1", "a", "b")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    assert run.id in rig.recorder.runs and not channel.of(ExecuteOrder)  # marked, not committed

    rig.recorder.commit()
    orders = channel.of(ExecuteOrder)
    assert sorted(o.step_id for o in orders) == ["a", "b"]
    seqs = [o.order_seq for o in channel.sent if hasattr(o, "order_seq") and o.order_seq]
    assert seqs == sorted(seqs)  # in order_seq order
    assert channel.of(ReportAck)[-1].report_seq == 2


async def test_the_first_orders_of_an_unannounced_run_leave_before_its_commit() -> None:
    rig = make_rig(hold_orders=True)
    channel = rig.register("s1")
    d = await rig.deploy(processor("a"), processor("b"))
    rig.ready("s1", "a", "b")
    rig.recorder.commit()
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http", unannounced=True)
    orders = channel.of(ExecuteOrder)
    assert sorted(o.step_id for o in orders) == ["a", "b"]  # at once
    assert run.id in rig.recorder.runs and rig.engine.stats.early_orders == 2
    seqs = [o.order_seq for o in channel.sent if getattr(o, "order_seq", 0)]
    assert seqs == sorted(seqs)

    # What follows is held as before: the next step's order waits for the commit of the result.
    rig2 = make_rig(hold_orders=True)
    channel2 = rig2.register("s1")
    after_a = dataclasses.replace(
        processor("b"),
        parent_step_ids=("a",),
        input_values=(("x", ReferenceInput(step_id="a", output_name="y")),),
    )
    d2 = await rig2.deploy(processor("a"), after_a)
    rig2.ready("s1", "a", "b")
    rig2.recorder.commit()
    run2 = rig2.engine.start_run(d2, {"x": "hi"}, origin="http", unannounced=True)
    [first] = channel2.of(ExecuteOrder)
    rig2.complete("s1", first)
    assert [o.step_id for o in channel2.of(ExecuteOrder)] == ["a"]  # b: held
    rig2.recorder.commit()
    assert [o.step_id for o in channel2.of(ExecuteOrder)] == ["a", "b"]
    assert not run2.state.is_terminal


async def test_an_unannounced_run_is_marked_lazily_until_its_end_or_an_answer_names_it() -> None:
    rig = make_rig()
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http", unannounced=True)
    assert run.id in rig.recorder.lazy  # written with its next change, if soon
    [order] = rig.executes("s1")
    rig.report("s1", ExecutionProgressed(execution_id=order.execution_id, fraction=0.5))
    assert run.id in rig.recorder.lazy  # a step's progress: lazy too
    rig.complete("s1", order)
    assert run.state is RunState.COMPLETED and run.id not in rig.recorder.lazy  # its end: plain

    answered = rig.engine.start_run(d, {"x": "hi"}, origin="http", unannounced=True)
    assert answered.id in rig.recorder.lazy
    await rig.engine.durable(answered)  # a 202 names it: marked plainly first
    assert answered.id not in rig.recorder.lazy

    timer = rig.engine.start_run(d, {"x": "hi"}, origin="timer")  # known outside: plain
    assert timer.id in rig.recorder.runs and timer.id not in rig.recorder.lazy


async def test_an_early_order_never_overtakes_an_order_held_before_it() -> None:
    rig = make_rig(hold_orders=True)
    channel = rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    rig.recorder.commit()
    held = rig.engine.start_run(d, {"x": "hi"}, origin="timer")  # a timer's: held
    early = rig.engine.start_run(d, {"x": "hi"}, origin="http", unannounced=True)
    assert not channel.of(ExecuteOrder)  # behind the held one, in order_seq order
    rig.recorder.commit()
    orders = channel.of(ExecuteOrder)
    assert [o.run_id for o in orders] == [held.id, early.id]
    assert orders[0].order_seq < orders[1].order_seq
    assert rig.engine.stats.early_orders == 0


async def test_a_runner_that_crashed_before_recording_an_unannounced_run_cancels_its_step() -> None:
    rig = make_rig(hold_orders=True)
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    rig.recorder.commit()
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http", unannounced=True)
    [order] = rig.executes("s1")
    # The runner crashes before the run's commit; its caller got no answer. A new runner, from
    # what was committed (the deployment, not the run), hears the worker name the execution.
    again = make_rig(hold_orders=True)
    await again.deploy(processor("a"))
    back = again.register(
        "s1", last_seen=order.order_seq, running=frozenset({order.execution_id}), ready=("a",)
    )
    again.recorder.commit()
    [cancel] = back.of(CancelOrder)
    assert cancel.execution_id == order.execution_id
    assert not again.engine.is_running(run.id)
    again.complete("s1", order, "late")  # its result changes nothing
    assert not again.engine.is_running(run.id)


async def test_an_order_held_for_a_closed_stream_is_dropped_and_derived_again() -> None:
    rig = make_rig(hold_orders=True)
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    rig.recorder.commit()
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [held] = [e for e in run.executions.values() if e.step_id == "a"]
    old = rig.channels["s1"]

    new = rig.register("s1", last_seen=held.order_seq - 1, ready=("a",))  # it never got it
    rig.recorder.commit()
    assert not old.of(ExecuteOrder)  # meant for the old stream: never sent
    [resent] = new.of(ExecuteOrder)
    assert resent.execution_id == held.id and resent.order_seq > held.order_seq - 1
    rig.complete("s1", resent)
    assert run.state is RunState.COMPLETED


async def test_a_duplicate_result_of_an_ended_execution_is_ignored(rig: Rig) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [order] = rig.executes("s1")
    rig.complete("s1", order, "first")
    result = ExecutionResult(outcome=Outcome.FAILED, error="late")
    rig.report("s1", ExecutionEnded(execution_id=order.execution_id, result=result))
    assert run.state is RunState.COMPLETED and run.results == {"y": "first"}


async def test_an_execution_its_site_reports_lost_runs_again_as_a_new_attempt(rig: Rig) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "hi"}, origin="http")
    [first] = rig.executes("s1")
    lost = ExecutionResult(outcome=Outcome.FAILED, error="slurm job 7: NODE_FAIL")
    rig.report("s1", ExecutionEnded(execution_id=first.execution_id, result=lost, lost=True))
    gone = execution(run, first)
    assert gone.state is ExecutionState.LOST
    assert gone.error == "lost on its site: slurm job 7: NODE_FAIL"
    [again] = rig.executes("s1")[1:]
    retry = execution(run, again)
    assert retry.retry_of == first.execution_id and retry.infra_retries == 1
    rig.complete("s1", again)
    assert run.state is RunState.COMPLETED
