"""The worker's domain: orders it receives, reports it sends, deployed steps and executions.

Standard library only. Protobuf lives in infrastructure/grpc/mappers.py.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .errors import InvalidInput

DeploymentId = NewType("DeploymentId", str)
StepId = NewType("StepId", str)
ExecutionId = NewType("ExecutionId", str)
RunId = NewType("RunId", str)


@dataclass(frozen=True, order=True)
class StepRef:
    """One step of one deployment: the unit the worker deploys (one action instance each)."""

    deployment_id: DeploymentId
    step_id: StepId

    def __str__(self) -> str:
        return f"{self.deployment_id}/{self.step_id}"


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True, kw_only=True)
class JsonText:
    """A JSON document (lists, objects) kept as text."""

    text: str


@dataclass(frozen=True, kw_only=True)
class FileRef:
    """A file, or a tar of a directory. `key` is a filestore key or, on the action side, an
    absolute local path."""

    key: str
    name: str
    size: int = 0
    sha256: str = ""
    is_directory: bool = False
    #: The id of the site holding the file on its disk, not in the filestore yet
    #: (RYAX_SITE_FILES=hold); `key` is where it goes once published.
    held_by: str = ""


Value = None | str | bool | int | float | JsonText | FileRef
Values = dict[str, Value]


def file_refs(values: Values) -> dict[str, FileRef]:
    return {name: value for name, value in values.items() if isinstance(value, FileRef)}


# ---------------------------------------------------------------------------------------------
# Site description


@dataclass(frozen=True, kw_only=True)
class NodePool:
    name: str
    cpu: float
    memory_bytes: int
    gpu: int = 0
    #: Longest an execution may run on the pool (seconds); 0 = not declared.
    max_time_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidInput("node_pools", "a node pool needs a name")
        if self.cpu <= 0 or self.memory_bytes <= 0 or self.gpu < 0 or self.max_time_seconds < 0:
            raise InvalidInput(
                "node_pools",
                f"pool {self.name!r}: cpu and memory must be > 0, gpu and max time >= 0",
            )


_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.I)
#: Powers of 1024, with or without the `i` (and a `B`): the units of a step's
#: `resources.memory` (the studio's, as published Ryax's), so that a pool declared "8G" holds a
#: step that asks for 8G.
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_memory(text: str) -> int:
    """Bytes from "2048", "512M", "4G", "4GiB", "1.5Gi" (K, M, G, T: powers of 1024)."""
    match = _MEMORY.match(text.strip())
    if match is None:
        raise InvalidInput("memory", f"cannot read {text!r} as a memory size (e.g. 4G, 512Mi)")
    unit = (match.group(2) or "").upper().removesuffix("B").removesuffix("I")
    return int(float(match.group(1)) * _UNITS[unit])


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$", re.I)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from "3600", "90m", "12h", "2d"."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise InvalidInput("max_time", f"cannot read {text!r} as a duration (e.g. 3600, 90m, 2h)")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


@dataclass(frozen=True, kw_only=True)
class SiteInfo:
    """Who the worker is and what its site offers (sent in every Register)."""

    worker_id: str
    site_name: str
    backend_kind: str
    node_pools: tuple[NodePool, ...]
    labels: dict[str, str]
    version: str


@dataclass(frozen=True, kw_only=True)
class Registration:
    site: SiteInfo
    last_seen_order_seq: int
    deployed_steps: tuple[tuple[StepRef, DeploymentStateKind], ...]
    running_execution_ids: tuple[ExecutionId, ...]
    #: Files this site holds for runs: (run_id, sha256).
    held_files: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------------------------
# Orders (runner -> worker)


@dataclass(frozen=True, kw_only=True)
class IOSpec:
    name: str
    type: str
    human_name: str = ""
    help: str = ""
    optional: bool = False
    enum_values: tuple[str, ...] = ()
    default_value: str | None = None

    @property
    def holds_a_file(self) -> bool:
        """A `file` or `directory`: its value moves through the filestore."""
        return self.type in ("file", "directory")


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpu: float = 0.0
    memory_bytes: int = 0
    time_seconds: float = 0.0
    gpu: int = 0


class ActionKind(StrEnum):
    TRIGGER = "trigger"
    PROCESSOR = "processor"
    PUBLISHER = "publisher"


@dataclass(frozen=True, kw_only=True)
class DeployStep:
    order_seq: int
    ref: StepRef
    action_id: str
    action_version: str
    action_kind: ActionKind
    artefact_key: str
    artefact_sha256: str
    is_trigger: bool
    trigger_inputs: Values = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    node_pool: str = ""
    inputs: tuple[IOSpec, ...] = ()
    outputs: tuple[IOSpec, ...] = ()
    project_id: str = ""
    #: Parameters of Ryax's HPC add-on set on the step, as text (Slurm sites; they override the
    #: action's own `addons.hpc`).
    hpc: dict[str, str] = field(default_factory=dict)
    #: Never stop this step's process for being idle (the retention policy). Not carried by the
    #: Deploy order yet: RYAX_ACTION_ALWAYS_WARM names such steps meanwhile.
    always_warm: bool = False


@dataclass(frozen=True, kw_only=True)
class UndeployStep:
    order_seq: int
    ref: StepRef


@dataclass(frozen=True, kw_only=True)
class ExecuteStep:
    order_seq: int
    execution_id: ExecutionId
    run_id: RunId
    ref: StepRef
    inputs: Values = field(default_factory=dict)
    #: 0 = no limit.
    timeout_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class CancelExecution:
    order_seq: int
    execution_id: ExecutionId
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class FileToPublish:
    key: str
    sha256: str
    run_id: str = ""


@dataclass(frozen=True, kw_only=True)
class PublishFiles:
    """Upload held files to the filestore; answered by FilesPublished."""

    order_seq: int
    files: tuple[FileToPublish, ...]


@dataclass(frozen=True, kw_only=True)
class ReleaseRuns:
    """The runs ended: unpin the files held for them."""

    order_seq: int
    run_ids: tuple[str, ...]


Order = DeployStep | UndeployStep | ExecuteStep | CancelExecution | PublishFiles | ReleaseRuns


class OrderLedger:
    """Remembers the last order_seq handled: an order at or below it is a duplicate."""

    def __init__(self) -> None:
        self.last_handled = 0

    def is_new(self, order_seq: int) -> bool:
        return order_seq > self.last_handled

    def handled(self, order_seq: int) -> None:
        self.last_handled = max(self.last_handled, order_seq)


# ---------------------------------------------------------------------------------------------
# Reports (worker -> runner)


class DeploymentStateKind(StrEnum):
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    UNDEPLOYING = "undeploying"
    UNDEPLOYED = "undeployed"


class ExecutionStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The site lost it through no fault of the action (a Slurm job's node failed, it was
    #: preempted, the scheduler forgot it): the runner runs it again as a new attempt.
    LOST = "lost"


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    LOG = "log"


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    seq: int
    at: datetime


@dataclass(frozen=True, kw_only=True)
class DeploymentStateChanged:
    ref: StepRef
    state: DeploymentStateKind
    reason: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ExecutionFinished:
    execution_id: ExecutionId
    status: ExecutionStatus
    started_at: datetime
    ended_at: datetime
    outputs: Values = field(default_factory=dict)
    outputs_list: tuple[Values, ...] = ()
    outputs_is_list: bool = False
    error: str = ""
    traceback: str = ""
    http_status: int = 0
    log_line_count: int = 0
    cpu_seconds: float = 0.0
    max_memory_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class LogLine:
    """A line of an execution (execution_id set) or of a deployed step's process (ref set)."""

    seq: int
    stream: LogStream
    line: str
    at: datetime
    execution_id: ExecutionId | None = None
    ref: StepRef | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionProgressed:
    execution_id: ExecutionId
    fraction: float
    message: str


