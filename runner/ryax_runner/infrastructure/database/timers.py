"""The timers' schedules in the runner's database (`timers`, migration 0007)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ...domain.timers import TimerKind, TimerState
from .tables import runs, timers


class SqlTimerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self) -> list[TimerState]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(timers))).all()
        return [
            TimerState(
                deployment_id=r.deployment_id,
                project_id=r.project_id,
                kind=TimerKind(r.kind),
                anchor_at=r.anchor_at,
                next_fire_at=r.next_fire_at,
                last_fired_at=r.last_fired_at,
                last_run_id=r.last_run_id,
                fires=r.fires,
            )
            for r in rows
        ]

    async def save(self, timer: TimerState) -> None:
        row = {
            "deployment_id": timer.deployment_id,
            "project_id": timer.project_id,
            "kind": str(timer.kind),
            "anchor_at": timer.anchor_at,
            "next_fire_at": timer.next_fire_at,
            "last_fired_at": timer.last_fired_at,
            "last_run_id": timer.last_run_id,
            "fires": timer.fires,
            "updated_at": datetime.now(UTC),
        }
        statement = pg_insert(timers).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[timers.c.deployment_id],
            set_={k: statement.excluded[k] for k in row if k != "deployment_id"},
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def delete(self, deployment_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(timers).where(timers.c.deployment_id == deployment_id))

    async def run_recorded(self, run_id: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.execute(sa.select(runs.c.id).where(runs.c.id == run_id))
            return found.first() is not None
