"""Repositories, action sources and builds: what was found where, and what may be built.

An action version is identified in a project by (action id, version). Once recorded, its
source is never replaced silently: a scan that finds different content under the same
(id, version) reports `changed_same_version` and keeps the recorded source, until the user
bumps the version or forces the replacement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .action_metadata import ActionMetadata, MetadataError, MetadataWarning
from .errors import Conflict, InvalidInput
from .events import ActionBuildRequested, ActionReady, Event
from .git_url import GitUrl, UrlKind

ProjectId = NewType("ProjectId", str)
RepositoryId = NewType("RepositoryId", str)
SourceId = NewType("SourceId", str)
BuildId = NewType("BuildId", str)
ScanId = NewType("ScanId", str)

REPOSITORY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,99}$")
BRANCH_RE = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!/)[A-Za-z0-9._/+-]{1,200}(?<![./])$")
MAX_SSH_KEY_LENGTH = 16 * 1024
MAX_SECRET_LENGTH = 4096
MAX_BUILD_LOG_CHARS = 1024 * 1024
SOURCES_PREFIX = "sources/"


def source_key(sha256: str) -> str:
    """Filestore key of an action source archive: content-addressed."""
    return f"{SOURCES_PREFIX}{sha256}.tar.gz"


# ---------------------------------------------------------------------------------------------
# Problems found while scanning


@dataclass(frozen=True, kw_only=True)
class Issue:
    """An error or a warning about one file: its path in the source, line (0 = whole file)."""

    file: str
    line: int = 0
    field: str = ""
    message: str

    @classmethod
    def from_metadata(cls, problem: MetadataError | MetadataWarning) -> Issue:
        return cls(
            file=problem.file,
            line=problem.line,
            field=problem.field_path,
            message=problem.message,
        )

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Issue:
        line = data.get("line", 0)
        return cls(
            file=str(data.get("file", "")),
            line=line if isinstance(line, int) else 0,
            field=str(data.get("field", "")),
            message=str(data.get("message", "")),
        )

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


# ---------------------------------------------------------------------------------------------
# Git repositories


class AuthKind(StrEnum):
    NONE = "none"
    PASSWORD = "password"
    SSH_KEY = "ssh_key"


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """Plain credentials: only in memory, between decryption and the git call."""

    username: str | None = None
    password: str | None = None
    ssh_key: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(kind={self.kind})"

    __str__ = __repr__

    @property
    def kind(self) -> AuthKind:
        if self.ssh_key:
            return AuthKind.SSH_KEY
        if self.password:
            return AuthKind.PASSWORD
        return AuthKind.NONE

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or an error message."""
        return tuple(s for s in (self.password, self.ssh_key) if s)


def check_credentials(url: GitUrl, credentials: Credentials) -> None:
    """Username and password go with https, an SSH key with ssh; local paths take none."""
    if credentials.ssh_key is not None:
        if url.kind is not UrlKind.SSH:
            raise InvalidInput("ssh_key", "an SSH key can only be used with an ssh URL")
        if credentials.password is not None:
            raise InvalidInput("password", "give either a password or an SSH key, not both")
        key = credentials.ssh_key.strip()
        if len(key) > MAX_SSH_KEY_LENGTH:
            raise InvalidInput("ssh_key", f"is longer than {MAX_SSH_KEY_LENGTH} characters")
        if not (key.startswith("-----BEGIN ") and "PRIVATE KEY-----" in key):
            raise InvalidInput(
                "ssh_key", "expected a private key in PEM/OpenSSH form (-----BEGIN ... KEY-----)"
            )
    if credentials.password is not None:
        if url.kind is not UrlKind.HTTPS:
            raise InvalidInput("password", "a username and password can only be used with https")
        if not credentials.password or len(credentials.password) > MAX_SECRET_LENGTH:
            raise InvalidInput("password", f"must be 1 to {MAX_SECRET_LENGTH} characters")
        if not credentials.username:
            raise InvalidInput(
                "username",
                "is required with a password (for an access token use the user name your git "
                "host documents, e.g. oauth2 or x-access-token)",
            )
    if credentials.username is not None:
        if credentials.password is None and credentials.ssh_key is None:
            raise InvalidInput("password", "is required with a username")
        if not 1 <= len(credentials.username) <= 200 or any(
            c.isspace() or ord(c) < 32 for c in credentials.username
        ):
            raise InvalidInput("username", "1 to 200 characters without spaces")
    if url.is_local and credentials.kind is not AuthKind.NONE:
        raise InvalidInput("url", "local paths take no credentials")


