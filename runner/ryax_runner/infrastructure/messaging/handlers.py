"""The runner's queue `runner.events`, bound to the studio's exchange."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ryax_kit.messaging import Broker, Consumer, MessageHandler, PoisonMessage, Subscription

from ...application.engine import Engine
from .mappers import (
    DEPLOY_REQUESTED,
    STUDIO_EXCHANGE,
    UNDEPLOY_REQUESTED,
    deploy_requested_from_proto,
    undeploy_requested_from_proto,
)

QUEUE = "runner.events"


def studio_handler(engine: Engine) -> MessageHandler:
    async def handle(message_id: str, message_type: str, body: bytes) -> None:
        if message_type == DEPLOY_REQUESTED:
            await engine.deploy_workflow(deploy_requested_from_proto(message_id, body))
        elif message_type == UNDEPLOY_REQUESTED:
            await engine.undeploy_workflow(undeploy_requested_from_proto(message_id, body))
        else:
            raise PoisonMessage(f"unexpected message type {message_type!r}")

    return handle


def studio_consumer(
    broker: Broker, engine: Engine, registry: CollectorRegistry | None = None
) -> Consumer:
    return Consumer(
        broker,
        QUEUE,
        [
            Subscription(
                exchange=STUDIO_EXCHANGE, routing_keys=(DEPLOY_REQUESTED, UNDEPLOY_REQUESTED)
            )
        ],
        studio_handler(engine),
        registry=registry,
    )
