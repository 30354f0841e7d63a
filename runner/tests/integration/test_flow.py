"""End to end through the runner's real edges: studio event -> deployment -> fake worker (a real
gRPC client) -> HTTP endpoint runs; heartbeat loss; restart and resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
import sqlalchemy as sa
from runner_testkit.fake_worker import ActionError, FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, io, publish, step

from ryax_runner.domain.values import Value
from ryax_runner.infrastructure.database.tables import outbox
from ryax_runner.infrastructure.proto import runner_events_pb2 as rpb
from ryax_runner.infrastructure.proto import studio_events_pb2 as spb

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer token-alice"}


async def until(predicate: Callable[[], Any], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or AUTH) as r:
        return r.status, await r.json(content_type=None)


async def post(
    url: str, body: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, json=body, headers=headers or AUTH, **kwargs) as r,
    ):
        return r.status, await r.json(content_type=None)


def simple_workflow(name: str = "hello", **kwargs: Any) -> spb.WorkflowDeployRequested:
    return deploy_request(
        [
            step("trigger", kind="trigger", outputs=("name",)),
            step(
                "greet",
                parents=("trigger",),
                inputs={"who": ("ref", "trigger", "name")},
                outputs=("greeting",),
            ),
        ],
        workflow_name=name,
        fields=[io("name")],
        results=[("greeting", "greet", "greeting")],
        **kwargs,
    )


async def greet(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    if inputs.get("who") == "boom":
        raise ActionError(418, "I am a teapot")
    if inputs.get("who") == "crash":
        raise ValueError("bad input")
    return {"greeting": f"hello {inputs.get('who')}"}


async def deployed(
    runner: RunningRunner, amqp_url: str, request: spb.WorkflowDeployRequested
) -> str:
    await publish(amqp_url, request)
    engine = runner.container.engine()
    await until(
        lambda: (
            request.deployment_id in engine.deployments
            and engine.deployments[request.deployment_id].state == "deployed"
        )
    )
    await engine.durable()
    return request.deployment_id


@pytest.fixture
async def worker(runner: RunningRunner) -> Any:
    w = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=greet)
    await w.start()
    yield w
    await w.stop()


async def test_deploy_consumed_recorded_and_state_published(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "ryax.runner", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue("", exclusive=True)
    await queue.bind(exchange, "WorkflowDeploymentStateChanged")
    request = simple_workflow()
    await deployed(runner, amqp_url, request)
    status, doc = await get(
        f"{runner.url}/runner/v1/projects/alpha/deployments/{request.deployment_id}"
    )
    assert status == 200 and doc["state"] == "deployed"
    assert [s["site_name"] for s in doc["steps"]] == ["site-1"]  # trigger is built-in
    states = []
    while len(states) < 2:
        msg = await queue.get(timeout=5)
        await msg.ack()
        event = rpb.WorkflowDeploymentStateChanged.FromString(msg.body)
        states.append((event.state, event.state_seq))
    assert states == [("deploying", 1), ("deployed", 2)]

    async def outbox_rows() -> list[sa.Row[Any]]:
        async with runner.container.db().connect() as conn:
            query = sa.select(outbox.c.attempts, outbox.c.last_error, outbox.c.published_at)
            return list((await conn.execute(query)).all())

    async def all_published() -> bool:
        return all(row.published_at is not None for row in await outbox_rows())

    await until(all_published)  # the recorder's rows, with the kit's retry columns at rest
    assert [(row.attempts, row.last_error) for row in await outbox_rows()] == [(0, None)] * 2
    # A repeated event is a no-op.
    await publish(amqp_url, request)
    await asyncio.sleep(0.3)
    status, docs = await get(f"{runner.url}/runner/v1/projects/alpha/deployments")
    assert len(docs["deployments"]) == 1
    await connection.close()


async def test_waiting_for_site_then_placed(runner: RunningRunner, amqp_url: str) -> None:
    request = simple_workflow()
    await publish(amqp_url, request)
    engine = runner.container.engine()
    await until(lambda: request.deployment_id in engine.deployments)
    d = engine.deployments[request.deployment_id]
    assert d.state == "waiting_for_site" and "no site is online" in d.reason
    w = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=greet)
    await w.start()
    await until(lambda: d.state == "deployed")
    await w.stop()


async def test_endpoint_sync_async_errors(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    await deployed(runner, amqp_url, simple_workflow())
    base = f"{runner.url}/runner/v1/projects/alpha/endpoints/hello"
    status, body = await post(base, {"name": "bob"})
    assert (status, body) == (200, {"greeting": "hello bob"})
    status, body = await post(base, {})
    assert status == 400 and "name" in body["detail"]
    status, body = await post(base, {"name": "boom"})
    assert status == 418 and body["detail"] == "I am a teapot"
    status, body = await post(base, {"name": "crash"})
    assert status == 500 and "ValueError: bad input" in body["detail"]
    status, body = await post(base + "?mode=async", {"name": "later"})
    assert status == 202
    run_id = body["run_id"]

    async def done() -> bool:
        _, doc = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}")
        return bool(doc["state"] == "completed")

    await until(done)
    _, doc = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}")
    assert doc["results"] == {"greeting": "hello later"}
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert steps["greet"]["inputs"] == {"who": "later"}
    assert steps["greet"]["outputs"] == {"greeting": "hello later"}
    _, logs = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}/logs")
    assert [line["line"] for line in logs["lines"]] == ["greet line 1"]
    _, page = await get(f"{runner.url}/runner/v1/projects/alpha/runs?state=failed")
    assert len(page["runs"]) == 2
    _, spec = await get(f"{runner.url}/runner/v1/projects/alpha/endpoints/openapi.json")
    op = spec["paths"]["/runner/v1/projects/alpha/endpoints/hello"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["required"] == ["name"]
    status, body = await post(f"{runner.url}/runner/v1/projects/alpha/endpoints/nope", {})
    assert status == 404


async def test_async_callback(db_url: str, amqp_url: str, authz_url: str, tmp_path: Path) -> None:
    from aiohttp import web
    from runner_testkit.harness import serve, start_runner

    from ryax_kit.net import OutboundAllow

    received: asyncio.Queue[Any] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        received.put_nowait(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    hook_runner, hook_url = await serve(app)
    # The receiver listens on loopback: allowed as an administrator would (RYAX_OUTBOUND_ALLOW).
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "filestore",
        authz_url,
        outbound_allow=OutboundAllow.parse("127.0.0.1/32"),
    )
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=greet)
    await worker.start()
    try:
        await deployed(runner, amqp_url, simple_workflow())
        base = f"{runner.url}/runner/v1/projects/alpha/endpoints/hello"
        status, body = await post(f"{base}?mode=async&callback_url={hook_url}/hook", {"name": "cb"})
        assert status == 202
        payload = await asyncio.wait_for(received.get(), 5)
        assert payload["run_id"] == body["run_id"] and payload["state"] == "completed"
        assert payload["results"] == {"greeting": "hello cb"}
    finally:
        await worker.stop()
        await runner.stop()
        await hook_runner.cleanup()


async def test_fan_out_fan_in_and_chain(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    async def handler(step_id: str, inputs: dict[str, Value]) -> Any:
        if step_id == "split":
            return [{"out": f"{inputs['x']}-{i}"} for i in range(3)]
        if step_id == "join":
            return {"out": f"{inputs['a']}+{inputs['b']}"}
        return {"out": str(inputs["x"]).upper()}

    worker.handler = handler
    request = deploy_request(
        [
            step("t", kind="trigger", outputs=("x",)),
            step("split", parents=("t",), inputs={"x": ("ref", "t", "x")}),
            step("up", parents=("split",), inputs={"x": ("ref", "split", "out")}),
            step("other", parents=("t",), inputs={"x": ("ref", "t", "x")}),
            step(
                "join",
                parents=("up", "other"),
                inputs={"a": ("ref", "up", "out"), "b": ("ref", "other", "out")},
            ),
        ],
        workflow_name="fan",
        fields=[io("x")],
        results=[("r", "join", "out")],
    )
    await deployed(runner, amqp_url, request)
    status, body = await post(f"{runner.url}/runner/v1/projects/alpha/endpoints/fan", {"x": "v"})
    assert status == 200
    assert body == {"r": ["V-0+V", "V-1+V", "V-2+V"]}


async def test_retries_then_failure_and_cancel(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    calls = {"n": 0}
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> Any:
        if inputs.get("who") == "slow":
            await gate.wait()
            return {"greeting": "late"}
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("flaky")
        return {"greeting": "ok"}

    worker.handler = handler
    request = deploy_request(
        [
            step("trigger", kind="trigger", outputs=("name",)),
            step(
                "greet",
                parents=("trigger",),
                inputs={"who": ("ref", "trigger", "name")},
                outputs=("greeting",),
                retries=2,
            ),
        ],
        workflow_name="flaky",
        fields=[io("name")],
    )
    await deployed(runner, amqp_url, request)
    base = f"{runner.url}/runner/v1/projects/alpha/endpoints/flaky"
    status, body = await post(base, {"name": "x"})
    assert (status, body) == (200, {"greeting": "ok"})
    status, body = await post(base + "?mode=async", {"name": "slow"})
    run_id = body["run_id"]
    await until(lambda: worker.running)
    status, doc = await post(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}/cancel")
    assert status == 200 and doc["state"] == "cancelled" and "alice" in doc["reason"]
    await until(lambda: any(o.WhichOneof("message") == "cancel" for o in worker.orders))
    status, doc = await post(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}/cancel")
    assert status == 409
    gate.set()


async def test_heartbeat_loss_loses_executions_and_they_run_again_when_the_site_is_back(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    gate = asyncio.Event()

    async def stuck(step_id: str, inputs: dict[str, Value]) -> Any:
        await gate.wait()
        return {"greeting": "back"}

    worker.handler = stuck
    await deployed(runner, amqp_url, simple_workflow())
    base = f"{runner.url}/runner/v1/projects/alpha/endpoints/hello"
    _, body = await post(base + "?mode=async", {"name": "x"})
    run_url = f"{runner.url}/runner/v1/projects/alpha/runs/{body['run_id']}"
    await until(lambda: worker.running)
    [first] = worker.running
    worker.heartbeat = False  # cut off: the worker goes on with the execution
    started = time.monotonic()
    engine = runner.container.engine()

    async def lost() -> bool:
        _, doc = await get(run_url)
        return any(s["state"] == "lost" for s in doc["steps"])

    await until(lost, seconds=12)
    assert time.monotonic() - started <= 10
    _, doc = await get(run_url)
    assert doc["state"] == "running"  # the next attempt waits for a site
    [gone] = [s for s in doc["steps"] if s["state"] == "lost"]
    assert gone["execution_id"] == first and "worker lost" in gone["error"]
    _, sites = await get(f"{runner.url}/runner/v1/projects/alpha/sites")
    assert sites["sites"][0]["state"] == "offline"
    assert engine.deployments[next(iter(engine.deployments))].state == "waiting_for_site"

    # The partition ends: the worker, still running the lost attempt, is told to cancel it and
    # runs the next one.
    await worker.disconnect()
    worker.heartbeat = True
    await worker.start()
    await until(lambda: worker.running and first not in worker.running)
    gate.set()

    async def completed() -> bool:
        _, doc = await get(run_url)
        return bool(doc["state"] == "completed")

    await until(completed)
    _, doc = await get(run_url)
    attempts = [(s["attempt"], s["state"]) for s in doc["steps"] if not s["is_trigger"]]
    assert attempts == [(1, "lost"), (2, "completed")]
    again = doc["steps"][-1]
    assert (again["infra_retries"], again["retry_of"]) == (1, first)
    assert any(o.WhichOneof("message") == "cancel" for o in worker.orders)


async def test_trigger_new_run_and_crash(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    request = deploy_request(
        [
            step("clock", kind="trigger", outputs=("name",)),
            step(
                "greet",
                parents=("clock",),
                inputs={"who": ("ref", "clock", "name")},
                outputs=("greeting",),
            ),
        ],
        workflow_name="timer",
        http_endpoint=False,
    )
    deployment_id = await deployed(runner, amqp_url, request)
    worker.fire(deployment_id, "clock", {"name": "tick"})

    async def one_run() -> bool:
        _, page = await get(f"{runner.url}/runner/v1/projects/alpha/runs?state=completed")
        return len(page["runs"]) == 1

    await until(one_run)
    _, page = await get(f"{runner.url}/runner/v1/projects/alpha/runs")
    assert page["runs"][0]["results"] == {"greeting": "hello tick"}
    assert page["runs"][0]["origin"] == "trigger"
    worker.crash_step(deployment_id, "clock", "trigger process exited with code 1")
    engine = runner.container.engine()
    await until(lambda: engine.deployments[deployment_id].state == "failed")
    assert "exited with code 1" in engine.deployments[deployment_id].reason
    undeploy = spb.WorkflowUndeployRequested(
        event_id="u-1", deployment_id=deployment_id, project_id="proj-a"
    )
    await publish(amqp_url, undeploy)
    await until(lambda: deployment_id not in engine.deployments)
    await engine.durable()
    _, doc = await get(f"{runner.url}/runner/v1/projects/alpha/deployments/{deployment_id}")
    assert doc["state"] == "undeployed"


async def test_undeployed_endpoint_answers_409(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    request = simple_workflow()
    deployment_id = await deployed(runner, amqp_url, request)
    await publish(
        amqp_url,
        spb.WorkflowUndeployRequested(
            event_id="u-2", deployment_id=deployment_id, project_id="proj-a"
        ),
    )
    engine = runner.container.engine()
    await until(lambda: deployment_id not in engine.deployments)
    status, body = await post(
        f"{runner.url}/runner/v1/projects/alpha/endpoints/hello", {"name": "x"}
    )
    assert status == 409 and "not deployed" in body["detail"]


async def test_cross_project_access(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    await deployed(runner, amqp_url, simple_workflow())
    _, body = await post(
        f"{runner.url}/runner/v1/projects/alpha/endpoints/hello?mode=async", {"name": "x"}
    )
    run_id = body["run_id"]
    _, dep = await get(f"{runner.url}/runner/v1/projects/alpha/deployments")
    deployment_id = dep["deployments"][0]["id"]
    bob = {"Authorization": "Bearer token-bob"}
    for project in ("alpha", "proj-a"):
        base = f"{runner.url}/runner/v1/projects/{project}"
        for path in (
            "/deployments",
            f"/deployments/{deployment_id}",
            f"/deployments/{deployment_id}/logs",
            "/runs",
            f"/runs/{run_id}",
            f"/runs/{run_id}/logs",
            f"/runs/{run_id}/logs/stream",
            f"/runs/{run_id}/files/runs/x",
            "/sites",
            "/endpoints/openapi.json",
        ):
            status, _ = await get(base + path, headers=bob)
            assert status in (403, 404), (path, status)
        for path in ("/endpoints/hello", f"/runs/{run_id}/cancel"):
            status, _ = await post(base + path, {"name": "x"}, headers=bob)
            assert status in (403, 404), (path, status)
    # Bob's own project does not see Alice's objects.
    base = f"{runner.url}/runner/v1/projects/beta"
    for path in (f"/deployments/{deployment_id}", f"/runs/{run_id}", f"/runs/{run_id}/logs"):
        status, _ = await get(base + path, headers=bob)
        assert status == 404, path
    status, _ = await post(base + "/endpoints/hello", {"name": "x"}, headers=bob)
    assert status == 404
    status, _ = await post(base + f"/runs/{run_id}/cancel", headers=bob)
    assert status == 404


async def test_a_sync_call_that_times_out_names_a_recorded_run(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> Any:
        await gate.wait()
        return {"greeting": "late"}

    worker.handler = handler
    await deployed(runner, amqp_url, simple_workflow())
    base = f"{runner.url}/runner/v1/projects/alpha/endpoints/hello"
    status, body = await post(base + "?timeout=0", {"name": "slow"})
    assert status == 504 and body["error"] == "timeout", body
    # Its step left before the run's first commit (an unannounced run); the answer that names
    # the run waited for it: the run is there at once.
    status, doc = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{body['run_id']}")
    assert status == 200 and doc["state"] in ("pending", "running"), doc
    gate.set()

    async def done() -> bool:
        _, doc = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{body['run_id']}")
        return bool(doc["state"] == "completed")

    await until(done)
