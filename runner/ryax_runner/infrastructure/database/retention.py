"""Run retention in the runner's database (application/retention.py's RunArchive), and the
projects' own retention (`project_settings`, migration 0011).

Every read goes through `ix_runs_project_ended` (project, end, ended runs only); every delete is
its own short transaction, committed without waiting for the disk (a delete lost in a crash of
PostgreSQL is done again by the next pass) and giving up on a lock after LOCK_TIMEOUT rather than
making anyone wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ryax_kit.core.keys import InvalidKey, check_key

from ...application.retention import DeletedRows, ExpiredRun
from ...domain.retention import TRIGGER_FILES_PREFIX
from .tables import ENDED, executions, project_settings

LOCK_TIMEOUT = "2s"

#: The distinct projects having ended runs, read from the index (a loose index scan: one probe
#: per project, whatever the number of runs).
_PROJECTS = sa.text(
    f"""
    WITH RECURSIVE p(project_id) AS (
        (SELECT project_id FROM runs WHERE {ENDED} ORDER BY project_id LIMIT 1)
        UNION ALL
        SELECT (
            SELECT r.project_id FROM runs r
            WHERE r.{ENDED} AND r.project_id > p.project_id
            ORDER BY r.project_id LIMIT 1
        )
        FROM p WHERE p.project_id IS NOT NULL
    )
    SELECT project_id FROM p WHERE project_id IS NOT NULL
    """
)

#: The projects having deployments (their processes' log lines).
_DEPLOYMENT_PROJECTS = sa.text("SELECT DISTINCT project_id FROM deployments")

#: Old lines of the project's deployments' own processes (of no run), by
#: `ix_log_lines_process_at`.
_DELETE_PROCESS_LINES = sa.text(
    """
    DELETE FROM log_lines WHERE id IN (
        SELECT id FROM log_lines
        WHERE run_id = '' AND at < :before
          AND deployment_id IN (SELECT id FROM deployments WHERE project_id = :project)
        LIMIT :limit
    )
    """
)

_EXPIRED = sa.text(
    f"""
    SELECT id, project_id, ended_at FROM runs
    WHERE project_id = :project AND {ENDED} AND ended_at < :before
      AND id <> ALL(CAST(:exclude AS varchar[]))
    ORDER BY ended_at LIMIT :limit
    """
)

_DELETE_LOGS = sa.text(
    """
    DELETE FROM log_lines WHERE id IN (
        SELECT id FROM log_lines WHERE run_id = ANY(CAST(:ids AS varchar[])) LIMIT :limit
    )
    """
)

_DELETE_RUNS = sa.text(
    f"""
    WITH gone AS (
        DELETE FROM runs
        WHERE id = ANY(CAST(:ids AS varchar[])) AND {ENDED} AND ended_at < :before
        RETURNING id
    ),
    ex AS (DELETE FROM executions WHERE run_id IN (SELECT id FROM gone) RETURNING 1),
    lines AS (DELETE FROM log_lines WHERE run_id IN (SELECT id FROM gone) RETURNING 1),
    calls AS (DELETE FROM run_callbacks WHERE run_id IN (SELECT id FROM gone) RETURNING 1)
    SELECT (SELECT count(*) FROM gone) AS runs, (SELECT count(*) FROM ex) AS executions,
           (SELECT count(*) FROM lines) AS log_lines, (SELECT count(*) FROM calls) AS calls
    """
)


def owned_trigger_files(outputs: Any) -> set[str]:
    """The keys of the files a run's trigger wrote for it (`triggers/...`), found in the trigger
    execution's stored outputs (`{"$file": {"key": ...}}`). Anything malformed is ignored: a
    record written by an older or broken version must not stop the cleaning. Keys elsewhere
    are never returned: a file a run only reads (a workflow's static file) is not its own."""
    found: set[str] = set()
    stack = [outputs]
    while stack:
        doc = stack.pop()
        if isinstance(doc, dict):
            ref = doc.get("$file") if len(doc) == 1 else None
            if isinstance(ref, dict):
                key = ref.get("key")
                if isinstance(key, str) and key.startswith(TRIGGER_FILES_PREFIX):
                    with contextlib.suppress(InvalidKey):  # never stored: nothing to delete
                        found.add(check_key(key))
            else:
                stack.extend(doc.values())
        elif isinstance(doc, list):
            stack.extend(doc)
    return found


async def _short(conn: AsyncConnection) -> None:
    await conn.execute(sa.text("SET LOCAL synchronous_commit TO off"))
    await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


class SqlRunArchive:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- the projects' own retention -------------------------------------------------------------

    async def retention_overrides(self) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(project_settings.c.project_id, project_settings.c.run_retention_days)
            )
            return {r.project_id: r.run_retention_days for r in rows}

    async def project_retention(self, project_id: str) -> int | None:
        async with self._engine.connect() as conn:
            days: int | None = await conn.scalar(
                sa.select(project_settings.c.run_retention_days).where(
                    project_settings.c.project_id == project_id
                )
            )
            return days

    async def set_project_retention(self, project_id: str, days: int | None, by: str) -> None:
        """The project's own retention; None: back to the default."""
        async with self._engine.begin() as conn:
            if days is None:
                await conn.execute(
                    sa.delete(project_settings).where(project_settings.c.project_id == project_id)
                )
                return
            row = {
                "project_id": project_id,
                "run_retention_days": days,
                "updated_at": datetime.now(UTC),
                "updated_by": by,
            }
            statement = pg_insert(project_settings).values(**row)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[project_settings.c.project_id],
                    set_={k: statement.excluded[k] for k in row if k != "project_id"},
                )
            )

    # -- RunArchive ------------------------------------------------------------------------------

    async def projects_with_ended_runs(self) -> list[str]:
        async with self._engine.connect() as conn:
            found = {r.project_id for r in await conn.execute(_PROJECTS)}
            found |= {r.project_id for r in await conn.execute(_DEPLOYMENT_PROJECTS)}
            return sorted(found)

    async def delete_process_log_lines(self, project_id: str, before: datetime, limit: int) -> int:
        async with self._engine.begin() as conn:
            await _short(conn)
            result = await conn.execute(
                _DELETE_PROCESS_LINES, {"project": project_id, "before": before, "limit": limit}
            )
            return int(result.rowcount)

    async def expired_runs(
        self, project_id: str, before: datetime, limit: int, exclude: Collection[str]
    ) -> list[ExpiredRun]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    _EXPIRED,
                    {
                        "project": project_id,
                        "before": before,
                        "limit": limit,
                        "exclude": list(exclude),
                    },
                )
            ).all()
            if not rows:
                return []
            triggers = await conn.execute(
                sa.select(executions.c.run_id, executions.c.outputs, executions.c.outputs_list)
                .where(executions.c.run_id.in_([r.id for r in rows]))
                .where(executions.c.is_trigger)
            )
            files: dict[str, set[str]] = {}
            for t in triggers:
                files.setdefault(t.run_id, set()).update(
                    owned_trigger_files([t.outputs, t.outputs_list])
                )
        return [
            ExpiredRun(
                id=r.id,
                project_id=r.project_id,
                ended_at=r.ended_at,
                other_files=frozenset(files.get(r.id, ())),
            )
            for r in rows
        ]

    async def delete_log_lines(self, run_ids: Sequence[str], limit: int) -> int:
        async with self._engine.begin() as conn:
            await _short(conn)
            result = await conn.execute(_DELETE_LOGS, {"ids": list(run_ids), "limit": limit})
            return int(result.rowcount)

    async def delete_runs(self, run_ids: Sequence[str], before: datetime) -> DeletedRows:
        async with self._engine.begin() as conn:
            await _short(conn)
            row = (await conn.execute(_DELETE_RUNS, {"ids": list(run_ids), "before": before})).one()
        return DeletedRows(runs=row.runs, executions=row.executions, log_lines=row.log_lines)
