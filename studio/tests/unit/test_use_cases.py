"""Use cases through in-memory fakes: state and emitted events, not mock calls."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ryax_studio.domain.actions import ActionKind, IOType, ProjectId
from ryax_studio.domain.deployment import (
    DeploymentState,
    WorkflowDeployRequested,
    WorkflowUndeployRequested,
)
from ryax_studio.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidDocument,
    InvalidInput,
    InvalidWorkflow,
    NotFound,
)
from ryax_studio.domain.workflow import ReferenceValue, SecretValue, StaticValue

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"
OTHER = ProjectId("project-b")


async def fill_store(app: Any, b: Any, project: ProjectId | None = None) -> None:
    for i, a in enumerate(b.standard_store(project or b.PROJECT).values()):
        if not a.builtin:
            await app.actions.register(f"msg-{project}-{i}", a)
    await app.actions.register(
        "msg-fail",
        b.action(
            "fail-on-purpose",
            inputs=[b.io("message"), b.io("code", IOType.INTEGER)],
            project=project or b.PROJECT,
        ),
    )
    await app.actions.register(
        "msg-slug",
        b.action(
            "slugify-text",
            inputs=[b.io("text")],
            outputs=[b.io("slug")],
            project=project or b.PROJECT,
        ),
    )
    await app.actions.register(
        "msg-poison",
        b.action(
            "poison-output",
            inputs=[b.io("kind", has_default=True, default="ok")],
            outputs=[b.io("text_value"), b.io("number_value", IOType.FLOAT)],
            project=project or b.PROJECT,
        ),
    )


async def build_demo(app: Any, b: Any) -> str:
    """The demo workflow, built step by step through the use cases."""
    await fill_store(app, b)
    w = app.workflows
    view = await w.create(b.PROJECT, "demo")
    wid = view.workflow.id
    for sid, action in (
        ("report", "make-report"),
        ("count", "word-count"),
        ("shout", "uppercase"),
        ("log", "print-publisher"),
    ):
        await w.add_step(b.PROJECT, wid, step_id=sid, action_id=action, version="1.0")
    await w.add_step(b.PROJECT, wid, step_id="api", action_id="httpapijson", version="1.0")
    await w.set_outputs(b.PROJECT, wid, "api", (b.io("text"),))
    for a, c in (("api", "report"), ("report", "count"), ("count", "shout"), ("shout", "log")):
        await w.add_link(b.PROJECT, wid, a, c)
    await w.set_input(b.PROJECT, wid, "api", "path", StaticValue(value="/demo"))
    await w.set_input(b.PROJECT, wid, "api", "summary", StaticValue(value="Demo"))
    await w.set_input(
        b.PROJECT, wid, "report", "text", ReferenceValue(step_id="api", output="text")
    )
    await w.set_input(
        b.PROJECT, wid, "count", "document", ReferenceValue(step_id="report", output="report")
    )
    await w.set_input(b.PROJECT, wid, "shout", "text", ReferenceValue(step_id="api", output="text"))
    view = await w.set_input(
        b.PROJECT, wid, "log", "total", ReferenceValue(step_id="count", output="total")
    )
    assert view.problems == []
    assert [s.id for s in view.workflow.steps] == ["api", "report", "count", "shout", "log"]
    return str(wid)


# ---- action store ------------------------------------------------------------------------------
async def test_action_ready_adds_a_version_once(app: Any, b: Any) -> None:
    a = b.action("uppercase")
    assert await app.actions.register("m1", a)
    assert not await app.actions.register("m1", a)  # redelivery: no-op
    assert await app.actions.register("m2", a)  # a new event for the same version: update
    assert (await app.actions.show(b.PROJECT, "uppercase", "1.0")).artefact_key == a.artefact_key
    with pytest.raises(NotFound):
        await app.actions.show(OTHER, "uppercase", "1.0")


async def test_the_builtin_trigger_is_in_every_project_and_cannot_be_replaced(
    app: Any, b: Any
) -> None:
    for project in (b.PROJECT, OTHER):
        found = await app.actions.search(project)
        assert [(a.action_id, a.version, a.builtin) for a in found] == [
            ("httpapijson", "1.0", True),
            ("postgw", "1.5", True),
            ("emitgw", "1.2", True),
            ("crongw", "1.0", True),
            ("runonce", "1.1", True),
        ]
    with pytest.raises(InvalidInput, match="built-in"):
        await app.actions.register("m", b.action("httpapijson", ActionKind.TRIGGER))
    timer = b.action("emitgw", ActionKind.TRIGGER)
    timer.version = "1.2"
    with pytest.raises(InvalidInput, match="built-in"):
        await app.actions.register("m", timer)
    with pytest.raises(Conflict, match="built in"):
        await app.actions.delete(b.PROJECT, "httpapijson", "1.0")


async def test_search(app: Any, b: Any) -> None:
    await fill_store(app, b)
    names = [(a.action_id, a.version) for a in await app.actions.search(b.PROJECT, text="upper")]
    assert names == [("uppercase", "1.0"), ("uppercase", "2.0")]
    triggers = await app.actions.search(b.PROJECT, kind=ActionKind.TRIGGER)
    assert [a.action_id for a in triggers] == [
        "httpapijson",
        "postgw",
        "emitgw",
        "crongw",
        "runonce",
        "timer",
    ]
    http = await app.actions.search(b.PROJECT, category="http")
    assert [a.action_id for a in http] == ["httpapijson", "postgw"]
    versions = await app.actions.versions(b.PROJECT, "uppercase")
    assert [a.version for a in versions] == ["1.0", "2.0"]
    with pytest.raises(NotFound):
        await app.actions.versions(b.PROJECT, "nope")


async def test_a_version_used_by_a_deployed_workflow_cannot_be_deleted(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    await app.deployments.deploy(b.PROJECT, wid, "alice")
    with pytest.raises(Conflict, match="used by deployed workflow"):
        await app.actions.delete(b.PROJECT, "uppercase", "1.0")
    await app.actions.delete(b.PROJECT, "uppercase", "2.0")  # not used
    await app.deployments.undeploy(b.PROJECT, wid, "alice")
    with pytest.raises(Conflict):  # still undeploying
        await app.actions.delete(b.PROJECT, "uppercase", "1.0")
    [deployment] = await app.deployments.list_for_workflow(b.PROJECT, wid)
    await app.deployments.apply_state(
        "r1",
        deployment_id=deployment.id,
        project_id=b.PROJECT,
        state="undeployed",
        reason="",
        seq=1,
        at=None,
    )
    await app.actions.delete(b.PROJECT, "uppercase", "1.0")
    problems = await app.workflows.problems(b.PROJECT, wid)
    assert [(p.code, p.step_id) for p in problems] == [("unknown_action", "shout")]


# ---- workflows ---------------------------------------------------------------------------------
async def test_workflow_lifecycle(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    with pytest.raises(Conflict, match="already exists"):
        await app.workflows.create(b.PROJECT, "demo")
    view = await app.workflows.update(b.PROJECT, wid, "renamed", "desc")
    assert (view.workflow.name, view.workflow.description) == ("renamed", "desc")
    assert (await app.workflows.show(b.PROJECT, "renamed")).workflow.id == wid  # by name
    copy = await app.workflows.copy(b.PROJECT, wid, "copy")
    assert copy.workflow.id != wid and copy.problems == []
    assert [i.workflow.name for i in await app.workflows.list_all(b.PROJECT)] == ["copy", "renamed"]
    await app.workflows.delete(b.PROJECT, "copy")
    with pytest.raises(NotFound):
        await app.workflows.show(b.PROJECT, "copy")


async def test_workflows_of_another_project_are_not_found(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    with pytest.raises(NotFound):
        await app.workflows.show(OTHER, wid)
    with pytest.raises(NotFound):
        await app.deployments.deploy(OTHER, wid, "mallory")
    with pytest.raises(NotFound):
        await app.workflows.delete(OTHER, wid)
    assert await app.workflows.list_all(OTHER) == []


async def test_steps(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    with pytest.raises(AlreadyExists):
        await app.workflows.add_step(
            b.PROJECT, wid, step_id="api", action_id="uppercase", version="1.0"
        )
    with pytest.raises(NotFound, match="not in the project's store"):
        await app.workflows.add_step(
            b.PROJECT, wid, step_id="x", action_id="uppercase", version="7.0"
        )
    view = await app.workflows.update_step(
        b.PROJECT, wid, "shout", version="2.0", human_name="Shout"
    )
    shout = view.workflow.step("shout")
    assert (shout.action.version, shout.human_name) == ("2.0", "Shout")
    view = await app.workflows.remove_step(b.PROJECT, wid, "shout")
    assert view.workflow.find_step("shout") is None
    # log lost its parent, so count is no longer upstream of it either
    assert [p.code for p in view.problems] == ["not_connected", "reference_not_upstream"]


async def test_every_edit_answers_with_the_current_problems(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    view = await app.workflows.set_input(
        b.PROJECT, wid, "count", "document", StaticValue(value="file.txt")
    )
    assert [(p.code, p.step_id, p.input_name) for p in view.problems] == [
        ("invalid_value", "count", "document")
    ]
    view = await app.workflows.unset_input(b.PROJECT, wid, "count", "document")
    assert [p.code for p in view.problems] == ["missing_input"]
    assert [p.code for p in await app.workflows.problems(b.PROJECT, wid)] == ["missing_input"]


# ---- secrets -----------------------------------------------------------------------------------
async def test_secrets(app: Any, b: Any) -> None:
    secret, created = await app.secrets.put(b.PROJECT, "token", "s3cr3t")
    assert created and b"s3cr3t" not in secret.ciphertext
    with pytest.raises(Conflict):
        await app.secrets.put(b.PROJECT, "token", "other", create_only=True)
    _, created = await app.secrets.put(b.PROJECT, "token", "v2")
    assert not created
    assert [s.name for s in await app.secrets.list_all(b.PROJECT)] == ["token"]
    assert await app.secrets.list_all(OTHER) == []
    await app.secrets.delete(b.PROJECT, "token")
    with pytest.raises(NotFound):
        await app.secrets.delete(b.PROJECT, "token")


# ---- deployments -------------------------------------------------------------------------------
async def test_deploy_emits_the_whole_snapshot_without_secret_values(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    await app.secrets.put(b.PROJECT, "title", "Top secret title")
    await app.workflows.set_input(b.PROJECT, wid, "report", "title", SecretValue(name="title"))
    deployment = await app.deployments.deploy(b.PROJECT, wid, "alice")
    [event] = app.state.outbox
    assert isinstance(event, WorkflowDeployRequested)
    assert event.deployment_id == deployment.id and event.requested_by == "alice"
    assert "Top secret title" not in repr(event)
    assert app.state.deployment_values[deployment.id] == {("report", "title"): "Top secret title"}
    _, values = await app.deployments.values_for_runner(deployment.id)
    assert values == {("report", "title"): "Top secret title"}
    assert event.snapshot.id == deployment.snapshot_id
    assert [s.step_id for s in event.snapshot.steps] == ["api", "report", "count", "shout", "log"]
    snapshots = await app.deployments.snapshots(b.PROJECT, wid)
    assert [s.id for s in snapshots] == [deployment.snapshot_id]
    assert (await app.workflows.show(b.PROJECT, wid)).deployment.state == "requested"


async def test_double_deploy_is_a_conflict_and_emits_nothing(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    await app.deployments.deploy(b.PROJECT, wid, "alice")
    with pytest.raises(Conflict, match="already deployed"):
        await app.deployments.deploy(b.PROJECT, wid, "alice")
    assert len(app.state.outbox) == 1


async def test_an_invalid_workflow_is_not_deployed(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    await app.workflows.unset_input(b.PROJECT, wid, "report", "text")
    with pytest.raises(InvalidWorkflow) as error:
        await app.deployments.deploy(b.PROJECT, wid, "alice")
    assert [(p.step_id, p.input_name) for p in error.value.problems] == [("report", "text")]
    assert app.state.outbox == [] and app.state.snapshots == {}


async def test_editing_after_deploy_never_rewrites_the_snapshot(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    deployment = await app.deployments.deploy(b.PROJECT, wid, "alice")
    await app.workflows.set_input(b.PROJECT, wid, "api", "summary", StaticValue(value="new"))
    snap = await app.deployments.snapshot(b.PROJECT, deployment.snapshot_id)
    assert snap.definition.step("api").inputs["summary"] == StaticValue(value="Demo")
    with pytest.raises(NotFound):
        await app.deployments.snapshot(OTHER, deployment.snapshot_id)


async def test_deployment_state_follows_the_runner(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    d = await app.deployments.deploy(b.PROJECT, wid, "alice")

    async def state(msg: str, value: str, seq: int, reason: str = "") -> bool:
        result: bool = await app.deployments.apply_state(
            msg,
            deployment_id=d.id,
            project_id=b.PROJECT,
            state=value,
            reason=reason,
            seq=seq,
            at=b.T0 + timedelta(minutes=seq),
        )
        return result

    assert await state("r1", "deploying", 1)
    assert await state("r3", "deployed", 3)
    assert not await state("r2", "waiting_for_site", 2)  # arrived late
    assert not await state("r3", "deployed", 3)  # redelivered
    view = await app.workflows.show(b.PROJECT, wid)
    assert (view.deployment.state, view.deployment.state_seq) == (DeploymentState.DEPLOYED, 3)
    with pytest.raises(InvalidInput):
        await state("r4", "exploded", 4)
    # A state change for another project's deployment is ignored.
    assert not await app.deployments.apply_state(
        "r5", deployment_id=d.id, project_id=OTHER, state="failed", reason="", seq=9, at=None
    )
    assert not await app.deployments.apply_state(
        "r6",
        deployment_id="unknown",
        project_id=b.PROJECT,
        state="failed",
        reason="",
        seq=9,
        at=None,
    )


async def test_undeploy(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    with pytest.raises(Conflict, match="not deployed"):
        await app.deployments.undeploy(b.PROJECT, wid, "alice")
    d = await app.deployments.deploy(b.PROJECT, wid, "alice")
    with pytest.raises(Conflict, match="is deployed"):
        await app.workflows.delete(b.PROJECT, wid)
    undeploying = await app.deployments.undeploy(b.PROJECT, wid, "bob")
    assert undeploying.state is DeploymentState.UNDEPLOYING
    assert isinstance(app.state.outbox[-1], WorkflowUndeployRequested)
    assert app.state.outbox[-1].deployment_id == d.id
    await app.deployments.apply_state(
        "u1",
        deployment_id=d.id,
        project_id=b.PROJECT,
        state="undeployed",
        reason="",
        seq=4,
        at=None,
    )
    again = await app.deployments.deploy(b.PROJECT, wid, "alice")
    assert again.id != d.id and again.snapshot_id != d.snapshot_id
    assert len(await app.deployments.list_for_workflow(b.PROJECT, wid)) == 2


# ---- import / export ---------------------------------------------------------------------------
async def test_import_the_examples_and_export_them_back(app: Any, b: Any) -> None:
    await fill_store(app, b)
    for path in sorted(EXAMPLES.glob("*.yaml")):
        view = await app.workflows.import_document(b.PROJECT, path.read_bytes())
        assert view.problems == [], path.name
        _, text = await app.workflows.export_document(b.PROJECT, view.workflow.id)
        again = await app.workflows.import_document(b.PROJECT, text.encode(), name="again")
        assert again.workflow.definition_equals(view.workflow.copy(view.workflow.id, "again", b.T0))
        await app.workflows.delete(b.PROJECT, "again")


async def test_import_reports_every_problem_with_its_line_and_saves_nothing(
    app: Any, b: Any
) -> None:
    await fill_store(app, b)
    text = b"""apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: broken
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    colour: blue
    inputs_values:
      path: /x
      summary: s
    outputs:
    - {name: text, human_name: T, help: h, type: string}
    streams_to: [up]
  - id: up
    from: uppercase
    version: "1.0"
    inputs_values:
      text: {reference_value: api.txt}
    streams_to: [ghost]
