"""One-step runs under steady load, and the CPU each process spends per run.

Needs the platform of `make demo`. It deploys `bench-chain-1` (HTTP endpoint -> one no-op step,
as `make bench` does), then for each round posts runs from C clients for S seconds and reads,
from /proc, the CPU time (user + system) each part of the platform spent meanwhile: every
supervisord program, its child processes apart (the worker's action processes), the
machine's PostgreSQL (every `postgres` process: on a shared server, other users' work too) and
this client. Each figure is divided by the runs completed in the round; so are the context
switches of each part (its threads alive at the end: the client's own threads, gone by then,
are not counted):

    .venv/bin/python bench/steady.py [--clients 8] [--seconds 20] [--rounds 3] [--keep]

A figure from one `make bench` run moves by 10 to 30 % between 20-second windows on this VM;
the CPU per run moves much less, and is what tells whether a change to the hop path saved work.
Rounds of two configurations alternated on one platform compare them fairly.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import procinfo
import ryax_bench
from harness import percentile

WORKFLOW = "bench-chain-1"


def postgres_pids() -> list[int]:
    return [pid for pid in procinfo.all_pids() if procinfo.command(pid).startswith("postgres")]


def groups() -> dict[str, list[int]]:
    """Each part of the platform and the processes it has now."""
    found: dict[str, list[int]] = {}
    for name, pid in ryax_bench.supervised_pids().items():
        found[name] = [pid]
        children = procinfo.tree(pid)[1:]
        if children:  # the worker's action processes, apart
            found[f"{name} children"] = children
    found["postgresql"] = postgres_pids()
    found["client"] = [os.getpid()]
    return found


def sample(
    parts: dict[str, list[int]], read: Callable[[int], float] = procinfo.cpu_seconds
) -> dict[str, dict[int, float]]:
    return {name: {pid: float(read(pid)) for pid in pids} for name, pids in parts.items()}


def spent(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """What each part spent between two samples (CPU seconds, context switches); a process that
    started in between counts from zero, one that ended is left out (its last interval is
    lost: keep rounds long)."""
    return {
        name: sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items() if cpu)
        for name, pids in after.items()
    }


def round_once(
    make_call: Callable[[], Callable[[], object]], clients: int, seconds: float
) -> dict[str, Any]:
    parts = groups()
    before = sample(parts)
    switched = sample(parts, procinfo.context_switches)
    level = harness.throughput(make_call, clients, 1_000_000, seconds)
    now = groups()
    parts = {
        name: sorted(set(parts.get(name, [])) | set(now.get(name, [])))
        for name in parts.keys() | now.keys()
    }
    cpu = spent(before, sample(parts))
    switches = spent(switched, sample(parts, procinfo.context_switches))
    latencies = level["latencies_s"]

    def ms(q: float) -> float:
        return 1000.0 * percentile(latencies, q) if latencies else 0.0

    runs = level["ok"]
    return {
        "clients": clients,
        "runs": runs,
        "failed": level["errors"],
        "runs_per_s": runs / level["elapsed_s"] if level["elapsed_s"] else 0.0,
        "p50_ms": ms(50),
        "p99_ms": ms(99),
        "cpu_ms_per_run": {name: 1000.0 * s / runs if runs else 0.0 for name, s in cpu.items()},
        "switches_per_run": {name: n / runs if runs else 0.0 for name, n in switches.items()},
        "cores_busy": sum(cpu.values()) / level["elapsed_s"] if level["elapsed_s"] else 0.0,
    }


def line(result: dict[str, Any]) -> str:
    per_run = result["cpu_ms_per_run"]
    shown = ", ".join(
        f"{name} {value:.2f}" for name, value in sorted(per_run.items()) if value >= 0.005
    )
    switches = result["switches_per_run"]
    woken = ", ".join(
        f"{name} {value:.1f}" for name, value in sorted(switches.items()) if value >= 0.05
    )
    return (
        f"{result['clients']:3d} clients: {result['runs_per_s']:6.1f} runs/s, "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"{result['failed']} failed, {result['cores_busy']:.2f} cores; "
        f"CPU ms/run {sum(per_run.values()):.2f} ({shown}); "
        f"context switches/run {sum(switches.values()):.1f} ({woken})"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[8])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--copies",
        type=int,
        default=1,
        help="deploy this many copies of the workflow, the clients spread over them (a step's "
        "executions run one at a time in its process: this tells whether that is what holds)",
    )
    p.add_argument("--keep", action="store_true", help="leave the workflows deployed at the end")
    args = p.parse_args()
    settings = ryax_bench.Settings.from_env()
    harness.check_reachable(settings.url)
    platform = ryax_bench.Platform(settings)
    try:
        platform.login()
        platform.ensure_project()
        names = [WORKFLOW] + [f"{WORKFLOW}-copy{n}" for n in range(2, args.copies + 1)]
        present = platform.workflow_names()
        if not set(names) <= present:
            platform.ensure_noop()
        for name in names:
            if name not in present:
                platform.install(name, 1, f"/bench/{name}")
            platform.deploy(name)
        handed = itertools.count()

        def make_call() -> Callable[[], object]:
            http = platform.run_client()
            name = names[next(handed) % len(names)]
            return lambda: platform.trigger(http, name)

        harness.throughput(make_call, max(args.clients), 1_000_000, 3.0)  # every process warm
        for _ in range(args.rounds):
            for clients in args.clients:
                print(line(round_once(make_call, clients, args.seconds)), flush=True)
                time.sleep(1.0)
    finally:
        if not args.keep:
            platform.cleanup()
        platform.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
