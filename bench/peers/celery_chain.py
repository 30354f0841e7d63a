# mypy: disable-error-code="import-not-found,import-untyped"
# (its third-party imports live in a bench virtualenv, not in .venv where mypy runs)
"""Celery peer: chain-N as a Celery chain of N no-op tasks over this machine's RabbitMQ.

Runs inside its own virtualenv (.dev/bench/venv-celery, celery pinned in
bench/peers/requirements-celery.txt) as a subprocess of bench/run.py:

    .dev/bench/venv-celery/bin/python bench/peers/celery_chain.py [--runs 20] [--only ...]

It creates a fresh vhost on the shared broker with rabbitmqctl (set_permissions for the AMQP
user), starts one `celery worker` (defaults: prefork pool, one process per core) on it, measures,
stops the worker and deletes the vhost, whatever happened. Results come back over the broker
(result backend `rpc://`: nothing else to run). Prints one JSON document on stdout (see
bench/harness.py).

- chain: `chain(noop.s(value), noop.s(), ... N times).apply_async().get()`: each task gets the
  previous task's result; measured from apply_async to the last result. chain-1 likewise.
- throughput: C threads, each with a Celery app of its own, run the task `noop` and wait for
  its result, in a loop (a one-step workflow).
- memory: RSS/PSS of the worker's process tree once it answers and is idle.

Environment: BENCH_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/; the broker must be
this machine's, since vhosts are managed with rabbitmqctl).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness
import procinfo
from celery import Celery, chain

SYSTEM = "celery"
HERE = Path(__file__).resolve().parent
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
WORKER_START_TIMEOUT = 120.0
RESULT_TIMEOUT = 120.0

# The worker imports this module as `celery_chain` (the app below); the driver runs it as
# __main__: the explicit task name makes both agree.
app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "memory://"), backend="rpc://")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(value: str) -> str:
    return value


def broker_url(vhost: str) -> str:
    base = urllib.parse.urlsplit(os.environ.get("BENCH_AMQP_URL") or DEFAULT_AMQP)
    return urllib.parse.urlunsplit(base._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def amqp_user() -> str:
    base = urllib.parse.urlsplit(os.environ.get("BENCH_AMQP_URL") or DEFAULT_AMQP)
    return urllib.parse.unquote(base.username or "guest")


def rabbitmq_version() -> str:
    out = harness.run_command(SYSTEM, ["rabbitmqctl", "-q", "version"], timeout=60)
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def wait_worker(worker: Any, log: Path, command: str) -> float:
    started = time.perf_counter()
    while True:
        if worker.poll() is not None:
            raise harness.BenchFailure(
                f"{SYSTEM}: `{command}` exited {worker.returncode}; last lines of {log}:\n"
                f"{harness.tail(log)}"
            )
        replies = app.control.ping(timeout=1.0)
        if replies:
            return time.perf_counter() - started
        if time.perf_counter() - started > WORKER_START_TIMEOUT:
            raise harness.BenchFailure(
                f"{SYSTEM}: `{command}` does not answer a ping after {WORKER_START_TIMEOUT:.0f} s;"
                f" last lines of {log}:\n{harness.tail(log)}"
            )


def run_chain(steps: int) -> None:
    signature = chain(noop.s("bench"), *(noop.s() for _ in range(steps - 1)))
    result = signature.apply_async().get(timeout=RESULT_TIMEOUT)
    if result != "bench":
        raise harness.BenchFailure(f"{SYSTEM}: chain-{steps} returned {result!r}")


def client() -> Any:
    """One throughput client: an app of its own, so its own connection and reply queue (the
    rpc:// backend delivers a result to the reply queue of the app that sent the task, and
    threads sharing one app would take each other's results)."""
    own = Celery("bench-client", broker=app.conf.broker_url, backend="rpc://")
    own.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])

    def one_step() -> None:
        result = own.send_task("bench.noop", args=["bench"]).get(timeout=RESULT_TIMEOUT)
        if result != "bench":
            raise harness.BenchFailure(f"{SYSTEM}: noop returned {result!r}")

    return one_step


def measure() -> dict[str, Any]:
    args = harness.parser(SYSTEM, __doc__.splitlines()[0]).parse_args()
    wanted = harness.selected(args.only) & {"chain", "throughput", "memory"}
    levels = harness.clients_of(args.clients)
    logs: Path = args.logs.resolve()
    vhost = f"ryax_bench_{secrets.token_hex(6)}"
    url = broker_url(vhost)
    import celery as celery_package
    import kombu

    document: dict[str, Any] = {
        "system": SYSTEM,
        "notes": [],
        "versions": {
            "celery": celery_package.__version__,
            "kombu": kombu.__version__,
            "rabbitmq": rabbitmq_version(),
            "python": sys.version.split()[0],
        },
        "setup": {
            "broker": f"RabbitMQ, fresh vhost {vhost}",
            "result_backend": "rpc://",
            "worker": "celery worker, defaults (prefork, concurrency = cores)",
        },
    }
    harness.say(SYSTEM, f"rabbitmqctl add_vhost {vhost}")
    harness.run_command(SYSTEM, ["rabbitmqctl", "-q", "add_vhost", vhost])
    try:
        harness.run_command(
            SYSTEM,
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, amqp_user(), ".*", ".*", ".*"],
        )
        app.conf.broker_url = url
        env = {**os.environ, "BENCH_CELERY_BROKER": url, "PYTHONPATH": str(HERE)}
        celery_bin = Path(sys.executable).parent / "celery"
        command = [
            str(celery_bin),
            "-A",
            "celery_chain",
            "worker",
            "--loglevel=WARNING",
            "--hostname",
            f"bench-{vhost}@%h",
        ]
        log = logs / "celery-worker.log"
        harness.say(SYSTEM, f"starting {' '.join(command)} (log {log})")
        with harness.background(SYSTEM, command, log, env=env, cwd=HERE) as worker:
            document["worker_start_s"] = wait_worker(worker, log, " ".join(command))
            harness.say(SYSTEM, f"worker answers after {document['worker_start_s']:.1f} s")
            if "memory" in wanted:
                time.sleep(2.0)
                document["memory"] = procinfo.snapshot({"celery worker": [worker.pid]})
            if "chain" in wanted:
                harness.say(SYSTEM, f"chain-{args.steps}: {args.warmup} warm-up + {args.runs} runs")
                long_runs = harness.time_runs(lambda: run_chain(args.steps), args.runs, args.warmup)
                harness.say(SYSTEM, f"chain-1: {args.warmup} warm-up + {args.runs} runs")
                short_runs = harness.time_runs(lambda: run_chain(1), args.runs, args.warmup)
                document["chain"] = {
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "samples_s": long_runs,
                    "chain1_samples_s": short_runs,
                }
            if "throughput" in wanted:
                results = []
                for clients in levels:
                    harness.say(SYSTEM, f"throughput: {clients} client(s)")
                    results.append(
                        harness.throughput(client, clients, args.max_requests, args.max_seconds)
                    )
                document["throughput"] = {"levels": results}
    finally:
        harness.say(SYSTEM, f"rabbitmqctl delete_vhost {vhost}")
        harness.run_command(SYSTEM, ["rabbitmqctl", "-q", "delete_vhost", vhost])
    return document


if __name__ == "__main__":
    sys.exit(harness.main_guard(SYSTEM, measure))