"""
    with pytest.raises(InvalidWorkflow) as error:
        await app.workflows.import_document(b.PROJECT, text)
    found = [(p.line, p.code) for p in error.value.problems]
    assert found == [(9, "invalid_document"), (20, "unknown_output"), (21, "dangling_link")]
    unknown = error.value.problems[0]
    assert "unknown field 'colour'" in unknown.message
    output = error.value.problems[1]
    assert output.path == "spec.functions[1] (up).inputs_values.text"
    assert output.step_id == "up" and output.input_name == "text"
    assert app.state.workflows == {}


async def test_draft_import_keeps_an_incomplete_workflow(app: Any, b: Any) -> None:
    await fill_store(app, b)
    text = (
        (EXAMPLES / "timer-to-log.yaml")
        .read_text()
        .replace("    inputs_values:\n      text:\n        reference_value: tick.time\n", "")
    )
    with pytest.raises(InvalidWorkflow):
        await app.workflows.import_document(b.PROJECT, text.encode())
    view = await app.workflows.import_document(b.PROJECT, text.encode(), draft=True)
    shout_line = text.splitlines().index("  - id: shout") + 1
    assert [(p.code, p.step_id, p.input_name, p.line, p.path) for p in view.problems] == [
        ("missing_input", "shout", "text", shout_line, "spec.functions[1] (shout)")
    ]


async def test_import_refuses_a_taken_name_and_bad_documents(app: Any, b: Any) -> None:
    await fill_store(app, b)
    data = (EXAMPLES / "timer-to-log.yaml").read_bytes()
    await app.workflows.import_document(b.PROJECT, data)
    with pytest.raises(Conflict):
        await app.workflows.import_document(b.PROJECT, data)
    with pytest.raises(InvalidDocument):
        await app.workflows.import_document(b.PROJECT, b"a: [")
    # Another project's store is empty: the same document names unknown actions there.
    with pytest.raises(InvalidWorkflow) as error:
        await app.workflows.import_document(OTHER, data)
    assert {p.code for p in error.value.problems} == {"unknown_action"}


async def test_replace_document(app: Any, b: Any) -> None:
    await fill_store(app, b)
    first = await app.workflows.import_document(
        b.PROJECT, (EXAMPLES / "timer-to-log.yaml").read_bytes()
    )
    view = await app.workflows.replace_document(
        b.PROJECT, first.workflow.id, (EXAMPLES / "demo.yaml").read_bytes()
    )
    assert view.workflow.id == first.workflow.id and view.workflow.name == "Word count demo"
    assert len(view.workflow.steps) == 7
