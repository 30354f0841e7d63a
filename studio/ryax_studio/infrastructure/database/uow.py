"""Unit of work over one SQLAlchemy session: enter opens, commit saves, exit rolls back."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ...domain.errors import Conflict
from ..messaging.mappers import event_to_message
from ..messaging.outbox import add_to_outbox, claim_message
from .repositories import (
    SqlAlchemyActionRepository,
    SqlAlchemyDeploymentRepository,
    SqlAlchemySecretRepository,
    SqlAlchemySnapshotRepository,
    SqlAlchemyWorkflowRepository,
)
from .tables import outbox, processed_messages


class SqlAlchemyUnitOfWork:
    actions: SqlAlchemyActionRepository
    workflows: SqlAlchemyWorkflowRepository
    secrets: SqlAlchemySecretRepository
    snapshots: SqlAlchemySnapshotRepository
    deployments: SqlAlchemyDeploymentRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._session: AsyncSession | None = None
        self._on_commit = on_commit

    async def __aenter__(self) -> SqlAlchemyUnitOfWork:
        self._session = self._session_factory()
        self.actions = SqlAlchemyActionRepository(self._session)
        self.workflows = SqlAlchemyWorkflowRepository(self._session)
        self.secrets = SqlAlchemySecretRepository(self._session)
        self.snapshots = SqlAlchemySnapshotRepository(self._session)
        self.deployments = SqlAlchemyDeploymentRepository(self._session)
        return self

    async def __aexit__(self, *args: object) -> None:
        assert self._session is not None
        try:
            await self._session.rollback()
        finally:
            await self._session.close()
            self._session = None

    async def claim_message(self, message_id: str) -> bool:
        assert self._session is not None
        return await claim_message(self._session, processed_messages, message_id)

    async def commit(self) -> None:
        """Save the tracked aggregates and their events (outbox) in one transaction."""
        assert self._session is not None
        sent = False
        try:
            await self.workflows.save()
            await self.deployments.save()
            for deployment in self.deployments.seen.values():
                for event in deployment.events:
                    await add_to_outbox(self._session, outbox, event_to_message(event))
                    sent = True
            await self._session.commit()
        except IntegrityError as exc:
            await self._session.rollback()
            raise Conflict(_conflict_detail(exc)) from exc
        for deployment in self.deployments.seen.values():
            deployment.events.clear()
        if sent and self._on_commit is not None:
            self._on_commit()


def _conflict_detail(exc: IntegrityError) -> str:
    text = str(exc.orig)
    if "uq_workflows_project_name" in text:
        return "a workflow with this name already exists in this project"
    if "uq_deployments_one_active_per_workflow" in text:
        return "the workflow is already deployed: undeploy it first"
    return "a concurrent change conflicts with this one, try again"
