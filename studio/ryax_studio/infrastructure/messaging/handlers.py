"""The studio's consumer: ActionReady from the repository, deployment states from the runner.

Protobuf ends here: messages are decoded and handed to the use cases, which claim the message
id in the same transaction as their change (a redelivery is a no-op). A message of an unknown
type, or one that can never be handled, is poison (dead-lettered at once with the reason); other
failures are retried by the kit's consumer.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from ryax_kit.messaging import PoisonMessage, Subscription

from ...application.use_cases import ActionStore, Deployments
from ...domain.errors import InvalidInput
from ..proto import repository_events_pb2 as repo_pb
from ..proto import runner_events_pb2 as runner_pb
from .mappers import (
    ACTION_READY,
    REPOSITORY_EXCHANGE,
    RUNNER_EXCHANGE,
    STATE_CHANGED,
    action_ready_from_proto,
    state_changed_from_proto,
)

log = logging.getLogger(__name__)

QUEUE = "studio.events"
SUBSCRIPTIONS = [
    Subscription(exchange=REPOSITORY_EXCHANGE, routing_keys=(ACTION_READY,)),
    Subscription(exchange=RUNNER_EXCHANGE, routing_keys=(STATE_CHANGED,)),
]


class StudioMessageHandler:
    def __init__(self, actions: ActionStore, deployments: Deployments) -> None:
        self._actions = actions
        self._deployments = deployments

    async def __call__(self, message_id: str, type_: str, body: bytes) -> None:
        """A body that does not decode, or that breaks a rule (an unknown action kind or
        deployment state...), never will be handled: it is poison, dead-lettered at once."""
        try:
            await self._handle(message_id, type_, body)
        except DecodeError as exc:
            raise PoisonMessage(f"{type_} is not a valid protobuf message: {exc}") from exc
        except InvalidInput as exc:
            raise PoisonMessage(f"{type_}: {exc.detail}") from exc

    async def _handle(self, message_id: str, type_: str, body: bytes) -> None:
        if type_ == ACTION_READY:
            action = action_ready_from_proto(repo_pb.ActionReady.FromString(body))
            await self._actions.register(message_id, action)
        elif type_ == STATE_CHANGED:
            change = state_changed_from_proto(
                runner_pb.WorkflowDeploymentStateChanged.FromString(body)
            )
            await self._deployments.apply_state(
                message_id,
                deployment_id=change.deployment_id,
                project_id=change.project_id,
                state=change.state,
                reason=change.reason,
                seq=change.seq,
                at=change.at,
            )
        else:
            raise PoisonMessage(f"unexpected message type {type_!r}")