def check_repository_name(name: str) -> None:
    if not REPOSITORY_NAME_RE.match(name):
        raise InvalidInput(
            "name",
            "1 to 100 characters: letters, digits, spaces and _ . @ -, starting with a "
            "letter or digit",
        )


def check_branch(branch: str) -> None:
    if not BRANCH_RE.match(branch) or branch.endswith(".lock") or "@{" in branch:
        raise InvalidInput("branch", f"{branch!r} is not a valid branch name")


@dataclass(eq=False, kw_only=True)
class GitRepository:
    id: RepositoryId
    project_id: ProjectId
    name: str
    url: str
    branch: str | None  # as asked; None = the remote's default (main or master)
    auth: AuthKind = AuthKind.NONE
    encrypted_credentials: str | None = None
    created_at: datetime
    updated_at: datetime
    resolved_branch: str | None = None
    last_commit: str | None = None
    last_scan_id: ScanId | None = None
    last_scanned_at: datetime | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GitRepository) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def record_scan(
        self, scan_id: ScanId, commit: str | None, branch: str | None, now: datetime
    ) -> None:
        self.last_scan_id = scan_id
        self.last_commit = commit
        self.resolved_branch = branch
        self.last_scanned_at = now
        self.updated_at = now


# ---------------------------------------------------------------------------------------------
# Action sources and builds


