"""The runner's queue `runner.events`, bound to the studio's exchange."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry

from ryax_kit.messaging import Broker, Consumer, MessageHandler, PoisonMessage, Subscription

from ...application.engine import Engine
from ...application.messages import DeployWorkflow
from ...domain.errors import InvalidInput
from .mappers import (
    DEPLOY_REQUESTED,
    STUDIO_EXCHANGE,
    UNDEPLOY_REQUESTED,
    deploy_requested_from_proto,
    undeploy_requested_from_proto,
)
from .studio_values import StudioValues

QUEUE = "runner.events"


async def with_values(engine: Engine, values: StudioValues, cmd: DeployWorkflow) -> DeployWorkflow:
    """The deployment's secrets and passwords, fetched from the studio (they are not in the
    event), unless there are none or the deployment is already recorded (a redelivery)."""
    needed = cmd.definition.secret_inputs()
    if not needed or await engine.knows(cmd.message_id, cmd.deployment_id):
        return cmd
    fetched = await values.fetch(cmd.deployment_id)
    try:
        definition = cmd.definition.with_secret_values(fetched)
    except InvalidInput as exc:
        raise PoisonMessage(f"deployment {cmd.deployment_id}: {exc}") from exc
    return replace(cmd, definition=definition)


def studio_handler(engine: Engine, values: StudioValues) -> MessageHandler:
    async def handle(message_id: str, message_type: str, body: bytes) -> None:
        if message_type == DEPLOY_REQUESTED:
            cmd = deploy_requested_from_proto(message_id, body)
            try:
                cmd.definition.check_size()
            except InvalidInput as exc:
                raise PoisonMessage(f"deployment {cmd.deployment_id}: {exc}") from exc
            await engine.deploy_workflow(await with_values(engine, values, cmd))
        elif message_type == UNDEPLOY_REQUESTED:
            await engine.undeploy_workflow(undeploy_requested_from_proto(message_id, body))
        else:
            raise PoisonMessage(f"unexpected message type {message_type!r}")

    return handle


def studio_consumer(
    broker: Broker,
    engine: Engine,
    values: StudioValues,
    registry: CollectorRegistry | None = None,
) -> Consumer:
    return Consumer(
        broker,
        QUEUE,
        [
            Subscription(
                exchange=STUDIO_EXCHANGE, routing_keys=(DEPLOY_REQUESTED, UNDEPLOY_REQUESTED)
            )
        ],
        studio_handler(engine, values),
        registry=registry,
    )
