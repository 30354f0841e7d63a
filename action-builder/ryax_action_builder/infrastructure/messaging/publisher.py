"""Publishes build outcomes to the builder's exchange, with publisher confirms.

The builder keeps no state, so it has no outbox: an order is acknowledged only after its
answer was confirmed; a crash in between redelivers the order, whose answer carries the same
deterministic event id (consumers dedupe it).
"""

from __future__ import annotations

from ...domain.model import BuildOutcome
from .broker import Broker
from .mappers import outcome_to_message


class AioPikaEventPublisher:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def publish(self, event: BuildOutcome) -> None:
        await self._broker.publish(outcome_to_message(event))
