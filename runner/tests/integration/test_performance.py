"""Speed of the hot path, measured in-process (runner, fake worker and client share one event
loop and one core, so these are lower bounds). The numbers are printed (-s) and checked against
loose floors; `runner/tests/runner_testkit/bench.py` measures with separate processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import (
    RunningRunner,
    deploy_request,
    io,
    publish,
    start_runner,
    step,
)

from ryax_runner.domain.values import Value

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer token-alice"}


async def noop(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    return {"out": inputs.get("x")}


async def _deploy(runner: RunningRunner, amqp_url: str, request: Any) -> None:
    await publish(amqp_url, request)
    engine = runner.container.engine()
    deadline = time.monotonic() + 10
    while not (
        request.deployment_id in engine.deployments
        and engine.deployments[request.deployment_id].state == "deployed"
    ):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("commit_mode", ["acknowledged", "every"])
async def test_chain_of_40_steps(
    commit_mode: str,
    db_url: str,
    amqp_url: str,
    authz_url: str,
    tmp_path: Path,
) -> None:
    """The default commit mode waits for the disk only where a client is answered; "every"
    waits at each step (an fsync per step on the critical path): both are printed."""
    runner = await start_runner(
        db_url, amqp_url, tmp_path / "filestore", authz_url, commit_mode=commit_mode
    )
    try:
        await _chain_of_40_steps(runner, amqp_url, commit_mode)
    finally:
        await runner.stop()


async def _chain_of_40_steps(runner: RunningRunner, amqp_url: str, mode: str) -> None:
    worker = FakeWorker(
        runner.grpc_address, credential=await runner.credential(), handler=noop, log_lines=0
    )
    await worker.start()
    steps = [step("t", kind="trigger", outputs=("x",))]
    for i in range(40):
        parent = steps[-1].step_id
        steps.append(
            step(
                f"s{i}", parents=(parent,), inputs={"x": ("ref", parent, "x" if i == 0 else "out")}
            )
        )
    await _deploy(
        runner,
        amqp_url,
        deploy_request(
            steps, workflow_name="chain", fields=[io("x")], results=[("r", "s39", "out")]
        ),
    )
    url = f"{runner.url}/runner/v1/projects/alpha/endpoints/chain"
    timings = []
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for _ in range(6):
            started = time.perf_counter()
            async with session.post(url, json={"x": "v"}) as r:
                assert r.status == 200, await r.text()
                assert await r.json() == {"r": "v"}
            timings.append(time.perf_counter() - started)
    best, median = min(timings[1:]), sorted(timings[1:])[len(timings[1:]) // 2]
    print(
        f"\n40 sequential steps, commit mode {mode}: best {best * 1000:.1f} ms, "
        f"median {median * 1000:.1f} ms"
    )
    assert median < 1.0
    await worker.stop()


async def test_one_step_runs_throughput(runner: RunningRunner, amqp_url: str) -> None:
    worker = FakeWorker(
        runner.grpc_address, credential=await runner.credential(), handler=noop, log_lines=1
    )
    await worker.start()
    await _deploy(
        runner,
        amqp_url,
        deploy_request(
            [
                step("t", kind="trigger", outputs=("x",)),
                step("one", parents=("t",), inputs={"x": ("ref", "t", "x")}),
            ],
            workflow_name="one",
            fields=[io("x")],
            results=[("r", "one", "out")],
        ),
    )
    url = f"{runner.url}/runner/v1/projects/alpha/endpoints/one"
    done = 0
    stop_at = 0.0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            async with session.post(url, json={"x": "v"}) as r:
                assert r.status == 200
                await r.read()
            done += 1

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(headers=AUTH, connector=connector) as session:
        stop_at = time.perf_counter() + 1.0
        await asyncio.gather(*(client(session) for _ in range(32)))  # warm-up
        done = 0
        started = time.perf_counter()
        stop_at = started + 4.0
        await asyncio.gather(*(client(session) for _ in range(32)))
        elapsed = time.perf_counter() - started
    rate = done / elapsed
    recorder = runner.container.recorder()
    print(
        f"\none-step runs through the HTTP endpoint (in-process, 1 core): {rate:.0f} runs/s, "
        f"{recorder.commits} commits"
    )
    assert rate > 100
    await worker.stop()


async def test_throughput_separate_processes(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Any
) -> None:
    """The runner (`python -m ryax_runner`), the fake worker and this load generator are three
    processes sharing the machine's cores."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from runner_testkit.harness import SECRET, free_port

    http_port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "RYAX_DATABASE_URL": str(db_url),
        "RYAX_AMQP_URL": amqp_url,
        "RYAX_SECRET_KEY": SECRET,
        "RYAX_HTTP_PORT": str(http_port),
        "RYAX_RUNNER_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "RYAX_AUTHORIZATION_URL": authz_url,
        "RYAX_FILESTORE_DIR": str(tmp_path / "fs"),
        "RYAX_LOG_LEVEL": "warning",
    }
    tests_dir = str(Path(__file__).parent.parent)
    prof = os.environ.get("RYAX_BENCH_PROFILE")
    cmd = (
        [sys.executable, "-m", "cProfile", "-o", prof, "-m", "ryax_runner"]
        if prof
        else [sys.executable, "-m", "ryax_runner"]
    )
    runner_proc = subprocess.Popen(cmd, env=env)  # noqa: ASYNC220 - started once
    worker_proc: subprocess.Popen[bytes] | None = None
    base = f"http://127.0.0.1:{http_port}/runner"
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            deadline = time.monotonic() + 30
            while True:
                try:
                    async with session.get(base + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "runner did not get ready"
                await asyncio.sleep(0.2)
            async with session.post(
                base + "/v1/sites",
                json={"name": "site-1", "type": "local"},
                headers={"Authorization": "Bearer token-admin"},
            ) as r:
                assert r.status == 201, await r.text()
                credential = (await r.json())["credential"]
            worker_proc = subprocess.Popen(  # noqa: ASYNC220 - started once
                [sys.executable, "-m", "runner_testkit.worker_main", f"127.0.0.1:{grpc_port}"],
                env={**env, "PYTHONPATH": tests_dir, "RYAX_SITE_CREDENTIAL": credential},
                stdout=subprocess.PIPE,
            )
            request = deploy_request(
                [
                    step("t", kind="trigger", outputs=("x",)),
                    step("one", parents=("t",), inputs={"x": ("ref", "t", "x")}),
                ],
                workflow_name="one",
                fields=[io("x")],
                results=[("r", "one", "out")],
            )
            await publish(amqp_url, request)
            url = f"{base}/v1/projects/alpha/endpoints/one"
            while True:
                async with session.post(url, json={"x": "v"}) as r:
                    if r.status == 200:
                        break
                assert time.monotonic() < deadline, "deployment did not get deployed"
                await asyncio.sleep(0.1)
            done, stop_at = 0, time.perf_counter() + 1.0

            async def client() -> None:
                nonlocal done
                while time.perf_counter() < stop_at:
                    async with session.post(url, json={"x": "v"}) as r:
                        assert r.status == 200, await r.text()
                        await r.read()
                    done += 1

            await asyncio.gather(*(client() for _ in range(48)))
            cpu_before = {p.pid: _cpu_seconds(p.pid) for p in (runner_proc, worker_proc)}
            done, started = 0, time.perf_counter()
            stop_at = started + 5.0
            await asyncio.gather(*(client() for _ in range(48)))
            rate = done / (time.perf_counter() - started)
            per_run = {
                p.pid: (_cpu_seconds(p.pid) - cpu_before[p.pid]) / done * 1000
                for p in (runner_proc, worker_proc)
            }
        print(
            f"\none-step runs through the HTTP endpoint (3 processes, {os.cpu_count()} cores):"
            f" {rate:.0f} runs/s; CPU per run: runner {per_run[runner_proc.pid]:.2f} ms, "
            f"fake worker {per_run[worker_proc.pid]:.2f} ms"
        )
        assert rate > 100
    finally:
        procs = [p for p in (worker_proc, runner_proc) if p is not None]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    import os

    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
