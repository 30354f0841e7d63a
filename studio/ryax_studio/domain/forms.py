"""The built-in form portal trigger (`postgw`) the runner serves itself, and the checks of its
settings and fields.

Published Ryax lists it among its built-in triggers as "HTTP POST" 1.5 ("Triggered on receiving
data on an HTTP POST request or through an online integrated form", logo `postgw.png`); its
inputs are not published: `path`, `title`, `description` and `timeout` are this platform's
(docs/reference/builtin/postgw.ryax_metadata.yaml). Its outputs are the form's fields,
declared by each workflow (dynamic outputs): every one comes from the form (no `origin` but
body) and a directory cannot be sent by a form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .actions import IO, ActionKind, ActionVersion, IOType, JsonValue, Origin, ProjectId

FORM_ID, FORM_VERSION = "postgw", "1.5"
#: Seconds a submitter waits for the run's results when `timeout` is not set.
DEFAULT_TIMEOUT_SECONDS = 30
#: Paths the runner's user API serves itself in every project.
RESERVED_PATHS = ("/openapi.json", "/docs", "/_login", "/_logout")
_SEGMENT = re.compile(r"^[^{}?#\\]+$")


def form_trigger(project_id: ProjectId) -> ActionVersion:
    """The form portal every project has: nothing to build, the runner serves it."""
    return ActionVersion(
        project_id=project_id,
        action_id=FORM_ID,
        version=FORM_VERSION,
        kind=ActionKind.TRIGGER,
        human_name="HTTP POST",
        description=(
            "Triggered on receiving data on an HTTP POST request or through an online "
            "integrated form: the page at the project URL + path shows a form of the "
            "trigger's outputs (declared per workflow); each submission starts a run and shows "
            "its result."
        ),
        type="internal",
        categories=("Trigger", "HTTP", "Form"),
        inputs=(
            IO(
                name="path",
                type=IOType.STRING,
                human_name="Form path",
                help="Path of the form under the project URL (/user-api/<project>), e.g. "
                "/feedback; no {parameters}.",
            ),
            IO(
                name="title",
                type=IOType.STRING,
                human_name="Form title",
                help="The heading of the form page; the workflow's name if empty.",
                optional=True,
            ),
            IO(
                name="description",
                type=IOType.LONGSTRING,
                human_name="Form description",
                help="Text shown above the form; the workflow's description if empty.",
                optional=True,
            ),
            IO(
                name="timeout",
                type=IOType.INTEGER,
                human_name="Result timeout (seconds)",
                help="How long the submitter waits for the run's results; after that (or at "
                "once with 0) the page shows the run going on and reloads until it ends.",
                has_default=True,
                default=DEFAULT_TIMEOUT_SECONDS,
            ),
        ),
        outputs=(),
        builtin=True,
        dynamic_outputs=True,
    )


def form_output_problem(out: IO) -> tuple[str, str] | None:
    """(code, message) when a declared output cannot be a field of a form."""
    if out.origin is not None and out.origin is not Origin.BODY:
        return (
            "invalid_output",
            f"output {out.name!r}: origin {out.origin}: a form's fields all come from the form "
            "(leave origin out)",
        )
    if out.type is IOType.DIRECTORY:
        return (
            "invalid_output",
            f"output {out.name!r}: a form cannot send a directory (use a file, e.g. a zip)",
        )
    return None


def form_problems(values: Mapping[str, JsonValue]) -> list[tuple[str, str, str]]:
    """(input, code, message) for each bad static setting of the form trigger; values given
    by reference or secret are checked by the runner at deploy."""
    problems: list[tuple[str, str, str]] = []
    path = values.get("path")
    if isinstance(path, str):
        text = path.strip()
        segments = [s for s in text.split("/") if s]
        if not text.startswith("/"):
            problems.append(("path", "invalid_path", f"{path!r} must start with /"))
        elif any(not _SEGMENT.match(s) or s in (".", "..") for s in segments):
            problems.append(
                (
                    "path",
                    "invalid_path",
                    f"{path!r}: no {{parameters}}, ?, #, \\, . or .. segments in a form's path",
                )
            )
        elif "/" + "/".join(segments) in RESERVED_PATHS:
            problems.append(("path", "invalid_path", f"{path!r} is served by the user API itself"))
    timeout = values.get("timeout")
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout < 0:
        problems.append(("timeout", "invalid_value", f"{timeout}: 0 or more seconds"))
    return problems
