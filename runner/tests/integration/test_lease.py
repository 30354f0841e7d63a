"""One runner at a time over one database: a second runner answers /healthz but is not ready
(`leader: false`) and starts nothing (no engine, consumer nor gRPC server) until the first
stops; then it takes over and restores the runs. A runner whose lease connection is lost stops
at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, publish, start_runner

from ryax_runner.app import LEASE_LOST_EXIT
from ryax_runner.domain.values import Value

from .test_resume import run_state, start_async, two_steps, until, wait_deployed

pytestmark = pytest.mark.integration
FAST = {"heartbeat_interval_seconds": 0.5, "heartbeat_timeout_seconds": 3.0}


async def readiness(runner: RunningRunner) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(runner.url + "/runner/readyz") as r:
        return r.status, (await r.json())["checks"]


async def health(runner: RunningRunner) -> int:
    async with aiohttp.ClientSession() as s, s.get(runner.url + "/healthz") as r:
        return r.status


async def test_only_one_runner_drives_and_the_second_takes_over_when_the_first_stops(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    first = await start_runner(db_url, amqp_url, tmp_path / "fs", authz_url, **FAST)
    second = await start_runner(db_url, amqp_url, tmp_path / "fs", authz_url, wait=False, **FAST)
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        if step_id == "a":
            await gate.wait()
        return {"out": f"{inputs['x']}{step_id}"}

    worker = FakeWorker(first.grpc_address, credential=await first.credential(), handler=handler)
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(first, request.deployment_id)
    run_id = await start_async(first, "two", {"x": "v"})
    await until(lambda: worker.running)

    await asyncio.sleep(1.5)  # the second runner tried the lease more than once
    status, checks = await readiness(first)
    assert status == 200 and checks["leader"] is True
    status, checks = await readiness(second)
    assert status == 503 and checks["leader"] is False and checks["started"] is False
    assert await health(second) == 200
    assert second.container.grpc_server().port == 0  # not serving workers
    assert not second.container.engine().deployments  # the engine is not started
    assert not second.container.broker().is_connected  # nor the consumer
    with pytest.raises(aiohttp.ClientConnectorError):  # nobody listens on its gRPC port
        async with aiohttp.ClientSession() as s:
            await s.get("http://" + second.grpc_address)

    await first.stop()  # releases the lease once everything is committed
    await worker.disconnect()
    await second.started(10)
    status, checks = await readiness(second)
    assert status == 200 and checks["leader"] is True
    assert run_id in second.container.engine().runs  # restored from the record
    worker.address = second.grpc_address
    await worker.start()
    gate.set()

    async def completed() -> bool:
        return (await run_state(second, run_id))["state"] == "completed"

    await until(completed)
    assert (await run_state(second, run_id))["results"] == {"r": "vab"}
    await worker.stop()
    await second.stop()
    assert first.exits == [] and second.exits == []


async def test_a_runner_that_loses_its_lease_connection_stops_at_once(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    runner = await start_runner(db_url, amqp_url, tmp_path / "fs", authz_url, **FAST)
    lease = runner.container.lease()
    admin = await asyncpg.connect(db_url.dsn)  # type: ignore[attr-defined]
    try:
        await admin.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            lease.identity,
        )
    finally:
        await admin.close()
    await until(lambda: runner.exits, 10)
    [(reason, status)] = runner.exits
    assert status == LEASE_LOST_EXIT and "lease lost" in reason
    await runner.stop()
