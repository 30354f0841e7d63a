"""RabbitMQ messaging written once: the broker connection and confirmed, mandatory publishes;
the consumer with one retry/poison policy; the transactional outbox and its relay; idempotent
handling by message id; dead-letter inspection and replay.

Emitters define up to their exchange (one durable topic exchange per producing service);
consumers define from the exchange to their own durable queue, with a dead-letter queue.
"""

from .broker import Broker, OutgoingMessage, PublishFailed, Unroutable
from .consumer import (
    Consumer,
    MessageHandler,
    PoisonMessage,
    RetryPolicy,
    Subscription,
    is_transient,
)
from .outbox import (
    OutboxRelay,
    add_to_outbox,
    claim_message,
    outbox_table,
    processed_messages_table,
)

__all__ = [
    "Broker",
    "Consumer",
    "MessageHandler",
    "OutboxRelay",
    "OutgoingMessage",
    "PoisonMessage",
    "PublishFailed",
    "RetryPolicy",
    "Subscription",
    "Unroutable",
    "add_to_outbox",
    "claim_message",
    "is_transient",
    "outbox_table",
    "processed_messages_table",
]