@dataclass(frozen=True, kw_only=True)
class TriggerFired:
    ref: StepRef
    outputs: Values
    at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderAck:
    order_seq: int


@dataclass(frozen=True, kw_only=True)
class FilesPublished:
    """Held files now in the filestore (keys), and (key, why) of those that could not be."""

    keys: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()


Report = (
    Heartbeat
    | DeploymentStateChanged
    | ExecutionFinished
    | LogLine
    | ExecutionProgressed
    | TriggerFired
    | OrderAck
    | FilesPublished
)


def is_reliable(report: Report) -> bool:
    """Reports kept until the runner acknowledges them and re-sent after a reconnect.

    The protocol only requires results, new runs and deployment states; log lines are kept too,
    because a lost line is exactly what users complained about. Heartbeats, progress and order
    acks are not: they are stale after a reconnect (Register carries the order resume point).
    """
    return isinstance(
        report,
        DeploymentStateChanged | ExecutionFinished | TriggerFired | LogLine | FilesPublished,
    )


@dataclass(frozen=True)
class Numbered:
    seq: int
    report: Report


class ReportBuffer:
    """Numbers reports and keeps the reliable ones until acknowledged.

    A report gets its report_seq when it is first taken for sending (not when created), so that
    a worker that starts from scratch numbers after the runner's Registered.last_report_seq. A
    re-sent report keeps its number, so the runner drops it if it had applied it already.
    """

    def __init__(self, max_kept_logs: int = 100_000) -> None:
        self._next_seq = 1
        self._to_send: deque[Numbered | Report] = deque()
        self._unacked: deque[Numbered] = deque()
        self._max_kept = max_kept_logs
        self.dropped_logs = 0

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def pending(self) -> int:
        return len(self._to_send)

    def unacked(self) -> int:
        return len(self._unacked)

    def unsettled_ids(self) -> set[ExecutionId]:
        """Executions whose result waits to be sent or acknowledged."""
        return {
            report.execution_id
            for item in (*self._unacked, *self._to_send)
            if isinstance(report := _report_of(item), ExecutionFinished)
        }

    def is_settled(self) -> bool:
        """Nothing waits to be sent and every reliable report was acknowledged."""
        return not self._to_send and not self._unacked

    def add(self, report: Report) -> None:
        self._to_send.append(report)
        self._bound()

    def take(self) -> Numbered | None:
        """The next message to write on the stream, numbered; None when there is none."""
        if not self._to_send:
            return None
        item = self._to_send.popleft()
        if isinstance(item, Numbered):
            numbered = item
        else:
            numbered = Numbered(self._next_seq, item)
            self._next_seq += 1
        if is_reliable(numbered.report):
            self._unacked.append(numbered)
        return numbered

    def ack(self, report_seq: int) -> None:
        """The runner applied every report up to report_seq (cumulative)."""
        while self._unacked and self._unacked[0].seq <= report_seq:
            self._unacked.popleft()

    def resume(self, last_applied: int) -> None:
        """A new stream is registered: re-send every unacknowledged report first (same numbers,
        same order; the runner drops and acknowledges those it had applied), and number new
        reports after both our own last number and the runner's. Only a ReportAck makes the
        buffer forget a report."""
        self._next_seq = max(self._next_seq, last_applied + 1)
        stale = (Heartbeat, OrderAck, ExecutionProgressed)
        fresh = [item for item in self._to_send if not isinstance(_report_of(item), stale)]
        self._to_send = deque([*self._unacked, *fresh])
        self._unacked = deque()

    def _bound(self) -> None:
        # A runner unreachable for long must not exhaust memory: past the bound the oldest log
        # line goes (results, new runs and states are never dropped).
        if len(self._to_send) + len(self._unacked) <= self._max_kept:
            return
        for queue in (self._unacked, self._to_send):
            for index, item in enumerate(queue):
                if isinstance(_report_of(item), LogLine):
                    del queue[index]
                    self.dropped_logs += 1
                    return


