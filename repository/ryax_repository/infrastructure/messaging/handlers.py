"""Incoming events -> use cases. Protobuf ends here."""

from __future__ import annotations

from ryax_kit.messaging import MessageHandler, PoisonMessage, Subscription

from ...application.use_cases import RepositoryUseCases
from ..proto import builder_events_pb2 as builder_pb
from .mappers import (
    ACTION_BUILD_FAILED,
    ACTION_BUILT,
    BUILDER_EXCHANGE,
    action_build_failed_from_proto,
    action_built_from_proto,
)

SUBSCRIPTIONS = [
    Subscription(exchange=BUILDER_EXCHANGE, routing_keys=(ACTION_BUILT, ACTION_BUILD_FAILED)),
]


def make_handler(use_cases: RepositoryUseCases) -> MessageHandler:
    """Dispatch by AMQP type; an unknown type can never be handled: it is dead-lettered."""

    async def handle(message_id: str, type_: str, body: bytes) -> None:
        if type_ == ACTION_BUILT:
            await use_cases.record_build_succeeded(
                action_built_from_proto(builder_pb.ActionBuilt.FromString(body)), message_id
            )
        elif type_ == ACTION_BUILD_FAILED:
            await use_cases.record_build_failed(
                action_build_failed_from_proto(builder_pb.ActionBuildFailed.FromString(body)),
                message_id,
            )
        else:
            raise PoisonMessage(f"unexpected message type {type_!r}")

    return handle
