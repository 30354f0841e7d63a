# mypy: disable-error-code="import-not-found,import-untyped"
# (its third-party imports live in a bench virtualenv, not in .venv where mypy runs)
"""Prefect 3 peer: chain-N as N sequential no-op tasks in one flow, against a local Prefect server.

Runs inside its own virtualenv (.dev/bench/venv-prefect, prefect pinned in
bench/peers/requirements-prefect.txt) as a subprocess of bench/run.py:

    .dev/bench/venv-prefect/bin/python bench/peers/prefect_chain.py [--runs 20] [--only ...]

It starts `prefect server start` on a free loopback port with a private PREFECT_HOME (its SQLite
database included) under the log folder, points the flows at it (PREFECT_API_URL), measures,
and stops the server. Prints one JSON document on stdout (see bench/harness.py).

- chain: `chain(value, N)` calls the task `noop` N times in sequence, each on the previous
  result; the flow is called in this process (no deployment, no worker), as Prefect users run
  flows locally; measured from the call to its return (the flow run and its task runs are
  recorded by the server). chain-1 is measured the same way to derive the per-step overhead.
  The time inside the flow body (the N task runs) is recorded too ("in-run"): a flow call has
  a fixed cost of about a second, which hides the per-task cost from the client-side slope.
- throughput: C threads each call the one-step flow in a loop.
- memory: RSS/PSS of the server's process tree once it is healthy and idle.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness
import procinfo

SYSTEM = "prefect"
HOST = "127.0.0.1"
SERVER_START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(home: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_HOST": HOST,
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_API_URL": f"http://{HOST}:{port}/api",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        }
    )
    return env


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_healthy(proc: Any, port: int, log: Path, command: str) -> float:
    started = time.perf_counter()
    while not healthy(port):
        if proc.poll() is not None:
            raise harness.BenchFailure(
                f"{SYSTEM}: `{command}` exited {proc.returncode} before answering; "
                f"last lines of {log}:\n{harness.tail(log)}"
            )
        if time.perf_counter() - started > SERVER_START_TIMEOUT:
            raise harness.BenchFailure(
                f"{SYSTEM}: `{command}` does not answer on http://{HOST}:{port}/api/health after "
                f"{SERVER_START_TIMEOUT:.0f} s; last lines of {log}:\n{harness.tail(log)}"
            )
        time.sleep(0.2)
    return time.perf_counter() - started


def middle(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def measure() -> dict[str, Any]:
    args = harness.parser(SYSTEM, __doc__.splitlines()[0]).parse_args()
    wanted = harness.selected(args.only) & {"chain", "throughput", "memory"}
    levels = harness.clients_of(args.clients)
    logs: Path = args.logs.resolve()
    home = logs / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    env = server_env(home, port)
    # The flows of this process talk to the same server: set before prefect is imported.
    os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_")})
    prefect_bin = Path(sys.executable).parent / "prefect"
    command = [str(prefect_bin), "server", "start", "--host", HOST, "--port", str(port)]
    log = logs / "prefect-server.log"
    harness.say(SYSTEM, f"starting {' '.join(command)} (log {log})")
    document: dict[str, Any] = {"system": SYSTEM, "notes": []}
    with harness.background(SYSTEM, command, log, env=env) as server:
        document["server_start_s"] = wait_healthy(server, port, log, " ".join(command))
        harness.say(SYSTEM, f"server healthy after {document['server_start_s']:.1f} s")
        if "memory" in wanted:
            time.sleep(2.0)  # let the server's background services settle
            document["memory"] = procinfo.snapshot({"prefect server": [server.pid]})

        import prefect  # after PREFECT_* are set
        from prefect import flow, task

        @task
        def noop(value: str) -> str:
            return value

        bodies: list[float] = []

        @flow
        def chain(value: str, steps: int) -> str:
            started = time.perf_counter()
            for _ in range(steps):
                value = noop(value)
            bodies.append(time.perf_counter() - started)
            return value

        def run_chain(steps: int) -> None:
            result = chain("bench", steps)
            if result != "bench":
                raise harness.BenchFailure(f"{SYSTEM}: chain-{steps} returned {result!r}")

        document["versions"] = {
            "prefect": prefect.__version__,
            "python": sys.version.split()[0],
        }
        document["setup"] = {
            "mode": "local server (prefect server start, SQLite in a private PREFECT_HOME)",
            "flow": "called in the measuring process; tasks called directly, in sequence",
        }
        if "chain" in wanted:
            harness.say(SYSTEM, f"chain-{args.steps}: {args.warmup} warm-up + {args.runs} runs")
            long_runs = harness.time_runs(lambda: run_chain(args.steps), args.runs, args.warmup)
            long_bodies = bodies[-args.runs :]
            harness.say(SYSTEM, f"chain-1: {args.warmup} warm-up + {args.runs} runs")
            short_runs = harness.time_runs(lambda: run_chain(1), args.runs, args.warmup)
            short_bodies = bodies[-args.runs :]
            document["chain"] = {
                "steps": args.steps,
                "warmup": args.warmup,
                "samples_s": long_runs,
                "chain1_samples_s": short_runs,
                # Inside the flow: from its first line to its last (the N task runs only).
                "inrun_samples_s": long_bodies,
                "chain1_inrun_samples_s": short_bodies,
            }
            document["notes"].append(
                f"a flow call returns after about {middle(short_runs):.2f} s even with 1 task; "
                f"the {args.steps} tasks themselves take {middle(long_bodies):.3f} s (median, "
                "inside the flow): the client-side slope hides the per-step cost, the in-run "
                "row shows it"
            )
        if "throughput" in wanted:
            results = []
            for clients in levels:
                harness.say(SYSTEM, f"throughput: {clients} client(s)")

                def one_step() -> Any:
                    return lambda: run_chain(1)

                results.append(
                    harness.throughput(one_step, clients, args.max_requests, args.max_seconds)
                )
            document["throughput"] = {"levels": results}
    return document


if __name__ == "__main__":
    sys.exit(harness.main_guard(SYSTEM, measure))