def _report_of(item: Numbered | Report) -> Report:
    return item.report if isinstance(item, Numbered) else item


# ---------------------------------------------------------------------------------------------
# Deployed steps


@dataclass(eq=False, kw_only=True)
class DeployedStep:
    """A step this worker was asked to deploy, with the state it last reported."""

    spec: DeployStep
    state: DeploymentStateKind = DeploymentStateKind.DEPLOYING
    reason: str = ""

    @property
    def ref(self) -> StepRef:
        return self.spec.ref

    def same_action(self, other: DeployStep) -> bool:
        return (
            self.spec.artefact_sha256 == other.artefact_sha256
            and self.spec.is_trigger == other.is_trigger
            and self.spec.trigger_inputs == other.trigger_inputs
            and self.spec.hpc == other.hpc
        )

    def change(self, state: DeploymentStateKind, reason: str = "") -> bool:
        """Record a new state; False when nothing changed (no report needed)."""
        if state == self.state and reason == self.reason:
            return False
        self.state, self.reason = state, reason
        return True


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """Backoff between restarts of a dying action, and when to give up.

    A process that stayed up for `healthy_after_seconds` has its failure count reset: it was a
    one-off crash, not a process that keeps dying.
    """

    initial_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    max_consecutive_failures: int = 5
    healthy_after_seconds: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        """Delay before restart number `consecutive_failures` (1 = first restart)."""
        exponent = max(consecutive_failures - 1, 0)
        return float(min(self.initial_delay_seconds * 2**exponent, self.max_delay_seconds))

    def gives_up(self, consecutive_failures: int) -> bool:
        return consecutive_failures > self.max_consecutive_failures


class Backoff:
    """Reconnection backoff: doubles up to a maximum, reset after a success."""

    def __init__(self, initial: float = 0.2, maximum: float = 10.0) -> None:
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


# ---------------------------------------------------------------------------------------------
# Names of files on the worker's disk (their filestore keys: infrastructure/placement.py)


def _safe_segment(text: str, what: str) -> str:
    if not text or text in {".", ".."} or "/" in text or "\\" in text or "\x00" in text:
        raise InvalidInput(what, f"{text!r} cannot be used in a filestore key")
    return text


def step_dir_parts(ref: StepRef) -> tuple[str, str]:
    """The folders of a deployed step on the worker's disk: `<deployment>/<step>` (its action
    instance, and its executions, which its sandbox sees and nothing else)."""
    return _dir_segment(ref.deployment_id), _dir_segment(ref.step_id)


def _dir_segment(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return cleaned if cleaned.strip(".") else "_"


def safe_file_name(name: str) -> str:
    """A file name an action gave or sees, reduced to a single safe path segment."""
    base = os.path.basename(name.replace("\\", "/").rstrip("/"))
    if base in {"", ".", ".."}:
        return "file"
    return base.replace("\x00", "")


def input_path_parts(input_name: str, file: FileRef) -> tuple[str, str]:
    """Where an input file lands in the execution's input directory: `<input>/<name>`."""
    return _safe_segment(input_name, "input"), _safe_segment(safe_file_name(file.name), "name")
