"""What a workflow list shows per workflow beyond its definition's header: the trigger step's
action and the categories of the actions it uses (a dashboard card), from the action store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .actions import ActionKind, ActionRef, ActionVersion
from .workflow import Workflow


@dataclass(frozen=True, kw_only=True)
class TriggerSummary:
    step_id: str
    action_id: str
    version: str
    #: The action's human name, or its id when the store has no such version.
    name: str
    #: None when the store has no such version (removed): the step is then a guess.
    kind: ActionKind | None
    #: Built into the platform (httpapijson, emitgw, crongw, runonce).
    builtin: bool


@dataclass(frozen=True, kw_only=True)
class WorkflowSummary:
    trigger: TriggerSummary | None
    categories: tuple[str, ...]


def summarize(workflow: Workflow, store: Mapping[ActionRef, ActionVersion]) -> WorkflowSummary:
    """The trigger is the first step whose action is a trigger; when no step's action is one and
    some step's action is missing from the store, the first such step no other step streams to
    (it may be the trigger: its action is unknown). None when the workflow has neither."""
    trigger = next(
        (
            s
            for s in workflow.steps
            if (a := store.get(s.action)) is not None and a.kind is ActionKind.TRIGGER
        ),
        None,
    )
    if trigger is None:
        fed = {child for s in workflow.steps for child in s.streams_to}
        trigger = next(
            (s for s in workflow.steps if s.action not in store and s.id not in fed), None
        )
    categories = {c for s in workflow.steps if (a := store.get(s.action)) for c in a.categories}
    found: TriggerSummary | None = None
    if trigger is not None:
        action = store.get(trigger.action)
        found = TriggerSummary(
            step_id=trigger.id,
            action_id=trigger.action.action_id,
            version=trigger.action.version,
            name=(action.human_name or action.action_id) if action else trigger.action.action_id,
            kind=action.kind if action else None,
            builtin=action.builtin if action else False,
        )
    return WorkflowSummary(trigger=found, categories=tuple(sorted(categories, key=str.lower)))
