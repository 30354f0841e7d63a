"""The runner's security suite, through its real edges (HTTP, gRPC, PostgreSQL, RabbitMQ):
- a secret and a password reach their step, fetched from the studio's internal route, and are
  nowhere else: not in any row of the runner's database, not in a message, not in its logs, not
  in its API answers (`***`);
- callback URLs on internal addresses refused (loopback, 10/8, cloud metadata, IPv6 unique-local,
  a name resolving to loopback), checked again at delivery (DNS rebinding), redirects not
  followed;
- bodies over their route's limit refused with 413 (every route family), naming the limit;
- a fan-out bomb fails its step, saying why."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import (
    SECRET,
    FakeStudio,
    RunningRunner,
    deploy_request,
    io,
    publish,
    serve,
    start_runner,
    step,
)

from ryax_kit.crypto import KeyRing
from ryax_kit.net import OutboundAllow
from ryax_kit.reseal import reseal_all
from ryax_runner.domain.values import Value
from ryax_runner.infrastructure.api.endpoints import ENDPOINT_SETTINGS
from ryax_runner.infrastructure.database.tables import metadata, run_callbacks
from ryax_runner.infrastructure.proto import studio_events_pb2 as spb
from ryax_runner.reseal import columns

from .test_flow import AUTH, get, post, until

pytestmark = pytest.mark.integration

SECRET_VALUE = "s3cr3t-api-key-0f8e"
PASSWORD_VALUE = "hunter2-default-pw-77"
FIELD_PASSWORD = "typed-at-the-endpoint-pw-42"


@pytest.fixture
async def studio() -> AsyncIterator[tuple[FakeStudio, str]]:
    fake = FakeStudio()
    runner, url = await serve(fake.app())
    yield fake, url
    await runner.cleanup()


async def start(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, studio_url: str, **kw: Any
) -> RunningRunner:
    return await start_runner(
        db_url,
        amqp_url,
        tmp_path / "filestore",
        authz_url,
        studio_url=studio_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=2.0,
        retry_backoff_seconds=0.05,
        **kw,
    )


async def deployed(runner: RunningRunner, amqp_url: str, request: Any) -> None:
    await publish(amqp_url, request)
    engine = runner.container.engine()
    await until(
        lambda: (
            request.deployment_id in engine.deployments
            and engine.deployments[request.deployment_id].state == "deployed"
        )
    )
    await engine.durable()


def vault_workflow(name: str = "vault") -> spb.WorkflowDeployRequested:
    """An endpoint (fields `name`, and `token` typed password) -> `use` (a secret and the
    default of a password input, neither in the event)."""
    return deploy_request(
        [
            step("trigger", kind="trigger", outputs=("name", "token")),
            step(
                "use",
                parents=("trigger",),
                inputs={
                    "who": ("ref", "trigger", "name"),
                    "key": ("secret", "api-key"),
                    "pw": ("sensitive",),
                },
                input_types={"pw": "password"},
                outputs=("out",),
            ),
        ],
        workflow_name=name,
        fields=[io("name"), io("token", "password")],
        results=[("out", "use", "out")],
    )


async def database_text(runner: RunningRunner) -> str:
    """Every row of every table of the runner's database, as text."""
    parts = []
    async with runner.container.db().connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(sa.select(table))).all():
                parts.append(repr(tuple(row)))
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).decode("utf-8", "replace"))
    return "\n".join(parts)


