"""Workflow edits, snapshots, deployments and secrets: domain rules without infrastructure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ryax_studio.domain.actions import ActionKind, ActionRef, IOType, Resources
from ryax_studio.domain.deployment import (
    Deployment,
    DeploymentId,
    DeploymentState,
    SnapshotId,
    WorkflowDeployRequested,
    WorkflowUndeployRequested,
    check_secret,
    take_snapshot,
    topological_order,
)
from ryax_studio.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    InvalidWorkflow,
    NotFound,
)
from ryax_studio.domain.workflow import (
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    WorkflowId,
    WorkflowResult,
)


def test_add_step_refuses_a_duplicate_id_and_a_bad_id(b: Any) -> None:
    wf = b.workflow(b.step("a", "uppercase"))
    with pytest.raises(AlreadyExists, match="step 'a' already exists"):
        wf.add_step(Step(id="a", action=ActionRef(action_id="x", version="1")), b.T0)
    with pytest.raises(InvalidInput, match="not a valid step id"):
        wf.add_step(Step(id="Not Valid", action=ActionRef(action_id="x", version="1")), b.T0)
    with pytest.raises(InvalidInput, match="not a valid step id"):
        wf.add_step(Step(id="a.b", action=ActionRef(action_id="x", version="1")), b.T0)


def test_a_trigger_is_added_first(b: Any) -> None:
    wf = b.workflow(b.step("a", "uppercase"))
    wf.add_step(
        Step(id="api", action=ActionRef(action_id="httpapijson", version="1.0")), b.T0, trigger=True
    )
    assert [s.id for s in wf.steps] == ["api", "a"]


def test_links(b: Any) -> None:
    wf = b.workflow(b.step("a", "uppercase"), b.step("b", "uppercase"), b.step("c", "uppercase"))
    wf.add_link("a", "b", b.T0)
    wf.add_link("b", "c", b.T0)
    with pytest.raises(InvalidInput, match="would make a cycle"):
        wf.add_link("c", "a", b.T0)
    with pytest.raises(InvalidInput, match="cannot stream to itself"):
        wf.add_link("a", "a", b.T0)
    with pytest.raises(AlreadyExists):
        wf.add_link("a", "b", b.T0)
    with pytest.raises(NotFound, match="step 'z' not found"):
        wf.add_link("a", "z", b.T0)
    assert wf.parents() == {"a": [], "b": ["a"], "c": ["b"]}
    wf.remove_link("a", "b", b.T0)
    with pytest.raises(NotFound):
        wf.remove_link("a", "b", b.T0)


def test_removing_a_step_removes_its_links_but_keeps_references(b: Any) -> None:
    wf = b.demo_workflow()
    wf.remove_step("shout", b.T0)
    assert wf.step("count").streams_to == ["slug"]
    assert wf.step("join").inputs["left"] == ReferenceValue(step_id="shout", output="upper")


def test_inputs(b: Any) -> None:
    wf = b.demo_workflow()
    wf.set_input("report", "title", SecretValue(name="s"), b.T0)
    assert wf.step("report").inputs["title"] == SecretValue(name="s")
    with pytest.raises(InvalidInput, match="its own output"):
        wf.set_input("report", "text", ReferenceValue(step_id="report", output="report"), b.T0)
    wf.unset_input("report", "title", b.T0)
    with pytest.raises(NotFound):
        wf.unset_input("report", "title", b.T0)
    with pytest.raises(InvalidInput):
        wf.set_input("report", "not a name", StaticValue(value=1), b.T0)


def test_copy_is_independent(b: Any) -> None:
    wf = b.demo_workflow()
    other = wf.copy(WorkflowId("wf-2"), "copy", b.T0)
    other.step("report").inputs["title"] = StaticValue(value="changed")
    other.step("api").streams_to.append("x")
    assert wf.step("report").inputs["title"] == StaticValue(value="Posted")
    assert wf.step("api").streams_to == ["report"]
    assert other.name == "copy" and other.id == "wf-2"


def test_settings_and_results_rules(b: Any) -> None:
    wf = b.demo_workflow()
    good = StepSettings(
        timeout_seconds=30,
        retries=3,
        site_name="hpc",
        node_pool="gpu",
        labels=(("zone", "eu"),),
        resources=Resources(cpu=2, memory_bytes=1024),
    )
    wf.set_settings("count", good, b.T0)
    assert wf.step("count").settings == good
    for bad in (
        StepSettings(timeout_seconds=0),
        StepSettings(retries=101),
        StepSettings(resources=Resources(cpu=-1)),
        StepSettings(site_name=" "),
    ):
        with pytest.raises(InvalidInput):
            wf.set_settings("count", bad, b.T0)
    with pytest.raises(InvalidInput, match="given twice"):
        wf.set_results([WorkflowResult(key="k", step_id="a", output="b")] * 2, b.T0)
    with pytest.raises(InvalidInput, match="not a valid result key"):
        wf.set_results([WorkflowResult(key="a b", step_id="a", output="b")], b.T0)


def test_rename_rules(b: Any) -> None:
    wf = b.demo_workflow()
    for bad in ("", "   ", "x" * 201, "tab\there"):
        with pytest.raises(InvalidInput):
            wf.rename(bad, b.T0)
    wf.rename("New name", b.T0)
    assert wf.name == "New name"


# ---- snapshots ---------------------------------------------------------------------------------
def test_an_invalid_workflow_cannot_be_snapshotted(b: Any) -> None:
    wf = b.demo_workflow()
    wf.step("join").inputs.pop("left")
    with pytest.raises(InvalidWorkflow) as error:
        take_snapshot(wf, b.standard_store(), set(), SnapshotId("s1"), b.T0)
    assert [p.code for p in error.value.problems] == ["missing_input"]


def test_snapshot_has_everything_the_runner_needs(b: Any) -> None:
    wf = b.demo_workflow()
    wf.set_settings("count", StepSettings(retries=2), b.T0)
    snap = take_snapshot(wf, b.standard_store(), set(), SnapshotId("s1"), b.T0)
    assert [s.step_id for s in snap.steps] == [
        "api",
        "report",
        "count",
        "shout",
        "slug",
        "join",
        "log",
    ]
    assert snap.trigger_step_id == "api" and snap.http_endpoint is True
    assert [f.name for f in snap.trigger_fields] == ["text"]
    api = snap.steps[0]
    # Defaults are resolved as static values; the built-in trigger has no artefact.
    assert dict(api.input_values)["method"] == StaticValue(value="POST")
    assert dict(api.input_values)["timeout"] == StaticValue(value=60)
    assert api.artefact_key == "" and api.parent_step_ids == ()
    join = next(s for s in snap.steps if s.step_id == "join")
    assert join.parent_step_ids == ("shout", "slug")
    assert dict(join.input_values)["separator"] == StaticValue(value=" ")
    assert join.artefact_key == "artefacts/concat-1.0.tar.gz"
    log = next(s for s in snap.steps if s.step_id == "log")
    assert log.action_kind is ActionKind.PUBLISHER
    assert next(s for s in snap.steps if s.step_id == "count").settings.retries == 2
    assert snap.uses(ActionRef(action_id="concat", version="1.0"))
    assert not snap.uses(ActionRef(action_id="uppercase", version="2.0"))


def test_the_snapshot_does_not_change_when_the_workflow_does(b: Any) -> None:
    wf = b.demo_workflow()
    snap = take_snapshot(wf, b.standard_store(), set(), SnapshotId("s1"), b.T0)
    wf.set_input("report", "title", StaticValue(value="edited"), b.T0)
    wf.remove_step("log", b.T0)
    assert snap.definition.step("report").inputs["title"] == StaticValue(value="Posted")
    assert snap.definition.find_step("log") is not None


def test_a_timer_snapshot_is_not_an_http_endpoint_and_keeps_action_resources(b: Any) -> None:
    store = b.standard_store()
    timer = store[ActionRef(action_id="timer", version="1.0")]
    timer.resources = Resources(cpu=0.1, memory_bytes=64 * 2**20)
    wf = b.workflow(
        b.step("tick", "timer", streams_to=["up"]), b.step("up", "uppercase", text="@tick.time")
    )
    snap = take_snapshot(wf, store, set(), SnapshotId("s1"), b.T0)
    assert snap.http_endpoint is False
    assert snap.steps[0].settings.resources == Resources(cpu=0.1, memory_bytes=64 * 2**20)


def test_secret_names_of_a_snapshot(b: Any) -> None:
    wf = b.workflow(
        b.step("tick", "timer", streams_to=["t"]),
        b.step(
            "t",
            "typed",
            s=SecretValue(name="k1"),
            p=SecretValue(name="k2"),
            ls=SecretValue(name="k1"),
        ),
    )
    snap = take_snapshot(wf, b.standard_store(), {"k1", "k2"}, SnapshotId("s1"), b.T0)
    assert snap.secret_names() == ["k1", "k2"]


def test_topological_order_keeps_step_order_for_ties(b: Any) -> None:
    wf = b.workflow(
        b.step("t", "timer", streams_to=["b", "a"]),
        b.step("a", "uppercase"),
        b.step("b", "uppercase", streams_to=["a"]),
    )
    assert [s.id for s in topological_order(wf)] == ["t", "b", "a"]


# ---- deployments -------------------------------------------------------------------------------
def _deployment(b: Any) -> Deployment:
    snap = take_snapshot(b.demo_workflow(), b.standard_store(), set(), SnapshotId("s1"), b.T0)
    return Deployment.request(
        deployment_id=DeploymentId("d1"),
        event_id="e1",
        snapshot=snap,
        current=None,
        values={("report", "title"): "topsecret-title"},
        requested_by="alice",
        now=b.T0,
    )


def test_deploy_records_the_request_event(b: Any) -> None:
    d = _deployment(b)
    assert d.state is DeploymentState.REQUESTED and d.active
    [event] = d.events
    assert isinstance(event, WorkflowDeployRequested)
    assert event.snapshot.id == "s1" and event.deployment_id == "d1"
    assert d.values == {("report", "title"): "topsecret-title"}
    assert "topsecret" not in repr(event) and "topsecret" not in repr(d)


def test_a_second_deploy_is_a_conflict(b: Any) -> None:
    d = _deployment(b)
    snap = take_snapshot(b.demo_workflow(), b.standard_store(), set(), SnapshotId("s2"), b.T0)
    with pytest.raises(Conflict, match="already deployed"):
        Deployment.request(
            deployment_id=DeploymentId("d2"),
            event_id="e2",
            snapshot=snap,
            current=d,
            values={},
            requested_by="bob",
            now=b.T0,
        )
    d.apply_state(DeploymentState.UNDEPLOYED, "", 5, b.T0)
    again = Deployment.request(
        deployment_id=DeploymentId("d2"),
        event_id="e2",
        snapshot=snap,
        current=d,
        values={},
        requested_by="bob",
        now=b.T0,
    )
    assert again.active


def test_runner_states_apply_in_order_only(b: Any) -> None:
    d = _deployment(b)
    later = b.T0 + timedelta(seconds=5)
    assert d.apply_state(DeploymentState.DEPLOYED, "", 2, later)
    assert not d.apply_state(DeploymentState.DEPLOYING, "", 1, later)  # late, older
    assert not d.apply_state(DeploymentState.DEPLOYING, "", 2, later)  # repeat
    assert d.state is DeploymentState.DEPLOYED and d.state_seq == 2 and d.updated_at == later
    assert d.apply_state(DeploymentState.FAILED, "step x: exited 1", 3, later)
    assert not d.active and d.reason == "step x: exited 1"


def test_undeploy(b: Any) -> None:
    d = _deployment(b)
    d.events.clear()
    d.request_undeploy("e2", "alice", b.T0)
    assert d.state is DeploymentState.UNDEPLOYING
    assert isinstance(d.events[0], WorkflowUndeployRequested)
    with pytest.raises(Conflict, match="already being undeployed"):
        d.request_undeploy("e3", "alice", b.T0)
    d.apply_state(DeploymentState.UNDEPLOYED, "", 9, b.T0)
    with pytest.raises(Conflict, match="nothing to undeploy"):
        d.request_undeploy("e4", "alice", b.T0)


def test_secret_rules() -> None:
    check_secret("db_password", "x")
    for name in ("", "1abc", "has space", "x" * 129):
        with pytest.raises(InvalidInput):
            check_secret(name, "value")
    with pytest.raises(InvalidInput):
        check_secret("ok", "")
    with pytest.raises(InvalidInput):
        check_secret("ok", "x" * (64 * 1024 + 1))


def test_io_required(b: Any) -> None:
    assert b.io("x").required
    assert not b.io("x", optional=True).required
    assert not b.io("x", IOType.INTEGER, has_default=True, default=0).required