class SourceState(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    BUILDING = "building"
    BUILT = "built"
    BUILD_FAILED = "build_failed"


class BuildState(StrEnum):
    REQUESTED = "requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FindingStatus(StrEnum):
    """What a scan did with one action folder."""

    NEW = "new"  # a (id, version) not seen before in the project: recorded
    UNCHANGED = "unchanged"  # same content as recorded
    CHANGED_SAME_VERSION = "changed_same_version"  # different content, old source kept
    REPLACED = "replaced"  # different content, replaced because the scan was forced
    INVALID = "invalid"  # errors: nothing recorded but the errors


@dataclass(frozen=True, kw_only=True)
class Origin:
    """Where a source came from: a repository (at a commit) or an uploaded archive."""

    repository_id: RepositoryId | None = None
    upload_id: ScanId | None = None
    name: str = ""
    path: str = ""  # the action folder, relative to the repository or archive root
    commit: str | None = None


@dataclass(frozen=True, kw_only=True)
class PendingChange:
    """Different content seen under an already recorded (id, version), not applied."""

    sha256: str
    origin: Origin
    seen_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "sha256": self.sha256,
            "repository_id": self.origin.repository_id,
            "upload_id": self.origin.upload_id,
            "name": self.origin.name,
            "path": self.origin.path,
            "commit": self.origin.commit,
            "seen_at": self.seen_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PendingChange:
        def opt(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(
            sha256=str(data["sha256"]),
            origin=Origin(
                repository_id=RepositoryId(v) if (v := opt("repository_id")) else None,
                upload_id=ScanId(u) if (u := opt("upload_id")) else None,
                name=str(data.get("name", "")),
                path=str(data.get("path", "")),
                commit=opt("commit"),
            ),
            seen_at=datetime.fromisoformat(str(data["seen_at"])),
        )


@dataclass(frozen=True, kw_only=True)
class PackedSource:
    """A valid action folder, packed as a deterministic archive stored in the filestore."""

    sha256: str
    size: int
    metadata: ActionMetadata
    metadata_yaml: str
    logo: bytes | None = None
    logo_media_type: str = ""

    @property
    def key(self) -> str:
        return source_key(self.sha256)


@dataclass(eq=False, kw_only=True)
class Build:
    id: BuildId
    project_id: ProjectId
    source_id: SourceId
    action_id: str
    version: str
    source_sha256: str
    source_key: str
    state: BuildState = BuildState.REQUESTED
    requested_at: datetime
    finished_at: datetime | None = None
    artefact_key: str | None = None
    artefact_sha256: str | None = None
    cached: bool = False
    duration_seconds: float | None = None
    reason: str = ""
    log: str = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Build) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def finished(self) -> bool:
        return self.state is not BuildState.REQUESTED

    def succeed(
        self,
        *,
        artefact_key: str,
        artefact_sha256: str,
        log: str,
        cached: bool,
        duration_seconds: float,
        now: datetime,
    ) -> bool:
        """Record success; False when the build already has an outcome (a repeat)."""
        if self.finished:
            return False
        self.state = BuildState.SUCCEEDED
        self.artefact_key, self.artefact_sha256 = artefact_key, artefact_sha256
        self.log, self.cached = _tail(log), cached
        self.duration_seconds, self.finished_at = duration_seconds, now
        return True

    def fail(self, *, reason: str, log: str, duration_seconds: float, now: datetime) -> bool:
        """Record failure; False when the build already has an outcome (a repeat)."""
        if self.finished:
            return False
        self.state = BuildState.FAILED
        self.reason, self.log = reason[:2000], _tail(log)
        self.duration_seconds, self.finished_at = duration_seconds, now
        return True


def _tail(log: str) -> str:
    if len(log) <= MAX_BUILD_LOG_CHARS:
        return log
    return "[... log truncated ...]\n" + log[-MAX_BUILD_LOG_CHARS:]


@dataclass(eq=False, kw_only=True)
class ActionSource:
    """One recorded action version (valid) or one action folder that failed validation."""

    id: SourceId
    project_id: ProjectId
    origin: Origin
    state: SourceState
    action_id: str | None = None
    version: str | None = None
    packed: PackedSource | None = None  # None only when invalid
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    pending_change: PendingChange | None = None
    last_build_id: BuildId | None = None
    created_at: datetime
    updated_at: datetime
    events: list[Event] = field(default_factory=list)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActionSource) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def metadata(self) -> ActionMetadata | None:
        return self.packed.metadata if self.packed else None

    @classmethod
    def valid(
        cls,
        *,
        id: SourceId,
        project_id: ProjectId,
        origin: Origin,
        packed: PackedSource,
        warnings: tuple[Issue, ...],
        now: datetime,
    ) -> ActionSource:
        return cls(
            id=id,
            project_id=project_id,
            origin=origin,
            state=SourceState.VALID,
            action_id=packed.metadata.id,
            version=packed.metadata.version,
            packed=packed,
            warnings=warnings,
            created_at=now,
            updated_at=now,
        )

    @classmethod
    def invalid(
        cls,
        *,
        id: SourceId,
        project_id: ProjectId,
        origin: Origin,
        errors: tuple[Issue, ...],
        warnings: tuple[Issue, ...],
        now: datetime,
        action_id: str | None = None,
        version: str | None = None,
    ) -> ActionSource:
        return cls(
            id=id,
            project_id=project_id,
            origin=origin,
            state=SourceState.INVALID,
            action_id=action_id,
            version=version,
            errors=errors,
            warnings=warnings,
            created_at=now,
            updated_at=now,
        )

    def compare(self, sha256: str) -> FindingStatus:
        """Same content -> unchanged; different content under this (id, version) -> changed."""
        assert self.packed is not None
        if self.packed.sha256 == sha256:
            return FindingStatus.UNCHANGED
        return FindingStatus.CHANGED_SAME_VERSION

    def seen_again(self, origin: Origin, warnings: tuple[Issue, ...], now: datetime) -> None:
        """The same content found again: follow the commit it is now found at."""
        if origin.repository_id == self.origin.repository_id and (
            origin.upload_id == self.origin.upload_id
        ):
            self.origin = origin
        self.warnings = warnings
        self.pending_change = None
        self.updated_at = now

    def note_change(self, sha256: str, origin: Origin, now: datetime) -> None:
        """Different content under the same version: remember it, change nothing else."""
        self.pending_change = PendingChange(sha256=sha256, origin=origin, seen_at=now)
        self.updated_at = now

    def replace(
        self, origin: Origin, packed: PackedSource, warnings: tuple[Issue, ...], now: datetime
    ) -> None:
        """Forced: take the new content; it must be built again."""
        self.origin, self.packed, self.warnings = origin, packed, warnings
        self.state = SourceState.VALID
        self.errors = ()
        self.pending_change = None
        self.updated_at = now

    def request_build(
        self, build_id: BuildId, event_id: str, now: datetime, force: bool = False
    ) -> Build:
        """A valid source can be built; one build at a time unless forced."""
        if self.state is SourceState.INVALID or self.packed is None:
            raise Conflict(f"{self.label} is invalid and cannot be built; fix the errors first")
        if self.state is SourceState.BUILDING and not force:
            raise Conflict(
                f"{self.label} is already being built (build {self.last_build_id}); "
                "add ?force=true to request another build"
            )
        assert self.action_id is not None and self.version is not None
        build = Build(
            id=build_id,
            project_id=self.project_id,
            source_id=self.id,
            action_id=self.action_id,
            version=self.version,
            source_sha256=self.packed.sha256,
            source_key=self.packed.key,
            requested_at=now,
        )
        self.state = SourceState.BUILDING
        self.last_build_id = build_id
        self.updated_at = now
        self.events.append(
            ActionBuildRequested(
                event_id=event_id,
                build_id=build_id,
                project_id=self.project_id,
                action_id=self.action_id,
                action_version=self.version,
                action_kind=self.packed.metadata.kind.value.lower(),
                source_key=self.packed.key,
                source_sha256=self.packed.sha256,
                metadata_yaml=self.packed.metadata_yaml,
                requested_at=now,
                repository_id=self.origin.repository_id or "",
                source_commit=self.origin.commit or "",
                python_packages=self.packed.metadata.declared_python_packages,
            )
        )
        return build

    def _is_current(self, build: Build) -> bool:
        return (
            build.id == self.last_build_id
            and self.packed is not None
            and build.source_sha256 == self.packed.sha256
        )

    def build_succeeded(self, build: Build, event_id: str, now: datetime) -> None:
        """The latest build of the current content succeeded: the version is ready."""
        if not self._is_current(build):
            return
        assert self.packed is not None and build.artefact_key and build.artefact_sha256
        self.state = SourceState.BUILT
        self.updated_at = now
        self.events.append(
            ActionReady(
                event_id=event_id,
                project_id=self.project_id,
                metadata=self.packed.metadata,
                artefact_key=build.artefact_key,
                artefact_sha256=build.artefact_sha256,
                logo=self.packed.logo,
                logo_media_type=self.packed.logo_media_type,
                repository_id=self.origin.repository_id or "",
                source_commit=self.origin.commit or "",
                build_id=build.id,
                ready_at=now,
            )
        )

    def build_failed(self, build: Build, now: datetime) -> None:
        if not self._is_current(build):
            return
        self.state = SourceState.BUILD_FAILED
        self.updated_at = now

    @property
    def label(self) -> str:
        if self.action_id and self.version:
            return f"action {self.action_id} version {self.version}"
        return f"action folder {self.origin.path or '.'}"


