"""What building an action needs from the outside world."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from ..domain.model import ArchiveLimits, BuildOutcome, BuildPlan, UnpackedSource
from .build_log import BuildLog


class ObjectNotFound(Exception):
    """No object under this filestore key."""


class Filestore(Protocol):
    """The shared object store (S3 API, or a local directory on a single machine): the part of
    the kit's `Filestore` a build uses. Missing objects raise ObjectNotFound (this one)."""

    async def exists(self, key: str) -> bool: ...

    async def download(self, key: str, destination: Path) -> None:
        """Raises ObjectNotFound."""
        ...

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None: ...

    async def read_bytes(self, key: str) -> bytes:
        """Raises ObjectNotFound."""
        ...

    async def write_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...


class SourceUnpacker(Protocol):
    def unpack(self, archive: Path, destination: Path, limits: ArchiveLimits) -> UnpackedSource:
        """Extract a .tar.gz after checking every member (UnsafeArchive otherwise); returns
        its regular files and the digest of what was extracted."""
        ...


class BuildTool(Protocol):
    """Turns an action's source into an artefact (code, dependencies, wrapper, run.sh)."""

    @property
    def python_version(self) -> str:
        """major.minor of the interpreter the artefacts are built for (e.g. "3.11")."""
        ...

    @property
    def wrapper_version(self) -> str:
        """Identifies the wrapper copied into artefacts (its version and a source digest)."""
        ...

    async def build(
        self, plan: BuildPlan, source_dir: Path, work_dir: Path, log: BuildLog, built_at: datetime
    ) -> Path:
        """Build into work_dir and return the artefact (.tar.gz). BuildRefused (with pip's
        error as reason) when the requirements cannot be installed."""
        ...


class MetadataParser(Protocol):
    def __call__(self, text: str) -> Mapping[str, Any]:
        """Parse ryax_metadata.yaml; BuildRefused when it is not a YAML mapping."""
        ...


class EventPublisher(Protocol):
    async def publish(self, event: BuildOutcome) -> None:
        """Returns once the broker confirmed the event. Raises otherwise (broker unreachable,
        no queue bound for the answer yet): the order is then tried again, never acked."""
        ...
