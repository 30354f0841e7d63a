"""Hard values fed through the real engine, gRPC and recorder over PostgreSQL: an action that
returns a NUL character, NaN, JSON nested too deep or holding a lone surrogate fails its step
naming the output; nothing is set aside, and every other run is recorded and completes."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import sqlalchemy as sa
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, io, publish, step
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_runner.domain.values import Value

from .test_resume import run_state, start_async, until, wait_deployed

pytestmark = pytest.mark.integration


def deep(depth: int) -> Any:
    doc: Any = 0
    for _ in range(depth):
        doc = [doc]
    return doc


POISON: dict[str, Value] = {
    "nul": "before\x00after",
    "nan": math.nan,
    "infinity": math.inf,
    "nan_in_json": {"v": [1.0, math.nan]},
    "surrogate_in_json": {"s": "\ud800"},
    "deep": deep(200),
    "nul_key": {"a\x00": 1},
}
WHY = {
    "nul": "contains a NUL character (U+0000), which cannot be stored",
    "nan": "is NaN, which JSON cannot hold",
    "infinity": "is an infinity",
    "nan_in_json": "JSON has no NaN",
    "surrogate_in_json": "lone surrogate",
    "deep": "nested more than 64 levels deep",
    "nul_key": "has a key that contains a NUL character",
}


async def test_hard_results_fail_their_run_and_every_other_run_completes(
    runner: RunningRunner, amqp_url: str, db_url: str
) -> None:
    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        x = str(inputs["x"])
        if step_id == "a" and x in POISON:
            return {"out": POISON[x], "log": "fine"}
        return {"out": f"{x}-{step_id}"}

    worker = FakeWorker(
        runner.grpc_address, credential=await runner.credential(), handler=handler, log_lines=2
    )
    await worker.start()
    request = deploy_request(
        [
            step("t", kind="trigger", outputs=("x",)),
            step("a", parents=("t",), inputs={"x": ("ref", "t", "x")}),
            step("b", parents=("a",), inputs={"x": ("ref", "a", "out")}),
        ],
        workflow_name="hard",
        fields=[io("x")],
        results=[("r", "b", "out")],
    )
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    names = [*POISON, *(f"ok{i}" for i in range(10))]
    ids = dict(
        zip(
            names,
            await asyncio.gather(*(start_async(runner, "hard", {"x": n}) for n in names)),
            strict=True,
        )
    )

    async def all_ended() -> bool:
        docs = await asyncio.gather(*(run_state(runner, i) for i in ids.values()))
        return all(d["state"] in ("completed", "failed") for d in docs)

    await until(all_ended, 20)
    for name, run_id in ids.items():
        doc = await run_state(runner, run_id)
        if name in POISON:
            assert doc["state"] == "failed", name
            assert doc["failed_step_id"] == "a"
            assert doc["reason"].startswith("step a failed: output `out`: "), doc["reason"]
            assert WHY[name] in doc["reason"], (name, doc["reason"])
        else:
            assert doc["state"] == "completed", (name, doc)
            assert doc["results"] == {"r": f"{name}-a-b"}

    # Nothing was set aside: the poison never reached the recorder; it goes on recording.
    db = create_async_engine(db_url)
    async with db.connect() as conn:
        parked = (await conn.execute(sa.text("SELECT count(*) FROM parked_records"))).scalar()
    await db.dispose()
    assert parked == 0
    later = await start_async(runner, "hard", {"x": "later"})

    async def completed() -> bool:
        return (await run_state(runner, later))["state"] == "completed"

    await until(completed)
    await worker.stop()
