"""Consuming events with one retry/poison policy for every service.

The consumer declares its own durable queue bound to the producer's exchange, and a dead-letter
queue `<queue>.dead-letter`. A message is acknowledged only after its handler returned (for a
service with a database: after the handler's transaction committed, which also recorded the
message id, so a redelivery is a no-op).

When a handler raises:
- `PoisonMessage`, an undecodable body, or no message id: the message can never be handled; it
  goes to the dead-letter queue at once, with the reason.
- a transient error (the database, the broker, the filestore or another service unreachable,
  a timeout, a serialization conflict; see `is_transient`): it is tried again, with exponential
  backoff, for as long as it takes; the message is never dead-lettered for that.
- any other error: tried again `max_attempts` times in all, with backoff, then dead-lettered
  with the reason and the traceback.
While retrying, the message holds one prefetch slot; the others go on. `stop(grace)` lets the
handlers in flight finish for `grace` seconds, then abandons them unacknowledged (the broker
redelivers them); every broker call made while stopping is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from prometheus_client import CollectorRegistry, Counter

from .broker import Broker

log = logging.getLogger(__name__)

#: A handler receives the message id, type and body; it must be idempotent by message id
#: (with a database: claim the id in the same transaction as the effects).
MessageHandler = Callable[[str, str, bytes], Awaitable[None]]

#: Longest wait for one broker call while stopping.
BROKER_CALL_SECONDS = 5.0


class PoisonMessage(Exception):
    """The message can never be handled (unknown type, undecodable, refused): dead-letter it."""


class TransientError(Exception):
    """Raise (or subclass) for a failure that will pass: the message is tried again later."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    #: Attempts in all for an error that is neither transient nor poison.
    max_attempts: int = 5
    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (attempt - 1)))


# Classified by name, so the kit imports no driver it does not otherwise need.
_TRANSIENT_NAMES = frozenset(
    {
        "sqlalchemy.exc.OperationalError",
        "sqlalchemy.exc.InterfaceError",
        "sqlalchemy.exc.TimeoutError",
        "sqlalchemy.exc.DisconnectionError",
        "asyncpg.exceptions._base.InterfaceError",
        "asyncpg.exceptions.PostgresConnectionError",
        "asyncpg.exceptions.CannotConnectNowError",
        "asyncpg.exceptions.TooManyConnectionsError",
        "asyncpg.exceptions.SerializationError",
        "asyncpg.exceptions.DeadlockDetectedError",
        "asyncpg.exceptions.AdminShutdownError",
        "aiormq.exceptions.AMQPConnectionError",
        "aiormq.exceptions.ChannelInvalidStateError",
        "aio_pika.exceptions.AMQPConnectionError",
        "aiohttp.client_exceptions.ClientConnectionError",
        "aiohttp.client_exceptions.ServerTimeoutError",
        "minio.error.ServerError",
        "urllib3.exceptions.HTTPError",
        "ryax_kit.messaging.broker.Unroutable",
    }
)
_POISON_NAMES = frozenset(
    {
        "google.protobuf.message.DecodeError",
        "ryax_kit.messaging.consumer.PoisonMessage",
    }
)


def _names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_poison(exc: BaseException) -> bool:
    return bool(_names(exc) & _POISON_NAMES)


def is_transient(exc: BaseException) -> bool:
    """A failure that will pass by itself: connection trouble, timeouts, conflicts between
    concurrent transactions, an event with no queue bound yet. Looks through the causes
    (SQLAlchemy wraps the driver's errors)."""
    for link in _chain(exc):
        if isinstance(link, (OSError, TimeoutError, TransientError)):
            return True
        if _names(link) & _TRANSIENT_NAMES:
            return True
        if getattr(link, "connection_invalidated", False):
            return True
    return False


@dataclass(frozen=True, kw_only=True)
class Subscription:
    exchange: str  # the producer's exchange
    routing_keys: tuple[str, ...]


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.messages = Counter(
            "ryax_messages_consumed_total",
            "Messages taken from a queue, by outcome (handled, retried, dead_lettered)",
            ["queue", "outcome"],
            registry=registry,
        )


