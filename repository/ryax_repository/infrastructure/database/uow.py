"""Unit of work over one SQLAlchemy session (the kit's base): enter opens, commit saves
(aggregates, then the events they recorded, into the outbox, in the same transaction), exit
rolls back."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ryax_kit.database import SqlAlchemyUnitOfWorkBase
from ryax_kit.messaging import OutgoingMessage

from ...domain.errors import Conflict
from ..messaging.mappers import event_to_message
from .repositories import (
    SqlAlchemyActionSourceRepository,
    SqlAlchemyBuildRepository,
    SqlAlchemyGitRepositoryRepository,
    SqlAlchemyScanRepository,
)
from .tables import outbox, processed_messages


class SqlAlchemyUnitOfWork(SqlAlchemyUnitOfWorkBase):
    outbox_table = outbox
    processed_table = processed_messages

    repositories: SqlAlchemyGitRepositoryRepository
    sources: SqlAlchemyActionSourceRepository
    builds: SqlAlchemyBuildRepository
    scans: SqlAlchemyScanRepository

    def open_repositories(self, session: AsyncSession) -> None:
        self.repositories = SqlAlchemyGitRepositoryRepository(session)
        self.sources = SqlAlchemyActionSourceRepository(session)
        self.builds = SqlAlchemyBuildRepository(session)
        self.scans = SqlAlchemyScanRepository(session)

    async def save(self) -> Sequence[OutgoingMessage]:
        await self.repositories.save()
        await self.sources.save()
        await self.builds.save()
        messages: list[OutgoingMessage] = []
        for source in self.sources.seen.values():
            messages.extend(event_to_message(event) for event in source.events)
            source.events.clear()
        return messages

    def conflict(self, exc: IntegrityError) -> Exception:
        # Two requests recorded the same thing at once (e.g. two replicas scanning the same
        # version): the loser is told to retry rather than getting a 500.
        return Conflict("a concurrent change conflicted with this one; retry")