async def test_security_a_secret_reaches_its_step_and_nothing_else(
    db_url: str,
    amqp_url: str,
    authz_url: str,
    tmp_path: Path,
    studio: tuple[FakeStudio, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_studio, studio_url = studio
    runner = await start(db_url, amqp_url, authz_url, tmp_path, studio_url)
    received: list[dict[str, Value]] = []

    async def use(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        received.append(inputs)
        return {"out": f"used by {inputs['who']}"}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=use)
    await worker.start()
    # A copy of every message on the studio's exchange, as the broker holds them.
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "ryax.studio", aio_pika.ExchangeType.TOPIC, durable=True
    )
    copies = await channel.declare_queue("", exclusive=True)
    await copies.bind(exchange, "#")
    try:
        request = vault_workflow()
        fake_studio.values[request.deployment_id] = {
            ("use", "key"): SECRET_VALUE,
            ("use", "pw"): PASSWORD_VALUE,
        }
        await deployed(runner, amqp_url, request)
        [(asked, auth)] = fake_studio.calls  # once, with the service credential
        assert asked == request.deployment_id and auth.startswith("Bearer internal-token-")

        status, body = await post(
            f"{runner.url}/runner/v1/projects/alpha/endpoints/vault",
            {"name": "ann", "token": FIELD_PASSWORD},
        )
        assert status == 200 and body == {"out": "used by ann"}
        # The step got its secret and its password.
        [inputs] = received
        assert inputs["key"] == SECRET_VALUE and inputs["pw"] == PASSWORD_VALUE

        # The API shows them masked.
        status, runs = await get(f"{runner.url}/runner/v1/projects/alpha/runs")
        [summary] = runs["runs"]
        status, run = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{summary['id']}")
        shown = json.dumps(run)
        by_step = {e["step_id"]: e for e in run["steps"]}
        assert by_step["use"]["inputs"]["key"] == "***"
        assert by_step["use"]["inputs"]["pw"] == "***"
        assert by_step["trigger"]["outputs"] == {"name": "ann", "token": "***"}
        status, deployment = await get(
            f"{runner.url}/runner/v1/projects/alpha/deployments/{request.deployment_id}"
        )
        shown += json.dumps(deployment)

        # The message on the broker, the database rows, the logs: no value in clear.
        message = await copies.get(timeout=5)
        await message.ack()
        await runner.container.engine().durable()
        stored = await database_text(runner)
        assert "ann" in stored  # the rows are there, in clear where nothing is secret
        for value in (SECRET_VALUE, PASSWORD_VALUE, FIELD_PASSWORD):
            assert value.encode() not in message.body
            assert value not in stored, f"{value} in the runner's database"
            assert value not in caplog.text, f"{value} in the logs"
            assert value not in shown, f"{value} in an API answer"
        # Nothing dead-lettered.
        dead = await channel.declare_queue("runner.events.dead-letter", passive=True)
        assert dead.declaration_result.message_count == 0
        # A key rotation seals them again (python -m ryax_runner.reseal).
        reports = await reseal_all(db_url, columns(KeyRing(["n" * 40, SECRET])))
        resealed = {r.column: r.resealed for r in reports}
        assert not any(r.unreadable for r in reports)
        assert resealed["deployments.definition"] == 1 and resealed["executions.outputs"] == 1
    finally:
        await connection.close()
        await worker.stop()
        await runner.stop()


async def test_security_the_studio_down_delays_the_deployment_it_does_not_lose_it(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, studio: tuple[FakeStudio, str]
) -> None:
    fake_studio, studio_url = studio
    fake_studio.status = 503
    runner = await start(db_url, amqp_url, authz_url, tmp_path, studio_url)
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential())
    await worker.start()
    try:
        request = vault_workflow()
        fake_studio.values[request.deployment_id] = {("use", "key"): "k", ("use", "pw"): "p"}
        await publish(amqp_url, request)
        await until(lambda: len(fake_studio.calls) >= 2)  # tried again
        assert request.deployment_id not in runner.container.engine().deployments
        fake_studio.status = 200
        await until(
            lambda: request.deployment_id in runner.container.engine().deployments, seconds=15
        )
    finally:
        await worker.stop()
        await runner.stop()


# -- callbacks (SSRF) ---------------------------------------------------------------------------


