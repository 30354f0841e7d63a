"""The action store: action versions with typed inputs and outputs, the HTTP endpoint trigger."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .errors import InvalidInput

ProjectId = NewType("ProjectId", str)

#: A JSON value as the domain sees it (static values, defaults).
JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]

IO_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class ActionKind(StrEnum):
    TRIGGER = "trigger"
    PROCESSOR = "processor"
    PUBLISHER = "publisher"


class IOType(StrEnum):
    STRING = "string"
    LONGSTRING = "longstring"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    PASSWORD = "password"
    ENUM = "enum"
    FILE = "file"
    DIRECTORY = "directory"


class Origin(StrEnum):
    """Where an HTTP endpoint trigger reads a dynamic output from."""

    BODY = "body"
    PATH = "path"
    QUERY = "query"
    HEADER = "header"


#: Types an input accepts from an upstream output (input type -> accepted output types): the
#: same type (published Ryax: "as long as the output value and input value are of the same
#: type"). A password input takes a project secret only, never a value that travels in a run.
ACCEPTS: dict[IOType, frozenset[IOType]] = {
    t: (frozenset() if t is IOType.PASSWORD else frozenset({t})) for t in IOType
}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: Input types a project secret may be given to.
SECRET_TYPES = frozenset({IOType.PASSWORD, IOType.STRING, IOType.LONGSTRING})


@dataclass(frozen=True, kw_only=True)
class IO:
    """A declared input or output. `default` is meaningful only when `has_default`."""

    name: str
    type: IOType
    human_name: str = ""
    help: str = ""
    optional: bool = False
    enum_values: tuple[str, ...] = ()
    has_default: bool = False
    default: JsonValue = None
    #: Only for the dynamic outputs of an HTTP endpoint trigger.
    origin: Origin | None = None

    @property
    def required(self) -> bool:
        return not self.optional and not self.has_default


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Resources asked for; None = not specified."""

    cpu: float | None = None
    memory_bytes: int | None = None
    time_seconds: float | None = None
    gpu: int | None = None

    def is_empty(self) -> bool:
        return (self.cpu, self.memory_bytes, self.time_seconds, self.gpu) == (None,) * 4

    def check(self, field_name: str) -> None:
        for name, value in (
            ("cpu", self.cpu),
            ("memory_bytes", self.memory_bytes),
            ("time_seconds", self.time_seconds),
            ("gpu", self.gpu),
        ):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInput(f"{field_name}.{name}", "must be a finite number >= 0")


@dataclass(frozen=True, kw_only=True)
class ActionRef:
    action_id: str
    version: str

    def __str__(self) -> str:
        return f"{self.action_id}:{self.version}"


@dataclass(eq=False, kw_only=True)
class ActionVersion:
    """One built version of an action in a project's store."""

    project_id: ProjectId
    action_id: str
    version: str
    kind: ActionKind
    human_name: str = ""
    description: str = ""
    type: str = ""
    categories: tuple[str, ...] = ()
    inputs: tuple[IO, ...] = ()
    outputs: tuple[IO, ...] = ()
    resources: Resources = field(default_factory=Resources)
    artefact_key: str = ""
    artefact_sha256: str = ""
    logo: bytes | None = None
    logo_media_type: str = ""
    repository_id: str = ""
    source_commit: str = ""
    build_id: str = ""
    ready_at: datetime | None = None
    #: Built in the platform (no artefact, present in every project, cannot be deleted).
    builtin: bool = False
    #: The step declares its outputs itself (the HTTP endpoint's request fields).
    dynamic_outputs: bool = False

    @property
    def ref(self) -> ActionRef:
        return ActionRef(action_id=self.action_id, version=self.version)

    @property
    def key(self) -> tuple[ProjectId, str, str]:
        return (self.project_id, self.action_id, self.version)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionVersion) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def input(self, name: str) -> IO | None:
        return next((i for i in self.inputs if i.name == name), None)

    def matches(self, text: str | None, category: str | None, kind: ActionKind | None) -> bool:
        """Search: `text` in the id, name or description; category and kind exact (any case)."""
        if kind is not None and self.kind != kind:
            return False
        if category is not None and category.lower() not in {c.lower() for c in self.categories}:
            return False
        if text:
            needle = text.lower()
            haystack = f"{self.action_id}\n{self.human_name}\n{self.description}".lower()
            return needle in haystack
        return True


#: The built-in HTTP endpoint trigger (published Ryax: `httpapijson`, "HTTP API JSON").
HTTP_TRIGGER_ID = "httpapijson"
HTTP_TRIGGER_VERSION = "1.0"


