"""Resume after a reconnect (nothing recorded twice), runner restart (runs continue), files
through multipart and download links, live logs over server-sent events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, io, publish, start_runner, step
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_kit.filestore import encode_segment
from ryax_runner.domain.values import FileRef, Value

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer token-alice"}


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
        await asyncio.sleep(0.02)


async def run_state(runner: RunningRunner, run_id: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers=AUTH) as s,
        s.get(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}") as r,
    ):
        doc: dict[str, Any] = await r.json()
        return doc


async def start_async(runner: RunningRunner, endpoint: str, body: Any) -> str:
    async with (
        aiohttp.ClientSession(headers=AUTH) as s,
        s.post(
            f"{runner.url}/runner/v1/projects/alpha/endpoints/{endpoint}?mode=async", json=body
        ) as r,
    ):
        assert r.status == 202, await r.text()
        run_id: str = (await r.json())["run_id"]
        return run_id


def two_steps(name: str = "two") -> Any:
    return deploy_request(
        [
            step("t", kind="trigger", outputs=("x",)),
            step("a", parents=("t",), inputs={"x": ("ref", "t", "x")}),
            step("b", parents=("a",), inputs={"x": ("ref", "a", "out")}),
        ],
        workflow_name=name,
        fields=[io("x")],
        results=[("r", "b", "out")],
    )


async def wait_deployed(runner: RunningRunner, deployment_id: str) -> None:
    engine = runner.container.engine()
    await until(
        lambda: (
            deployment_id in engine.deployments
            and engine.deployments[deployment_id].state == "deployed"
        )
    )
    await engine.durable()


async def count(db_url: str, table: str) -> int:
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        n = (await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()
    await engine.dispose()
    return int(n)


async def test_reconnect_resends_unacked_and_nothing_is_recorded_twice(
    runner: RunningRunner, amqp_url: str, db_url: str
) -> None:
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        if step_id == "a":
            await gate.wait()
        return {"out": f"{inputs['x']}{step_id}"}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=handler)
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    run_id = await start_async(runner, "two", {"x": "v"})
    await until(lambda: worker.running)
    # Cut the stream; the result of `a` is produced while disconnected, then re-sent.
    await worker.disconnect()
    gate.set()
    await until(lambda: worker.unacked)
    # Re-send also what was already applied: the runner must drop it.
    applied = dict(worker.unacked)
    await worker.start()
    await until(lambda: not worker.unacked)
    for msg in applied.values():
        worker._out.put_nowait(msg)  # duplicate reports with their old report_seq
    await until(lambda: run_state(runner, run_id))

    async def completed() -> bool:
        return (await run_state(runner, run_id))["state"] == "completed"

    await until(completed)
    doc = await run_state(runner, run_id)
    assert doc["results"] == {"r": "vab"}
    assert [s["step_id"] for s in doc["steps"]] == ["t", "a", "b"]
    await asyncio.sleep(0.2)
    assert await count(db_url, "executions") == 3
    assert runner.container.engine().stats.duplicate_reports >= 1
    await worker.stop()


async def test_runner_restart_resumes_running_runs(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
    )
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        if step_id == "a":
            await gate.wait()
        return {"out": f"{inputs['x']}{step_id}"}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=handler)
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    run_id = await start_async(runner, "two", {"x": "v"})
    await until(lambda: worker.running)
    port = int(runner.grpc_address.rsplit(":", 1)[1])
    await runner.stop()  # what SIGTERM does: drain, close streams, commit everything
    await worker.disconnect()
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        grpc_port=port,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
    )
    assert run_id in runner.container.engine().runs
    await worker.start()
    gate.set()

    async def completed() -> bool:
        return (await run_state(runner, run_id))["state"] == "completed"

    await until(completed)
    assert (await run_state(runner, run_id))["results"] == {"r": "vab"}
    await worker.stop()
    await runner.stop()


async def test_a_restarted_worker_runs_its_lost_executions_again_across_a_runner_restart(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
    )
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        await gate.wait()
        return {"out": f"{inputs['x']}{step_id}"}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=handler)
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    run_id = await start_async(runner, "two", {"x": "v"})
    await until(lambda: worker.running)
    [first] = worker.running
    await worker.stop()
    worker = FakeWorker(
        runner.grpc_address, credential=await runner.credential(), handler=handler
    )  # same id, no memory
    await worker.start()
    await until(lambda: worker.running)  # the lost execution runs again, as attempt 2
    [second] = worker.running
    assert second != first

    # The runner restarts: the lost attempt and the link between the attempts are kept.
    port = int(runner.grpc_address.rsplit(":", 1)[1])
    await runner.stop()
    await worker.disconnect()
    runner = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "fs",
        authz_url,
        grpc_port=port,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
    )
    restored = runner.container.engine().runs[run_id].executions  # type: ignore[index]
    assert restored[first].state == "lost"  # type: ignore[index]
    assert "no longer knows the execution" in restored[first].error  # type: ignore[index]
    attempt = restored[second]  # type: ignore[index]
    assert (attempt.attempt, attempt.infra_retries, attempt.retry_of) == (2, 1, first)
    assert attempt.state in ("dispatched", "running")
    await worker.start()  # reconnects, still running attempt 2
    gate.set()

    async def completed() -> bool:
        return (await run_state(runner, run_id))["state"] == "completed"

    await until(completed)
    doc = await run_state(runner, run_id)
    assert doc["results"] == {"r": "vab"}
    steps = [(s["step_id"], s["attempt"], s["state"], s["infra_retries"]) for s in doc["steps"]]
    assert steps == [
        ("t", 1, "completed", 0),
        ("a", 1, "lost", 0),
        ("a", 2, "completed", 1),
        ("b", 1, "completed", 0),
    ]
    lost = doc["steps"][1]
    assert "worker lost" in lost["error"] and lost["retry_of"] is None
    assert doc["steps"][2]["retry_of"] == first
    await worker.stop()
    await runner.stop()


async def test_files_multipart_and_download(
    runner: RunningRunner, amqp_url: str, tmp_path: Path
) -> None:
    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        ref = inputs["doc"]
        assert isinstance(ref, FileRef)
        data = (tmp_path / "filestore" / ref.key).read_bytes()
        key = f"runs/out/{step_id}/upper.txt"
        target = tmp_path / "filestore" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.upper())
        return {"out": FileRef(key=key, name="upper.txt", size=len(data)), "n": f"{inputs['n']}"}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=handler)
    await worker.start()
    s = step(
        "up",
        parents=("t",),
        inputs={"doc": ("ref", "t", "doc"), "n": ("ref", "t", "n")},
        input_types={"doc": "file", "n": "integer"},
        outputs=("out", "n"),
    )
    s.outputs[0].type = "file"
    request = deploy_request(
        [step("t", kind="trigger", outputs=("doc", "n")), s],
        workflow_name="files",
        fields=[io("doc", "file"), io("n", "integer")],
        results=[("upper", "up", "out"), ("n", "up", "n")],
    )
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    form = aiohttp.FormData()
    form.add_field("doc", b"hello file", filename="hello.txt")
    form.add_field("n", "42")
    async with aiohttp.ClientSession(headers=AUTH) as session:
        url = f"{runner.url}/runner/v1/projects/alpha/endpoints/files"
        async with session.post(url, data=form) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
            run_id = r.headers["Ryax-Run-Id"]
        assert body["n"] == "42" and body["upper"]["name"] == "upper.txt"
        async with session.get(runner.url + body["upper"]["download_url"]) as r:
            assert r.status == 200 and await r.read() == b"HELLO FILE"
        doc = await run_state(runner, run_id)
        trigger = doc["steps"][0]
        assert trigger["outputs"]["doc"]["name"] == "hello.txt"
        assert trigger["outputs"]["doc"]["key"].startswith(f"runs/{run_id}/")
        async with session.get(runner.url + trigger["outputs"]["doc"]["download_url"]) as r:
            assert await r.read() == b"hello file"
        async with session.get(
            f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}/files/sources/other.tar.gz"
        ) as r:
            assert r.status == 404  # not a file of this run
        form = aiohttp.FormData()
        form.add_field("n", "42")
        async with session.post(url, data=form) as r:
            assert r.status == 400 and "doc" in (await r.json())["detail"]
    await worker.stop()


async def test_a_file_name_with_spaces_is_uploaded_and_downloaded_by_its_link(
    runner: RunningRunner, amqp_url: str, tmp_path: Path
) -> None:
    name = "my report (v2).txt"

    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        ref = inputs["doc"]
        assert isinstance(ref, FileRef)
        assert (tmp_path / "filestore" / ref.key).read_bytes() == b"quarterly figures"
        return {"copy": ref}

    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=handler)
    await worker.start()
    s = step(
        "keep",
        parents=("t",),
        inputs={"doc": ("ref", "t", "doc")},
        input_types={"doc": "file"},
        outputs=("copy",),
    )
    s.outputs[0].type = "file"
    request = deploy_request(
        [step("t", kind="trigger", outputs=("doc",)), s],
        workflow_name="reports",
        fields=[io("doc", "file")],
        results=[("copy", "keep", "copy")],
    )
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    form = aiohttp.FormData(quote_fields=False)  # the name as browsers and curl send it
    form.add_field("doc", b"quarterly figures", filename=name)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        url = f"{runner.url}/runner/v1/projects/alpha/endpoints/reports"
        async with session.post(url, data=form) as r:
            assert r.status == 200, await r.text()
            copy = (await r.json())["copy"]
        assert copy["name"] == name  # what users see is the name they gave
        assert copy["key"].endswith("/doc/u=my=20report=20=28v2=29.txt")
        assert copy["key"].rsplit("/", 1)[-1] == encode_segment(name)
        async with session.get(runner.url + copy["download_url"]) as r:
            assert r.status == 200 and await r.read() == b"quarterly figures"
            disposition = r.headers["Content-Disposition"]
        assert disposition == "attachment; filename*=UTF-8''my%20report%20%28v2%29.txt"
    await worker.stop()


async def test_live_logs_over_sse(runner: RunningRunner, amqp_url: str) -> None:
    gate = asyncio.Event()

    async def handler(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        if step_id == "b":
            await gate.wait()
        return {"out": "x"}

    worker = FakeWorker(
        runner.grpc_address, credential=await runner.credential(), handler=handler, log_lines=3
    )
    await worker.start()
    request = two_steps()
    await publish(amqp_url, request)
    await wait_deployed(runner, request.deployment_id)
    run_id = await start_async(runner, "two", {"x": "v"})
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        aiohttp.ClientSession(headers=AUTH) as session,
        session.get(f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}/logs/stream") as r,
    ):
        assert r.headers["Content-Type"].startswith("text/event-stream")
        event = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
                if event == "log" and len([e for e in events if e[0] == "log"]) == 3:
                    gate.set()
                if event == "end":
                    break
    lines = [(d["step_id"], d["seq"]) for e, d in events if e == "log"]
    assert sorted(lines) == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    assert events[-1][0] == "end"
    await worker.stop()
