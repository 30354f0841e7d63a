"""Transactional outbox: events are written in the same transaction as the state change,
then a background relay publishes them with confirms and marks them sent.

A crash between commit and publish loses nothing: the row stays unsent and the relay
publishes it after restart. A crash between publish and marking re-publishes it; consumers
are idempotent on the event id, so that is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .broker import Broker, OutgoingMessage

log = logging.getLogger(__name__)


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("exchange", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )


def processed_messages_table(metadata: sa.MetaData) -> sa.Table:
    """Ids of the messages a consumer already handled: a redelivery is a no-op."""
    return sa.Table(
        "processed_messages",
        metadata,
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )


async def add_to_outbox(session: AsyncSession, table: sa.Table, msg: OutgoingMessage) -> None:
    await session.execute(
        sa.insert(table).values(
            event_id=msg.event_id,
            exchange=msg.exchange,
            routing_key=msg.routing_key,
            type=msg.type,
            body=msg.body,
            headers=msg.headers,
            created_at=datetime.now(UTC),
        )
    )


async def claim_message(session: AsyncSession, table: sa.Table, message_id: str) -> bool:
    """Record a message id in the handler's transaction; False when it was handled before."""
    from sqlalchemy.dialects.postgresql import insert

    result = await session.execute(
        insert(table)
        .values(message_id=message_id, handled_at=datetime.now(UTC))
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )
    return result.first() is not None


class OutboxRelay:
    """Publishes unsent outbox rows in order. Woken after each commit; also polls."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        table: sa.Table,
        broker: Broker,
        poll_seconds: float = 1.0,
        batch: int = 100,
    ) -> None:
        self._sessions = session_factory
        self._table = table
        self._broker = broker
        self._poll = poll_seconds
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Publish what is pending, then stop (what cannot be published stays in the table)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_once() == self._batch:
                    pass
            except Exception:
                log.exception("outbox relay failed, will retry")
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            self._wake.clear()

    async def relay_once(self) -> int:
        """Publish up to one batch; rows are locked so several relays never double-send."""
        t = self._table
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    sa.select(t)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await self._broker.publish(
                    OutgoingMessage(
                        event_id=row.event_id,
                        exchange=row.exchange,
                        routing_key=row.routing_key,
                        type=row.type,
                        body=row.body,
                        headers=dict(row.headers or {}),
                    )
                )
                await session.execute(
                    sa.update(t).where(t.c.id == row.id).values(published_at=datetime.now(UTC))
                )
            return len(rows)

    async def purge_published(self, older_than: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                sa.delete(self._table).where(self._table.c.published_at < older_than)
            )
