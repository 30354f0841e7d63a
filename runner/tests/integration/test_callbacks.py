"""Durable callbacks against a real local HTTP receiver: recorded with the run, delivered once
the run ended, retried with backoff, delivered after a runner restart when every attempt
before it failed, never twice once delivered, abandoned after the last attempt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, publish, serve, start_runner
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_kit.net import OutboundAllow
from ryax_runner.domain.values import Value

from .test_resume import AUTH, two_steps, until, wait_deployed

pytestmark = pytest.mark.integration
#: The receivers here listen on loopback: allowed as an administrator would
#: (RYAX_OUTBOUND_ALLOW); test_security.py shows it refused by default.
RECEIVER = OutboundAllow.parse("127.0.0.1/32")


class Receiver:
    """A local HTTP server answering `status` to every POST, keeping what it received."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[int, dict[str, Any]]] = []

    async def start(self) -> str:
        async def hook(request: web.Request) -> web.Response:
            self.received.append((self.status, await request.json()))
            return web.Response(status=self.status)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner, url = await serve(app)
        return url + "/hook"

    async def stop(self) -> None:
        await self._runner.cleanup()


async def callback_row(db_url: str, run_id: str) -> Any:
    db = create_async_engine(db_url)
    async with db.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT * FROM run_callbacks WHERE run_id = :r"), {"r": run_id}
            )
        ).first()
    await db.dispose()
    return row


async def start_with_callback(runner: RunningRunner, hook: str) -> str:
    url = f"{runner.url}/runner/v1/projects/alpha/endpoints/two?mode=async"
    async with (
        aiohttp.ClientSession(headers={**AUTH, "Ryax-Callback-Url": hook}) as s,
        s.post(url, json={"x": "v"}) as r,
    ):
        assert r.status == 202, await r.text()
        run_id: str = (await r.json())["run_id"]
        return run_id


async def echo(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    return {"out": f"{inputs['x']}{step_id}"}


async def test_a_callback_that_failed_is_delivered_after_a_runner_restart_once(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    hook = await receiver.start()
    receiver.status = 503  # the receiver is down for now
    settings = {"callback_backoff_seconds": 0.2, "callback_attempts": 10}
    runner = await start_runner(
        db_url, amqp_url, tmp_path / "fs", authz_url, outbound_allow=RECEIVER, **settings
    )
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=echo)
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    run_id = await start_with_callback(runner, hook)
    await until(lambda: len(receiver.received) >= 2)  # tried, and tried again
    port = int(runner.grpc_address.rsplit(":", 1)[1])
    await worker.stop()
    await runner.stop()
    tried = len(receiver.received)
    row = await callback_row(db_url, run_id)
    assert row.state == "pending" and row.attempts == tried and row.last_error == "HTTP 503"

    receiver.status = 200  # back, while no runner runs
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        outbound_allow=RECEIVER,
        grpc_port=port,
        **settings,
    )
    await until(lambda: receiver.received[-1][0] == 200, 10)
    _, payload = receiver.received[-1]
    assert payload == {
        "run_id": run_id,
        "state": "completed",
        "reason": None,
        "results": {"r": "vab"},
        "http_status": None,
        "failed_step_id": None,
    }
    row = await callback_row(db_url, run_id)
    assert row.state == "delivered" and row.delivered_at is not None
    assert row.attempts == tried + 1
    runner.container.callbacks().wake()
    await asyncio.sleep(0.5)
    assert [s for s, _ in receiver.received].count(200) == 1  # never twice
    await runner.stop()
    await receiver.stop()


async def test_a_callback_is_abandoned_after_its_last_attempt(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    hook = await receiver.start()
    receiver.status = 500
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        outbound_allow=RECEIVER,
        callback_backoff_seconds=0.05,
        callback_attempts=3,
    )
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=echo)
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    run_id = await start_with_callback(runner, hook)

    async def abandoned() -> bool:
        row = await callback_row(db_url, run_id)
        return row is not None and row.state == "abandoned"

    await until(abandoned, 10)
    assert len(receiver.received) == 3
    await worker.stop()
    await runner.stop()
    await receiver.stop()


async def test_a_callback_url_that_is_not_http_is_refused(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    runner = await start_runner(
        db_url, amqp_url, tmp_path / "fs", authz_url, outbound_allow=RECEIVER
    )
    request = two_steps()
    await publish(amqp_url, request)
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=echo)
    await worker.start()
    await wait_deployed(runner, request.deployment_id)
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bearer token-alice"}) as s,
        s.post(
            f"{runner.url}/runner/v1/projects/alpha/endpoints/two?mode=async"
            "&callback_url=file:///etc/passwd",
            json={"x": "v"},
        ) as r,
    ):
        assert r.status == 400 and "callback_url" in (await r.json())["detail"]
    await worker.stop()
    await runner.stop()
