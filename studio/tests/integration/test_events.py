"""The studio's messages over the real RabbitMQ (a vhost of the test's own) and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from ryax_studio.infrastructure.proto import repository_events_pb2 as repo_pb
from ryax_studio.infrastructure.proto import runner_events_pb2 as runner_pb
from ryax_studio.infrastructure.proto import studio_events_pb2 as studio_pb

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"
A = "/studio/v1/projects/proj-a"


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect_robust(amqp_url)
    ch = await connection.channel(publisher_confirms=True)
    yield ch
    await connection.close()


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


def action_ready(
    action_id: str,
    version: str = "1.0",
    kind: str = "processor",
    artefact: str = "artefacts/abc.tar.gz",
) -> repo_pb.ActionReady:
    ts = Timestamp()
    ts.GetCurrentTime()
    return repo_pb.ActionReady(
        event_id=str(uuid.uuid4()),
        project_id="pa-id",
        action_id=action_id,
        action_version=version,
        kind=kind,
        human_name=action_id.title(),
        description="d",
        type="python3",
        categories=["Text"],
        inputs=[
            repo_pb.IO(name="text", human_name="Text", help="h", type="string"),
            repo_pb.IO(name="n", human_name="N", help="h", type="integer", default_value="3"),
        ],
        outputs=[repo_pb.IO(name="upper", human_name="Upper", help="h", type="string")],
        resources=repo_pb.Resources(cpu=0.5, memory_bytes=2**27),
        artefact_key=artefact,
        artefact_sha256="ab" * 32,
        build_id="b1",
        ready_at=ts,
    )


async def publish(
    channel: Any,
    exchange: str,
    message: Any,
    message_id: str | None = None,
    body: bytes | None = None,
) -> None:
    ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    name = type(message).__name__
    await ex.publish(
        aio_pika.Message(
            body=body if body is not None else message.SerializeToString(),
            message_id=message_id or message.event_id,
            type=name,
        ),
        routing_key=name,
    )


async def test_action_ready_lands_in_the_store_once(live: Any, channel: Any) -> None:
    msg = action_ready("shouter")
    await publish(channel, "ryax.repository", msg)

    async def found() -> Any:
        r = await live.call("GET", f"{A}/actions/shouter/versions/1.0")
        return await r.json() if r.status == 200 else None

    action = await eventually(found)
    assert action["artefact_key"] == "artefacts/abc.tar.gz" and action["kind"] == "processor"
    assert action["inputs"][1]["default"] == 3 and action["inputs"][1]["has_default"]
    assert action["resources"]["cpu"] == 0.5
    # A redelivery is a no-op; a new event for the same version updates it.
    await publish(channel, "ryax.repository", msg)
    await publish(channel, "ryax.repository", action_ready("shouter", artefact="artefacts/new"))

    async def updated() -> Any:
        a = await found()
        return a if a and a["artefact_key"] == "artefacts/new" else None

    await eventually(updated)
    listed = await (await live.call("GET", f"{A}/actions/shouter")).json()
    assert len(listed["actions"]) == 1


async def test_a_broken_message_is_dead_lettered_with_its_reason(live: Any, channel: Any) -> None:
    await publish(
        channel,
        "ryax.repository",
        action_ready("x"),
        message_id="broken-1",
        body=b"\xff\xff not protobuf",
    )
    bad_kind = action_ready("y", kind="gateway")
    await publish(channel, "ryax.repository", bad_kind)
    dlq = await channel.declare_queue("studio.events.dead-letter", durable=True)

    async def dead() -> Any:
        return await dlq.get(no_ack=True, fail=False)

    first = await eventually(dead)
    second = await eventually(dead)
    reasons = sorted(str(m.headers["x-ryax-error"]) for m in (first, second))
    assert "not a valid protobuf message" in reasons[0] or "not a valid" in reasons[1]
    assert any("unknown action kind 'gateway'" in r for r in reasons)


async def test_deploy_publishes_the_request_and_follows_the_runner(
    live: Any, channel: Any, fill_store: Any
) -> None:
    await fill_store(live)
    listener = await channel.declare_queue(exclusive=True)
    studio_exchange = await channel.declare_exchange(
        "ryax.studio", aio_pika.ExchangeType.TOPIC, durable=True
    )
    await listener.bind(studio_exchange, routing_key="#")
    data = (EXAMPLES / "demo.yaml").read_bytes()
    created = await (await live.call("POST", f"{A}/workflows/import", data=data)).json()
    w = f"{A}/workflows/{created['id']}"
    deployment = await (await live.call("POST", f"{w}/deploy")).json()

    async def received() -> Any:
        return await listener.get(no_ack=True, fail=False)

    message = await eventually(received)
    assert message.type == "WorkflowDeployRequested"
    assert message.routing_key == "WorkflowDeployRequested"
    request = studio_pb.WorkflowDeployRequested.FromString(message.body)
    assert message.message_id == request.event_id
    assert request.deployment_id == deployment["id"]
    assert request.workflow_name == "Word count demo" and request.project_id == "pa-id"
    assert [s.step_id for s in request.snapshot.steps] == [
        "api",
        "report",
        "count",
        "shout",
        "slug",
        "join",
        "log",
    ]
    assert request.snapshot.steps[2].artefact_key == "artefacts/word-count.tar.gz"
    assert [r.key for r in request.snapshot.results] == ["summary", "words"]

    async def state(value: str, seq: int, reason: str = "") -> None:
        ts = Timestamp()
        ts.GetCurrentTime()
        await publish(
            channel,
            "ryax.runner",
            runner_pb.WorkflowDeploymentStateChanged(
                event_id=str(uuid.uuid4()),
                deployment_id=deployment["id"],
                project_id="pa-id",
                workflow_id=created["id"],
                state=value,
                reason=reason,
                at=ts,
                state_seq=seq,
            ),
        )

    await state("deploying", 1)
    await state("deployed", 3)
    await state("waiting_for_site", 2, "late")  # arrives after a newer state: ignored

    async def deployed() -> Any:
        view = await (await live.call("GET", w)).json()
        d = view["deployment"]
        return d if d["state"] == "deployed" and d["state_seq"] == 3 else None

    await eventually(deployed)
    await asyncio.sleep(0.3)
    assert (await deployed()) is not None

    assert (await live.call("POST", f"{w}/deploy")).status == 409
    assert (await live.call("POST", f"{w}/undeploy")).status == 202
    undeploy = await eventually(received)
    assert undeploy.type == "WorkflowUndeployRequested"
    assert (
        studio_pb.WorkflowUndeployRequested.FromString(undeploy.body).deployment_id
        == deployment["id"]
    )
    await state("undeployed", 4)

    async def undeployed() -> Any:
        view = await (await live.call("GET", w)).json()
        return view["deployment"]["state"] == "undeployed"

    await eventually(undeployed)
    assert (await live.call("POST", f"{w}/deploy")).status == 202
