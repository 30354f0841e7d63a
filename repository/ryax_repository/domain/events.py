"""Domain events that leave the service (through the outbox) and commands that come in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .action_metadata import ActionMetadata
from .nix_packages import PythonPackage


@dataclass(frozen=True, kw_only=True)
class ActionBuildRequested:
    """A user asked to build an action version; the action builder answers."""

    event_id: str
    build_id: str
    project_id: str
    action_id: str
    action_version: str
    action_kind: str  # "trigger", "processor" or "publisher"
    source_key: str
    source_sha256: str
    metadata_yaml: str
    requested_at: datetime
    repository_id: str
    source_commit: str
    #: Every Python package declared the Nix way in spec.dependencies, in order, with the PyPI
    #: requirement it maps to: the builder installs these, it has no table of its own.
    python_packages: tuple[PythonPackage, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ActionReady:
    """An action version was built: the studio may offer it."""

    event_id: str
    project_id: str
    metadata: ActionMetadata
    artefact_key: str
    artefact_sha256: str
    logo: bytes | None
    logo_media_type: str
    repository_id: str
    source_commit: str
    build_id: str
    ready_at: datetime


Event = ActionBuildRequested | ActionReady


@dataclass(frozen=True, kw_only=True)
class RecordBuildSucceeded:
    """The action builder built (or found already built) the artefact of a build request."""

    build_id: str
    project_id: str
    artefact_key: str
    artefact_sha256: str
    log: str
    cached: bool
    duration_seconds: float


@dataclass(frozen=True, kw_only=True)
class RecordBuildFailed:
    """The action builder could not build a build request."""

    build_id: str
    project_id: str
    reason: str
    log: str
    duration_seconds: float
