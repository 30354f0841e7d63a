"""Commands in (from the studio, the workers, the HTTP API) and orders out (to the workers).

Plain dataclasses: protobuf ends in infrastructure/*/mappers.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..domain.deployment import StepState
from ..domain.run import ExecutionResult
from ..domain.site import NodePool
from ..domain.values import Value
from ..domain.workflow import IO, Resources, WorkflowDefinition

# -- from the studio -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DeployWorkflow:
    message_id: str
    deployment_id: str
    project_id: str
    workflow_id: str
    workflow_name: str
    snapshot_id: str
    definition: WorkflowDefinition
    requested_by: str = ""


@dataclass(frozen=True, kw_only=True)
class UndeployWorkflow:
    message_id: str
    deployment_id: str
    project_id: str
    requested_by: str = ""


# -- from a worker -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReportedStep:
    deployment_id: str
    step_id: str
    state: StepState


@dataclass(frozen=True, kw_only=True)
class RegisterWorker:
    worker_id: str
    site_name: str
    backend_kind: str
    node_pools: tuple[NodePool, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    last_seen_order_seq: int = 0
    deployed_steps: tuple[ReportedStep, ...] = ()
    running_execution_ids: frozenset[str] = frozenset()
    #: Files the site holds for runs (RYAX_SITE_FILES=hold): (run_id, sha256).
    held_files: frozenset[tuple[str, str]] = frozenset()
    #: The site's credential the worker presented (gRPC metadata `authorization`); never logged.
    credential: str = field(default="", repr=False)
    #: Where the worker connected from (the gRPC peer), for the record and the logs.
    address: str = ""


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    seq: int


@dataclass(frozen=True, kw_only=True)
class StepStateReported:
    deployment_id: str
    step_id: str
    state: StepState
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ExecutionEnded:
    execution_id: str
    result: ExecutionResult
    #: The site lost the execution (EXECUTION_STATUS_LOST: a Slurm job's node failed, it was
    #: preempted or vanished): it is `lost` and runs again, `result.error` saying why.
    lost: bool = False


@dataclass(frozen=True, kw_only=True)
class LogLine:
    """A line of an execution (execution_id set) or of a deployed step (a trigger's process)."""

    execution_id: str
    seq: int
    stream: str  # stdout | stderr | log
    line: str
    at: datetime
    deployment_id: str = ""
    step_id: str = ""
    run_id: str = ""


@dataclass(frozen=True, kw_only=True)
class ExecutionProgressed:
    execution_id: str
    fraction: float
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class TriggerFired:
    deployment_id: str
    step_id: str
    outputs: dict[str, Value]
    at: datetime | None = None
    #: Why the outputs could not be read ("" when they could): the run fails at once.
    refused: str = ""


@dataclass(frozen=True, kw_only=True)
class OrdersAcked:
    order_seq: int


@dataclass(frozen=True, kw_only=True)
class FilesPublished:
    """Answer to a Publish: the keys now in the filestore, and (key, why) of those that
    could not be published."""

    keys: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()


Report = (
    Heartbeat
    | StepStateReported
    | ExecutionEnded
    | LogLine
    | ExecutionProgressed
    | TriggerFired
    | OrdersAcked
    | FilesPublished
)

# -- to a worker -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Registered:
    worker_id: str
    site_id: str
    last_report_seq: int
    heartbeat_interval_seconds: float


@dataclass(frozen=True, kw_only=True)
class ReportAck:
    report_seq: int


@dataclass(frozen=True, kw_only=True)
class DeployOrder:
    order_seq: int
    deployment_id: str
    step_id: str
    project_id: str
    action_id: str
    action_version: str
    action_kind: str
    artefact_key: str
    artefact_sha256: str
    is_trigger: bool
    trigger_inputs: dict[str, Value]
    resources: Resources
    node_pool: str
    inputs: tuple[IO, ...]
    outputs: tuple[IO, ...]
    #: The step's HPC add-on parameters (StepSettings.hpc).
    hpc: tuple[tuple[str, str], ...] = ()
    #: Keep its action process running while idle (StepSettings.always_warm).
    always_warm: bool = False


@dataclass(frozen=True, kw_only=True)
class UndeployOrder:
    order_seq: int
    deployment_id: str
    step_id: str


@dataclass(frozen=True, kw_only=True)
class ExecuteOrder:
    order_seq: int
    execution_id: str
    run_id: str
    deployment_id: str
    step_id: str
    inputs: dict[str, Value] = field(repr=False)
    timeout_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class CancelOrder:
    order_seq: int
    execution_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class FileToPublish:
    key: str
    sha256: str
    run_id: str


@dataclass(frozen=True, kw_only=True)
class PublishOrder:
    """Upload held files to the filestore (answered by FilesPublished)."""

    order_seq: int
    files: tuple[FileToPublish, ...]


@dataclass(frozen=True, kw_only=True)
class ReleaseOrder:
    """The runs ended: the files held for them are unpinned."""

    order_seq: int
    run_ids: tuple[str, ...]


Outgoing = (
    Registered
    | ReportAck
    | DeployOrder
    | UndeployOrder
    | ExecuteOrder
    | CancelOrder
    | PublishOrder
    | ReleaseOrder
)
