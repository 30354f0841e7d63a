"""What every measured system shares (standard library only): arguments, timing loops, output.

Each system's script (bench/ryax_bench.py, bench/peers/*.py) runs as its own process, in its own
virtualenv, prints one JSON document on stdout (progress goes to stderr) and exits 0; or prints
`<system>: <what failed>` on stderr and exits 1. The peers import this file by path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCHMARKS = ("chain", "throughput", "deploy", "build", "memory", "coldstart", "runs100k")
DEFAULT_CLIENTS = (1, 8, 32)


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default); NaN for no
    samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class BenchFailure(Exception):
    """A system cannot be measured: the message names what failed (a command, a URL)."""


def say(system: str, message: str) -> None:
    print(f"[{system}] {message}", file=sys.stderr, flush=True)


def parser(system: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=system, description=description)
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmarks")
    p.add_argument("--runs", type=int, default=20, help="measured runs of each chain")
    p.add_argument("--warmup", type=int, default=2, help="runs before measuring, discarded")
    p.add_argument("--steps", type=int, default=40, help="length of the long chain")
    p.add_argument("--clients", default="1,8,32", help="concurrent clients, comma-separated")
    p.add_argument("--max-requests", type=int, default=200, help="per concurrency level")
    p.add_argument("--max-seconds", type=float, default=30.0, help="per concurrency level")
    p.add_argument("--logs", type=Path, default=Path(".dev/bench/logs"), help="log folder")
    return p


def selected(only: str) -> set[str]:
    names = {part.strip() for part in only.split(",") if part.strip()}
    unknown = names - set(BENCHMARKS)
    if unknown:
        raise BenchFailure(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; one of {', '.join(BENCHMARKS)}"
        )
    return names


def clients_of(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise BenchFailure(f"--clients: expected numbers such as 1,8,32, got {text!r}") from exc
    if not levels or min(levels) < 1:
        raise BenchFailure(f"--clients: expected numbers >= 1, got {text!r}")
    return levels


def time_runs(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Wall-clock seconds of `runs` calls, after `warmup` calls that are not kept."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def machine_counters() -> tuple[int, int, int]:
    """The machine's counters so far, from one read of /proc/stat (zeros where there is none):
    all its CPU time and the part the hypervisor stole for other guests, in clock ticks, and
    its context switches (`ctxt`: every thread that waited and was woken again counts one)."""
    total = stolen = switches = 0
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if line.startswith("cpu "):
                    # user nice system idle iowait irq softirq steal [guest guest_nice: already
                    # within user and nice]
                    fields = [int(v) for v in line.split()[1:]]
                    total, stolen = sum(fields[:8]), fields[7] if len(fields) > 7 else 0
                elif line.startswith("ctxt "):
                    switches = int(line.split()[1])
    except (OSError, ValueError):
        return 0, 0, 0
    return total, stolen, switches


def stolen_fraction(before: tuple[int, ...], after: tuple[int, ...]) -> float | None:
    """The share of the machine's CPU time the hypervisor gave other guests between two
    `machine_counters()` readings (None without ticks between them)."""
    total = after[0] - before[0]
    return (after[1] - before[1]) / total if total > 0 else None


def throughput(
    make_call: Callable[[], Callable[[], object]],
    clients: int,
    max_requests: int,
    max_seconds: float,
) -> dict[str, Any]:
    """`clients` threads, each with its own call (its own connection), call in a loop until
    `max_requests` calls were started or `max_seconds` passed. A call that raises is an error
    (kept, with its message); the level's rate counts the calls that succeeded."""
    lock = threading.Lock()
    started_count = 0
    latencies: list[float] = []
    errors: list[str] = []
    setup_errors: list[BaseException] = []
    clock = {"began": 0.0, "deadline": 0.0}

    counters: dict[str, tuple[int, int, int]] = {}

    def start_clock() -> None:  # run once, by the last thread to reach the barrier
        counters["began"] = machine_counters()
        clock["began"] = time.perf_counter()
        clock["deadline"] = clock["began"] + max_seconds

    barrier = threading.Barrier(clients + 1, action=start_clock)

    def worker() -> None:
        nonlocal started_count
        try:
            call = make_call()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller below
            setup_errors.append(exc)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        while True:
            with lock:
                if started_count >= max_requests or time.perf_counter() >= clock["deadline"]:
                    return
                started_count += 1
            begun = time.perf_counter()
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - an error of the system measured, counted
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            elapsed = time.perf_counter() - begun
            with lock:
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join(timeout=30)
        reason = setup_errors[0] if setup_errors else "clients did not start in 300 s"
        raise BenchFailure(f"throughput with {clients} clients: cannot set up: {reason}") from None
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - clock["began"]
    ended = machine_counters()
    stolen = stolen_fraction(counters["began"], ended)
    switches = ended[2] - counters["began"][2]
    return {
        "clients": clients,
        "stolen": stolen,
        "context_switches": switches if switches > 0 else None,
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "elapsed_s": elapsed,
        "latencies_s": latencies,
        "max_requests": max_requests,
        "max_seconds": max_seconds,
    }


def gateway_url() -> str:
    """The Ryax gateway: RYAX_URL, else RYAX_GATEWAY_URL, else the one `make demo` starts."""
    url = os.environ.get("RYAX_URL") or os.environ.get("RYAX_GATEWAY_URL")
    return (url or "http://127.0.0.1:8080").rstrip("/")


def check_reachable(url: str) -> None:
    """Fail with what is not reachable, before anything else is tried."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as exc:
        raise BenchFailure(
            f"ryax: the Ryax gateway {url} is not reachable ({exc.strerror or exc}): start the "
            "platform with `make demo` and check it with `make status`"
        ) from None


def emit(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def run_command(
    system: str, command: Sequence[str], *, timeout: float = 120, env: dict[str, str] | None = None
) -> str:
    """Run a short command; its failure is a BenchFailure naming it, with its output."""
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BenchFailure(f"{system}: command not found: {shlex.join(command)}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchFailure(
            f"{system}: command timed out after {timeout:.0f} s: {shlex.join(command)}"
        ) from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-2000:]
        raise BenchFailure(
            f"{system}: command failed (exit {done.returncode}): {shlex.join(command)}\n{output}"
        )
    return done.stdout


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} cannot be read)"
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def background(
    system: str,
    command: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process of the peer (its server, its worker), in its own process group,
    output to `log`; stopped (TERM, then KILL after 20 s) whatever happens."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        try:
            proc = subprocess.Popen(
                list(command),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise BenchFailure(f"{system}: cannot start {shlex.join(command)}: {exc}") from exc
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            return
        proc.wait(timeout=10)


def main_guard(system: str, body: Callable[[], dict[str, Any]]) -> int:
    """Run a system's measurements: JSON on stdout and 0, or one clear message and 1."""
    try:
        document = body()
    except BenchFailure as exc:
        message = str(exc)
        prefix = f"{system}: "
        print(message if message.startswith(prefix) else prefix + message, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{system}: interrupted", file=sys.stderr)
        return 130
    emit(document)
    return 0
