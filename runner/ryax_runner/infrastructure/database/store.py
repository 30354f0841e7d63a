"""Reads the engine needs from the record: the state to rebuild at start, idempotency checks."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ...application.ports import LoadedState
from ...domain.deployment import Deployment, DeploymentState
from ...domain.run import Execution, Run
from .serialization import (
    SecretBox,
    deployment_from_row,
    execution_from_row,
    run_from_row,
    site_from_row,
)
from .tables import deployments, executions, processed_messages, runs, sites


class SqlStateStore:
    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box

    async def load(self) -> LoadedState:
        state = LoadedState()
        async with self._engine.connect() as conn:
            state.sites = [site_from_row(r) for r in (await conn.execute(sa.select(sites))).all()]
            rows = (
                await conn.execute(
                    sa.select(deployments).where(
                        deployments.c.state != str(DeploymentState.UNDEPLOYED)
                    )
                )
            ).all()
            state.deployments = [deployment_from_row(r, self._box) for r in rows]
            by_id = {d.id: d for d in state.deployments}
            run_rows = (
                await conn.execute(sa.select(runs).where(runs.c.state.in_(("pending", "running"))))
            ).all()
            if not run_rows:
                return state
            missing = {r.deployment_id for r in run_rows} - set(by_id)
            if missing:
                extra = (
                    await conn.execute(sa.select(deployments).where(deployments.c.id.in_(missing)))
                ).all()
                for r in extra:
                    old = deployment_from_row(r, self._box)
                    by_id[old.id] = old
            exec_rows = (
                await conn.execute(
                    sa.select(executions).where(executions.c.run_id.in_([r.id for r in run_rows]))
                )
            ).all()
            per_run: dict[str, list[Execution]] = {r.id: [] for r in run_rows}
            for er in exec_rows:
                per_run[er.run_id].append(execution_from_row(er, self._box))
            loaded: list[tuple[Run, list[Execution]]] = []
            for r in run_rows:
                owner = by_id.get(r.deployment_id)
                if owner is not None:
                    loaded.append((run_from_row(r, owner.definition, self._box), per_run[r.id]))
            state.runs = loaded
        return state

    async def is_claimed(self, message_id: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(processed_messages.c.message_id).where(
                    processed_messages.c.message_id == message_id
                )
            )
            return found.first() is not None

    async def deployment_exists(self, deployment_id: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                sa.select(deployments.c.id).where(deployments.c.id == deployment_id)
            )
            return found.first() is not None

    async def last_deployment_for(self, project_id: str, endpoint: str) -> Deployment | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deployments)
                    .where(deployments.c.project_id == project_id)
                    .where(
                        sa.or_(
                            deployments.c.workflow_name == endpoint,
                            deployments.c.workflow_id == endpoint,
                            deployments.c.id == endpoint,
                        )
                    )
                    .order_by(deployments.c.created_at.desc())
                    .limit(1)
                )
            ).first()
            return deployment_from_row(row, self._box) if row is not None else None
