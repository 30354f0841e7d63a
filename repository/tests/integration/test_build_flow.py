"""Build request -> ActionBuildRequested on the real RabbitMQ -> a simulated action builder
answers -> the result is recorded, ActionReady is emitted (once)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue

from ryax_repository.infrastructure.proto import builder_events_pb2 as builder_pb
from ryax_repository.infrastructure.proto import repository_events_pb2 as pb

pytestmark = pytest.mark.integration
BASE = "/repository/v1/projects/project-a"
PROJECT_A_ID = "00000000-0000-4000-8000-00000000000a"
Headers = Callable[[str], dict[str, str]]


class Broker:
    """The test plays the action builder (publishes its answers) and the studio (listens)."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel, self.queue = channel, queue

    async def next(self, routing_key: str, within: float = 15.0) -> aio_pika.IncomingMessage:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            message = await self.queue.get(fail=False)
            if message is not None:
                await message.ack()
                if message.routing_key == routing_key:
                    return message  # type: ignore[return-value]
                continue
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {routing_key} within {within} s")

    async def nothing_more(self, seconds: float = 1.0) -> None:
        await asyncio.sleep(seconds)
        message = await self.queue.get(fail=False)
        assert message is None, f"unexpected {message.routing_key if message else ''}"

    async def answer(self, kind: str, body: bytes, message_id: str) -> None:
        exchange = await self.channel.declare_exchange(
            "ryax.action-builder", aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(
            aio_pika.Message(
                body=body,
                message_id=message_id,
                type=kind,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=kind,
        )


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "ryax.repository", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue("test.repository-events", exclusive=True)
    await queue.bind(exchange, routing_key="#")
    yield Broker(channel, queue)
    await connection.close()


async def wait_state(client: Any, headers: dict[str, str], build_id: str, state: str) -> Any:
    for _ in range(200):
        build = await (await client.get(f"{BASE}/builds/{build_id}", headers=headers)).json()
        if build["state"] == state:
            return build
        await asyncio.sleep(0.05)
    raise AssertionError(f"build {build_id} never reached {state}: {build}")


async def test_build_round_trip(
    messaging_client: Any,
    as_user: Headers,
    broker: Broker,
    tmp_path: Path,
    helpers: Any,
) -> None:
    client = messaging_client
    alice = as_user("alice")
    origin = helpers.GitRepo(tmp_path / "origin")
    logo = helpers.png(64, 48)
    origin.add_action("echo", helpers.action_files("echo", logo=logo))
    origin.add_action("other", helpers.action_files("other"))
    commit = origin.commit()
    repo = await (
        await client.post(
            f"{BASE}/repositories", headers=alice, json={"name": "actions", "url": str(origin.path)}
        )
    ).json()
    await client.post(f"{BASE}/repositories/{repo['id']}/scan", headers=alice)

    response = await client.post(f"{BASE}/actions/echo/1.0/build", headers=alice)
    assert response.status == 202
    build = await response.json()

    message = await broker.next("ActionBuildRequested")
    assert message.type == "ActionBuildRequested" and message.message_id
    request = pb.ActionBuildRequested.FromString(message.body)
    assert request.event_id == message.message_id
    assert request.build_id == build["id"] and request.project_id == PROJECT_A_ID
    assert (request.action_id, request.action_version, request.action_kind) == (
        "echo",
        "1.0",
        "processor",
    )
    assert request.repository_id == repo["id"] and request.source_commit == commit
    assert "id: echo" in request.metadata_yaml
    assert request.source_key == f"sources/{request.source_sha256}.tar.gz"
    stored = (tmp_path / "filestore" / request.source_key).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == request.source_sha256

    built = builder_pb.ActionBuilt(
        event_id=str(uuid.uuid4()),
        build_id=request.build_id,
        project_id=request.project_id,
        action_id="echo",
        action_version="1.0",
        artefact_key="artefacts/abc.tar.gz",
        artefact_sha256="ab" * 32,
        build_log="step 1\nstep 2\ndone",
        duration_seconds=4.2,
    )
    await broker.answer("ActionBuilt", built.SerializeToString(), built.event_id)
    recorded = await wait_state(client, alice, build["id"], "succeeded")
    assert recorded["log"] == "step 1\nstep 2\ndone"
    assert recorded["artefact_key"] == "artefacts/abc.tar.gz"

    ready_message = await broker.next("ActionReady")
    ready = pb.ActionReady.FromString(ready_message.body)
    assert (ready.project_id, ready.action_id, ready.action_version, ready.kind) == (
        PROJECT_A_ID,
        "echo",
        "1.0",
        "processor",
    )
    assert [(i.name, i.type) for i in ready.inputs] == [("text", "string")]
    assert [(o.name, o.type) for o in ready.outputs] == [("result", "string")]
    assert ready.logo == logo and ready.logo_media_type == "image/png"
    assert (ready.artefact_key, ready.artefact_sha256, ready.build_id) == (
        "artefacts/abc.tar.gz",
        "ab" * 32,
        build["id"],
    )
    assert ready.source_commit == commit and ready.human_name == "Action echo"

    # A redelivery and a duplicate answer change nothing and emit nothing.
    await broker.answer("ActionBuilt", built.SerializeToString(), built.event_id)
    await broker.answer("ActionBuilt", built.SerializeToString(), str(uuid.uuid4()))
    await broker.nothing_more()
    action = await (await client.get(f"{BASE}/actions/echo/1.0", headers=alice)).json()
    assert action["state"] == "built" and action["last_build"]["state"] == "succeeded"

    # A failure is recorded with its reason and log.
    second = await (await client.post(f"{BASE}/actions/other/1.0/build", headers=alice)).json()
    request = pb.ActionBuildRequested.FromString((await broker.next("ActionBuildRequested")).body)
    failed = builder_pb.ActionBuildFailed(
        event_id=str(uuid.uuid4()),
        build_id=request.build_id,
        project_id=request.project_id,
        reason="requirements.txt: no matching distribution for foo==9.9",
        build_log="pip install ...\nERROR",
        duration_seconds=1.0,
    )
    await broker.answer("ActionBuildFailed", failed.SerializeToString(), failed.event_id)
    recorded = await wait_state(client, alice, second["id"], "failed")
    assert recorded["reason"].startswith("requirements.txt: no matching distribution")
    assert recorded["log"].endswith("ERROR")
    other = await (await client.get(f"{BASE}/actions/other/1.0", headers=alice)).json()
    assert other["state"] == "build_failed"
    await broker.nothing_more(0.5)


async def test_scan_with_build_and_garbage_is_dead_lettered(
    messaging_client: Any,
    as_user: Headers,
    broker: Broker,
    tmp_path: Path,
    helpers: Any,
) -> None:
    client = messaging_client
    alice = as_user("alice")
    origin = helpers.GitRepo(tmp_path / "origin")
    origin.add_action("a", helpers.action_files("aaa"))
    origin.add_action("b", helpers.action_files("bbb", kind="Trigger"))
    origin.commit()
    repo = await (
        await client.post(
            f"{BASE}/repositories", headers=alice, json={"name": "actions", "url": str(origin.path)}
        )
    ).json()
    report = await (
        await client.post(f"{BASE}/repositories/{repo['id']}/scan?build=true", headers=alice)
    ).json()
    assert len(report["build_ids"]) == 2
    kinds = sorted(
        [
            pb.ActionBuildRequested.FromString(
                (await broker.next("ActionBuildRequested")).body
            ).action_kind
            for _ in range(2)
        ]
    )
    assert kinds == ["processor", "trigger"]

    await broker.answer("ActionBuilt", b"\xff\xfe not protobuf", str(uuid.uuid4()))
    dlq = await broker.channel.declare_queue("repository.events.dead-letter", durable=True)
    for _ in range(200):
        dead = await dlq.get(fail=False)
        if dead is not None:
            break
        await asyncio.sleep(0.05)
    assert dead is not None and "DecodeError" in str(dead.headers["x-ryax-error"])
    await dead.ack()
    health = await (await client.get("/readyz")).json()
    assert health == {
        "ready": True,
        "checks": {"database": True, "broker": True, "filestore": True},
    }
    assert json.dumps(report)  # the scan result is plain JSON
