"""Dead letters: look at them and put them back.

A consumer's dead-letter queue `<queue>.dead-letter` holds each message it could not handle,
with the reason in its headers (`x-ryax-error`, `x-ryax-traceback`, `x-ryax-attempts`). Once the
cause is fixed, `replay` sends them back to the consumer's queue (confirmed, one by one; a
message leaves the dead-letter queue only after its copy was confirmed).

    python -m ryax_kit.messaging.dead_letters list   QUEUE   (RYAX_AMQP_URL from the env)
    python -m ryax_kit.messaging.dead_letters replay QUEUE [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass

import aio_pika

from .broker import Broker

_OWN_HEADERS = (
    "x-ryax-error",
    "x-ryax-traceback",
    "x-ryax-attempts",
    "x-ryax-original-exchange",
    "x-ryax-original-routing-key",
    "x-ryax-queue",
)


@dataclass(frozen=True, kw_only=True)
class DeadLetter:
    message_id: str
    type: str
    reason: str
    attempts: int
    original_exchange: str
    original_routing_key: str
    size: int


async def list_dead_letters(broker: Broker, queue: str, limit: int = 100) -> list[DeadLetter]:
    """Up to `limit` dead letters of `queue`, oldest first; they stay in the queue."""
    found: list[DeadLetter] = []
    channel = await broker.connection.channel()
    try:
        dlq = await channel.declare_queue(f"{queue}.dead-letter", durable=True, passive=True)
        held = []
        for _ in range(limit):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            headers = message.headers or {}
            found.append(
                DeadLetter(
                    message_id=message.message_id or "",
                    type=message.type or "",
                    reason=str(headers.get("x-ryax-error", "")),
                    attempts=int(str(headers.get("x-ryax-attempts", 0) or 0)),
                    original_exchange=str(headers.get("x-ryax-original-exchange", "")),
                    original_routing_key=str(headers.get("x-ryax-original-routing-key", "")),
                    size=len(message.body),
                )
            )
        for message in held:
            await message.nack(requeue=True)
    finally:
        await channel.close()
    return found


async def replay_dead_letters(broker: Broker, queue: str, limit: int = 1000) -> int:
    """Send up to `limit` dead letters of `queue` back to it; returns how many."""
    moved = 0
    channel = await broker.connection.channel(publisher_confirms=True)
    try:
        dlq = await channel.declare_queue(f"{queue}.dead-letter", durable=True, passive=True)
        for _ in range(limit):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = {k: v for k, v in (message.headers or {}).items() if k not in _OWN_HEADERS}
            headers["x-ryax-replayed"] = 1
            await channel.default_exchange.publish(
                aio_pika.Message(
                    body=message.body,
                    message_id=message.message_id,
                    type=message.type,
                    headers=headers,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
            )
            await message.ack()
            moved += 1
    finally:
        await channel.close()
    return moved


async def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ryax_kit.messaging.dead_letters")
    parser.add_argument("command", choices=("list", "replay"))
    parser.add_argument("queue", help="the consumer's queue, e.g. runner.events")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--amqp-url", default=os.environ.get("RYAX_AMQP_URL", ""))
    args = parser.parse_args(argv)
    if not args.amqp_url:
        parser.error("set RYAX_AMQP_URL or pass --amqp-url")
    broker = Broker(args.amqp_url, "dead-letters")
    await broker.connect()
    try:
        if args.command == "list":
            for letter in await list_dead_letters(broker, args.queue, args.limit):
                print(json.dumps(letter.__dict__))
        else:
            print(f"{await replay_dead_letters(broker, args.queue, args.limit)} replayed")
    finally:
        await broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
