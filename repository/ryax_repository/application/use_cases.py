"""Use cases of the repository service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..domain.errors import AlreadyExists, InvalidInput, NotFound, ScanFailed
from ..domain.events import RecordBuildFailed, RecordBuildSucceeded
from ..domain.git_url import (
    GitUrl,
    local_refused_message,
    parse_git_url,
)
from ..domain.model import (
    ActionSource,
    AuthKind,
    Build,
    BuildId,
    Credentials,
    FindingStatus,
    GitRepository,
    Issue,
    Origin,
    ProjectId,
    RepositoryId,
    ScanId,
    ScannedAction,
    ScanReport,
    SourceId,
    SourceState,
    check_branch,
    check_credentials,
    check_repository_name,
)
from .ports import (
    AddressGuard,
    ArchiveExtractor,
    Clock,
    CredentialCipher,
    Filestore,
    FoundAction,
    GitClient,
    ScanFindings,
    SourceScanner,
    UnitOfWork,
)

log = logging.getLogger(__name__)
READY_NAMESPACE = uuid.UUID("5b0f3a52-5d8e-4c1b-9a55-1f0a3c2d7e61")
BUILDABLE = (SourceState.VALID, SourceState.BUILD_FAILED)


def new_id() -> str:
    return str(uuid.uuid4())


def ready_event_id(build_id: str) -> str:
    """Deterministic: a redelivered build result never yields a second, different event."""
    return str(uuid.uuid5(READY_NAMESPACE, build_id))


@dataclass(frozen=True, kw_only=True)
class ActionView:
    source: ActionSource
    last_build: Build | None


class RepositoryUseCases:
    """Every operation of the service; each opens its own unit of work. The caller's access to
    the project was checked at the edge; every lookup here is filtered by project."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        cipher: CredentialCipher,
        guard: AddressGuard,
        git: GitClient,
        scanner: SourceScanner,
        extractor: ArchiveExtractor,
        filestore: Filestore,
        work_dir: Path,
        allow_local: bool = False,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._cipher = cipher
        self._guard = guard
        self._git = git
        self._scanner = scanner
        self._extractor = extractor
        self._filestore = filestore
        self._work_dir = work_dir
        self._allow_local = allow_local
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # ---- repositories ----------------------------------------------------------------------
    async def add_repository(
        self,
        project_id: ProjectId,
        *,
        name: str,
        url: str,
        branch: str | None,
        credentials: Credentials,
    ) -> GitRepository:
        """A repository's URL must be an accepted form on a public address (unless local
        sources are allowed); credentials are stored encrypted."""
        check_repository_name(name)
        parsed = parse_git_url(url)
        if branch is not None:
            check_branch(branch)
        check_credentials(parsed, credentials)
        await self._check_location(parsed)
        now = self._clock.now()
        repository_id = RepositoryId(new_id())
        encrypted = (
            self._cipher.encrypt(credentials, repository_id)
            if credentials.kind is not AuthKind.NONE
            else None
        )
        repository = GitRepository(
            id=repository_id,
            project_id=project_id,
            name=name,
            url=parsed.raw,
            branch=branch,
            auth=credentials.kind,
            encrypted_credentials=encrypted,
            created_at=now,
            updated_at=now,
        )
        async with self._uow() as uow:
            if await uow.repositories.get_by_name(project_id, name) is not None:
                raise AlreadyExists(f"a repository named {name!r} already exists in this project")
            await uow.repositories.add(repository)
            await uow.commit()
        log.info(
            "repository added",
            extra={
                "repository_id": repository.id,
                "project_id": project_id,
                "auth": repository.auth,
            },
        )
        return repository

    async def list_repositories(self, project_id: ProjectId) -> list[GitRepository]:
        async with self._uow() as uow:
            return await uow.repositories.list(project_id)

    async def get_repository(
        self, project_id: ProjectId, repository_id: RepositoryId
    ) -> GitRepository:
        async with self._uow() as uow:
            return await self._repository(uow, project_id, repository_id)

    async def delete_repository(self, project_id: ProjectId, repository_id: RepositoryId) -> None:
        """Recorded action versions stay (they may be built or in use); the clone goes."""
        async with self._lock(f"repo:{repository_id}"):
            async with self._uow() as uow:
                repository = await self._repository(uow, project_id, repository_id)
                await uow.sources.delete_invalid(project_id, repository.id)
                await uow.repositories.delete(repository)
                await uow.commit()
            await self._git.forget(repository_id)

    async def _repository(
        self, uow: UnitOfWork, project_id: ProjectId, repository_id: RepositoryId
    ) -> GitRepository:
        repository = await uow.repositories.get(project_id, repository_id)
        if repository is None:
            raise NotFound(f"repository {repository_id} not found in this project")
        return repository

    async def _check_location(self, url: GitUrl) -> str | None:
        """Refuse local and internal locations unless allowed; the address to pin for git."""
        if self._allow_local:
            return None
        if url.is_local or url.host is None:
            raise InvalidInput("url", local_refused_message())
        return await self._guard.check(url.host, url.default_port)

    # ---- scans -----------------------------------------------------------------------------
    async def scan_repository(
        self,
        project_id: ProjectId,
        repository_id: RepositoryId,
        *,
        force: bool = False,
        build: bool = False,
    ) -> ScanReport:
        """Fetch the branch, validate every action folder, record what is valid; a changed
        action under an already recorded (id, version) is reported, not applied, unless forced."""
        started = self._clock.now()
        async with self._uow() as uow:
            repository = await self._repository(uow, project_id, repository_id)
        url = parse_git_url(repository.url)
        pinned = await self._check_location(url)
        credentials = (
            self._cipher.decrypt(repository.encrypted_credentials, repository.id)
            if repository.encrypted_credentials
            else None
        )
        async with self._lock(f"repo:{repository_id}"):
            checkout = await self._git.checkout(
                repository_id=repository.id,
                url=url,
                branch=repository.branch,
                credentials=credentials,
                pinned_address=pinned,
            )
            async with self._scratch() as scratch:
                findings = await asyncio.to_thread(self._scanner.scan, checkout.root, scratch)
                await self._store_archives(findings)
                scan_id = ScanId(new_id())
                origin = Origin(
                    repository_id=repository.id, name=repository.name, commit=checkout.commit
                )
                async with self._lock(f"project:{project_id}"), self._uow() as uow:
                    repository = await self._repository(uow, project_id, repository_id)
                    await uow.sources.delete_invalid(project_id, repository.id)
                    actions, builds, gone = await self._record(
                        uow,
                        project_id,
                        origin,
                        findings,
                        force=force,
                        build=build,
                        keep_invalid=True,
                    )
                    finished = self._clock.now()
                    report = ScanReport(
                        id=scan_id,
                        project_id=project_id,
                        origin_kind="git",
                        origin_name=repository.name,
                        repository_id=repository.id,
                        commit=checkout.commit,
                        branch=checkout.branch,
                        started_at=started,
                        finished_at=finished,
                        actions=actions,
                        warnings=checkout.warnings + findings.warnings + gone,
                        errors=findings.errors,
                        build_ids=builds,
                        forced=force,
                    )
                    await uow.scans.add(report)
                    repository.record_scan(scan_id, checkout.commit, checkout.branch, finished)
                    await uow.commit()
        log.info(
            "repository scanned",
            extra={
                "repository_id": repository_id,
                "project_id": project_id,
                "commit": checkout.commit,
                "found": len(actions),
                "errors": len(report.all_errors),
                "builds": len(builds),
            },
        )
        return report

    async def upload_archive(
        self,
        project_id: ProjectId,
        archive: Path,
        name: str,
        *,
        force: bool = False,
        build: bool = False,
    ) -> ScanReport:
        """An uploaded zip or tar(.gz) is scanned like a repository; unsafe archives are refused
        whole. Invalid folders are reported in the result, not kept."""
        started = self._clock.now()
        scan_id = ScanId(new_id())
        async with self._scratch() as scratch:
            root = scratch / "tree"
            root.mkdir()
            await asyncio.to_thread(self._extractor.extract, archive, root)
            packed = scratch / "packed"
            packed.mkdir()
            findings = await asyncio.to_thread(self._scanner.scan, root, packed)
            await self._store_archives(findings)
            origin = Origin(upload_id=scan_id, name=name)
            async with self._lock(f"project:{project_id}"), self._uow() as uow:
                actions, builds, _ = await self._record(
                    uow,
                    project_id,
                    origin,
                    findings,
                    force=force,
                    build=build,
                    keep_invalid=False,
                )
                report = ScanReport(
                    id=scan_id,
                    project_id=project_id,
                    origin_kind="upload",
                    origin_name=name,
                    repository_id=None,
                    commit=None,
                    branch=None,
                    started_at=started,
                    finished_at=self._clock.now(),
                    actions=actions,
                    warnings=findings.warnings,
                    errors=findings.errors,
                    build_ids=builds,
                    forced=force,
                )
                await uow.scans.add(report)
                await uow.commit()
        return report

    async def get_scan(self, project_id: ProjectId, scan_id: ScanId) -> ScanReport:
        async with self._uow() as uow:
            report = await uow.scans.get(project_id, scan_id)
        if report is None:
            raise NotFound(f"scan {scan_id} not found in this project")
        return report

    @contextlib.asynccontextmanager
    async def _scratch(self) -> AsyncIterator[Path]:
        base = self._work_dir / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="scan-", dir=base))
        try:
            yield path
        finally:
            await asyncio.to_thread(shutil.rmtree, path, True)

    async def _store_archives(self, findings: ScanFindings) -> None:
        """Content-addressed: an archive already stored is not sent again."""
        for found in findings.actions:
            if found.packed is None or found.archive is None:
                continue
            if not await self._filestore.exists(found.packed.key):
                await self._filestore.upload(found.packed.key, found.archive, "application/gzip")

    async def _record(
        self,
        uow: UnitOfWork,
        project_id: ProjectId,
        base: Origin,
        findings: ScanFindings,
        *,
        force: bool,
        build: bool,
        keep_invalid: bool,
    ) -> tuple[tuple[ScannedAction, ...], tuple[BuildId, ...], tuple[Issue, ...]]:
        now = self._clock.now()
        results: list[ScannedAction] = []
        builds: list[BuildId] = []
        seen: dict[tuple[str, str], str] = {}
        for found in sorted(findings.actions, key=lambda f: f.path):
            origin = replace(base, path=found.path)
            if found.packed is not None:
                key = (found.packed.metadata.id, found.packed.metadata.version)
                if key in seen:
                    found = _duplicate(found, seen[key])
                else:
                    seen[key] = found.path
            if found.packed is None:
                source_id: SourceId | None = None
                if keep_invalid:
                    invalid = ActionSource.invalid(
                        id=SourceId(new_id()),
                        project_id=project_id,
                        origin=origin,
                        errors=found.errors,
                        warnings=found.warnings,
                        now=now,
                        action_id=found.action_id,
                        version=found.version,
                    )
                    await uow.sources.add(invalid)
                    source_id = invalid.id
                results.append(
                    ScannedAction(
                        path=found.path,
                        status=FindingStatus.INVALID,
                        action_id=found.action_id,
                        version=found.version,
                        source_id=source_id,
                        state=SourceState.INVALID if keep_invalid else None,
                        errors=found.errors,
                        warnings=found.warnings,
                        message=f"{len(found.errors)} error(s): nothing recorded for this folder",
                    )
                )
                continue
            packed = found.packed
            meta = packed.metadata
            existing = await uow.sources.get_version(project_id, meta.id, meta.version)
            message = ""
            recorded_sha: str | None = None
            if existing is None:
                source = ActionSource.valid(
                    id=SourceId(new_id()),
                    project_id=project_id,
                    origin=origin,
                    packed=packed,
                    warnings=found.warnings,
                    now=now,
                )
                await uow.sources.add(source)
                status = FindingStatus.NEW
            else:
                source = existing
                assert existing.packed is not None
                recorded_sha = existing.packed.sha256
                status = existing.compare(packed.sha256)
                if status is FindingStatus.UNCHANGED:
                    existing.seen_again(origin, found.warnings, now)
                elif force:
                    existing.replace(origin, packed, found.warnings, now)
                    status = FindingStatus.REPLACED
                    message = (
                        f"action {meta.id} version {meta.version}: the recorded source "
                        f"was replaced by this folder's content (forced)"
                    )
                else:
                    existing.note_change(packed.sha256, origin, now)
                    message = _changed_message(meta.id, meta.version, found.path, existing)
            # A version recorded as built whose artefact is gone from the filestore (another
            # filestore, deleted data) is built again whatever `build` says: its recorded
            # build must not be trusted (a deploy would fail to fetch the artefact).
            lost = await self._lost_artefact(uow, source) if existing is not None else None
            if lost is not None or (
                build
                and status is not FindingStatus.CHANGED_SAME_VERSION
                and (source.state in BUILDABLE)
            ):
                request = source.request_build(BuildId(new_id()), new_id(), now)
                await uow.builds.add(request)
                builds.append(request.id)
                if lost is not None:
                    self._log_lost(lost, request, project_id)
                    note = (
                        f"the artefact of build {lost.id} ({lost.artefact_key}) is missing "
                        f"from the filestore: build {request.id} requested"
                    )
                    message = f"{message}; {note}" if message else note
            results.append(
                ScannedAction(
                    path=found.path,
                    status=status,
                    action_id=meta.id,
                    version=meta.version,
                    kind=meta.kind.value,
                    source_id=source.id,
                    state=source.state,
                    sha256=packed.sha256,
                    recorded_sha256=recorded_sha,
                    message=message,
                    warnings=found.warnings,
                )
            )
        gone: list[Issue] = []
        if base.repository_id is not None:
            for source in await uow.sources.list_for_repository(project_id, base.repository_id):
                if source.state is SourceState.INVALID or source.action_id is None:
                    continue
                if (source.action_id, source.version or "") not in seen and (
                    source.origin.path not in {r.path for r in results}
                ):
                    gone.append(
                        Issue(
                            file=source.origin.path or ".",
                            message=(
                                f"{source.label} was not found at this commit; its recorded "
                                "source is kept"
                            ),
                        )
                    )
        return tuple(results), tuple(builds), tuple(gone)

    # ---- actions and builds ----------------------------------------------------------------
    async def list_actions(self, project_id: ProjectId) -> list[ActionView]:
        async with self._uow() as uow:
            sources = await uow.sources.list(project_id)
            ids = [s.last_build_id for s in sources if s.last_build_id]
            builds = await uow.builds.get_many(ids)
        return [
            ActionView(
                source=s, last_build=builds.get(s.last_build_id) if s.last_build_id else None
            )
            for s in sources
        ]

    async def get_action(self, project_id: ProjectId, action_id: str, version: str) -> ActionView:
        async with self._uow() as uow:
            source = await self._version(uow, project_id, action_id, version)
            last = await uow.builds.get(source.last_build_id) if source.last_build_id else None
        return ActionView(source=source, last_build=last)

    async def list_builds(self, project_id: ProjectId, action_id: str, version: str) -> list[Build]:
        async with self._uow() as uow:
            source = await self._version(uow, project_id, action_id, version)
            return await uow.builds.list_for_source(source.id)

    async def _version(
        self, uow: UnitOfWork, project_id: ProjectId, action_id: str, version: str
    ) -> ActionSource:
        source = await uow.sources.get_version(project_id, action_id, version)
        if source is None:
            raise NotFound(f"action {action_id} version {version} not found in this project")
        return source

    async def build_action(
        self, project_id: ProjectId, action_id: str, version: str, *, force: bool = False
    ) -> Build:
        """Record a build request and emit ActionBuildRequested in the same transaction."""
        async with self._uow() as uow:
            source = await self._version(uow, project_id, action_id, version)
            if source.packed is not None and not await self._filestore.exists(source.packed.key):
                raise ScanFailed(
                    f"the source archive of {source.label} is missing from the filestore; "
                    "scan the repository again (with ?force=true) to store it again"
                )
            lost = await self._lost_artefact(uow, source)
            build = source.request_build(BuildId(new_id()), new_id(), self._clock.now(), force)
            await uow.builds.add(build)
            await uow.commit()
        if lost is not None:
            self._log_lost(lost, build, project_id)
        log.info(
            "build requested",
            extra={
                "build_id": build.id,
                "action_id": action_id,
                "version": version,
                "project_id": project_id,
            },
        )
        return build

    async def _lost_artefact(self, uow: UnitOfWork, source: ActionSource) -> Build | None:
        """The recorded successful build of a BUILT source whose artefact is not in the
        filestore (None when the artefact is there, or the source is not built). A recorded
        build is only reused while its artefact exists: otherwise it is built again (the
        content-addressed builder finds no artefact either, so it really builds)."""
        if source.state is not SourceState.BUILT or source.last_build_id is None:
            return None
        build = await uow.builds.get(source.last_build_id)
        if build is None:
            return None
        if build.artefact_key and await self._filestore.exists(build.artefact_key):
            return None
        return build

    @staticmethod
    def _log_lost(lost: Build, request: Build, project_id: ProjectId) -> None:
        log.warning(
            "recorded build has no artefact in the filestore: building again",
            extra={
                "build_id": lost.id,
                "artefact_key": lost.artefact_key,
                "new_build_id": request.id,
                "action_id": lost.action_id,
                "version": lost.version,
                "project_id": project_id,
            },
        )

    async def get_build(self, project_id: ProjectId, build_id: BuildId) -> Build:
        async with self._uow() as uow:
            build = await uow.builds.get(build_id)
        if build is None or build.project_id != project_id:
            raise NotFound(f"build {build_id} not found in this project")
        return build

    async def record_build_succeeded(self, cmd: RecordBuildSucceeded, message_id: str) -> None:
        """Idempotent by message id and by build: the first outcome of a build is kept; the
        action becomes ready (ActionReady) only if the build is its latest for this content."""
        async with self._uow() as uow:
            if not await uow.claim_message(message_id):
                return
            build = await self._build_for(uow, cmd.build_id, cmd.project_id)
            if build is not None:
                now = self._clock.now()
                if build.succeed(
                    artefact_key=cmd.artefact_key,
                    artefact_sha256=cmd.artefact_sha256,
                    log=cmd.log,
                    cached=cmd.cached,
                    duration_seconds=cmd.duration_seconds,
                    now=now,
                ):
                    source = await uow.sources.get(build.source_id)
                    if source is not None:
                        source.build_succeeded(build, ready_event_id(build.id), now)
            await uow.commit()

    async def record_build_failed(self, cmd: RecordBuildFailed, message_id: str) -> None:
        async with self._uow() as uow:
            if not await uow.claim_message(message_id):
                return
            build = await self._build_for(uow, cmd.build_id, cmd.project_id)
            if build is not None:
                now = self._clock.now()
                if build.fail(
                    reason=cmd.reason, log=cmd.log, duration_seconds=cmd.duration_seconds, now=now
                ):
                    source = await uow.sources.get(build.source_id)
                    if source is not None:
                        source.build_failed(build, now)
            await uow.commit()

    async def _build_for(self, uow: UnitOfWork, build_id: str, project_id: str) -> Build | None:
        build = await uow.builds.get(BuildId(build_id))
        if build is None or build.project_id != project_id:
            log.warning(
                "build result for an unknown build ignored",
                extra={"build_id": build_id, "project_id": project_id},
            )
            return None
        return build


def _duplicate(found: FoundAction, first_path: str) -> FoundAction:
    assert found.packed is not None
    meta = found.packed.metadata
    file = f"{found.path}/ryax_metadata.yaml" if found.path else "ryax_metadata.yaml"
    issue = Issue(
        file=file,
        line=0,
        field="spec.version",
        message=(
            f"spec.version: action {meta.id} version {meta.version} is also defined in "
            f"folder {first_path or '.'}; an (id, version) must be defined once"
        ),
    )
    return replace(
        found,
        packed=None,
        archive=None,
        errors=(*found.errors, issue),
        action_id=meta.id,
        version=meta.version,
    )


def _changed_message(action_id: str, version: str, path: str, existing: ActionSource) -> str:
    recorded = existing.origin
    where = f"{recorded.name or 'an upload'}:{recorded.path or '.'}"
    if recorded.commit:
        where += f" at commit {recorded.commit[:12]}"
    return (
        f"action {action_id} version {version} in {path or '.'} differs from the recorded source "
        f"({where}); the recorded source is kept. Bump spec.version to publish the change, or "
        "scan again with ?force=true to replace it"
    )
