"""The messaging guarantees, against the real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from ryax_runner.infrastructure.messaging.broker import Broker, OutgoingMessage
from ryax_runner.infrastructure.messaging.consumer import Consumer, Subscription
from ryax_runner.infrastructure.messaging.outbox import (
    OutboxRelay,
    add_to_outbox,
    claim_message,
    outbox_table,
    processed_messages_table,
)

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
outbox = outbox_table(metadata)
processed = processed_messages_table(metadata)
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)
EXCHANGE = "test-producer"


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    b = Broker(amqp_url, "test")
    await b.connect()
    yield b
    await b.close()


def message(kind: str = "Thing.Happened", event_id: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        event_id=event_id or str(uuid.uuid4()),
        exchange=EXCHANGE,
        routing_key=kind,
        type=kind,
        body=b"payload",
    )


async def emit(sessions: async_sessionmaker[AsyncSession], msg: OutgoingMessage) -> None:
    """A state change and its event in one transaction."""
    async with sessions() as session, session.begin():
        await session.execute(sa.insert(counters).values(name=msg.event_id, value=0))
        await add_to_outbox(session, outbox, msg)


def counting_handler(sessions: async_sessionmaker[AsyncSession], seen: list[str]) -> object:
    async def handle(message_id: str, type_: str, body: bytes) -> None:
        async with sessions() as session, session.begin():
            if not await claim_message(session, processed, message_id):
                return
            await session.execute(sa.insert(counters).values(name=f"handled-{message_id}", value=1))
        seen.append(message_id)

    return handle


async def wait_for(predicate: object, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_event_published_while_consumer_down_is_handled_when_it_comes_back(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    seen: list[str] = []
    consumer = Consumer(
        broker,
        "test-consumer.q1",
        [Subscription(exchange=EXCHANGE, routing_keys=("Thing.#",))],
        counting_handler(sessions, seen),
    )
    await consumer.declare()  # the consumer existed once, then went down
    await consumer.stop()

    msg = message()
    await emit(sessions, msg)
    relay = OutboxRelay(sessions, outbox, broker)
    assert await relay.relay_once() == 1

    back = Consumer(
        broker,
        "test-consumer.q1",
        [Subscription(exchange=EXCHANGE, routing_keys=("Thing.#",))],
        counting_handler(sessions, seen),
    )
    await back.start()
    await wait_for(lambda: seen == [msg.event_id])
    await back.stop()


async def test_failing_handler_dead_letters_with_reason(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    async def broken(message_id: str, type_: str, body: bytes) -> None:
        raise ValueError("cannot handle this one")

    consumer = Consumer(
        broker,
        "test-consumer.q2",
        [Subscription(exchange=EXCHANGE, routing_keys=("Broken.*",))],
        broken,
    )
    await consumer.start()
    msg = message("Broken.Thing")
    await broker.publish(msg)

    channel = await broker.connection.channel()
    dlq = await channel.declare_queue(consumer.dead_letter_queue, durable=True)
    dead: aio_pika.abc.AbstractIncomingMessage | None = None
    for _ in range(100):
        dead = await dlq.get(fail=False)
        if dead is not None:
            break
        await asyncio.sleep(0.05)
    assert dead is not None
    assert dead.message_id == msg.event_id
    assert dead.headers["x-ryax-error"] == "ValueError: cannot handle this one"
    assert dead.headers["x-ryax-original-routing-key"] == "Broken.Thing"
    await dead.ack()
    main = await channel.declare_queue(consumer.queue_name, durable=True, passive=True)
    assert main.declaration_result.message_count == 0
    await consumer.stop()
    await channel.close()


async def test_duplicate_delivery_is_a_no_op(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    seen: list[str] = []
    consumer = Consumer(
        broker,
        "test-consumer.q3",
        [Subscription(exchange=EXCHANGE, routing_keys=("Dup.*",))],
        counting_handler(sessions, seen),
    )
    await consumer.start()
    msg = message("Dup.Thing")
    await broker.publish(msg)
    await broker.publish(msg)  # the same event delivered twice
    other = message("Dup.Thing")
    await broker.publish(other)
    await wait_for(lambda: other.event_id in seen)
    await asyncio.sleep(0.3)
    # Handlers run concurrently (prefetch > 1): each event exactly once, in any order.
    assert sorted(seen) == sorted([msg.event_id, other.event_id])
    async with sessions() as session:
        count = (
            await session.execute(
                sa.select(sa.func.count())
                .select_from(counters)
                .where(counters.c.name == f"handled-{msg.event_id}")
            )
        ).scalar_one()
    assert count == 1
    await consumer.stop()


async def test_crash_between_commit_and_publish_loses_nothing(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    seen: list[str] = []
    consumer = Consumer(
        broker,
        "test-consumer.q4",
        [Subscription(exchange=EXCHANGE, routing_keys=("Crash.*",))],
        counting_handler(sessions, seen),
    )
    await consumer.start()
    msg = message("Crash.Thing")
    await emit(sessions, msg)  # committed; the process "dies" before any relay runs

    relay = OutboxRelay(sessions, outbox, broker, poll_seconds=0.1)  # after restart
    relay.start()
    await wait_for(lambda: seen == [msg.event_id])
    await relay.stop()
    async with sessions() as session:
        published = (
            await session.execute(
                sa.select(outbox.c.published_at).where(outbox.c.event_id == msg.event_id)
            )
        ).scalar_one()
    assert published is not None
    await consumer.stop()
