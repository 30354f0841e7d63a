"""Domain rules without infrastructure: run state machine, readiness, fan-out/fan-in,
placement, deployment states, values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ryax_runner.domain.deployment import Deployment, DeploymentId, DeploymentState, StepState
from ryax_runner.domain.errors import Conflict, InvalidInput
from ryax_runner.domain.run import (
    ExecutionResult,
    ExecutionState,
    Outcome,
    Run,
    RunId,
    RunState,
    execution_id_for,
    merge_branches,
)
from ryax_runner.domain.site import (
    NodePool,
    NoPlacement,
    Placement,
    Site,
    SiteState,
    place,
    site_id_for,
)
from ryax_runner.domain.values import FileRef, coerce, from_json, parse_text, to_json
from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    Resources,
    ResultDefinition,
    SecretInput,
    StaticInput,
    StepDefinition,
    StepSettings,
    TriggerDefinition,
    WorkflowDefinition,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def st(
    step_id: str,
    parents: tuple[str, ...] = (),
    refs: dict[str, tuple[str, str]] | None = None,
    retries: int = 0,
    **settings: object,
) -> StepDefinition:
    refs = refs or {}
    return StepDefinition(
        step_id=step_id,
        action_id=step_id,
        action_version="1",
        action_kind="processor",
        inputs=tuple(IO(name=n, type="string") for n in refs),
        outputs=(IO(name="o", type="string"),),
        input_values=tuple(
            (n, ReferenceInput(step_id=s, output_name=o)) for n, (s, o) in refs.items()
        ),
        parent_step_ids=parents,
        settings=StepSettings(retries=retries, **settings),  # type: ignore[arg-type]
    )


def wf(*steps: StepDefinition, results: tuple[ResultDefinition, ...] = ()) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="t",
        action_id="t",
        action_version="1",
        action_kind="trigger",
        outputs=(IO(name="o", type="string"),),
    )
    return WorkflowDefinition(
        steps=(trigger, *steps),
        trigger=TriggerDefinition(step_id="t", http_endpoint=True),
        results=results,
    )


def start(definition: WorkflowDefinition, value: str = "v") -> tuple[Run, list]:
    run, update = Run.start(
        id=RunId(str(uuid.uuid4())),
        project_id="p",
        deployment_id="d",
        workflow_id="w",
        workflow_name="n",
        definition=definition,
        trigger_outputs={"o": value},
        origin="http",
        now=NOW,
    )
    return run, update.ready


def done(outputs: dict | None = None, items: list | None = None) -> ExecutionResult:
    return ExecutionResult(outcome=Outcome.COMPLETED, outputs=outputs, outputs_list=items)


# -- runs ------------------------------------------------------------------------------------


def test_chain_runs_in_order_and_completes_once() -> None:
    run, ready = start(wf(st("a", ("t",), {"x": ("t", "o")}), st("b", ("a",), {"x": ("a", "o")})))
    assert run.state is RunState.PENDING
    assert [e.step_id for e in ready] == ["a"] and ready[0].inputs == {"x": "v"}
    run.mark_dispatched(ready[0], site_id="s", order_seq=1, now=NOW)
    assert run.state is RunState.RUNNING
    u = run.finish(ready[0].id, done({"o": "A"}), now=NOW)
    assert [(e.step_id, e.inputs) for e in u.ready] == [("b", {"x": "A"})]
    u2 = run.finish(u.ready[0].id, done({"o": "B"}), now=NOW)
    assert u2.ended and run.state is RunState.COMPLETED and run.results == {"o": "B"}
    # A duplicate result changes nothing.
    again = run.finish(u.ready[0].id, done({"o": "C"}), now=NOW)
    assert not again.ended and run.results == {"o": "B"}


def test_trigger_without_steps_completes_at_once() -> None:
    run, ready = start(wf())
    assert not ready and run.state is RunState.COMPLETED


def test_fan_out_runs_downstream_once_per_item_and_empty_list_ends_branch() -> None:
    run, ready = start(
        wf(
            st("split", ("t",)),
            st("each", ("split",), {"x": ("split", "o")}),
            results=(ResultDefinition(key="r", step_id="each", output_name="o"),),
        )
    )
    u = run.finish(ready[0].id, done(items=[{"o": "1"}, {"o": "2"}]), now=NOW)
    assert sorted(e.inputs["x"] for e in u.ready) == ["1", "2"]
    for e in u.ready:
        run.finish(e.id, done({"o": e.inputs["x"] * 2}), now=NOW)
    assert run.state is RunState.COMPLETED and run.results == {"r": ["11", "22"]}
    run2, ready2 = start(wf(st("split", ("t",)), st("each", ("split",), {"x": ("split", "o")})))
    u2 = run2.finish(ready2[0].id, done(items=[]), now=NOW)
    assert not u2.ready and run2.state is RunState.COMPLETED


def test_fan_in_waits_for_all_parents_and_joins_shared_fan_out_elementwise() -> None:
    run, ready = start(
        wf(
            st("split", ("t",)),
            st("a", ("split",), {"x": ("split", "o")}),
            st("b", ("split",), {"x": ("split", "o")}),
            st("join", ("a", "b"), {"x": ("a", "o"), "y": ("b", "o")}),
        )
    )
    u = run.finish(ready[0].id, done(items=[{"o": "0"}, {"o": "1"}]), now=NOW)
    a = [e for e in u.ready if e.step_id == "a"]
    b = [e for e in u.ready if e.step_id == "b"]
    joined = []
    for e in a:
        assert not run.finish(e.id, done({"o": "a" + e.inputs["x"]}), now=NOW).ready
    for e in b:
        joined += run.finish(e.id, done({"o": "b" + e.inputs["x"]}), now=NOW).ready
    assert sorted((j.inputs["x"], j.inputs["y"]) for j in joined) == [("a0", "b0"), ("a1", "b1")]


def test_independent_fan_outs_cross() -> None:
    run, ready = start(
        wf(
            st("p", ("t",)),
            st("q", ("t",)),
            st("j", ("p", "q"), {"x": ("p", "o"), "y": ("q", "o")}),
        )
    )
    p, q = sorted(ready, key=lambda e: e.step_id)
    run.finish(p.id, done(items=[{"o": "p0"}, {"o": "p1"}]), now=NOW)
    u = run.finish(q.id, done(items=[{"o": "q0"}, {"o": "q1"}, {"o": "q2"}]), now=NOW)
    assert len(u.ready) == 6


def test_merge_branches() -> None:
    assert merge_branches([(("a", 1),), (("a", 1), ("b", 0))]) == (("a", 1), ("b", 0))
    assert merge_branches([(("a", 1),), (("a", 2),)]) is None


def test_failure_retries_then_fails_with_reason() -> None:
    run, ready = start(wf(st("a", ("t",), retries=1)))
    failed = ExecutionResult(outcome=Outcome.FAILED, error="ValueError: x", traceback="tb")
    u = run.finish(ready[0].id, failed, now=NOW, retry_backoff_seconds=2)
    assert not u.ended and len(u.retries) == 1
    retry = u.retries[0]
    assert retry.attempt == 2 and retry.not_before == NOW + timedelta(seconds=2)
    assert retry.id == execution_id_for(run.id, "a", (), 2)
    u2 = run.finish(retry.id, failed, now=NOW)
    assert u2.ended and run.state is RunState.FAILED
    assert run.reason == "step a failed (after 2 attempts): ValueError: x"


def test_client_error_is_not_retried_and_carries_http_status() -> None:
    run, ready = start(wf(st("a", ("t",), retries=3)))
    u = run.finish(
        ready[0].id, ExecutionResult(outcome=Outcome.FAILED, error="bad", http_status=422), now=NOW
    )
    assert u.ended and run.http_status == 422 and run.failed_step_id == "a"


def test_a_lost_execution_runs_again_at_once_within_the_infrastructure_budget() -> None:
    run, ready = start(wf(st("a", ("t",))))  # no user retries
    first = ready[0]
    run.mark_dispatched(first, site_id="s", order_seq=1, now=NOW)
    later = NOW + timedelta(seconds=5)
    u = run.lose(first.id, "worker lost: w1", now=later, infra_budget=2)
    assert first.state is ExecutionState.LOST and first.error == "worker lost: w1"
    assert first.ended_at == later and not u.retries
    [second] = u.ready
    assert (second.attempt, second.infra_retries, second.retry_of) == (2, 1, first.id)
    assert second.not_before == later and second.state is ExecutionState.WAITING
    assert not run.state.is_terminal
    third = run.lose(second.id, "worker lost: w2", now=later, infra_budget=2).ready[0]
    assert (third.attempt, third.infra_retries, third.retry_of) == (3, 2, second.id)

    u = run.lose(third.id, "worker lost: w3", now=later, infra_budget=2)
    assert u.ended and not u.ready and run.state is RunState.FAILED
    assert run.reason == "step a lost its worker 3 times: worker lost: w3"
    assert run.failed_step_id == "a"
    # Every attempt keeps its own record.
    assert [(e.attempt, e.state) for e in run.executions.values() if e.step_id == "a"] == [
        (1, ExecutionState.LOST),
        (2, ExecutionState.LOST),
        (3, ExecutionState.LOST),
    ]
    # A late result of a lost attempt changes nothing.
    assert run.finish(first.id, done({"o": "late"}), now=later).ready == []
    assert first.state is ExecutionState.LOST and run.state is RunState.FAILED


def test_user_retries_count_failures_only_not_lost_attempts() -> None:
    run, ready = start(wf(st("a", ("t",), retries=1)))
    lost = run.lose(ready[0].id, "worker lost", now=NOW, infra_budget=3).ready[0]
    # Attempt 2 is the step's first try: its failure is retried once, after the first backoff.
    u = run.finish(lost.id, ExecutionResult(outcome=Outcome.FAILED, error="boom"), now=NOW)
    [retry] = u.retries
    assert (retry.attempt, retry.infra_retries, retry.retry_of) == (3, 1, lost.id)
    assert retry.not_before == NOW + timedelta(seconds=1)
    u = run.finish(retry.id, ExecutionResult(outcome=Outcome.FAILED, error="boom"), now=NOW)
    assert u.ended and run.state is RunState.FAILED and "after 3 attempts): boom" in run.reason


def test_a_lost_attempt_after_a_failure_keeps_the_user_retries_left() -> None:
    run, ready = start(wf(st("a", ("t",), retries=1)))
    u = run.finish(ready[0].id, ExecutionResult(outcome=Outcome.FAILED, error="boom"), now=NOW)
    retry = u.retries[0]
    again = run.lose(retry.id, "worker lost", now=NOW, infra_budget=1).ready[0]
    assert (again.attempt, again.user_attempt) == (3, 2)
    u = run.finish(again.id, ExecutionResult(outcome=Outcome.FAILED, error="boom"), now=NOW)
    assert u.ended and not u.retries  # one user retry, spent by attempt 2


def test_a_runner_side_failure_is_a_failure_of_the_step() -> None:
    run, ready = start(wf(st("a", ("t",), retries=1)))
    u = run.fail(ready[0].id, "timed out after 60 s", now=NOW)
    assert ready[0].state is ExecutionState.FAILED and len(u.retries) == 1
    u = run.fail(u.retries[0].id, "no site could run step a", now=NOW, retryable=False)
    assert u.ended and run.reason == "step a failed (after 2 attempts): no site could run step a"


def test_losing_an_execution_of_an_ended_run_starts_nothing() -> None:
    run, ready = start(wf(st("a", ("t",)), st("b", ("t",))))
    for e in ready:
        run.mark_dispatched(e, site_id="s", order_seq=1, now=NOW)
    a = min(ready, key=lambda e: e.step_id)
    run.cancel("by alice", NOW)
    u = run.lose(a.id, "worker lost", now=NOW, infra_budget=3)
    assert a.state is ExecutionState.LOST and not u.ready and run.state is RunState.CANCELLED


def test_failure_cancels_the_other_active_executions() -> None:
    run, ready = start(wf(st("a", ("t",)), st("b", ("t",))))
    for e in ready:
        run.mark_dispatched(e, site_id="s", order_seq=1, now=NOW)
    a, b = sorted(ready, key=lambda e: e.step_id)
    u = run.finish(a.id, ExecutionResult(outcome=Outcome.FAILED, error="x"), now=NOW)
    assert u.ended and u.cancel == [b]
    # b's late result is recorded but the run stays failed.
    run.finish(b.id, done({"o": "late"}), now=NOW)
    assert run.state is RunState.FAILED and b.state is ExecutionState.COMPLETED


def test_cancel_exactly_once() -> None:
    run, ready = start(wf(st("a", ("t",))))
    u = run.cancel("by alice", NOW)
    assert u.ended and run.state is RunState.CANCELLED and run.reason == "by alice"
    assert ready[0].state is ExecutionState.CANCELLED  # was waiting: cancelled at once
    with pytest.raises(Conflict):
        run.cancel("again", NOW)


def test_oversized_inline_output_fails_the_execution() -> None:
    run, ready = start(wf(st("a", ("t",))))
    run.finish(ready[0].id, done({"o": "x" * 70_000}), now=NOW)
    assert run.state is RunState.FAILED and "inline limit" in run.reason


def test_secrets_are_masked_in_recorded_inputs_but_sent_in_clear() -> None:
    step = StepDefinition(
        step_id="a",
        action_id="a",
        action_version="1",
        action_kind="processor",
        inputs=(
            IO(name="key", type="string"),
            IO(name="pw", type="password"),
            IO(name="n", type="integer", default_json="3"),
        ),
        input_values=(
            ("key", SecretInput(name="api", value="s3cr3t")),
            ("pw", StaticInput(value="hunter2")),
        ),
        parent_step_ids=("t",),
    )
    run, ready = start(wf(step))
    assert ready[0].inputs == {"key": "***", "pw": "***", "n": 3}
    assert run.resolve_inputs(step, ()) == {"key": "s3cr3t", "pw": "hunter2", "n": 3}


def test_restore_rebuilds_branches_and_missing_executions() -> None:
    definition = wf(st("a", ("t",), {"x": ("t", "o")}), st("b", ("a",), {"x": ("a", "o")}))
    run, ready = start(definition)
    run.finish(ready[0].id, done({"o": "A"}), now=NOW)
    # Pretend the crash lost b: only t and a were recorded.
    recorded = [e for e in run.executions.values() if e.step_id != "b"]
    fresh = Run(
        id=run.id,
        project_id="p",
        deployment_id="d",
        workflow_id="w",
        workflow_name="n",
        definition=definition,
        origin="http",
        created_at=NOW,
        state=RunState.RUNNING,
    )
    update = Run.restore(fresh, recorded, NOW)
    assert [(e.step_id, e.inputs) for e in update.ready] == [("b", {"x": "A"})]


# -- placement -----------------------------------------------------------------------------


def site(
    name: str,
    labels: dict[str, str] | None = None,
    pools: tuple[NodePool, ...] = (),
    online: bool = True,
) -> Site:
    return Site(
        id=site_id_for(name),
        name=name,
        worker_id=name,
        backend_kind="local",
        node_pools=pools,
        labels=labels or {},
        registered_at=NOW,
        last_seen_at=NOW,
        state=SiteState.ONLINE if online else SiteState.OFFLINE,
    )


def test_placement_constraints() -> None:
    hpc = site("hpc", {"zone": "eu"}, (NodePool(name="big", cpu=64, memory_bytes=2**40, gpu=4),))
    laptop = site("laptop", {"zone": "us"})
    off = site("old", online=False)
    sites = [hpc, laptop, off]
    assert isinstance(place(st("a"), sites, {hpc.id: 5}), Placement)
    assert place(st("a"), sites, {hpc.id: 5}) == Placement(site_id=laptop.id, node_pool="")
    assert place(st("a", site_name="hpc"), sites) == Placement(site_id=hpc.id, node_pool="big")
    eu = st("a", labels=(("zone", "eu"),))
    assert place(eu, sites) == Placement(site_id=hpc.id, node_pool="big")
    gpu = st("a", resources=Resources(gpu=8))
    no = place(gpu, sites)
    assert isinstance(no, NoPlacement)
    assert no.reason == "step a: asks 8 gpu; the closest node pool, big@hpc, has 4 gpu"
    assert isinstance(place(st("a", site_name="old"), sites), NoPlacement)
    assert "no site is online" in place(st("a"), [off]).reason  # type: ignore[union-attr]
    pool = st("a", node_pool="small")
    assert "node pool 'small'" in place(pool, sites).reason  # type: ignore[union-attr]


# -- deployments ---------------------------------------------------------------------------


def test_deployment_states_follow_steps() -> None:
    d = Deployment.request(
        id=DeploymentId("d"),
        project_id="p",
        workflow_id="w",
        workflow_name="n",
        snapshot_id="s",
        definition=wf(st("a", ("t",)), st("b", ("t",))),
        requested_by="u",
        now=NOW,
    )
    assert set(d.steps) == {"a", "b"}  # the http endpoint trigger is not deployed
    d.unplace("a", "step a: no site is online")
    d.place("b", site_id_for("x"), "")
    d.refresh(NOW)
    assert d.state is DeploymentState.WAITING_FOR_SITE and "no site" in d.reason
    d.place("a", site_id_for("x"), "")
    d.refresh(NOW)
    assert d.state is DeploymentState.DEPLOYING
    d.step_reported("a", StepState.READY, "")
    d.step_reported("b", StepState.READY, "")
    d.refresh(NOW)
    assert d.state is DeploymentState.DEPLOYED
    d.step_reported("a", StepState.FAILED, "trigger process exited with code 1")
    d.refresh(NOW)
    assert d.state is DeploymentState.FAILED and "step a: trigger process exited" in d.reason
    assert [e.state_seq for e in d.events] == [1, 2, 3, 4, 5]
    steps = d.start_undeploy(NOW)
    assert {s.step_id for s in steps} == {"a", "b"}
    for s in steps:
        d.step_reported(s.step_id, StepState.UNDEPLOYED, "")
    d.refresh(NOW)
    assert d.state is DeploymentState.UNDEPLOYED


# -- values --------------------------------------------------------------------------------


def test_values_coercion_and_json_roundtrip() -> None:
    assert coerce("integer", "n", 3.0) == 3
    with pytest.raises(InvalidInput, match="n: expected an integer"):
        coerce("integer", "n", True)
    with pytest.raises(InvalidInput, match="c: expected one of a, b"):
        coerce("enum", "c", "z", ("a", "b"))
    assert parse_text("boolean", "b", "yes") is True
    assert parse_text("float", "f", "1.5") == 1.5
    ref = FileRef(key="runs/x/y/z/f.txt", name="f.txt", size=3, sha256="ab")
    assert from_json(to_json(ref)) == ref
