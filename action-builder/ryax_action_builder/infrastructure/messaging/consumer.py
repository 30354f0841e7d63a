"""Consuming events: the consumer declares its own durable queue bound to the producer's
exchange, with a dead-letter exchange; a message is acknowledged only after its handler
returned (for the builder: after the build's answer was published and confirmed).

Adapted for the builder: a handler raising PoisonMessage (a message that can never be handled)
sends it to the dead-letter queue with the reason; any other exception (the broker or the
filestore in trouble) returns it to the queue after a pause, to be tried again. `stop(grace)`
lets the message in hand finish for `grace` seconds, then abandons it unacknowledged: the
broker redelivers it (to this builder after a restart, or to another one).
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

from .broker import Broker

log = logging.getLogger(__name__)

#: A handler receives the message id, type and body; it must be idempotent by message id
#: (the application does this with claim_message in the same transaction).
MessageHandler = Callable[[str, str, bytes], Awaitable[None]]


#: Longest wait for one broker call while stopping.
BROKER_CALL_SECONDS = 5.0


class PoisonMessage(Exception):
    """The message can never be handled: dead-letter it with this reason."""


@dataclass(frozen=True, kw_only=True)
class Subscription:
    exchange: str  # the producer's exchange
    routing_keys: tuple[str, ...]


class Consumer:
    def __init__(
        self,
        broker: Broker,
        queue: str,
        subscriptions: list[Subscription],
        handler: MessageHandler,
        prefetch: int = 16,
        retry_delay_seconds: float = 5.0,
    ) -> None:
        self._broker = broker
        self.queue_name = queue
        self.dead_letter_exchange = f"{queue}.dlx"
        self.dead_letter_queue = f"{queue}.dead-letter"
        self._subscriptions = subscriptions
        self._handler = handler
        self._prefetch = prefetch
        self._retry_delay = retry_delay_seconds
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

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
        queue = self._queue or await self.declare()
        self._tag = await queue.consume(self._on_message)

    @property
    def busy(self) -> bool:
        return bool(self._in_flight)

    @property
    def consuming(self) -> bool:
        return self._tag is not None and self._channel is not None and not self._channel.is_closed

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop taking messages; let the handlers in flight finish for `grace_seconds`, then
        cancel them. Their messages stay unacknowledged and are redelivered. Every broker call
        here is bounded: with the broker gone they would wait for a reconnection forever."""
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), BROKER_CALL_SECONDS)
            self._tag = None
        if self._in_flight:
            log.info("waiting for the message in hand", extra={"grace_seconds": grace_seconds})
            _, pending = await asyncio.wait(self._in_flight, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("abandoned unacknowledged: it will be redelivered")
                await asyncio.wait(pending, timeout=BROKER_CALL_SECONDS)
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._channel.close(), BROKER_CALL_SECONDS)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._process(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        if not message_id:
            await self._dead_letter(message, "message has no message_id")
            return
        try:
            await self._handler(message_id, message.type or "", message.body)
        except PoisonMessage as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "handler failed, message dead-lettered",
                extra={
                    "queue": self.queue_name,
                    "message_id": message_id,
                    "type": message.type,
                    "reason": reason,
                },
            )
            await self._dead_letter(message, reason, "".join(traceback.format_exception(exc)))
            return
        except Exception as exc:
            log.warning(
                "handler failed, message returned to the queue",
                extra={
                    "queue": self.queue_name,
                    "message_id": message_id,
                    "reason": f"{type(exc).__name__}: {exc}",
                    "retry_in": self._retry_delay,
                },
                exc_info=True,
            )
            await asyncio.sleep(self._retry_delay)
            await message.nack(requeue=True)
            return
        await message.ack()

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, trace: str = ""
    ) -> None:
        """Publish a copy with the reason to the dead-letter exchange (confirmed), then ack."""
        assert self._channel is not None
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-ryax-error": reason[:2000],
                "x-ryax-traceback": trace[-4000:],
                "x-ryax-original-exchange": message.exchange or "",
                "x-ryax-original-routing-key": message.routing_key or "",
            }
        )
        dlx = await self._channel.get_exchange(self.dead_letter_exchange)
        await dlx.publish(
            aio_pika.Message(
                body=message.body,
                message_id=message.message_id,
                type=message.type,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=message.content_type,
            ),
            routing_key=message.routing_key or "",
        )
        await message.ack()