class Names:
    """A resolver for the test's names (the system's resolves only real ones)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int) -> list[str]:
        from ryax_kit.net import OutboundRefused

        if host not in self.table:
            raise OutboundRefused(f"the host {host} cannot be resolved")
        return self.table[host]


def two(name: str = "two") -> spb.WorkflowDeployRequested:
    return deploy_request(
        [
            step("trigger", kind="trigger", outputs=("x",)),
            step("a", parents=("trigger",), inputs={"x": ("ref", "trigger", "x")}),
        ],
        workflow_name=name,
        fields=[io("x")],
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8104/runner/healthz", "loopback"),
        ("http://localhost:8104/", "loopback"),  # a name resolving to 127.0.0.1
        ("http://10.1.2.3/hook", "private address (10.0.0.0/8)"),
        ("http://169.254.169.254/latest/meta-data/iam/", "cloud metadata"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("http://[fd12:3456::1]/hook", "unique-local"),
        ("http://[::ffff:192.168.0.1]/hook", "private address"),
        ("http://rebind.test/hook", "resolves to 127.0.0.1"),
        ("file:///etc/passwd", "must be http or https"),
    ],
)
async def test_security_callback_urls_on_internal_addresses_are_refused(
    runner: RunningRunner, amqp_url: str, url: str, says: str
) -> None:
    if "rebind.test" in url:  # else the system's resolver (localhost is 127.0.0.1)
        names = Names({"rebind.test": ["93.184.216.34", "127.0.0.1"]})
        runner.app[ENDPOINT_SETTINGS]["outbound_resolver"] = names
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential())
    await worker.start()
    try:
        await deployed(runner, amqp_url, two())
        status, body = await post(
            f"{runner.url}/runner/v1/projects/alpha/endpoints/two?mode=async",
            {"x": "v"},
            params={"callback_url": url},
        )
        assert status == 400, body
        assert body["error"] == "invalid_input" and says in body["detail"]
        assert "callback_url" in body["detail"]
        async with runner.container.db().connect() as conn:
            assert (await conn.execute(sa.select(run_callbacks))).all() == []
        assert not runner.container.engine().runs  # no run was started
    finally:
        await worker.stop()


async def test_security_a_callback_is_checked_again_at_delivery_and_never_redirected(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, studio: tuple[FakeStudio, str]
) -> None:
    hits: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/redirect":
            raise web.HTTPFound("/stolen")
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{any}", hook)
    receiver, receiver_url = await serve(app)
    runner = await start(
        db_url,
        amqp_url,
        authz_url,
        tmp_path,
        studio[1],
        outbound_allow=OutboundAllow.parse("127.0.0.1/32"),  # the receiver, allowed
        callback_backoff_seconds=0.05,
    )
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential())
    await worker.start()
    try:
        await deployed(runner, amqp_url, two())
        endpoint = f"{runner.url}/runner/v1/projects/alpha/endpoints/two?mode=async"
        # 1. A redirect is a delivery (recorded with its status), never followed.
        status, body = await post(
            endpoint, {"x": "v"}, params={"callback_url": receiver_url + "/redirect"}
        )
        assert status == 202, body
        redirected = body["run_id"]
        # 2. A name public when called, internal when delivered (DNS rebinding): abandoned.
        runner.app[ENDPOINT_SETTINGS]["outbound_resolver"] = Names(
            {"hooks.test": ["93.184.216.34"]}
        )
        runner.container.callbacks().resolver = Names({"hooks.test": ["127.0.0.2"]})
        status, body = await post(
            endpoint, {"x": "v"}, params={"callback_url": "http://hooks.test/x"}
        )
        assert status == 202, body
        rebound = body["run_id"]

        async def states() -> dict[str, tuple[str, str]]:
            async with runner.container.db().connect() as conn:
                rows = (await conn.execute(sa.select(run_callbacks))).all()
            return {r.run_id: (r.state, r.last_error) for r in rows}

        async def settled() -> bool:
            found = await states()
            return all(found.get(r, ("pending",))[0] != "pending" for r in (redirected, rebound))

        await until(settled, seconds=15)
        found = await states()
        assert found[redirected] == ("delivered", "HTTP 302 (redirects are not followed)")
        assert found[rebound][0] == "abandoned"
        assert "resolves to 127.0.0.2, which is a loopback" in found[rebound][1]
        assert hits == ["/redirect"]  # /stolen never called
    finally:
        await worker.stop()
        await runner.stop()
        await receiver.cleanup()


# -- bodies ---------------------------------------------------------------------------------------


async def _until_no_run_files(root: Path, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while left := [p for p in (root / "runs").rglob("*") if p.is_file()]:
        assert asyncio.get_running_loop().time() < deadline, f"files left: {left}"
        await asyncio.sleep(0.05)


async def test_security_oversize_bodies_are_refused_on_every_route_family(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, studio: tuple[FakeStudio, str]
) -> None:
    runner = await start(
        db_url,
        amqp_url,
        authz_url,
        tmp_path,
        studio[1],
        max_json_bytes=4096,
        max_upload_bytes=10_000,
        max_upload_total_bytes=25_000,
    )
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential())
    await worker.start()
    request = deploy_request(
        [
            step("trigger", kind="trigger", outputs=("x", "f", "g", "h")),
            step("a", parents=("trigger",), inputs={"x": ("ref", "trigger", "x")}),
        ],
        workflow_name="up",
        fields=[io("x"), *(io(f, "file", optional=True) for f in ("f", "g", "h"))],
    )
    base = f"{runner.url}/runner/v1/projects/alpha"
    endpoint = f"{base}/endpoints/up"

    async def send(url: str, method: str = "POST", **kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession(headers=AUTH) as s, s.request(method, url, **kw) as r:
            return r.status, await r.json(content_type=None)

    try:
        await deployed(runner, amqp_url, request)
        # The endpoint: a JSON body over RYAX_RUNNER_MAX_JSON_BYTES.
        status, body = await send(endpoint, json={"x": "y" * 5000})
        assert status == 413 and "4096 bytes" in body["detail"], body
        # ... a url-encoded one.
        status, body = await send(endpoint, data={"x": "y" * 5000})
        assert status == 413, body
        # ... a file over RYAX_RUNNER_MAX_UPLOAD_BYTES, streamed (never held whole).
        form = aiohttp.FormData()
        form.add_field("x", "v")
        form.add_field("f", b"z" * 12_000, filename="big.bin")
        status, body = await send(endpoint, data=form)
        assert status == 413 and "RYAX_RUNNER_MAX_UPLOAD_BYTES" in body["detail"], body
        assert "file field `f`" in body["detail"]
        # ... files each within it, together over RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES.
        form = aiohttp.FormData()
        for name in ("f", "g", "h"):
            form.add_field(name, b"z" * 9_000, filename=f"{name}.bin")
        status, body = await send(endpoint, data=form)
        assert status == 413 and "RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES" in body["detail"], body
        # ... and a file within the limits, but the required `x` missing: a 400.
        form = aiohttp.FormData()
        form.add_field("f", b"z" * 9_000, filename="f.bin")
        status, body = await send(endpoint, data=form)
        assert status == 400 and "x" in body["detail"], body
        # The file that refused request had stored already is deleted: no run refers to it.
        # (The one over the total was refused by its Content-Length, before any was stored.)
        await _until_no_run_files(tmp_path / "filestore")
        # ... the same files, within the limits: a run.
        form = aiohttp.FormData()
        form.add_field("x", "v")
        form.add_field("f", b"z" * 9_000, filename="f.bin")
        status, body = await send(endpoint, data=form)
        assert status == 200, body
        # Every other route takes no body: 413 over 64 KiB, before its handler runs.
        big = b"{" + b" " * 70_000 + b"}"
        for method, url in (
            ("GET", f"{base}/runs"),
            ("GET", f"{base}/deployments"),
            ("POST", f"{base}/runs/00000000-0000-0000-0000-000000000000/cancel"),
            ("GET", f"{base}/sites"),
            ("GET", f"{base}/endpoints/openapi.json"),
            ("GET", f"{runner.url}/runner/openapi.json"),
            ("GET", f"{runner.url}/healthz"),
        ):
            status, body = await send(url, method, data=big)
            assert status == 413, (method, url, body)
            assert "65536 bytes" in body["detail"]
    finally:
        await worker.stop()
        await runner.stop()


# -- fan-out --------------------------------------------------------------------------------------


async def test_security_a_fan_out_bomb_is_refused(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, studio: tuple[FakeStudio, str]
) -> None:
    runner = await start(db_url, amqp_url, authz_url, tmp_path, studio[1], max_fanout=100)
    children: list[str] = []

    async def bomb(step_id: str, inputs: dict[str, Value]) -> Any:
        if step_id == "bomb":
            return [{"o": str(i)} for i in range(int(str(inputs["n"])))]
        children.append(step_id)
        return {"o": "child"}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=bomb)
    await worker.start()
    request = deploy_request(
        [
            step("trigger", kind="trigger", outputs=("n",)),
            step(
                "bomb",
                parents=("trigger",),
                inputs={"n": ("ref", "trigger", "n")},
                outputs=("o",),
                retries=3,
            ),
            step("child", parents=("bomb",), inputs={"x": ("ref", "bomb", "o")}),
        ],
        workflow_name="bomb",
        fields=[io("n", "integer")],
    )
    try:
        await deployed(runner, amqp_url, request)
        endpoint = f"{runner.url}/runner/v1/projects/alpha/endpoints/bomb"
        status, body = await post(endpoint, {"n": 3})
        assert status == 200 and len(children) == 3
        children.clear()
        status, body = await post(endpoint, {"n": 101})
        assert status == 500 and body["error"] == "run_failed" and body["step_id"] == "bomb"
        assert "list of 101 elements: more than the fan-out limit of 100" in body["detail"]
        assert children == []
        _, run = await get(f"{runner.url}/runner/v1/projects/alpha/runs/{body['run_id']}")
        attempts = [e for e in run["steps"] if e["step_id"] == "bomb"]
        assert len(attempts) == 1  # not retried: it would fan out as wide again
    finally:
        await worker.stop()
        await runner.stop()