class Consumer:
    def __init__(
        self,
        broker: Broker,
        queue: str,
        subscriptions: list[Subscription],
        handler: MessageHandler,
        *,
        prefetch: int = 16,
        policy: RetryPolicy | None = None,
        classify: Callable[[BaseException], bool] = is_transient,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._broker = broker
        self.queue_name = queue
        self.dead_letter_exchange = f"{queue}.dlx"
        self.dead_letter_queue = f"{queue}.dead-letter"
        self._subscriptions = list(subscriptions)
        self._handler = handler
        self._prefetch = prefetch
        self._policy = policy or RetryPolicy()
        self._is_transient = classify
        self._metrics = ConsumerMetrics(registry) if registry is not None else None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def declare(self) -> AbstractQueue:
        """Queue, bindings and dead-lettering; idempotent, safe before the producer exists."""
        channel = await self._broker.connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self._prefetch)
        dlx = await channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dlq = await channel.declare_queue(self.dead_letter_queue, durable=True)
        await dlq.bind(dlx)
        queue = await channel.declare_queue(
            self.queue_name,
            durable=True,
            arguments={"x-dead-letter-exchange": self.dead_letter_exchange},
        )
        for sub in self._subscriptions:
            exchange = await channel.declare_exchange(
                sub.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            for key in sub.routing_keys:
                await queue.bind(exchange, routing_key=key)
        self._channel, self._queue = channel, queue
        return queue

    async def start(self) -> None:
        self._stopping.clear()
        queue = self._queue or await self.declare()
        self._tag = await queue.consume(self._on_message)

    @property
    def busy(self) -> bool:
        return bool(self._in_flight)

    @property
    def consuming(self) -> bool:
        return self._tag is not None and self._channel is not None and not self._channel.is_closed

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop taking messages; let the handlers in flight finish for `grace_seconds` (those
        waiting to retry give their message back at once), then cancel the rest: their
        messages stay unacknowledged and are redelivered."""
        self._stopping.set()
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), BROKER_CALL_SECONDS)
            self._tag = None
        if self._in_flight:
            log.info(
                "waiting for the messages in hand",
                extra={"queue": self.queue_name, "count": len(self._in_flight)},
            )
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "abandoned unacknowledged: redelivered later",
                    extra={"queue": self.queue_name, "count": len(pending)},
                )
                await asyncio.wait(pending, timeout=BROKER_CALL_SECONDS)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._channel.close(), BROKER_CALL_SECONDS)
        self._channel, self._queue = None, None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._process(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.messages.labels(self.queue_name, outcome).inc()

    async def _process(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        context = {"queue": self.queue_name, "message_id": message_id, "type": message.type}
        if not message_id:
            await self._dead_letter(message, "the message has no message_id", attempts=0)
            return
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._handler(message_id, message.type or "", message.body)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below, never lost
                reason = f"{type(exc).__name__}: {exc}"
                if is_poison(exc):
                    log.warning("poison message dead-lettered", extra={**context, "reason": reason})
                    await self._dead_letter(message, reason, _trace(exc), attempts=attempt)
                    return
                transient = self._is_transient(exc)
                if not transient and attempt >= self._policy.max_attempts:
                    log.error(
                        "handler kept failing, message dead-lettered",
                        extra={**context, "reason": reason, "attempts": attempt},
                    )
                    await self._dead_letter(message, reason, _trace(exc), attempts=attempt)
                    return
                delay = self._policy.delay(attempt)
                log.warning(
                    "handler failed, will retry",
                    extra={
                        **context,
                        "reason": reason,
                        "transient": transient,
                        "attempt": attempt,
                        "retry_in": delay,
                    },
                )
                self._count("retried")
                if await self._pause(delay):
                    await self._give_back(message)
                    return
                continue
            await self._settle(message.ack())
            self._count("handled")
            return

    async def _pause(self, seconds: float) -> bool:
        """Wait before a retry; True when the consumer is stopping meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _give_back(self, message: AbstractIncomingMessage) -> None:
        await self._settle(message.nack(requeue=True))

    @staticmethod
    async def _settle(call: Awaitable[None]) -> None:
        # With the channel gone the message is redelivered anyway: nothing more to do.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(call, BROKER_CALL_SECONDS)

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, trace: str = "", *, attempts: int
    ) -> None:
        """Publish a copy with the reason to the dead-letter exchange (confirmed), then ack.
        If that publish fails, the message goes back to the queue instead (never lost)."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-ryax-error": reason[:2000],
                "x-ryax-traceback": trace[-4000:],
                "x-ryax-attempts": attempts,
                "x-ryax-original-exchange": message.exchange or "",
                "x-ryax-original-routing-key": message.routing_key or "",
                "x-ryax-queue": self.queue_name,
            }
        )
        try:
            if self._channel is None:
                raise RuntimeError("the consumer's channel is closed")
            dlx = await self._channel.get_exchange(self.dead_letter_exchange)
            await asyncio.wait_for(
                dlx.publish(
                    aio_pika.Message(
                        body=message.body,
                        message_id=message.message_id,
                        type=message.type,
                        headers=headers,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type=message.content_type,
                    ),
                    routing_key=message.routing_key or "",
                ),
                BROKER_CALL_SECONDS,
            )
        except Exception:
            log.exception("dead-lettering failed, message returned", extra={"reason": reason})
            await self._give_back(message)
            return
        await self._settle(message.ack())
        self._count("dead_lettered")


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
