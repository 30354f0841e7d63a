"""Ports the use cases need; adapters live in infrastructure, fakes in tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..domain.actions import ActionVersion, JsonValue, ProjectId
from ..domain.deployment import Deployment, DeploymentId, Secret, Snapshot, SnapshotId
from ..domain.problems import Problem
from ..domain.workflow import Step, Workflow, WorkflowId, WorkflowResult


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SecretCipher(Protocol):
    def encrypt(self, project_id: ProjectId, name: str, value: str) -> bytes:
        """Authenticated encryption bound to the secret's project and name."""
        ...

    def decrypt(self, project_id: ProjectId, name: str, ciphertext: bytes) -> str:
        """The value; raises if the ciphertext was tampered with or moved to another secret."""
        ...


@dataclass(frozen=True, kw_only=True)
class ParsedWorkflow:
    """A workflow document read from its text form, with the source line of each part.

    `lines` maps the locations of validation problems (see domain.validation.Problem) to the
    1-based line and the path of that part in the document.
    """

    name: str
    description: str
    steps: list[Step]
    results: list[WorkflowResult]
    lines: Mapping[tuple[str | int, ...], tuple[int, str]] = field(default_factory=dict)
    #: Problems of the document itself (unknown fields, wrong types...), each with its line.
    problems: Sequence[Problem] = ()
    #: The static files and directories the document names (step id, input) -> where: their
    #: values in `steps` are placeholders (no key) until the files are found (a zip) or kept.
    files: Mapping[tuple[str, str], FileSpec] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FileSpec:
    """A static value written in a document as a path (in the workflow zip)."""

    path: str
    directory: bool
    line: int | None
    #: The value's path in the document (`spec.functions[2] (count).inputs_values.doc`).
    where: str


class FileStore(Protocol):
    """The shared filestore (the kit's Filestore: S3 or a local directory)."""

    async def put_file(self, key: str, source: Path) -> None:
        """Store the file at `source` under `key` (atomic for readers)."""
        ...

    async def download(self, key: str, destination: Path) -> None:
        """Write the object `key` to `destination`."""
        ...


class WorkflowFormat(Protocol):
    def parse(self, data: bytes) -> ParsedWorkflow:
        """Read a document and its format problems; raise InvalidDocument when it is not an
        acceptable document at all (not YAML, too large, aliases, too many steps)."""
        ...

    def render(self, workflow: Workflow) -> str:
        """The document of a workflow; parse(render(w)) gives back the same definition."""
        ...


class ActionRepository(Protocol):
    async def add(self, action: ActionVersion) -> None:
        """Insert or replace (same project, action id and version)."""
        ...

    async def get(
        self, project_id: ProjectId, action_id: str, version: str
    ) -> ActionVersion | None: ...

    async def list_for_project(self, project_id: ProjectId) -> list[ActionVersion]: ...

    async def for_ids(
        self, project_id: ProjectId, action_ids: Iterable[str]
    ) -> list[ActionVersion]:
        """Every version of these actions in the project's store."""
        ...

    async def delete(self, action: ActionVersion) -> None: ...


class WorkflowRepository(Protocol):
    async def add(self, workflow: Workflow) -> None: ...

    async def get(
        self, project_id: ProjectId, workflow_id: WorkflowId, for_update: bool = False
    ) -> Workflow | None:
        """`for_update` locks the row until the unit of work ends (edits serialize)."""
        ...

    async def get_by_name(
        self, project_id: ProjectId, name: str, for_update: bool = False
    ) -> Workflow | None: ...

    async def list_for_project(self, project_id: ProjectId) -> list[Workflow]: ...

    async def delete(self, workflow: Workflow) -> None: ...


class SecretRepository(Protocol):
    async def add(self, secret: Secret) -> None:
        """Insert or replace."""
        ...

    async def get(self, project_id: ProjectId, name: str) -> Secret | None: ...

    async def list_for_project(self, project_id: ProjectId) -> list[Secret]: ...

    async def delete(self, secret: Secret) -> None: ...


class SnapshotRepository(Protocol):
    async def add(self, snapshot: Snapshot) -> None:
        """Snapshots are written once and never changed."""
        ...

    async def get(self, project_id: ProjectId, snapshot_id: SnapshotId) -> Snapshot | None: ...

    async def list_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> list[Snapshot]: ...


class DeploymentRepository(Protocol):
    async def add(self, deployment: Deployment) -> None: ...

    async def get(self, deployment_id: DeploymentId) -> Deployment | None:
        """Any project: the runner's events name the deployment only."""
        ...

    async def latest_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> Deployment | None: ...

    async def latest_per_workflow(self, project_id: ProjectId) -> dict[WorkflowId, Deployment]:
        """Each workflow's latest deployment (as `latest_for_workflow`), in one read: the
        workflow list's."""
        ...

    async def list_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> list[Deployment]: ...

    async def active_in_project(self, project_id: ProjectId) -> list[Deployment]: ...

    async def values_of(self, deployment_id: DeploymentId) -> dict[tuple[str, str], JsonValue]:
        """The values a deployment was requested with (`Deployment.values`, stored sealed when
        it was added): (step id, input) -> value; empty when it has none."""
        ...


class UnitOfWork(Protocol):
    # Read-only members: an adapter may hold more specific repository types.
    @property
    def actions(self) -> ActionRepository: ...
    @property
    def workflows(self) -> WorkflowRepository: ...
    @property
    def secrets(self) -> SecretRepository: ...
    @property
    def snapshots(self) -> SnapshotRepository: ...
    @property
    def deployments(self) -> DeploymentRepository: ...

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(self, *args: object) -> None: ...

    async def claim_message(self, message_id: str) -> bool:
        """Record a consumed message id; False when it was handled before (a redelivery)."""
        ...

    async def commit(self) -> None:
        """The only way state is saved, with the events of the touched deployments (outbox);
        leaving without commit rolls back."""
        ...
