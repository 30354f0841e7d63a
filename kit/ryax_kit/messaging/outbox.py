"""Transactional outbox: events are written in the same transaction as the state change that
produced them; a relay publishes them (confirmed, mandatory) and marks them sent.

Nothing is lost: a crash between commit and publish leaves the row unsent and the relay
publishes it after restart; a crash between publish and marking re-publishes it, and consumers
are idempotent on the event id. Nothing wedges: a row that cannot be published (no queue bound
for it yet, refused by the broker) is set aside with its reason and tried again with a growing
delay (at most `max_delay_seconds`), while the rows after it go on; `ryax_outbox_parked` counts
such rows and each carries `attempts`, `last_error` and `next_attempt_at`. Only a broker that
cannot be reached at all stops the batch (every row would fail the same way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from .broker import Broker, OutgoingMessage, PublishFailed, Unroutable

log = logging.getLogger(__name__)


def outbox_table(metadata: sa.MetaData, name: str = "outbox") -> sa.Table:
    return sa.Table(
        name,
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
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    )


def processed_messages_table(metadata: sa.MetaData) -> sa.Table:
    """Ids of the messages a consumer already handled: a redelivery is a no-op."""
    return sa.Table(
        "processed_messages",
        metadata,
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=False),
    )


def upgrade_outbox_retries(op: object, table: str = "outbox") -> None:
    """Alembic step adding the retry columns (attempts, last_error, next_attempt_at) to an
    outbox created before the kit's relay set poison rows aside. `op` is alembic's `op`."""
    add_column: Callable[..., None] = op.add_column  # type: ignore[attr-defined]
    add_column(
        table, sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0"))
    )
    add_column(table, sa.Column("last_error", sa.Text, nullable=True))
    add_column(table, sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade_outbox_retries(op: object, table: str = "outbox") -> None:
    drop_column: Callable[..., None] = op.drop_column  # type: ignore[attr-defined]
    for column in ("next_attempt_at", "last_error", "attempts"):
        drop_column(table, column)


async def add_to_outbox(
    session: AsyncSession | AsyncConnection, table: sa.Table, msg: OutgoingMessage
) -> None:
    """Insert the message in the caller's transaction (a session, or a plain connection)."""
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


async def claim_message(
    session: AsyncSession | AsyncConnection, table: sa.Table, message_id: str
) -> bool:
    """Record a message id in the handler's transaction (a session, or a plain connection);
    False when it was handled before."""
    result = await session.execute(
        insert(table)
        .values(message_id=message_id, handled_at=datetime.now(UTC))
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )
    return result.first() is not None


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.published = Counter(
            "ryax_outbox_published_total", "Events published from the outbox", registry=registry
        )
        self.failures = Counter(
            "ryax_outbox_publish_failures_total",
            "Attempts to publish an outbox row that failed, by reason",
            ["reason"],
            registry=registry,
        )
        self.pending = Gauge(
            "ryax_outbox_pending", "Outbox rows not published yet", registry=registry
        )
        self.parked = Gauge(
            "ryax_outbox_parked",
            "Outbox rows set aside after a failed publish (retried with a growing delay)",
            registry=registry,
        )


class OutboxRelay:
    """Publishes unsent outbox rows in order. Woken after each commit; also polls."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        table: sa.Table,
        broker: Broker | None,
        *,
        poll_seconds: float = 1.0,
        batch: int = 100,
        first_delay_seconds: float = 1.0,
        max_delay_seconds: float = 300.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._sessions = session_factory
        self._table = table
        self._broker = broker
        self._poll = poll_seconds
        self._batch = batch
        self._first_delay = first_delay_seconds
        self._max_delay = max_delay_seconds
        self._metrics = OutboxMetrics(registry) if registry is not None else None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._counted_at = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Publish what is pending, then stop (what cannot be published stays in the table)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=grace_seconds)
            except TimeoutError:
                log.warning("outbox relay stopped before publishing everything")
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_once() == self._batch:
                    pass
                await self._count_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the relay never dies; rows stay unsent
                log.warning(
                    "outbox relay failed, will retry",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            self._wake.clear()

    def delay(self, attempts: int) -> float:
        return float(min(self._max_delay, self._first_delay * 2 ** max(0, attempts - 1)))

    async def relay_once(self) -> int:
        """Publish up to one batch of due rows; returns how many rows it took. Rows are locked
        (skip locked) so several relays never send the same row at once."""
        if self._broker is None or not self._broker.is_connected:
            return 0
        t = self._table
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            rows = (
                await session.execute(
                    sa.select(t.c.id, t.c.event_id, t.c.exchange, t.c.routing_key, t.c.type)
                    .add_columns(t.c.body, t.c.headers, t.c.attempts)
                    .where(t.c.published_at.is_(None))
                    .where(sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now))
                    .order_by(t.c.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                message = OutgoingMessage(
                    event_id=row.event_id,
                    exchange=row.exchange,
                    routing_key=row.routing_key,
                    type=row.type,
                    body=row.body,
                    headers=dict(row.headers or {}),
                )
                try:
                    await self._broker.publish(message)
                except (Unroutable, PublishFailed) as exc:
                    await self._set_aside(session, row.id, row.attempts + 1, exc, message)
                    continue
                await session.execute(
                    sa.update(t)
                    .where(t.c.id == row.id)
                    .values(published_at=datetime.now(UTC), last_error=None)
                )
                if self._metrics is not None:
                    self._metrics.published.inc()
            return len(rows)

    async def _set_aside(
        self,
        session: AsyncSession,
        row_id: int,
        attempts: int,
        exc: Exception,
        message: OutgoingMessage,
    ) -> None:
        delay = self.delay(attempts)
        reason = str(exc)
        log.warning(
            "outbox event set aside, will retry",
            extra={
                "event_id": message.event_id,
                "type": message.type,
                "attempts": attempts,
                "retry_in": delay,
                "reason": reason,
            },
        )
        if self._metrics is not None:
            self._metrics.failures.labels(type(exc).__name__).inc()
        await session.execute(
            sa.update(self._table)
            .where(self._table.c.id == row_id)
            .values(
                attempts=attempts,
                last_error=reason[:2000],
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
            )
        )

    async def _count_pending(self, every_seconds: float = 10.0) -> None:
        if self._metrics is None:
            return
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._counted_at < every_seconds:
            return
        self._counted_at = loop_time
        pending, parked = await self.counts()
        self._metrics.pending.set(pending)
        self._metrics.parked.set(parked)

    async def counts(self) -> tuple[int, int]:
        """(rows not published, of which set aside after a failure)."""
        t = self._table
        async with self._sessions() as session:
            row = (
                await session.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.count().filter(t.c.attempts > 0),
                    ).where(t.c.published_at.is_(None))
                )
            ).one()
        return int(row[0]), int(row[1])

    async def retry_now(self) -> int:
        """Make every set-aside row due at once (an operator's retry); returns how many."""
        t = self._table
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                sa.update(t)
                .where(t.c.published_at.is_(None), t.c.next_attempt_at.is_not(None))
                .values(next_attempt_at=None)
            )
        self.wake()
        return int(getattr(result, "rowcount", 0) or 0)

    async def purge_published(self, older_than: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                sa.delete(self._table).where(self._table.c.published_at < older_than)
            )
