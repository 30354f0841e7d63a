"""The built-in timer triggers against PostgreSQL and RabbitMQ: an emitgw and a crongw
workflow deployed through a studio event, fired by the runner itself, across runner restarts:
a due time missed while the runner was down is fired once, late; none twice, none skipped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, io, publish, start_runner, step
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_runner.infrastructure.proto import studio_events_pb2 as spb

pytestmark = pytest.mark.integration
TIMER_OUTPUTS = ("scheduled_at", "late_seconds", "missed")


async def until(predicate: Any, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def timer_request(builtin: str, name: str, **values: Any) -> spb.WorkflowDeployRequested:
    tick = step(
        "tick",
        kind="trigger",
        inputs=values,
        input_types={"time": "integer"},
        outputs=(),
    )
    tick.action_id, tick.artefact_key, tick.artefact_sha256 = builtin, "", ""
    tick.outputs.extend([io("scheduled_at"), io("late_seconds", "float"), io("missed", "integer")])
    request = deploy_request(
        [tick, step("a", parents=("tick",), inputs={"x": ("ref", "tick", "scheduled_at")})],
        workflow_name=name,
        http_endpoint=False,
        fields=[io("scheduled_at"), io("late_seconds", "float"), io("missed", "integer")],
    )
    request.snapshot.trigger.builtin = builtin
    return request


async def start(db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, port: int = 0) -> Any:
    return await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        grpc_port=port or None,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
        timer_tick_seconds=0.1,
    )


async def fires(db_url: str, deployment_id: str) -> list[dict[str, Any]]:
    """The timer's runs, by due time: their trigger outputs."""
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT r.id, r.origin, e.outputs FROM runs r JOIN executions e "
                    "ON e.run_id = r.id AND e.is_trigger WHERE r.deployment_id = :d"
                ),
                {"d": deployment_id},
            )
        ).all()
    await engine.dispose()
    found = [{"run_id": r.id, "origin": r.origin, **r.outputs} for r in rows]
    return sorted(found, key=lambda f: f["scheduled_at"])


async def sql(db_url: str, statement: str, **params: Any) -> Any:
    engine = create_async_engine(db_url)
    async with engine.begin() as conn:
        result = (await conn.execute(sa.text(statement), params)).all()
    await engine.dispose()
    return result


async def deployed(runner: RunningRunner, amqp_url: str, request: Any) -> None:
    await publish(amqp_url, request)
    engine = runner.container.engine()
    await until(
        lambda: (
            request.deployment_id in engine.deployments
            and engine.deployments[request.deployment_id].state == "deployed"
        )
    )


async def test_emitgw_fires_across_a_restart_once_late_without_double_or_skip(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    runner = await start(db_url, amqp_url, authz_url, tmp_path)
    port = int(runner.grpc_address.rsplit(":", 1)[1])
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential())
    await worker.start()
    request = timer_request("emitgw", "every", time=1)
    await deployed(runner, amqp_url, request)
    d = request.deployment_id
    await until(lambda: _count(db_url, d, 2), 6)
    await runner.stop()  # SIGTERM: the scheduler stops first, everything committed
    await worker.disconnect()
    before = await fires(db_url, d)
    await asyncio.sleep(2.5)  # down for two due times at least
    runner = await start(db_url, amqp_url, authz_url, tmp_path, port)
    await worker.start()
    await until(lambda: _count(db_url, d, len(before) + 2), 6)
    async with aiohttp.ClientSession() as s, s.get(runner.url + "/metrics") as r:
        metrics = await r.text()
    assert "ryax_runner_timers 1.0" in metrics
    assert "ryax_runner_timer_late_fires_total 1.0" in metrics  # the outage, once
    await runner.stop()
    await worker.stop()

    found = await fires(db_url, d)
    assert all(f["origin"] == "timer" for f in found)
    due = [datetime.fromisoformat(f["scheduled_at"]) for f in found]
    assert len(set(due)) == len(due) == len({f["run_id"] for f in found})  # no double fire
    # No skip: each run's due time follows the previous one by one interval, plus the due
    # times it folded in (`missed`).
    for previous, current, fire in zip(due, due[1:], found, strict=False):
        assert current - previous == timedelta(seconds=1 + fire["missed"]), found
    late = found[len(before)]
    assert late["missed"] >= 2 and late["late_seconds"] >= 2.0, found
    assert sum(f["missed"] for f in found) == late["missed"]  # only the outage was folded
    [(next_fire_at, fires_count)] = await sql(
        db_url, "SELECT next_fire_at, fires FROM timers WHERE deployment_id = :d", d=d
    )
    assert fires_count == len(found) and next_fire_at > due[-1]


