"""Consuming events: the consumer declares its own durable queue bound to the producer's
exchange, with a dead-letter exchange; a message is acknowledged only after its handler's
transaction committed; a handler that raises sends the message to the dead-letter queue with
the reason; a message handled before (same event id) is acknowledged without effect.
"""

from __future__ import annotations

import asyncio
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
    ) -> None:
        self._broker = broker
        self.queue_name = queue
        self.dead_letter_exchange = f"{queue}.dlx"
        self.dead_letter_queue = f"{queue}.dead-letter"
        self._subscriptions = subscriptions
        self._handler = handler
        self._prefetch = prefetch
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

    async def stop(self) -> None:
        """Stop taking messages, let in-flight handlers finish (unacked ones are redelivered)."""
        if self._queue is not None and self._tag is not None:
            await self._queue.cancel(self._tag)
            self._tag = None
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=30)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

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
        except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered with a reason
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
