"""Ports: what the use cases need from the outside world. Adapters in infrastructure, fakes in
tests."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..domain.git_url import GitUrl
from ..domain.model import (
    ActionSource,
    Build,
    BuildId,
    Credentials,
    GitRepository,
    Issue,
    PackedSource,
    ProjectId,
    RepositoryId,
    ScanId,
    ScanReport,
    SourceId,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class CredentialCipher(Protocol):
    def encrypt(self, credentials: Credentials, repository_id: RepositoryId) -> str:
        """An authenticated ciphertext of the credentials (safe to store), bound to the
        repository: it does not open for another one."""
        ...

    def decrypt(self, token: str, repository_id: RepositoryId) -> Credentials:
        """The credentials; raises CredentialsUnreadable when the key changed, the data is bad
        or it was sealed for another repository."""
        ...


class AddressGuard(Protocol):
    async def check(self, host: str, port: int) -> str:
        """The address to connect to: `host` resolved, every address checked against the
        platform's outbound rule; raises InvalidInput("url", ...) naming the refused address
        (or saying the host cannot be resolved)."""
        ...


@dataclass(frozen=True, kw_only=True)
class Checkout:
    """A working tree of the repository at `commit` (None for a plain local folder)."""

    root: Path
    commit: str | None
    branch: str | None
    warnings: tuple[Issue, ...] = ()


class GitClient(Protocol):
    async def checkout(
        self,
        *,
        repository_id: RepositoryId,
        url: GitUrl,
        branch: str | None,
        credentials: Credentials | None,
        pinned_address: str | None,
    ) -> Checkout:
        """Clone or fetch the branch (the remote's default when None) and check it out.

        Raises ScanFailed with a user-facing reason (never containing a secret)."""
        ...

    async def forget(self, repository_id: RepositoryId) -> None:
        """Remove the local clone of a deleted repository."""
        ...


@dataclass(frozen=True, kw_only=True)
class FoundAction:
    """One folder holding a ryax_metadata.yaml, validated; packed when valid."""

    path: str  # the folder, relative to the scanned root ("" for the root itself)
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    packed: PackedSource | None = None
    archive: Path | None = None  # the packed archive file, until it is stored
    action_id: str | None = None  # best effort, for invalid folders too
    version: str | None = None


@dataclass(frozen=True, kw_only=True)
class ScanFindings:
    actions: tuple[FoundAction, ...]
    warnings: tuple[Issue, ...] = ()
    errors: tuple[Issue, ...] = ()


class SourceScanner(Protocol):
    def scan(self, root: Path, scratch: Path) -> ScanFindings:
        """Find, validate and pack every action folder under `root` (blocking: run it in a
        thread). Archives are written under `scratch`. Symbolic links are never followed."""
        ...


class ArchiveExtractor(Protocol):
    def extract(self, archive: Path, destination: Path) -> None:
        """Unpack a zip or tar(.gz) archive; raise UnsafeArchive (links, absolute or escaping
        paths) or TooLarge before anything unsafe is written (blocking: run it in a thread)."""
        ...


class Filestore(Protocol):
    """Content-addressed source archives (`sources/<sha256>.tar.gz`), and the built
    artefacts (`artefacts/...`, only whether they exist); the kit's filestore."""

    async def exists(self, key: str) -> bool: ...

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        """Copy a local file in (replacing any object under the key)."""
        ...


class GitRepositoryRepository(Protocol):
    async def add(self, repository: GitRepository) -> None: ...
    async def get(
        self, project_id: ProjectId, repository_id: RepositoryId
    ) -> GitRepository | None: ...
    async def get_by_name(self, project_id: ProjectId, name: str) -> GitRepository | None: ...
    async def list(self, project_id: ProjectId) -> list[GitRepository]: ...
    async def delete(self, repository: GitRepository) -> None: ...


class ActionSourceRepository(Protocol):
    async def add(self, source: ActionSource) -> None: ...
    async def get(self, source_id: SourceId) -> ActionSource | None: ...
    async def get_version(
        self, project_id: ProjectId, action_id: str, version: str
    ) -> ActionSource | None:
        """The recorded (not invalid) source of an action version."""
        ...

    async def list(self, project_id: ProjectId) -> list[ActionSource]: ...
    async def list_for_repository(
        self, project_id: ProjectId, repository_id: RepositoryId
    ) -> builtins.list[ActionSource]: ...
    async def delete_invalid(self, project_id: ProjectId, repository_id: RepositoryId) -> None:
        """Forget the invalid folders of a repository (a new scan re-reports them)."""
        ...


class BuildRepository(Protocol):
    async def add(self, build: Build) -> None: ...
    async def get(self, build_id: BuildId) -> Build | None: ...
    async def get_many(self, build_ids: Sequence[BuildId]) -> dict[BuildId, Build]: ...
    async def list_for_source(self, source_id: SourceId) -> list[Build]: ...


class ScanRepository(Protocol):
    async def add(self, report: ScanReport) -> None: ...
    async def get(self, project_id: ProjectId, scan_id: ScanId) -> ScanReport | None: ...


class UnitOfWork(Protocol):
    repositories: GitRepositoryRepository
    sources: ActionSourceRepository
    builds: BuildRepository
    scans: ScanRepository

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(self, *args: object) -> None: ...

    async def claim_message(self, message_id: str) -> bool:
        """Remember an incoming message id in this transaction; False if seen before."""
        ...

    async def commit(self) -> None:
        """The only way state is saved; events recorded by the aggregates go to the outbox in
        the same transaction. Leaving without commit rolls back."""
        ...
