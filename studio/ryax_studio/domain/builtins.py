"""The built-in actions every project's store has: the HTTP endpoint trigger, the form portal
and the timers."""

from __future__ import annotations

from .actions import ActionVersion, ProjectId, http_endpoint_trigger
from .forms import form_trigger
from .schedules import timer_triggers


def builtin_actions(project_id: ProjectId) -> list[ActionVersion]:
    """The built-in triggers every project has: the HTTP endpoint, the form and the timers."""
    return [
        http_endpoint_trigger(project_id),
        form_trigger(project_id),
        *timer_triggers(project_id),
    ]


def is_builtin(action_id: str, version: str) -> bool:
    return any(
        (a.action_id, a.version) == (action_id, version) for a in builtin_actions(ProjectId(""))
    )