# ---------------------------------------------------------------------------------------------
# Scan reports


@dataclass(frozen=True, kw_only=True)
class ScannedAction:
    path: str
    status: FindingStatus
    action_id: str | None = None
    version: str | None = None
    kind: str | None = None
    source_id: SourceId | None = None
    state: SourceState | None = None
    sha256: str | None = None
    recorded_sha256: str | None = None
    message: str = ""
    errors: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "status": self.status.value,
            "action_id": self.action_id,
            "version": self.version,
            "kind": self.kind,
            "source_id": self.source_id,
            "state": self.state.value if self.state else None,
            "sha256": self.sha256,
            "recorded_sha256": self.recorded_sha256,
            "message": self.message,
            "errors": [e.to_dict() for e in self.errors],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ScannedAction:
        def opt(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        def issues(key: str) -> tuple[Issue, ...]:
            values = data.get(key) or []
            assert isinstance(values, list)
            return tuple(Issue.from_dict(v) for v in values)

        state = opt("state")
        source = opt("source_id")
        return cls(
            path=str(data["path"]),
            status=FindingStatus(str(data["status"])),
            action_id=opt("action_id"),
            version=opt("version"),
            kind=opt("kind"),
            source_id=SourceId(source) if source else None,
            state=SourceState(state) if state else None,
            sha256=opt("sha256"),
            recorded_sha256=opt("recorded_sha256"),
            message=str(data.get("message", "")),
            errors=issues("errors"),
            warnings=issues("warnings"),
        )


@dataclass(frozen=True, kw_only=True)
class ScanReport:
    """The result of one scan: every action folder found, every error and warning at once."""

    id: ScanId
    project_id: ProjectId
    origin_kind: str  # "git" or "upload"
    origin_name: str
    repository_id: RepositoryId | None
    commit: str | None
    branch: str | None
    started_at: datetime
    finished_at: datetime
    actions: tuple[ScannedAction, ...]
    warnings: tuple[Issue, ...] = ()  # repository-wide (ignored links, skipped files)
    errors: tuple[Issue, ...] = ()  # repository-wide problems
    build_ids: tuple[BuildId, ...] = ()
    forced: bool = False

    @property
    def all_errors(self) -> tuple[Issue, ...]:
        return self.errors + tuple(e for a in self.actions for e in a.errors)

    @property
    def all_warnings(self) -> tuple[Issue, ...]:
        return self.warnings + tuple(w for a in self.actions for w in a.warnings)

    def count(self, status: FindingStatus) -> int:
        return sum(1 for a in self.actions if a.status is status)
