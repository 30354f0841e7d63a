"""Unit of work over one SQLAlchemy session: enter opens, commit saves, exit rolls back."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.database import SqlAlchemyUnitOfWorkBase
from ryax_kit.messaging import OutgoingMessage

from ...domain.errors import Conflict
from ..messaging.mappers import event_to_message
from ..security import AesGcmSecretCipher
from .repositories import (
    SqlAlchemyActionRepository,
    SqlAlchemyDeploymentRepository,
    SqlAlchemySecretRepository,
    SqlAlchemySnapshotRepository,
    SqlAlchemyWorkflowRepository,
)
from .tables import outbox, processed_messages


class SqlAlchemyUnitOfWork(SqlAlchemyUnitOfWorkBase):
    """Deployment events go to the outbox in the same transaction as the change."""

    outbox_table = outbox
    processed_table = processed_messages

    actions: SqlAlchemyActionRepository
    workflows: SqlAlchemyWorkflowRepository
    secrets: SqlAlchemySecretRepository
    snapshots: SqlAlchemySnapshotRepository
    deployments: SqlAlchemyDeploymentRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        cipher: AesGcmSecretCipher,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(session_factory, after_commit)
        #: Seals sensitive values in documents and the values of deployments.
        self._cipher = cipher

    def open_repositories(self, session: AsyncSession) -> None:
        self.actions = SqlAlchemyActionRepository(session)
        self.workflows = SqlAlchemyWorkflowRepository(session, self._cipher)
        self.secrets = SqlAlchemySecretRepository(session)
        self.snapshots = SqlAlchemySnapshotRepository(session, self._cipher)
        self.deployments = SqlAlchemyDeploymentRepository(session, self._cipher)

    async def save(self) -> Sequence[OutgoingMessage]:
        await self.workflows.save()
        await self.deployments.save()
        return [
            event_to_message(event)
            for deployment in self.deployments.seen.values()
            for event in deployment.events
        ]

    def committed(self, messages: Sequence[OutgoingMessage]) -> None:
        for deployment in self.deployments.seen.values():
            deployment.events.clear()
        super().committed(messages)

    def conflict(self, exc: IntegrityError) -> Exception:
        text = str(exc.orig)
        if "uq_workflows_project_name" in text:
            return Conflict("a workflow with this name already exists in this project")
        if "uq_deployments_one_active_per_workflow" in text:
            return Conflict("the workflow is already deployed: undeploy it first")
        return Conflict("a concurrent change conflicts with this one, try again")
