"""Requests the OpenAPI fuzzing (tests/fuzz) found answered with a 500, or never: each is a 400
naming what is wrong, and the runner still serves."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, io, publish, step

from ryax_runner.domain.values import Value

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer token-alice"}


async def echo(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    return {"out": inputs.get("x")}


async def deployed(runner: RunningRunner, amqp_url: str) -> None:
    request = deploy_request(
        [
            step("trigger", kind="trigger", outputs=("name",)),
            step("echo", parents=("trigger",), inputs={"x": ("ref", "trigger", "name")}),
        ],
        workflow_name="hello",
        fields=[io("name")],
        results=[("out", "echo", "out")],
    )
    await publish(amqp_url, request)
    engine = runner.container.engine()
    deadline = time.monotonic() + 10
    while not (
        request.deployment_id in engine.deployments
        and engine.deployments[request.deployment_id].state == "deployed"
    ):
        assert time.monotonic() < deadline, "the workflow was not deployed in time"
        await asyncio.sleep(0.02)
    await engine.durable()


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=AUTH) as r:
        return r.status, await r.json(content_type=None)


async def call(url: str, **kwargs: object) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, **kwargs, timeout=aiohttp.ClientTimeout(total=10)) as r,  # type: ignore[arg-type]
    ):
        return r.status, await r.json(content_type=None)


async def test_bad_query_values_and_unreadable_multipart_bodies_are_400s(
    runner: RunningRunner, amqp_url: str
) -> None:
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=echo)
    await worker.start()
    try:
        await deployed(runner, amqp_url)
        base = f"{runner.url}/runner/v1/projects/alpha/endpoints/hello"
        # ?timeout=nan was taken as a timeout that never fires (nor compares): the call hung.
        for timeout in ("nan", "inf", "-1", "soon"):
            status, body = await call(f"{base}?timeout={timeout}", json={"name": "a"}, headers=AUTH)
            assert status == 400, (timeout, body)
            assert body["detail"].startswith("timeout:"), body
        # A multipart body aiohttp cannot split (no boundary, a part's headers garbled): a 500.
        garbled = b"--b\r\nContent-Disposition: form-data; name\r\n\x00\r\n\r\nx\r\n--b--\r\n"
        for content_type, data, field in (
            ("multipart/form-data", b"--x\r\n\r\n", "Content-Type"),
            ("multipart/form-data; boundary=b", garbled, "body"),
        ):
            headers = {**AUTH, "Content-Type": content_type}
            status, body = await call(base, data=data, headers=headers)
            assert status == 400, (content_type, body)
            assert body["detail"].startswith(f"{field}: not a readable multipart body"), body
        status, body = await call(f"{base}?timeout=5", json={"name": "a"}, headers=AUTH)
        assert (status, body) == (200, {"out": "a"})

        project = f"{runner.url}/runner/v1/projects/alpha"
        _, page = await get(f"{project}/runs")
        logs = f"{project}/runs/{page['runs'][0]['id']}/logs"
        # A line id past PostgreSQL's BIGINT: a 500.
        for after_id in (2**63, -(2**63) - 1, 52970928769188965122048):
            status, body = await get(f"{logs}?after_id={after_id}")
            assert status == 400, (after_id, body)
            assert body["detail"] == "after_id: out of range (a 64-bit integer)"
        assert (await get(f"{logs}?after_id={2**63 - 1}"))[0] == 200
        # A NUL in a filter reached PostgreSQL, which refuses it in text: a 500.
        for query in ("state=%00", "workflow_id=a%00b"):
            status, body = await get(f"{project}/deployments?{query}")
            assert status == 400, (query, body)
            assert "a NUL character in a query parameter" in body["detail"], body
    finally:
        await worker.stop()
