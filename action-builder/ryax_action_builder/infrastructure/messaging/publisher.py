"""Publishes build outcomes to the builder's exchange through the kit's `Broker` (confirmed,
mandatory).

The builder keeps no state, so it has no outbox: an order is acknowledged only after its
answer was confirmed; a crash in between redelivers the order, whose answer carries the same
deterministic event id (consumers dedupe it). An answer no queue is bound for yet (the
repository never started) raises `Unroutable`, a transient error: the order is tried again
later, never acknowledged unanswered.
"""

from __future__ import annotations

from ryax_kit.messaging import Broker

from ...domain.model import BuildOutcome
from .mappers import outcome_to_message


class AioPikaEventPublisher:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def publish(self, event: BuildOutcome) -> None:
        await self._broker.publish(outcome_to_message(event))
