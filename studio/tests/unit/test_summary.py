"""What the workflow list shows per workflow: the trigger step's action and the categories."""

from __future__ import annotations

from typing import Any

from ryax_studio.domain.actions import ActionKind
from ryax_studio.domain.summary import TriggerSummary, summarize


def test_the_trigger_is_the_step_whose_action_is_a_trigger(b: Any) -> None:
    store = b.standard_store()
    wf = b.workflow(
        b.step("shout", "uppercase", streams_to=["log"]),
        b.step("api", "httpapijson", streams_to=["shout"]),
        b.step("log", "print-publisher"),
    )
    summary = summarize(wf, store)
    assert summary.trigger == TriggerSummary(
        step_id="api",
        action_id="httpapijson",
        version="1.0",
        name="HTTP API JSON",
        kind=ActionKind.TRIGGER,
        builtin=True,
    )
    # The union of the actions' categories, sorted whatever the case.
    assert summary.categories == ("HTTP", "Text", "Trigger")


def test_no_trigger_step(b: Any) -> None:
    store = b.standard_store()
    assert summarize(b.workflow(), store).trigger is None
    assert summarize(b.workflow(), store).categories == ()
    processors = summarize(
        b.workflow(b.step("a", "uppercase", streams_to=["b"]), b.step("b", "uppercase")), store
    )
    assert (processors.trigger, processors.categories) == (None, ("Text",))


def test_an_action_missing_from_the_store(b: Any) -> None:
    """A removed trigger action: the root step whose action is unknown, its kind unknown."""
    store = b.standard_store()
    wf = b.workflow(
        b.step("a", "uppercase"),
        b.step("gone", "removed-trigger", "2.0", streams_to=["a"]),
    )
    assert summarize(wf, store).trigger == TriggerSummary(
        step_id="gone",
        action_id="removed-trigger",
        version="2.0",
        name="removed-trigger",
        kind=None,
        builtin=False,
    )
    # A known trigger wins over an unknown action; an unknown step that is fed is no trigger.
    wf = b.workflow(b.step("t", "timer", streams_to=["x"]), b.step("x", "removed"))
    assert summarize(wf, store).trigger.step_id == "t"  # type: ignore[union-attr]
    fed = b.workflow(b.step("a", "uppercase", streams_to=["x"]), b.step("x", "removed"))
    assert summarize(fed, store).trigger is None
    # The timer's version 9 is not in the store: unknown, though "timer" 1.0 is.
    other = summarize(b.workflow(b.step("t", "timer", "9")), store).trigger
    assert other is not None and (other.kind, other.name) == (None, "timer")
