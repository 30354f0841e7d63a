"""SQL repositories. They track the aggregates they hand out; the unit of work saves them."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain.action_metadata import ActionMetadata
from ...domain.model import (
    ActionSource,
    AuthKind,
    Build,
    BuildId,
    BuildState,
    GitRepository,
    Issue,
    Origin,
    PackedSource,
    PendingChange,
    ProjectId,
    RepositoryId,
    ScanId,
    ScannedAction,
    ScanReport,
    SourceId,
    SourceState,
)
from .tables import action_sources, builds, repositories, scans


async def _upsert(session: AsyncSession, table: sa.Table, values: dict[str, Any]) -> None:
    stmt = insert(table).values(**values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[table.c.id], set_=values))


# ---- git repositories ----------------------------------------------------------------------


def _repository(row: Any) -> GitRepository:
    return GitRepository(
        id=RepositoryId(row.id),
        project_id=ProjectId(row.project_id),
        name=row.name,
        url=row.url,
        branch=row.branch,
        auth=AuthKind(row.auth),
        encrypted_credentials=row.credentials,
        created_at=row.created_at,
        updated_at=row.updated_at,
        resolved_branch=row.resolved_branch,
        last_commit=row.last_commit,
        last_scan_id=ScanId(row.last_scan_id) if row.last_scan_id else None,
        last_scanned_at=row.last_scanned_at,
    )


class SqlAlchemyGitRepositoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[RepositoryId, GitRepository] = {}

    def _track(self, row: Any) -> GitRepository | None:
        if row is None:
            return None
        repository = _repository(row)
        self.seen[repository.id] = repository
        return repository

    async def add(self, repository: GitRepository) -> None:
        self.seen[repository.id] = repository

    async def get(self, project_id: ProjectId, repository_id: RepositoryId) -> GitRepository | None:
        query = sa.select(repositories).where(
            repositories.c.project_id == project_id, repositories.c.id == repository_id
        )
        return self._track((await self._session.execute(query)).first())

    async def get_by_name(self, project_id: ProjectId, name: str) -> GitRepository | None:
        query = sa.select(repositories).where(
            repositories.c.project_id == project_id, repositories.c.name == name
        )
        return self._track((await self._session.execute(query)).first())

    async def list(self, project_id: ProjectId) -> list[GitRepository]:
        query = (
            sa.select(repositories)
            .where(repositories.c.project_id == project_id)
            .order_by(repositories.c.name)
        )
        return [_repository(r) for r in (await self._session.execute(query)).all()]

    async def delete(self, repository: GitRepository) -> None:
        self.seen.pop(repository.id, None)
        await self._session.execute(
            sa.delete(repositories).where(repositories.c.id == repository.id)
        )

    async def save(self) -> None:
        for r in self.seen.values():
            await _upsert(
                self._session,
                repositories,
                {
                    "id": r.id,
                    "project_id": r.project_id,
                    "name": r.name,
                    "url": r.url,
                    "branch": r.branch,
                    "auth": r.auth.value,
                    "credentials": r.encrypted_credentials,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                    "resolved_branch": r.resolved_branch,
                    "last_commit": r.last_commit,
                    "last_scan_id": r.last_scan_id,
                    "last_scanned_at": r.last_scanned_at,
                },
            )


# ---- action sources ------------------------------------------------------------------------


def _issues(data: Any) -> tuple[Issue, ...]:
    return tuple(Issue.from_dict(item) for item in (data or []))


def _source(row: Any) -> ActionSource:
    packed = None
    if row.metadata is not None and row.source_sha256:
        packed = PackedSource(
            sha256=row.source_sha256,
            size=int(row.source_size or 0),
            metadata=ActionMetadata.from_dict(row.metadata),
            metadata_yaml=row.metadata_yaml or "",
            logo=bytes(row.logo) if row.logo is not None else None,
            logo_media_type=row.logo_media_type or "",
        )
    return ActionSource(
        id=SourceId(row.id),
        project_id=ProjectId(row.project_id),
        origin=Origin(
            repository_id=RepositoryId(row.repository_id) if row.repository_id else None,
            upload_id=ScanId(row.upload_id) if row.upload_id else None,
            name=row.origin_name,
            path=row.path,
            commit=row.commit,
        ),
        state=SourceState(row.state),
        action_id=row.action_id,
        version=row.version,
        packed=packed,
        errors=_issues(row.errors),
        warnings=_issues(row.warnings),
        pending_change=PendingChange.from_dict(row.pending_change) if row.pending_change else None,
        last_build_id=BuildId(row.last_build_id) if row.last_build_id else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlAlchemyActionSourceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[SourceId, ActionSource] = {}

    def _track_all(self, rows: Sequence[Any]) -> list[ActionSource]:
        result = []
        for row in rows:
            source = self.seen.get(SourceId(row.id)) or _source(row)
            self.seen[source.id] = source
            result.append(source)
        return result

    async def _many(self, where: sa.ColumnElement[bool]) -> list[ActionSource]:
        query = (
            sa.select(action_sources)
            .where(where)
            .order_by(action_sources.c.action_id, action_sources.c.version, action_sources.c.path)
        )
        return self._track_all((await self._session.execute(query)).all())

    async def add(self, source: ActionSource) -> None:
        self.seen[source.id] = source

    async def get(self, source_id: SourceId) -> ActionSource | None:
        found = await self._many(action_sources.c.id == source_id)
        return found[0] if found else None

    async def get_version(
        self, project_id: ProjectId, action_id: str, version: str
    ) -> ActionSource | None:
        for source in self.seen.values():  # added in this unit of work, not yet saved
            if (source.project_id, source.action_id, source.version) == (
                project_id,
                action_id,
                version,
            ) and source.state is not SourceState.INVALID:
                return source
        found = await self._many(
            sa.and_(
                action_sources.c.project_id == project_id,
                action_sources.c.action_id == action_id,
                action_sources.c.version == version,
                action_sources.c.state != "invalid",
            )
        )
        return found[0] if found else None

    async def list(self, project_id: ProjectId) -> list[ActionSource]:
        return await self._many(action_sources.c.project_id == project_id)

    async def list_for_repository(
        self, project_id: ProjectId, repository_id: RepositoryId
    ) -> builtins.list[ActionSource]:
        return await self._many(
            sa.and_(
                action_sources.c.project_id == project_id,
                action_sources.c.repository_id == repository_id,
            )
        )

    async def delete_invalid(self, project_id: ProjectId, repository_id: RepositoryId) -> None:
        await self._session.execute(
            sa.delete(action_sources).where(
                action_sources.c.project_id == project_id,
                action_sources.c.repository_id == repository_id,
                action_sources.c.state == "invalid",
            )
        )
        for key in [
            k
            for k, s in self.seen.items()
            if s.state is SourceState.INVALID and s.origin.repository_id == repository_id
        ]:
            del self.seen[key]

    async def save(self) -> None:
        for s in self.seen.values():
            p = s.packed
            await _upsert(
                self._session,
                action_sources,
                {
                    "id": s.id,
                    "project_id": s.project_id,
                    "repository_id": s.origin.repository_id,
                    "upload_id": s.origin.upload_id,
                    "origin_name": s.origin.name[:200],
                    "path": s.origin.path,
                    "commit": s.origin.commit,
                    "state": s.state.value,
                    "action_id": s.action_id,
                    "version": s.version,
                    "kind": p.metadata.kind.value if p else None,
                    "metadata": p.metadata.to_dict() if p else None,
                    "metadata_yaml": p.metadata_yaml if p else None,
                    "source_sha256": p.sha256 if p else None,
                    "source_size": p.size if p else None,
                    "logo": p.logo if p else None,
                    "logo_media_type": p.logo_media_type if p else "",
                    "errors": [e.to_dict() for e in s.errors],
                    "warnings": [w.to_dict() for w in s.warnings],
                    "pending_change": s.pending_change.to_dict() if s.pending_change else None,
                    "last_build_id": s.last_build_id,
                    "created_at": s.created_at,
                    "updated_at": s.updated_at,
                },
            )


# ---- builds --------------------------------------------------------------------------------


def _build(row: Any) -> Build:
    return Build(
        id=BuildId(row.id),
        project_id=ProjectId(row.project_id),
        source_id=SourceId(row.source_id),
        action_id=row.action_id,
        version=row.version,
        source_sha256=row.source_sha256,
        source_key=row.source_key,
        state=BuildState(row.state),
        requested_at=row.requested_at,
        finished_at=row.finished_at,
        artefact_key=row.artefact_key,
        artefact_sha256=row.artefact_sha256,
        cached=row.cached,
        duration_seconds=row.duration_seconds,
        reason=row.reason,
        log=row.log,
    )


class SqlAlchemyBuildRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.seen: dict[BuildId, Build] = {}

    async def add(self, build: Build) -> None:
        self.seen[build.id] = build

    async def get(self, build_id: BuildId) -> Build | None:
        if build_id in self.seen:
            return self.seen[build_id]
        query = sa.select(builds).where(builds.c.id == build_id).with_for_update()
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        build = _build(row)
        self.seen[build.id] = build
        return build

    async def get_many(self, build_ids: Sequence[BuildId]) -> dict[BuildId, Build]:
        if not build_ids:
            return {}
        rows = (
            await self._session.execute(
                sa.select(
                    builds.c.id,
                    builds.c.project_id,
                    builds.c.source_id,
                    builds.c.action_id,
                    builds.c.version,
                    builds.c.source_sha256,
                    builds.c.source_key,
                    builds.c.state,
                    builds.c.requested_at,
                    builds.c.finished_at,
                    builds.c.artefact_key,
                    builds.c.artefact_sha256,
                    builds.c.cached,
                    builds.c.duration_seconds,
                    builds.c.reason,
                    sa.literal("").label("log"),
                ).where(builds.c.id.in_(list(build_ids)))
            )
        ).all()
        return {BuildId(r.id): _build(r) for r in rows}

    async def list_for_source(self, source_id: SourceId) -> list[Build]:
        rows = (
            await self._session.execute(
                sa.select(builds)
                .where(builds.c.source_id == source_id)
                .order_by(builds.c.requested_at.desc())
            )
        ).all()
        return [_build(r) for r in rows]

    async def save(self) -> None:
        for b in self.seen.values():
            await _upsert(
                self._session,
                builds,
                {
                    "id": b.id,
                    "project_id": b.project_id,
                    "source_id": b.source_id,
                    "action_id": b.action_id,
                    "version": b.version,
                    "source_sha256": b.source_sha256,
                    "source_key": b.source_key,
                    "state": b.state.value,
                    "requested_at": b.requested_at,
                    "finished_at": b.finished_at,
                    "artefact_key": b.artefact_key,
                    "artefact_sha256": b.artefact_sha256,
                    "cached": b.cached,
                    "duration_seconds": b.duration_seconds,
                    "reason": b.reason,
                    "log": b.log,
                },
            )


# ---- scans ---------------------------------------------------------------------------------


def report_to_dict(report: ScanReport) -> dict[str, object]:
    return {
        "actions": [a.to_dict() for a in report.actions],
        "warnings": [w.to_dict() for w in report.warnings],
        "errors": [e.to_dict() for e in report.errors],
        "build_ids": list(report.build_ids),
    }


def _scan(row: Any) -> ScanReport:
    data = row.report
    return ScanReport(
        id=ScanId(row.id),
        project_id=ProjectId(row.project_id),
        origin_kind=row.origin_kind,
        origin_name=row.origin_name,
        repository_id=RepositoryId(row.repository_id) if row.repository_id else None,
        commit=row.commit,
        branch=row.branch,
        started_at=row.started_at,
        finished_at=row.finished_at,
        actions=tuple(ScannedAction.from_dict(a) for a in data.get("actions", [])),
        warnings=_issues(data.get("warnings")),
        errors=_issues(data.get("errors")),
        build_ids=tuple(BuildId(b) for b in data.get("build_ids", [])),
        forced=row.forced,
    )


class SqlAlchemyScanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, report: ScanReport) -> None:
        await self._session.execute(
            sa.insert(scans).values(
                id=report.id,
                project_id=report.project_id,
                repository_id=report.repository_id,
                origin_kind=report.origin_kind,
                origin_name=report.origin_name[:200],
                commit=report.commit,
                branch=report.branch,
                started_at=report.started_at,
                finished_at=report.finished_at,
                forced=report.forced,
                report=report_to_dict(report),
            )
        )

    async def get(self, project_id: ProjectId, scan_id: ScanId) -> ScanReport | None:
        row = (
            await self._session.execute(
                sa.select(scans).where(scans.c.project_id == project_id, scans.c.id == scan_id)
            )
        ).first()
        return _scan(row) if row else None
