"""The messaging guarantees, against the real RabbitMQ and PostgreSQL: what every service gets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ryax_kit.messaging import (
    Broker,
    Consumer,
    OutboxRelay,
    OutgoingMessage,
    PoisonMessage,
    RetryPolicy,
    Subscription,
    Unroutable,
    add_to_outbox,
    claim_message,
    outbox_table,
    processed_messages_table,
)
from ryax_kit.messaging.consumer import TransientError
from ryax_kit.messaging.dead_letters import list_dead_letters, replay_dead_letters

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
FAST = RetryPolicy(max_attempts=3, first_delay_seconds=0.01, max_delay_seconds=0.05)
Handler = Callable[[str, str, bytes], Awaitable[None]]


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


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


def consumer(broker: Broker, queue: str, keys: str, handler: Handler, **kw: Any) -> Consumer:
    return Consumer(
        broker, queue, [Subscription(exchange=EXCHANGE, routing_keys=(keys,))], handler, **kw
    )


async def emit(sessions: async_sessionmaker[AsyncSession], msg: OutgoingMessage) -> None:
    """A state change and its event in one transaction."""
    async with sessions() as session, session.begin():
        await session.execute(sa.insert(counters).values(name=msg.event_id, value=0))
        await add_to_outbox(session, outbox, msg)


def counting_handler(sessions: async_sessionmaker[AsyncSession], seen: list[str]) -> Handler:
    async def handle(message_id: str, type_: str, body: bytes) -> None:
        async with sessions() as session, session.begin():
            if not await claim_message(session, processed, message_id):
                return
            await session.execute(sa.insert(counters).values(name=f"handled-{message_id}", value=1))
        seen.append(message_id)

    return handle


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def dead_letter(broker: Broker, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    channel = await broker.connection.channel()
    dlq = await channel.declare_queue(f"{queue}.dead-letter", durable=True, passive=True)
    for _ in range(250):
        dead = await dlq.get(fail=False)
        if dead is not None:
            await dead.nack(requeue=True)
            await channel.close()
            return dead
        await asyncio.sleep(0.02)
    await channel.close()
    raise AssertionError(f"nothing dead-lettered from {queue}")


async def queue_depth(broker: Broker, queue: str) -> int:
    channel = await broker.connection.channel()
    q = await channel.declare_queue(queue, durable=True, passive=True)
    await channel.close()
    return int(q.declaration_result.message_count or 0)


async def test_event_published_while_consumer_down_is_handled_when_it_comes_back(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    seen: list[str] = []
    first = consumer(broker, "kit.q1", "Thing.#", counting_handler(sessions, seen))
    await first.declare()  # the consumer existed once, then went down
    await first.stop()

    msg = message()
    await emit(sessions, msg)
    assert await OutboxRelay(sessions, outbox, broker).relay_once() == 1

    back = consumer(broker, "kit.q1", "Thing.#", counting_handler(sessions, seen))
    await back.start()
    await wait_for(lambda: seen == [msg.event_id])
    await back.stop()


async def test_duplicate_delivery_is_a_no_op(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    seen: list[str] = []
    c = consumer(broker, "kit.q2", "Dup.*", counting_handler(sessions, seen))
    await c.start()
    msg, other = message("Dup.Thing"), message("Dup.Thing")
    await broker.publish(msg)
    await broker.publish(msg)  # the same event delivered twice
    await broker.publish(other)
    await wait_for(lambda: other.event_id in seen and msg.event_id in seen)
    await asyncio.sleep(0.2)
    assert sorted(seen) == sorted([msg.event_id, other.event_id])
    await c.stop()


async def test_transient_failures_are_retried_until_they_pass_never_dead_lettered(
    broker: Broker,
) -> None:
    attempts: list[int] = []

    async def flaky(message_id: str, type_: str, body: bytes) -> None:
        attempts.append(1)
        if len(attempts) <= 6:  # more than max_attempts: transient errors are not counted
            raise ConnectionRefusedError("the database is restarting")

    registry = CollectorRegistry()
    c = consumer(broker, "kit.q3", "Flaky.*", flaky, policy=FAST, registry=registry)
    await c.start()
    await broker.publish(message("Flaky.Thing"))
    await wait_for(lambda: len(attempts) == 7)
    await wait_for(lambda: not c.busy)
    await c.stop()
    assert await queue_depth(broker, "kit.q3.dead-letter") == 0
    assert await queue_depth(broker, "kit.q3") == 0
    retried = registry.get_sample_value(
        "ryax_messages_consumed_total", {"queue": "kit.q3", "outcome": "retried"}
    )
    assert retried == 6


async def test_a_wrapped_transient_error_counts_as_transient(broker: Broker) -> None:
    calls: list[int] = []

    class Wrapped(Exception):
        pass

    async def handler(message_id: str, type_: str, body: bytes) -> None:
        calls.append(1)
        if len(calls) <= 4:
            try:
                raise TransientError("lock timeout")
            except TransientError as inner:
                raise Wrapped("statement failed") from inner

    c = consumer(broker, "kit.q4", "Wrapped.*", handler, policy=FAST)
    await c.start()
    await broker.publish(message("Wrapped.Thing"))
    await wait_for(lambda: len(calls) == 5)
    await c.stop()
    assert await queue_depth(broker, "kit.q4.dead-letter") == 0


async def test_a_failing_handler_is_retried_then_dead_lettered_with_the_reason(
    broker: Broker,
) -> None:
    calls: list[int] = []

    async def broken(message_id: str, type_: str, body: bytes) -> None:
        calls.append(1)
        raise ValueError("cannot handle this one")

    c = consumer(broker, "kit.q5", "Broken.*", broken, policy=FAST)
    await c.start()
    msg = message("Broken.Thing")
    await broker.publish(msg)
    dead = await dead_letter(broker, "kit.q5")
    assert len(calls) == FAST.max_attempts
    assert dead.message_id == msg.event_id
    assert dead.headers["x-ryax-error"] == "ValueError: cannot handle this one"
    assert dead.headers["x-ryax-attempts"] == FAST.max_attempts
    assert dead.headers["x-ryax-original-routing-key"] == "Broken.Thing"
    assert "ValueError" in str(dead.headers["x-ryax-traceback"])
    await wait_for(lambda: not c.busy)
    assert await queue_depth(broker, "kit.q5") == 0
    await c.stop()


async def test_poison_goes_to_the_dead_letter_queue_at_once_and_others_go_on(
    broker: Broker,
) -> None:
    handled: list[bytes] = []

    async def handler(message_id: str, type_: str, body: bytes) -> None:
        if body == b"poison":
            raise PoisonMessage("unexpected message type")
        handled.append(body)

    c = consumer(broker, "kit.q6", "Mixed.*", handler, policy=FAST)
    await c.start()
    await broker.publish(
        OutgoingMessage(
            event_id="p1", exchange=EXCHANGE, routing_key="Mixed.A", type="Mixed.A", body=b"poison"
        )
    )
    for i in range(5):
        await broker.publish(
            OutgoingMessage(
                event_id=f"ok{i}",
                exchange=EXCHANGE,
                routing_key="Mixed.A",
                type="Mixed.A",
                body=f"ok{i}".encode(),
            )
        )
    await wait_for(lambda: len(handled) == 5)
    dead = await dead_letter(broker, "kit.q6")
    assert dead.message_id == "p1"
    assert dead.headers["x-ryax-attempts"] == 1
    letters = await list_dead_letters(broker, "kit.q6")
    assert [(d.message_id, d.reason) for d in letters] == [
        ("p1", "PoisonMessage: unexpected message type")
    ]
    await c.stop()


async def test_an_undecodable_protobuf_body_is_poison(broker: Broker) -> None:
    from google.protobuf import descriptor_pb2

    async def handler(message_id: str, type_: str, body: bytes) -> None:
        descriptor_pb2.FileDescriptorProto.FromString(body)

    c = consumer(broker, "kit.q7", "Garbled.*", handler, policy=FAST)
    await c.start()
    await broker.publish(
        OutgoingMessage(
            event_id="g1",
            exchange=EXCHANGE,
            routing_key="Garbled.A",
            type="Garbled.A",
            body=b"\xff\xff\xff",
        )
    )
    dead = await dead_letter(broker, "kit.q7")
    assert dead.headers["x-ryax-attempts"] == 1
    assert "DecodeError" in str(dead.headers["x-ryax-error"])
    await c.stop()


async def test_dead_letters_are_replayed_once_the_cause_is_fixed(broker: Broker) -> None:
    fixed = False
    handled: list[str] = []

    async def handler(message_id: str, type_: str, body: bytes) -> None:
        if not fixed:
            raise PoisonMessage("schema not supported yet")
        handled.append(message_id)

    c = consumer(broker, "kit.q8", "Later.*", handler, policy=FAST)
    await c.start()
    msg = message("Later.Thing")
    await broker.publish(msg)
    await dead_letter(broker, "kit.q8")
    fixed = True
    assert await replay_dead_letters(broker, "kit.q8") == 1
    await wait_for(lambda: handled == [msg.event_id])
    assert await queue_depth(broker, "kit.q8.dead-letter") == 0
    await c.stop()


async def test_stop_is_bounded_and_the_message_in_hand_comes_back(broker: Broker) -> None:
    started = asyncio.Event()
    handled: list[str] = []

    async def slow(message_id: str, type_: str, body: bytes) -> None:
        started.set()
        await asyncio.sleep(3600)

    c = consumer(broker, "kit.q9", "Slow.*", slow)
    await c.start()
    msg = message("Slow.Thing")
    await broker.publish(msg)
    await asyncio.wait_for(started.wait(), 10)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await c.stop(grace_seconds=0.2)
    assert loop.time() - begun < 5

    async def fast(message_id: str, type_: str, body: bytes) -> None:
        handled.append(message_id)

    again = consumer(broker, "kit.q9", "Slow.*", fast)
    await again.start()
    await wait_for(lambda: handled == [msg.event_id])
    await again.stop()


async def test_stop_while_waiting_to_retry_gives_the_message_back_at_once(
    broker: Broker,
) -> None:
    failing = asyncio.Event()

    async def down(message_id: str, type_: str, body: bytes) -> None:
        failing.set()
        raise ConnectionResetError("broker of a peer gone")

    slow_policy = RetryPolicy(first_delay_seconds=60, max_delay_seconds=60)
    c = consumer(broker, "kit.q10", "Down.*", down, policy=slow_policy)
    await c.start()
    await broker.publish(message("Down.Thing"))
    await asyncio.wait_for(failing.wait(), 10)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    await c.stop(grace_seconds=30)
    assert loop.time() - begun < 5
    assert await queue_depth(broker, "kit.q10") == 1
    assert await queue_depth(broker, "kit.q10.dead-letter") == 0


async def test_an_event_nobody_listens_to_yet_is_not_dropped(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    with pytest.raises(Unroutable):
        await broker.publish(message("Nobody.Yet"))

    registry = CollectorRegistry()
    relay = OutboxRelay(sessions, outbox, broker, first_delay_seconds=60, registry=registry)
    early, routed = message("Nobody.Yet"), message("Somebody.Here")
    seen: list[str] = []
    here = consumer(broker, "kit.q11", "Somebody.*", counting_handler(sessions, seen))
    await here.start()
    await emit(sessions, early)
    await emit(sessions, routed)
    assert await relay.relay_once() == 2
    # The unroutable event is set aside with its reason; the next one went on.
    await wait_for(lambda: seen == [routed.event_id])
    async with sessions() as session:
        row = (
            await session.execute(sa.select(outbox).where(outbox.c.event_id == early.event_id))
        ).one()
    assert row.published_at is None
    assert row.attempts == 1
    assert "no queue is bound" in row.last_error
    assert row.next_attempt_at is not None
    assert await relay.counts() == (1, 1)
    assert await relay.relay_once() == 0  # not due yet

    late: list[str] = []
    later = consumer(broker, "kit.q12", "Nobody.*", counting_handler(sessions, late))
    await later.start()  # its consumer finally declares its queue
    assert await relay.retry_now() == 1
    assert await relay.relay_once() == 1
    await wait_for(lambda: late == [early.event_id])
    assert await relay.counts() == (0, 0)
    published = registry.get_sample_value("ryax_outbox_published_total")
    assert published == 2
    await here.stop()
    await later.stop()


async def test_crash_between_commit_and_publish_loses_nothing(
    sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    seen: list[str] = []
    c = consumer(broker, "kit.q13", "Crash.*", counting_handler(sessions, seen))
    await c.start()
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
    await c.stop()


async def test_outbox_and_claims_on_a_plain_connection(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], broker: Broker
) -> None:
    """A service writing with Core on a connection (no ORM session) uses the same helpers, in
    its own transaction: a rollback takes the event and the claim away with the change."""
    seen: list[str] = []
    c = consumer(broker, "kit.q15", "Plain.*", counting_handler(sessions, seen))
    await c.start()
    kept, dropped = message("Plain.Kept"), message("Plain.Dropped")
    async with engine.begin() as conn:
        await conn.execute(sa.insert(counters).values(name=kept.event_id, value=0))
        await add_to_outbox(conn, outbox, kept)
        assert await claim_message(conn, processed, "plain-1")
        assert not await claim_message(conn, processed, "plain-1")  # seen in this transaction
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await add_to_outbox(conn, outbox, dropped)
            assert await claim_message(conn, processed, "plain-2")
            raise RuntimeError("the change failed")
    async with engine.connect() as conn:
        assert not await claim_message(conn, processed, "plain-1")  # committed before
        await conn.rollback()

    assert await OutboxRelay(sessions, outbox, broker).relay_once() == 1
    await wait_for(lambda: seen == [kept.event_id])
    async with engine.connect() as conn:
        claimed = set((await conn.execute(sa.select(processed.c.message_id))).scalars())
    assert {"plain-1", "plain-2"} & claimed == {"plain-1"}
    await c.stop()


async def test_the_relay_survives_a_broker_it_cannot_reach(
    sessions: async_sessionmaker[AsyncSession], broker: Broker, amqp_url: str
) -> None:
    msg = message("Later.Thing")
    await emit(sessions, msg)
    offline = Broker(amqp_url, "never-connected")
    relay = OutboxRelay(sessions, outbox, offline, poll_seconds=0.05)
    relay.start()
    await asyncio.sleep(0.2)
    assert await relay.counts() == (1, 0)  # nothing lost, nothing set aside
    await relay.stop(grace_seconds=1)
