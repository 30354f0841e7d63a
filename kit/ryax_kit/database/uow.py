"""The unit-of-work base: one SQLAlchemy session per request or message.

    class SqlAlchemyUnitOfWork(SqlAlchemyUnitOfWorkBase):
        outbox_table = tables.outbox
        processed_table = tables.processed_messages

        def open_repositories(self, session: AsyncSession) -> None:
            self.workflows = SqlAlchemyWorkflowRepository(session)

        async def save(self) -> list[OutgoingMessage]:
            await self.workflows.save()
            return [event_to_message(e) for e in self.workflows.collect_events()]

Entering opens a session; leaving rolls back whatever was not committed; `commit()` saves, adds
the returned messages to the outbox in the same transaction, commits, and wakes the relay.

Hooks a subclass may override: `open_repositories`, `save`, `conflict` (the domain error for a
constraint violated at commit) and `committed` (after a successful commit: e.g. clear the
aggregates' recorded events; call `super().committed(messages)` to keep waking the relay).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import ClassVar, Self

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..messaging.broker import OutgoingMessage
from ..messaging.outbox import add_to_outbox, claim_message


class SqlAlchemyUnitOfWorkBase:
    #: The service's outbox and processed-messages tables (None: the service has none).
    outbox_table: ClassVar[sa.Table | None] = None
    processed_table: ClassVar[sa.Table | None] = None

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._after_commit = after_commit
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not open (use `async with`)")
        return self._session

    def open_repositories(self, session: AsyncSession) -> None:
        """Create the repositories over `session`."""

    async def save(self) -> Sequence[OutgoingMessage]:
        """Flush the tracked aggregates; return the events to publish."""
        return ()

    def conflict(self, exc: IntegrityError) -> Exception:
        """The domain error for a constraint violated at commit (a concurrent change)."""
        return exc

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self.open_repositories(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            await session.rollback()
        finally:
            await session.close()

    async def claim_message(self, message_id: str) -> bool:
        """Remember a consumed message in this transaction; False when it was handled before."""
        if self.processed_table is None:
            raise RuntimeError(f"{type(self).__name__} has no processed_table")
        return await claim_message(self.session, self.processed_table, message_id)

    async def commit(self) -> None:
        session = self.session
        try:
            messages = list(await self.save())
            if messages:
                if self.outbox_table is None:
                    raise RuntimeError(f"{type(self).__name__} has events but no outbox_table")
                for message in messages:
                    await add_to_outbox(session, self.outbox_table, message)
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            error = self.conflict(exc)
            if error is exc:
                raise
            raise error from exc
        self.committed(messages)

    def committed(self, messages: Sequence[OutgoingMessage]) -> None:
        """After a successful commit: wake the relay when events were written."""
        if messages and self._after_commit is not None:
            self._after_commit()
