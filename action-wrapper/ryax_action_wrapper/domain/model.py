"""What the wrapper runs (an action's configuration) and what an execution produces (a stream of
log lines, progress reports, new runs for a trigger, and one result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .io import IODeclaration, Value


class ActionKind(StrEnum):
    TRIGGER = "trigger"
    PROCESSOR = "processor"
    PUBLISHER = "publisher"

    @property
    def entry_file(self) -> str:
        return "ryax_run.py" if self is ActionKind.TRIGGER else "ryax_handler.py"

    @property
    def entry_function(self) -> str:
        return "run" if self is ActionKind.TRIGGER else "handle"


@dataclass(frozen=True, kw_only=True)
class ActionConfig:
    action_dir: str
    kind: ActionKind
    inputs: tuple[IODeclaration, ...] = ()
    outputs: tuple[IODeclaration, ...] = ()
    #: A trigger's static input values, by input name.
    trigger_inputs: Mapping[str, Value] = field(default_factory=dict)
    action_id: str = ""
    action_version: str = ""


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    LOG = "log"


class RunStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class LogLine:
    #: 1, 2, 3 ... per execution, in output order.
    seq: int
    stream: LogStream
    line: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ProgressReport:
    fraction: float
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class NewRun:
    outputs: dict[str, Value]
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    status: RunStatus
    #: Set when the handler returned one dict.
    outputs: dict[str, Value] | None = None
    #: Set when the handler returned a list of dicts (one downstream execution each).
    outputs_list: list[dict[str, Value]] | None = None
    error: str = ""
    traceback: str = ""
    http_status: int = 0
    log_line_count: int = 0


Event = LogLine | ProgressReport | NewRun | ExecutionResult


@dataclass(frozen=True, kw_only=True)
class InitOutcome:
    error: str = ""
    traceback: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def describe_exception(exc: BaseException) -> tuple[str, int]:
    """The user-facing message and HTTP status of an exception raised by user code.

    An exception with `message` and `code` attributes (Ryax's documented `RyaxException`) sets
    both; any other is shown as "Type: message".
    """
    message = getattr(exc, "message", None)
    code = getattr(exc, "code", None)
    if message is not None and code is not None:
        status = code if isinstance(code, int) and not isinstance(code, bool) else 0
        if isinstance(code, str) and code.isdigit():
            status = int(code)
        if not 100 <= status <= 599:
            status = 0
        return str(message), status
    text = str(exc)
    name = type(exc).__name__
    return (f"{name}: {text}" if text else name), 0


def clamp_fraction(fraction: object) -> float:
    """A progress fraction between 0 and 1 (numbers outside are clamped)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise TypeError(f"progress fraction must be a number, got {type(fraction).__name__}")
    value = float(fraction)
    if value != value:  # NaN
        raise ValueError("progress fraction is NaN")
    return min(1.0, max(0.0, value))
