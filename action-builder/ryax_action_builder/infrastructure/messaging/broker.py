"""RabbitMQ plumbing: a robust connection, the service's own topic exchange, confirmed publishes.

Emitters define up to the exchange (one durable topic exchange per producing service);
consumers define from the exchange to their own durable queue (see consumer.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

log = logging.getLogger(__name__)


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
    """Owns the connection; hands out channels; publishes with publisher confirms."""

    def __init__(self, url: str, service: str) -> None:
        self._url = url
        self.service = service
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    async def connect(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": f"ryax-{self.service}"}
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True)

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("broker not connected")
        return self._connection

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def declare_exchange(self, name: str) -> AbstractExchange:
        """Durable topic exchange; idempotent."""
        if name not in self._exchanges:
            assert self._publish_channel is not None
            self._exchanges[name] = await self._publish_channel.declare_exchange(
                name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchanges[name]

    async def publish(self, message: OutgoingMessage) -> None:
        """Persistent publish; returns once the broker confirmed it (raises otherwise)."""
        exchange = await self.declare_exchange(message.exchange)
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
            mandatory=False,
        )

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            self._exchanges.clear()
            try:
                await asyncio.wait_for(connection.close(), 10)
            except TimeoutError:
                log.warning("the broker connection did not close in 10 s")
