"""Where the time of a one-step run goes: the hop path (gateway -> runner -> worker -> action
process and back) under load, sampled by py-spy.

Needs the platform of `make demo` and root (py-spy attaches to the services' processes). It
deploys `bench-chain-1` (HTTP endpoint -> one no-op step, as `make bench` does), starts py-spy on
the runner and on the worker (with its action processes), posts runs from C clients for S
seconds, then folds the samples:

    .venv/bin/python bench/profile_hops.py [--clients 8] [--seconds 20] [--rate 200]
                                           [--out .dev/bench/profile]

Prints, per process, the share of its busy samples each of the top functions holds (py-spy's
samples of running threads, less those whose innermost frame is a known wait, WAITS), by self
time and, for the project's own functions, including callees; writes each process's folded
stacks (speedscope and flamegraph.pl read them) into --out. Python only: Traefik (the gateway,
Go) is not sampled; its share is the run's time the others do not account for.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import ryax_bench

REPO = Path(__file__).resolve().parent.parent
PY_SPY = REPO / ".venv" / "bin" / "py-spy"
#: Frames of the project's own code (the rest: libraries and the standard library).
OWN = ("ryax_", "/kit/", "/runner/", "/worker/", "/action-wrapper/", "/studio/")
SAMPLED = ("runner", "worker")
#: Innermost Python frames of a thread that waits (py-spy counts a thread blocked in C under
#: them as running): the event loop's poll, a thread pool's idle worker, a pipe-reading or
#: child-waiting thread. Samples ending there are counted apart, as waiting.
WAITS = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",
        "Thread.run (threading.py)",
        "Condition.wait (threading.py)",
        "Thread._wait_for_tstate_lock (threading.py)",
        "ThreadedChildWatcher._do_waitpid (asyncio/unix_events.py)",
        "_Pump.run (ryax_action_wrapper/infrastructure/capture.py)",
    }
)


def fold(path: Path) -> collections.Counter[str]:
    """py-spy's raw (collapsed) output: `frame;frame;... count` per line."""
    stacks: collections.Counter[str] = collections.Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def frame_name(frame: str) -> str:
    """`handle (ryax_runner/x.py:12)` -> `handle (ryax_runner/x.py)`: lines merged."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def tops(stacks: collections.Counter[str], count: int) -> dict[str, Any]:
    """The functions with the most samples, by self time and including callees."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    processes: collections.Counter[str] = collections.Counter()
    waiting = 0
    for stack, n in stacks.items():
        frames = [frame_name(f) for f in stack.split(";") if f]
        # --subprocesses: a frame names the process (`process 12:"python -m x"`), the first
        # one and again where a child's stack starts
        named = [f for f in frames if f.startswith("process ")]
        if named:
            processes[named[-1].split(":", 1)[1].strip('"')] += n
            frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        if frames[-1] in WAITS:
            waiting += n
            continue
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n

    total = sum(stacks.values()) - waiting  # busy samples: the shares' base

    def rows(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [
            {
                "function": name,
                "share": round(n / total, 4) if total else 0.0,
                "own_code": any(mark in name for mark in OWN),
            }
            for name, n in counter.most_common(count)
        ]

    project = collections.Counter({k: v for k, v in inclusive.items() if any(m in k for m in OWN)})
    return {
        "samples": total,
        "waiting": waiting,
        "processes": dict(processes.most_common()),
        "self": rows(own),
        "inclusive_own_code": rows(project),
    }


def record(pid: int, name: str, out: Path, seconds: float, rate: int) -> subprocess.Popen[bytes]:
    """py-spy on `pid` (its subprocesses too) for `seconds`, raw stacks into out/<name>.txt."""
    command = [
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--rate",
        str(rate),
        "--duration",
        str(int(seconds)),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out / f"{name}.txt"),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def load(
    make_call: Callable[[], Callable[[], object]], clients: int, seconds: float
) -> dict[str, Any]:
    """Runs posted by `clients` threads for `seconds` (harness.throughput, unbounded count)."""
    return harness.throughput(make_call, clients, 1_000_000, seconds)


def report(found: dict[str, dict[str, Any]], levels: Iterable[dict[str, Any]]) -> str:
    lines = []
    for level in levels:
        latencies: list[float] = sorted(level["latencies_s"])

        def ms(q: float, latencies: list[float] = latencies) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000.0

        rate = level["ok"] / level["elapsed_s"] if level["elapsed_s"] else 0.0
        lines.append(
            f"load: {level['clients']} clients, {rate:.1f} runs/s, "
            + (f"p50 {ms(0.5):.1f} ms, p99 {ms(0.99):.1f} ms, " if latencies else "")
            + f"{level['errors']} failed"
        )
    for name, result in found.items():
        lines.append("")
        lines.append(
            f"== {name}: {result['samples']} busy samples "
            f"({result['waiting']} more waiting, not counted below); by process:"
        )
        for process, n in result.get("processes", {}).items():
            lines.append(f"   {n:7d}  {process}")
        lines.append("  self time:")
        for row in result["self"]:
            mark = "*" if row["own_code"] else " "
            lines.append(f"   {mark} {row['share'] * 100:5.1f}%  {row['function']}")
        lines.append("  the project's own functions, callees included:")
        for row in result["inclusive_own_code"]:
            lines.append(f"     {row['share'] * 100:5.1f}%  {row['function']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rate", type=int, default=200, help="samples per second")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", type=Path, default=REPO / ".dev" / "bench" / "profile")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise harness.BenchFailure("py-spy attaches to the services' processes: run as root")
    if not PY_SPY.exists() and shutil.which("py-spy") is None:
        raise harness.BenchFailure("py-spy is not installed: make venv")
    settings = ryax_bench.Settings.from_env()
    harness.check_reachable(settings.url)
    pids = ryax_bench.supervised_pids()
    missing = [name for name in SAMPLED if name not in pids]
    if missing:
        raise harness.BenchFailure(f"not running under supervisord: {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    platform = ryax_bench.Platform(settings)
    name = "bench-chain-1"
    try:
        platform.login()
        platform.ensure_project()
        platform.ensure_noop()
        platform.install(name, 1, "/bench/chain-1")
        platform.deploy(name)

        def make_call() -> Callable[[], object]:
            http = platform.run_client()
            return lambda: platform.trigger(http, name)

        load(make_call, args.clients, 3.0)  # warm: every process started, caches filled
        spies = {n: record(pids[n], n, args.out, args.seconds + 2, args.rate) for n in SAMPLED}
        time.sleep(1.0)
        level = load(make_call, args.clients, args.seconds)
        for spy_name, spy in spies.items():
            _, err = spy.communicate(timeout=args.seconds + 60)
            if spy.returncode != 0:
                raise harness.BenchFailure(f"py-spy on {spy_name}: {err.decode()[-500:]}")
    finally:
        platform.cleanup()
        platform.close()
    found = {n: tops(fold(args.out / f"{n}.txt"), args.top) for n in SAMPLED}
    text = report(found, [level])
    (args.out / "profile.txt").write_text(text + "\n")
    (args.out / "profile.json").write_text(json.dumps({"load": level, "processes": found}))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
