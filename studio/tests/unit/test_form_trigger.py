"""The built-in form portal trigger (`postgw`): offered in every store, its settings and fields
validated, frozen in the snapshot as a built-in that is not the JSON endpoint."""

from __future__ import annotations

from typing import Any

from ryax_studio.domain.actions import ActionRef, ActionVersion, IOType, Origin, ProjectId
from ryax_studio.domain.builtins import builtin_actions, is_builtin
from ryax_studio.domain.deployment import SnapshotId, take_snapshot
from ryax_studio.domain.validation import validate_workflow


def store(b: Any) -> dict[ActionRef, ActionVersion]:
    found = b.standard_store()
    for a in builtin_actions(ProjectId(b.PROJECT)):
        found[a.ref] = a
    return found


def form(b: Any, outputs: tuple[Any, ...] | None = None, **values: Any) -> Any:
    portal = b.step("ask", "postgw", version="1.5", streams_to=["shout"], **values)
    portal.outputs = outputs or (
        b.io("text", help="What to shout."),
        b.io("mode", IOType.ENUM, enum_values=("loud", "quiet")),
        b.io("attachment", IOType.FILE, optional=True),
    )
    return b.workflow(portal, b.step("shout", "uppercase", text="@ask.text"))


def problems(b: Any, wf: Any) -> list[tuple[str, str | None, str]]:
    return [(p.code, p.input_name, p.message) for p in validate_workflow(wf, store(b), set())]


def test_every_project_offers_the_form_with_ryax_names() -> None:
    found = {(a.action_id, a.version): a for a in builtin_actions(ProjectId("p"))}
    portal = found[("postgw", "1.5")]
    assert portal.human_name == "HTTP POST" and portal.builtin and portal.dynamic_outputs
    assert [i.name for i in portal.inputs] == ["path", "title", "description", "timeout"]
    assert [i.name for i in portal.inputs if i.required] == ["path"]
    assert is_builtin("postgw", "1.5") and not is_builtin("postgw", "1.4")


def test_a_form_workflow_is_valid_and_snapshots_as_a_builtin_not_an_endpoint(b: Any) -> None:
    wf = form(b, path="/feedback", title="Send us a text")
    assert problems(b, wf) == []
    snap = take_snapshot(wf, store(b), set(), SnapshotId("s1"), b.T0)
    assert snap.builtin_trigger == "postgw" and not snap.http_endpoint
    assert [(f.name, f.type) for f in snap.trigger_fields] == [
        ("text", IOType.STRING),
        ("mode", IOType.ENUM),
        ("attachment", IOType.FILE),
    ]


def test_the_path_is_required_and_checked(b: Any) -> None:
    assert [(c, i) for c, i, _ in problems(b, form(b))] == [("missing_input", "path")]
    for path, message in [
        ("feedback", "'feedback' must start with /"),
        ("/items/{id}", "no {parameters}"),
        ("/a/../b", "no {parameters}, ?, #, \\, . or .. segments"),
        ("/docs", "'/docs' is served by the user API itself"),
        ("/_login", "served by the user API itself"),
    ]:
        found = problems(b, form(b, path=path))
        assert [(c, i) for c, i, _ in found] == [("invalid_path", "path")], path
        assert message in found[0][2], (path, found)
    found = problems(b, form(b, path="/f", timeout=-1))
    assert [(c, i) for c, i, _ in found] == [("invalid_value", "timeout")]


def test_fields_come_from_the_form_and_are_no_directory(b: Any) -> None:
    outputs = (
        b.io("where", origin=Origin.QUERY),
        b.io("folder", IOType.DIRECTORY),
        b.io("fine", origin=Origin.BODY),
    )
    found = problems(b, form(b, outputs=outputs, path="/f"))
    messages = [m for c, _, m in found if c == "invalid_output"]
    assert len(messages) == 2, found
    assert "output 'where': origin query: a form's fields all come from the form" in messages[0]
    assert "output 'folder': a form cannot send a directory" in messages[1]
