"""Back-to-back warm executions through the worker's own execution path, no platform.

    sudo .venv/bin/python bench/warmloop.py [--executions 500] [--out .dev/bench/warmloop.json]

Like bench/coldstart.py (root, bubblewrap, the same no-op action built like the builder's
artefacts), but through the worker's use cases: `Executions.execute` of an Execute order (a
string in, a string out, no file) -> workspace -> LocalBackend -> the action's Run over gRPC ->
result -> the ExecutionFinished report, one execution after the other on one warm step. It
prints, per execution: the wall time from the order to its report (median, p95, mean), the CPU
time of this process (the worker's side) and of the action process (the wrapper's side).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import procinfo  # noqa: E402
from coldstart import local_backend  # noqa: E402
from harness import percentile  # noqa: E402


async def measure(count: int, warmup: int) -> dict[str, Any]:
    from ryax_kit.core import SystemClock
    from ryax_worker.application.deployments import Deployments
    from ryax_worker.application.executions import Executions
    from ryax_worker.application.reports import ReportQueue
    from ryax_worker.application.staging import FileStaging
    from ryax_worker.domain.model import (
        ActionKind,
        DeploymentId,
        DeploymentStateKind,
        DeployStep,
        ExecuteStep,
        ExecutionFinished,
        ExecutionId,
        ExecutionStatus,
        IOSpec,
        ReportBuffer,
        RunId,
        StepId,
        StepRef,
    )
    from ryax_worker.infrastructure.placement import FilestorePlacement

    root = Path(tempfile.mkdtemp(prefix="ryax-warmloop-"))
    try:
        cache = root / "cache"
        sha = "b" * 64
        backend = await local_backend(root, cache, sha, "warmloop")
        clock = SystemClock()
        reports = ReportQueue(ReportBuffer())
        staging = FileStaging(None, cache / "executions")  # type: ignore[arg-type]  # no file
        placement = FilestorePlacement()
        deployments = Deployments(
            backend=backend, reports=reports, staging=staging, placement=placement, clock=clock
        )
        executions = Executions(
            backend=backend,
            deployments=deployments,
            reports=reports,
            staging=staging,
            placement=placement,
            clock=clock,
            site_name="bench",
        )
        ref = StepRef(DeploymentId("bench"), StepId("warm"))
        deployments.deploy(
            DeployStep(
                order_seq=1,
                ref=ref,
                action_id="bench-noop",
                action_version="1.0",
                action_kind=ActionKind.PROCESSOR,
                artefact_key=f"artefacts/{sha}.tar.gz",
                artefact_sha256=sha,
                is_trigger=False,
                inputs=(IOSpec(name="text", type="string"),),
                outputs=(IOSpec(name="out", type="string"),),
            )
        )
        step = await deployments.settled(ref)
        if step is None or step.state != DeploymentStateKind.READY:
            raise SystemExit(f"warmloop: the step did not deploy: {step}")
        instance = backend.instance(ref)
        assert instance is not None and instance.process is not None
        action_pid = instance.process.wrapper_pid or instance.process.pid
        assert action_pid is not None

        finished: list[ExecutionFinished] = []

        def drain() -> None:
            while (numbered := reports.buffer.take()) is not None:
                if isinstance(numbered.report, ExecutionFinished):
                    finished.append(numbered.report)
                reports.ack(numbered.seq)

        async def one(n: int) -> float:
            execution_id = ExecutionId(f"e{n}")
            started = time.perf_counter()
            executions.execute(
                ExecuteStep(
                    order_seq=n + 2,
                    execution_id=execution_id,
                    run_id=RunId(f"r{n}"),
                    ref=ref,
                    inputs={"text": "x"},
                )
            )
            task = executions._running[execution_id].task
            assert task is not None
            await task
            elapsed = time.perf_counter() - started
            drain()
            last = finished[-1]
            if last.execution_id != execution_id or last.status != ExecutionStatus.COMPLETED:
                raise SystemExit(f"warmloop: execution {execution_id} did not complete: {last}")
            return elapsed

        for n in range(warmup):
            await one(-1 - n)
        worker_cpu, action_cpu = time.process_time(), procinfo.cpu_seconds(action_pid)
        began = time.perf_counter()
        samples = [await one(n) for n in range(count)]
        total = time.perf_counter() - began
        worker_cpu = time.process_time() - worker_cpu
        action_cpu = procinfo.cpu_seconds(action_pid) - action_cpu
        leftovers = sorted(p.name for p in (cache / "executions" / "bench" / "warm").iterdir())
        await deployments.close()
        await backend.close()
        return {
            "executions": count,
            "per_execution_ms": {
                "median": round(statistics.median(samples) * 1000, 3),
                "p95": round(percentile(samples, 95) * 1000, 3),
                "mean": round(total / count * 1000, 3),
            },
            "worker_cpu_ms_per_execution": round(worker_cpu / count * 1000, 3),
            "action_cpu_ms_per_execution": round(action_cpu / count * 1000, 3),
            "executions_per_second": round(count / total, 1),
            "workspaces_left": len(leftovers),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / ".dev" / "bench" / "warmloop.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("warmloop: run as root (the sandbox drops actions to nobody)", file=sys.stderr)
        return 1
    result = asyncio.run(measure(args.executions, args.warmup))
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