def http_endpoint_trigger(project_id: ProjectId) -> ActionVersion:
    """The HTTP endpoint trigger every project has: the runner serves it, nothing to build.

    Its outputs are the request fields each workflow declares on its step (dynamic outputs).
    """
    return ActionVersion(
        project_id=project_id,
        action_id=HTTP_TRIGGER_ID,
        version=HTTP_TRIGGER_VERSION,
        kind=ActionKind.TRIGGER,
        human_name="HTTP API JSON",
        description=(
            "Start a run for each HTTP request on an endpoint of the project URL. The request's "
            "JSON body, path parameters and query parameters become the trigger's outputs "
            "(declared per workflow, as dynamic outputs); the workflow's results, or the error "
            "of the run, are the answer."
        ),
        type="internal",
        categories=("Trigger", "HTTP"),
        inputs=(
            IO(
                name="path",
                type=IOType.STRING,
                human_name="Endpoint path",
                help="Path appended to the project URL, e.g. /reports/{lang}; a {name} segment "
                "is filled from the path and must be a dynamic output of origin path with "
                "that name.",
            ),
            IO(
                name="method",
                type=IOType.ENUM,
                human_name="HTTP method",
                help="The HTTP method of the endpoint.",
                enum_values=("GET", "POST", "PUT", "PATCH", "DELETE"),
                has_default=True,
                default="POST",
            ),
            IO(
                name="summary",
                type=IOType.STRING,
                human_name="OpenAPI summary",
                help="One line shown in the project's OpenAPI document.",
            ),
            IO(
                name="description",
                type=IOType.LONGSTRING,
                human_name="OpenAPI description",
                help="A longer description for the OpenAPI document.",
                optional=True,
            ),
            IO(
                name="tags",
                type=IOType.STRING,
                human_name="OpenAPI tags",
                help="Comma-separated tags for the OpenAPI document.",
                optional=True,
            ),
            IO(
                name="success_code",
                type=IOType.ENUM,
                human_name="HTTP success status code",
                help="Answered when the run completes in time (202 is reserved for a late answer).",
                enum_values=("200", "201"),
                has_default=True,
                default="200",
            ),
            IO(
                name="timeout",
                type=IOType.INTEGER,
                human_name="Asynchronous reply timeout (seconds)",
                help="How long the caller waits for the run's results; after that (or at once "
                "with 0) the answer is 202 with a link to fetch the results later.",
                has_default=True,
                default=60,
            ),
        ),
        outputs=(),
        builtin=True,
        dynamic_outputs=True,
    )


def describe_value(value: JsonValue) -> str:
    """A short, typed description of a value for error messages."""
    kind = {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    text = repr(value) if not isinstance(value, (list, dict)) else kind
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}" if not isinstance(value, (list, dict, type(None))) else kind


def static_value_problem(io: IO, value: JsonValue) -> tuple[str, str] | None:
    """(code, message) when `value` is not acceptable for `io`, None when it is."""
    t = io.type
    if value is None:
        return ("invalid_value", "null is not a value: remove the input to leave it unset")
    if t is IOType.PASSWORD:
        return (
            "password_needs_secret",
            "a password input takes a project secret only, not a static value",
        )
    if t in (IOType.FILE, IOType.DIRECTORY):
        return (
            "invalid_value",
            f"a {t} input takes an uploaded {t}, a reference to an upstream {t} output "
            "or a project variable, not a JSON value",
        )
    if t in (IOType.STRING, IOType.LONGSTRING):
        if not isinstance(value, str):
            return (
                "invalid_value",
                f"expects a {t}, got {describe_value(value)}"
                + (" (quote it to make it a string)" if _scalar(value) else ""),
            )
        return None
    if t is IOType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            return ("invalid_value", f"expects an integer, got {describe_value(value)}")
        if not INT64_MIN <= value <= INT64_MAX:
            return ("invalid_value", "the integer does not fit in 64 bits")
        return None
    if t is IOType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ("invalid_value", f"expects a float, got {describe_value(value)}")
        if not math.isfinite(value):
            return ("invalid_value", "expects a finite float")
        return None
    if t is IOType.BOOLEAN:
        if not isinstance(value, bool):
            return ("invalid_value", f"expects a boolean, got {describe_value(value)}")
        return None
    # enum
    allowed = ", ".join(repr(v) for v in io.enum_values)
    if not isinstance(value, str):
        hint = " (enum values are strings: quote it)" if _scalar(value) else ""
        return ("enum_out_of_range", f"{describe_value(value)} is not one of {allowed}{hint}")
    if value not in io.enum_values:
        return ("enum_out_of_range", f"{value!r} is not one of {allowed}")
    return None


def _scalar(value: JsonValue) -> bool:
    return isinstance(value, (bool, int, float))


def check_io_name(name: str, field_name: str) -> None:
    if not IO_NAME_RE.match(name):
        raise InvalidInput(
            field_name,
            f"{name!r} is not a valid name: letters, digits and _, "
            "not starting with a digit, at most 128 characters",
        )
