"""SQL implementation of the read side (application/queries.py)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ...application.queries import Document, RunFilter, site_document
from ...domain.errors import InvalidInput
from .serialization import site_from_row
from .tables import deployments, executions, log_lines, runs, sites


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 6)


def encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        stamp, run_id = raw.split("|", 1)
        return datetime.fromisoformat(stamp), run_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor returned by this API") from exc


def _deployment(row: Any, site_names: dict[str, str]) -> Document:
    trigger = row.definition["trigger"]
    return {
        "id": row.id,
        "project_id": row.project_id,
        "workflow_id": row.workflow_id,
        "workflow_name": row.workflow_name,
        "snapshot_id": row.snapshot_id,
        "state": row.state,
        "reason": row.reason,
        "state_seq": row.state_seq,
        "requested_by": row.requested_by,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "http_endpoint": bool(trigger["http_endpoint"]),
        "steps": [{**s, "site_name": site_names.get(s["site_id"] or "")} for s in row.steps],
    }


def _run(row: Any) -> Document:
    return {
        "id": row.id,
        "project_id": row.project_id,
        "deployment_id": row.deployment_id,
        "workflow_id": row.workflow_id,
        "workflow_name": row.workflow_name,
        "origin": row.origin,
        "state": row.state,
        "reason": row.reason,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "ended_at": _iso(row.ended_at),
        "duration_seconds": _duration(row.started_at or row.created_at, row.ended_at),
        "failed_step_id": row.failed_step_id or None,
        "http_status": row.http_status or None,
        "results": row.results,
    }


def _execution(row: Any) -> Document:
    return {
        "execution_id": row.id,
        "step_id": row.step_id,
        "branch": "/".join(f"{s}:{i}" for s, i in row.branch),
        "attempt": row.attempt,
        "state": row.state,
        "infra_retries": row.infra_retries,
        "retry_of": row.retry_of,
        "is_trigger": row.is_trigger,
        "site_id": row.site_id,
        "inputs": row.inputs,
        "outputs": row.outputs,
        "outputs_list": row.outputs_list,
        "error": row.error or None,
        "traceback": row.traceback or None,
        "http_status": row.http_status or None,
        "created_at": _iso(row.created_at),
        "dispatched_at": _iso(row.dispatched_at),
        "started_at": _iso(row.started_at),
        "ended_at": _iso(row.ended_at),
        "duration_seconds": _duration(row.started_at, row.ended_at),
        "log_count": row.log_count,
        "progress": row.progress,
        "progress_message": row.progress_message or None,
        "cpu_seconds": row.cpu_seconds or None,
        "max_memory_bytes": row.max_memory_bytes or None,
    }


def _files(doc: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(doc, dict):
        if len(doc) == 1 and "$file" in doc:
            return [doc["$file"]]
        for v in doc.values():
            found += _files(v)
    elif isinstance(doc, list):
        for v in doc:
            found += _files(v)
    return found


class SqlRunnerQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _site_names(self, conn: Any) -> dict[str, str]:
        rows = (await conn.execute(sa.select(sites.c.id, sites.c.name))).all()
        return {r.id: r.name for r in rows}

    async def list_deployments(
        self, project_id: str, workflow_id: str | None, state: str | None
    ) -> list[Document]:
        q = sa.select(deployments).where(deployments.c.project_id == project_id)
        if workflow_id:
            q = q.where(deployments.c.workflow_id == workflow_id)
        if state:
            q = q.where(deployments.c.state == state)
        async with self._engine.connect() as conn:
            names = await self._site_names(conn)
            rows = (await conn.execute(q.order_by(deployments.c.created_at.desc()))).all()
        return [_deployment(r, names) for r in rows]

    async def get_deployment(self, project_id: str, deployment_id: str) -> Document | None:
        async with self._engine.connect() as conn:
            names = await self._site_names(conn)
            row = (
                await conn.execute(
                    sa.select(deployments)
                    .where(deployments.c.project_id == project_id)
                    .where(deployments.c.id == deployment_id)
                )
            ).first()
        return _deployment(row, names) if row is not None else None

    async def list_runs(self, project_id: str, f: RunFilter) -> tuple[list[Document], str | None]:
        q = sa.select(runs).where(runs.c.project_id == project_id)
        if f.workflow_id:
            q = q.where(runs.c.workflow_id == f.workflow_id)
        if f.deployment_id:
            q = q.where(runs.c.deployment_id == f.deployment_id)
        if f.state:
            q = q.where(runs.c.state == f.state)
        if f.since:
            q = q.where(runs.c.created_at >= f.since)
        if f.until:
            q = q.where(runs.c.created_at < f.until)
        if f.cursor:
            created_at, run_id = decode_cursor(f.cursor)
            q = q.where(
                sa.tuple_(runs.c.created_at, runs.c.id)
                < sa.tuple_(sa.literal(created_at), sa.literal(run_id))
            )
        limit = max(1, min(f.limit, 500))
        q = q.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return [_run(r) for r in rows], cursor

    async def get_run(self, project_id: str, run_id: str) -> Document | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(runs)
                    .where(runs.c.project_id == project_id)
                    .where(runs.c.id == run_id)
                )
            ).first()
            if row is None:
                return None
            names = await self._site_names(conn)
            ex_rows = (
                await conn.execute(
                    sa.select(executions)
                    .where(executions.c.run_id == run_id)
                    .order_by(
                        executions.c.created_at,
                        executions.c.is_trigger.desc(),
                        executions.c.step_id,
                        executions.c.attempt,
                    )
                )
            ).all()
        doc = _run(row)
        steps = []
        for er in ex_rows:
            e = _execution(er)
            e["site_name"] = names.get(er.site_id or "")
            steps.append(e)
        doc["steps"] = steps
        return doc

    async def logs(
        self,
        project_id: str,
        *,
        run_id: str | None = None,
        deployment_id: str | None = None,
        execution_id: str | None = None,
        step_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[Document]:
        q = sa.select(log_lines).where(log_lines.c.id > after_id)
        async with self._engine.connect() as conn:
            if run_id is not None:
                owner = (
                    await conn.execute(
                        sa.select(runs.c.id)
                        .where(runs.c.project_id == project_id)
                        .where(runs.c.id == run_id)
                    )
                ).first()
                if owner is None:
                    return []
                q = q.where(log_lines.c.run_id == run_id)
            if deployment_id is not None:
                owner = (
                    await conn.execute(
                        sa.select(deployments.c.id)
                        .where(deployments.c.project_id == project_id)
                        .where(deployments.c.id == deployment_id)
                    )
                ).first()
                if owner is None:
                    return []
                q = q.where(log_lines.c.deployment_id == deployment_id)
                if run_id is None:
                    q = q.where(log_lines.c.execution_id == "")
            if execution_id:
                q = q.where(log_lines.c.execution_id == execution_id)
            if step_id:
                q = q.where(log_lines.c.step_id == step_id)
            rows = (
                await conn.execute(
                    q.order_by(log_lines.c.execution_id, log_lines.c.seq, log_lines.c.id).limit(
                        max(1, min(limit, 10_000))
                    )
                )
            ).all()
        return [
            {
                "id": r.id,
                "execution_id": r.execution_id or None,
                "step_id": r.step_id,
                "seq": r.seq,
                "stream": r.stream,
                "line": r.line,
                "at": _iso(r.at),
            }
            for r in rows
        ]

    async def list_sites(self, include_archived: bool = False) -> list[Document]:
        query = sa.select(sites).order_by(sites.c.name)
        if not include_archived:
            query = query.where(sites.c.archived_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [site_document(site_from_row(r)) for r in rows]

    async def run_file(self, project_id: str, run_id: str, key: str) -> Document | None:
        async with self._engine.connect() as conn:
            owner = (
                await conn.execute(
                    sa.select(runs.c.id)
                    .where(runs.c.project_id == project_id)
                    .where(runs.c.id == run_id)
                )
            ).first()
            if owner is None:
                return None
            rows = (
                await conn.execute(
                    sa.select(
                        executions.c.inputs, executions.c.outputs, executions.c.outputs_list
                    ).where(executions.c.run_id == run_id)
                )
            ).all()
        matches = [
            f
            for r in rows
            for f in _files([r.inputs, r.outputs, r.outputs_list])
            if f.get("key") == key
        ]
        # A copy recorded as held by a site says where to ask when the filestore lacks it.
        return next((f for f in matches if f.get("held_by")), matches[0] if matches else None)
