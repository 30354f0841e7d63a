"""The broker connection: robust (reconnects by itself), one confirmed publishing channel.

Every publish is persistent, confirmed by the broker and *mandatory*: an event that no queue is
bound to receive yet raises `Unroutable` instead of being dropped while reported as sent, so the
outbox keeps it and tries again once its consumer has declared its queue.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError, PublishError

log = logging.getLogger(__name__)

#: Longest wait for the broker to close the connection at shutdown.
CLOSE_SECONDS = 10.0


class Unroutable(Exception):
    """No queue is bound for this event yet (its consumer never started): nothing was sent."""


class PublishFailed(Exception):
    """The broker refused the message (negative confirm): nothing was sent."""


@dataclass(frozen=True, kw_only=True)
class OutgoingMessage:
    """One event ready to be published: protobuf bytes plus routing metadata."""

    event_id: str
    exchange: str
    routing_key: str
    type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Broker:
    """Owns the connection; hands out channels; publishes with confirms, mandatory."""

    def __init__(self, url: str, service: str) -> None:
        self._url = url
        self.service = service
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Broker(service={self.service!r})"  # the URL holds a password

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": f"ryax-{self.service}"}
        )
        self._publish_channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("broker not connected")
        return self._connection

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def declare_exchange(self, name: str) -> AbstractExchange:
        """The producer's durable topic exchange; idempotent."""
        if name not in self._exchanges:
            if self._publish_channel is None:
                raise RuntimeError("broker not connected")
            async with self._lock:
                if name not in self._exchanges:
                    self._exchanges[name] = await self._publish_channel.declare_exchange(
                        name, aio_pika.ExchangeType.TOPIC, durable=True
                    )
        return self._exchanges[name]

    async def publish(self, message: OutgoingMessage) -> None:
        """Persistent, mandatory publish; returns once the broker confirmed it.

        Raises `Unroutable` (no queue bound for it), `PublishFailed` (refused), or the
        connection's error (broker unreachable)."""
        exchange = await self.declare_exchange(message.exchange)
        try:
            await exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    message_id=message.event_id,
                    type=message.type,
                    content_type="application/x-protobuf",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    headers=dict(message.headers),
                    app_id=self.service,
                ),
                routing_key=message.routing_key,
                mandatory=True,
            )
        except PublishError:
            raise Unroutable(
                f"no queue is bound to {message.exchange!r} for {message.routing_key!r} yet"
            ) from None
        except DeliveryError as exc:
            raise PublishFailed(f"the broker refused {message.type} {message.event_id}") from exc

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            self._publish_channel = None
            self._exchanges.clear()
            try:
                await asyncio.wait_for(connection.close(), CLOSE_SECONDS)
            except TimeoutError:
                log.warning("the broker connection did not close in time", extra={"seconds": 10})
