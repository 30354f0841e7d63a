"""Unit of work over one SQLAlchemy session: enter opens, commit saves (aggregates, then the
events they recorded, into the outbox, in the same transaction), exit rolls back."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ...domain.errors import Conflict
from ...domain.events import Event
from ..messaging.mappers import event_to_message
from ..messaging.outbox import add_to_outbox, claim_message
from .repositories import (
    SqlAlchemyActionSourceRepository,
    SqlAlchemyBuildRepository,
    SqlAlchemyGitRepositoryRepository,
    SqlAlchemyScanRepository,
)
from .tables import outbox, processed_messages


class SqlAlchemyUnitOfWork:
    repositories: SqlAlchemyGitRepositoryRepository
    sources: SqlAlchemyActionSourceRepository
    builds: SqlAlchemyBuildRepository
    scans: SqlAlchemyScanRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = after_commit
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> SqlAlchemyUnitOfWork:
        self._session = self._session_factory()
        self.repositories = SqlAlchemyGitRepositoryRepository(self._session)
        self.sources = SqlAlchemyActionSourceRepository(self._session)
        self.builds = SqlAlchemyBuildRepository(self._session)
        self.scans = SqlAlchemyScanRepository(self._session)
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

    def collect_new_events(self) -> list[Event]:
        events: list[Event] = []
        for source in self.sources.seen.values():
            events.extend(source.events)
            source.events.clear()
        return events

    async def commit(self) -> None:
        assert self._session is not None
        try:
            await self.repositories.save()
            await self.sources.save()
            await self.builds.save()
            events = self.collect_new_events()
            for event in events:
                await add_to_outbox(self._session, outbox, event_to_message(event))
            await self._session.commit()
        except IntegrityError as exc:
            # Two requests recorded the same thing at once (e.g. two replicas scanning the same
            # version): the loser is told to retry rather than getting a 500.
            raise Conflict("a concurrent change conflicted with this one; retry") from exc
        if events and self._after_commit is not None:
            self._after_commit()