async def _count(db_url: str, deployment_id: str, at_least: int) -> bool:
    return len(await fires(db_url, deployment_id)) >= at_least


async def test_crongw_misfire_and_a_fire_recorded_before_a_crash_across_restarts(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    runner = await start(db_url, amqp_url, authz_url, tmp_path)
    port = int(runner.grpc_address.rsplit(":", 1)[1])
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential())
    await worker.start()
    request = timer_request("crongw", "cron", cron="* * * * *", timezone="Europe/Paris")
    await deployed(runner, amqp_url, request)
    d = request.deployment_id
    await until(lambda: _timer_row(db_url, d))
    await runner.stop()
    await worker.disconnect()
    # As if the runner had been down for three minutes: the due time 3 minutes ago and the
    # three after it (the last one this minute's) passed.
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    missed_from = minute - timedelta(minutes=3)
    await sql(
        db_url,
        "UPDATE timers SET next_fire_at = :t, anchor_at = :t WHERE deployment_id = :d RETURNING 1",
        t=missed_from,
        d=d,
    )
    runner = await start(db_url, amqp_url, authz_url, tmp_path, port)
    await worker.start()
    await until(lambda: _count(db_url, d, 1))
    [late] = await fires(db_url, d)
    assert datetime.fromisoformat(late["scheduled_at"]) == missed_from
    assert late["scheduled_at"].endswith(("+01:00", "+02:00"))  # in the trigger's zone
    # Folded: the due times after the first one up to the fire, one a minute. At least the
    # three up to `minute`; more if the (loaded) machine crossed another minute boundary before
    # the runner fired, which `late_seconds` tells (rounded to the millisecond).
    whole_minutes = {int((late["late_seconds"] + e) // 60) for e in (-0.001, 0.001)}
    assert late["missed"] >= 3 and late["missed"] in whole_minutes, late
    [(next_fire_at, last_run_id)] = await sql(
        db_url, "SELECT next_fire_at, last_run_id FROM timers WHERE deployment_id = :d", d=d
    )
    assert next_fire_at > datetime.now(UTC) - timedelta(seconds=1)
    assert next_fire_at.second == 0 and last_run_id == late["run_id"]
    await runner.stop()
    await worker.disconnect()
    # The runner stopped after the run was committed but before the next due time was: the
    # record says the fire is still due. On restart it is recognised, not made again.
    await sql(
        db_url,
        "UPDATE timers SET next_fire_at = :t WHERE deployment_id = :d RETURNING 1",
        t=missed_from,
        d=d,
    )
    runner = await start(db_url, amqp_url, authz_url, tmp_path, port)
    await worker.start()
    await until(lambda: _next_after(db_url, d, missed_from))
    assert [f["run_id"] for f in await fires(db_url, d)] == [late["run_id"]]
    await runner.stop()
    await worker.stop()


async def _timer_row(db_url: str, deployment_id: str) -> bool:
    rows = await sql(db_url, "SELECT 1 FROM timers WHERE deployment_id = :d", d=deployment_id)
    return bool(rows)


async def _next_after(db_url: str, deployment_id: str, moment: datetime) -> bool:
    rows = await sql(
        db_url, "SELECT next_fire_at FROM timers WHERE deployment_id = :d", d=deployment_id
    )
    return bool(rows) and rows[0][0] > moment
