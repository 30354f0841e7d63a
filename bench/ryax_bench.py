"""Ryax side of the benchmarks: the platform started by `make demo`, driven through the gateway.

Runs in the platform's virtualenv (it uses the SDK, `ryax_cli.sdk`, and httpx) as a subprocess
of bench/run.py, or alone:

    .venv/bin/python bench/ryax_bench.py [--runs 20] [--only chain,throughput,...]

Prints one JSON document on stdout (see bench/harness.py), or `ryax: <what is not reachable or
what failed>` on stderr and exits 1.

What it does, in order (each part only when selected with --only):
- memory: RSS/PSS of every process supervisord runs (each program's process tree, the worker's
  action processes included) and of supervisord itself, before anything is deployed.
- logs in as the administrator (RYAX_ADMIN_USER, default admin; RYAX_ADMIN_PASSWORD, else
  .dev/admin-password, as dev/platform.py keeps it), creates the project `bench`
  (RYAX_BENCH_PROJECT) if missing, uploads bench/actions/noop and builds it if needed.
- chain: imports the generated workflows bench-chain-40 (HTTP endpoint `httpapijson` -> 40
  sequential no-op steps) and bench-chain-1, deploys them and posts to their endpoints
  (`POST /runner/v1/projects/bench/endpoints/<workflow>`, synchronous: the answer is the run's
  results), measuring from the request to the answer.
- throughput: C threads, each with its own HTTP connection, post to bench-chain-1's endpoint.
- deploy: bench-deploy-3 (endpoint -> 3 no-op steps): from the deploy request to the first 200
  answer of its endpoint, after an undeploy each time.
- build: a build of the unchanged bench-noop (content-addressed: nothing to rebuild), and of a
  new action (bench/actions/noop-dep under a fresh version and content) with one PyPI
  dependency, until the build is done and until the studio's store lists it.
- runs100k: 100,000 runs stored in the runner's database while one-step runs go on, then the
  run list and run detail through the API, and retention deleting the older half
  (bench/history.py).
- memory again with the benchmark workflows deployed; then undeploys what it deployed.
- coldstart (Ryax only, no platform needed; root and bubblewrap): bench/coldstart.py, the
  time from the worker's run of an execution to the handler entered, warm, cold from the fork
  server and cold from run.sh, and the memory of deployed steps warm and asleep.

Environment: RYAX_URL (else RYAX_GATEWAY_URL, else http://127.0.0.1:8080), RYAX_ADMIN_USER,
RYAX_ADMIN_PASSWORD, RYAX_BENCH_PROJECT.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import history
import procinfo

SYSTEM = "ryax"
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DEV = REPO / ".dev"
ACTIONS = BENCH / "actions"
NOOP_ID, NOOP_VERSION = "bench-noop", "1.1"
DEP_ID = "bench-noop-dep"
SUPERVISORCTL = REPO / ".venv" / "bin" / "supervisorctl"
SUPERVISOR_CONF = DEV / "run" / "supervisord.conf"
SUPERVISOR_PID = DEV / "run" / "supervisord.pid"
RUN_TIMEOUT = 120.0
DEPLOY_TIMEOUT = 600.0
BUILD_TIMEOUT = 1200.0
POLL = 0.05


def _sdk() -> Any:
    """The SDK module, imported late: its absence is a clear failure, not a traceback."""
    try:
        from ryax_cli import sdk
    except ImportError as exc:
        raise harness.BenchFailure(
            f"the Ryax SDK (ryax_cli) cannot be imported by {sys.executable}: {exc}; "
            "run this with the platform's .venv/bin/python (make venv installs it)"
        ) from exc
    return sdk


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    url: str
    user: str
    password: str
    project: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        url = (
            env.get("RYAX_URL") or env.get("RYAX_GATEWAY_URL") or "http://127.0.0.1:8080"
        ).rstrip("/")
        password = env.get("RYAX_ADMIN_PASSWORD") or ""
        source = DEV / "admin-password"
        if not password and source.is_file():
            password = source.read_text().strip()
        if not password:
            raise harness.BenchFailure(
                f"no administrator password: set RYAX_ADMIN_PASSWORD, or start the platform "
                f"with `make demo` (it keeps the password in {source})"
            )
        return cls(
            url=url,
            user=env.get("RYAX_ADMIN_USER") or "admin",
            password=password,
            project=env.get("RYAX_BENCH_PROJECT") or "bench",
        )


@contextmanager
def step(name: str) -> Iterator[None]:
    """Turn the SDK's and httpx's errors into one line naming the step."""
    sdk = _sdk()
    try:
        yield
    except harness.BenchFailure:
        raise
    except sdk.RyaxError as exc:
        raise harness.BenchFailure(f"step '{name}' failed: {exc}") from None
    except httpx.HTTPError as exc:
        raise harness.BenchFailure(f"step '{name}' failed: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- workflows


def chain_workflow(name: str, steps: int, path: str) -> dict[str, Any]:
    """An HTTP endpoint followed by `steps` no-op steps in sequence; the last one's output is
    the answer."""
    functions: list[dict[str, Any]] = [
        {
            "id": "api",
            "from": "httpapijson",
            "version": "1.0",
            "inputs_values": {
                "path": path,
                "method": "POST",
                "summary": f"{steps} no-op steps in sequence",
                "success_code": "200",
                "timeout": int(RUN_TIMEOUT),
            },
            "outputs": [
                {
                    "name": "value",
                    "human_name": "Value",
                    "help": "Passed through every step.",
                    "type": "string",
                    "origin": "body",
                }
            ],
            "streams_to": ["s1"],
        }
    ]
    for index in range(1, steps + 1):
        upstream = "api" if index == 1 else f"s{index - 1}"
        functions.append(
            {
                "id": f"s{index}",
                "from": NOOP_ID,
                "version": NOOP_VERSION,
                "inputs_values": {"value": {"reference_value": f"{upstream}.value"}},
                "streams_to": [f"s{index + 1}"] if index < steps else [],
            }
        )
    return {
        "apiVersion": "ryax.tech/v2.0",
        "kind": "Workflows",
        "spec": {
            "human_name": name,
            "description": f"Benchmark: an HTTP endpoint and {steps} no-op steps in sequence.",
            "functions": functions,
            "results": [{"key": "value", "reference_value": f"s{steps}.value"}],
        },
    }


def chain_yaml(name: str, steps: int, path: str) -> str:
    return yaml.safe_dump(chain_workflow(name, steps, path), sort_keys=False)


# --------------------------------------------------------------------------- platform


class RunClient:
    """The timed calls' client: one keep-alive HTTP/1.1 connection of the standard library's
    `http.client`. It sends what any client sends (the same path, query, JSON body and bearer
    token); it is used instead of httpx because the client runs on the cores being measured,
    and httpx cost about 1.1 ms of CPU per request there against 0.2 ms (a fifth of the whole
    platform's CPU per one-step run at the time). A request that fails is not sent again."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._conn: http.client.HTTPConnection | None = None

    def post_json(
        self, path: str, params: dict[str, str], body: object
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of one POST."""
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = kind(self._host, self._port, timeout=self._timeout)
        target = f"{self._prefix}{path}?{urllib.parse.urlencode(params)}"
        try:
            self._conn.request("POST", target, json.dumps(body).encode(), self._headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise harness.BenchFailure(f"POST {path}: {type(exc).__name__}: {exc}") from exc
        headers = {name.lower(): value for name, value in response.getheaders()}
        if response.will_close:
            self.close()
        return response.status, headers, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RunClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Platform:
    """The running platform seen through the SDK (and `RunClient` for the timed calls)."""

    def __init__(self, settings: Settings) -> None:
        sdk = _sdk()
        self.settings = settings
        self.project = settings.project
        self.client = sdk.Client(settings.url, timeout=60.0, poll_interval=0.1)
        self.deployed: list[str] = []

    def close(self) -> None:
        self.client.close()

    def login(self) -> None:
        with step(f"log in as {self.settings.user} at {self.settings.url}"):
            self.client.login(self.settings.user, self.settings.password)

    def ensure_project(self) -> None:
        with step(f"create the project {self.project}"):
            names = {p.name for p in self.client.projects.list()}
            if self.project not in names:
                me = self.client.me()
                self.client.projects.create(self.project, owner=me.id)
                harness.say(SYSTEM, f"project {self.project} created")

    def ensure_noop(self) -> None:
        with step(f"upload and build {NOOP_ID} {NOOP_VERSION}"):
            self.client.repositories.upload(self.project, ACTIONS / "noop")
            # Always asked: builds are content-addressed (the wrapper's source is part of the
            # address), so an artefact built by an older platform is built again, and an
            # up-to-date one costs a request.
            harness.say(SYSTEM, f"building {NOOP_ID} {NOOP_VERSION} (if anything changed)")
            self.client.actions.build(self.project, NOOP_ID, NOOP_VERSION, timeout=BUILD_TIMEOUT)
            self.wait_in_store(NOOP_ID, NOOP_VERSION)

    def wait_in_store(self, action_id: str, version: str, timeout: float = 300.0) -> float:
        started = time.perf_counter()
        while True:
            store = self.client.actions.store(self.project)
            if any(a.action_id == action_id and a.version == version for a in store):
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                raise harness.BenchFailure(
                    f"{action_id} {version} is built but not in the studio's store of project "
                    f"{self.project} after {timeout:.0f} s"
                )
            time.sleep(0.1)

    def workflow_names(self) -> set[str]:
        return {w.name for w in self.client.workflows.list(self.project)}

    def undeploy(self, name: str) -> None:
        with step(f"undeploy {name}"):
            self.client.workflows.undeploy(self.project, name, timeout=DEPLOY_TIMEOUT)

    def install(self, name: str, steps: int, path: str) -> None:
        """Import (or replace) the generated workflow `name`, undeployed."""
        with step(f"import the workflow {name}"):
            text = chain_yaml(name, steps, path)
            if name in self.workflow_names():
                self.client.workflows.undeploy(self.project, name, timeout=DEPLOY_TIMEOUT)
                self.client.workflows.replace_yaml(self.project, name, text)
            else:
                self.client.workflows.import_yaml(self.project, text)

    def deploy(self, name: str) -> float:
        with step(f"deploy the workflow {name}"):
            started = time.perf_counter()
            self.client.workflows.deploy(self.project, name, timeout=DEPLOY_TIMEOUT)
            self.deployed.append(name)
            return time.perf_counter() - started

    def endpoint(self, name: str) -> str:
        return f"/runner/v1/projects/{urllib.parse.quote(self.project)}/endpoints/{name}"

    def http(self) -> httpx.Client:
        """A client of its own (one connection) carrying the session's token."""
        return httpx.Client(
            base_url=self.settings.url,
            headers={"Authorization": f"Bearer {self.client.token}"},
            timeout=RUN_TIMEOUT + 30.0,
        )

    def run_client(self) -> RunClient:
        """A client of its own (one connection) carrying the session's token."""
        return RunClient(self.settings.url, self.client.token, RUN_TIMEOUT + 30.0)

    def trigger(self, http: RunClient, name: str) -> str:
        """One synchronous run through the endpoint; its run id. Anything but the expected
        answer raises."""
        status, headers, data = http.post_json(
            self.endpoint(name), {"timeout": f"{RUN_TIMEOUT:g}"}, {"value": "bench"}
        )
        text = data.decode("utf-8", errors="replace")
        if status != 200:
            raise harness.BenchFailure(
                f"POST {self.endpoint(name)} answered {status}: {text[:500]}"
            )
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("value") != "bench":
            raise harness.BenchFailure(f"POST {self.endpoint(name)} answered {text[:500]!r}")
        return str(headers.get("ryax-run-id", ""))

    def server_durations(self, run_ids: list[str]) -> list[float]:
        """The runner's own duration of each run (`duration_seconds`: the run inside the
        platform, without the HTTP round trip), where it reports one."""
        found: list[float] = []
        with self.http() as http:
            for run_id in run_ids:
                if not run_id:
                    continue
                path = f"/runner/v1/projects/{urllib.parse.quote(self.project)}/runs/{run_id}"
                response = http.get(path)
                if response.status_code == 200:
                    value = response.json().get("duration_seconds")
                    if isinstance(value, int | float):
                        found.append(float(value))
        return found

    def cleanup(self) -> None:
        for name in self.deployed:
            try:
                self.client.workflows.undeploy(self.project, name, timeout=DEPLOY_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - cleaning up: report and go on
                harness.say(SYSTEM, f"warning: could not undeploy {name}: {exc}")


# --------------------------------------------------------------------------- memory


def supervised_pids() -> dict[str, int]:
    """Each supervisord program's pid (running ones), from `supervisorctl status`."""
    command = [str(SUPERVISORCTL), "-c", str(SUPERVISOR_CONF), "status"]
    if not SUPERVISOR_CONF.is_file():
        raise harness.BenchFailure(
            f"{SUPERVISOR_CONF} does not exist: the platform was never started (`make demo`)"
        )
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise harness.BenchFailure(f"command failed: {' '.join(command)}: {exc}") from exc
    pids: dict[str, int] = {}
    for line in done.stdout.splitlines():
        match = re.match(r"^(\S+)\s+RUNNING\s+pid (\d+),", line)
        if match:
            pids[match.group(1)] = int(match.group(2))
    if not pids:
        raise harness.BenchFailure(
            f"command `{' '.join(command)}` lists no running program (exit {done.returncode}): "
            f"{(done.stdout + done.stderr).strip()[:500]}; is the platform running (`make status`)?"
        )
    return pids


#: The worker of `make demo` (its /metrics: how many action processes run).
WORKER_METRICS = "http://127.0.0.1:8107/metrics"
#: At most how long the idle memory waits for the steps to fall asleep: the worker's retention
#: (RYAX_ACTION_RETENTION_SECONDS, 30 s by default) and a margin.
IDLE_WAIT_SECONDS = 90.0


def _gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def wait_idle(limit: float = IDLE_WAIT_SECONDS) -> dict[str, Any]:
    """Wait until every deployed step's action process stopped for being idle (the worker's
    retention policy): what the platform costs when nothing runs. Seconds waited, and whether
    it got there (a step marked always warm, or a worker without retention, never does)."""
    started = time.perf_counter()
    running: float | None = None
    while True:
        try:
            text = httpx.get(WORKER_METRICS, timeout=5.0).text
            running = _gauge(text, "ryax_worker_action_processes")
        except httpx.HTTPError:
            running = None
        waited = time.perf_counter() - started
        if running == 0 or waited >= limit:
            return {"waited_seconds": round(waited, 1), "action_processes_running": running}
        time.sleep(1.0)


def memory() -> dict[str, Any]:
    procinfo.self_check()
    groups = {name: [pid] for name, pid in sorted(supervised_pids().items())}
    snapshot = procinfo.snapshot(groups)
    try:
        daemon = int(SUPERVISOR_PID.read_text().strip())
    except (OSError, ValueError):
        daemon = 0
    own = procinfo.process(daemon) if daemon else None
    if own is not None:
        snapshot["groups"].append(
            {
                "name": "supervisord",
                "processes": [own],
                "rss_bytes": own["rss_bytes"],
                "pss_bytes": own["pss_bytes"],
            }
        )
        snapshot["processes"] += 1
        snapshot["rss_bytes"] += own["rss_bytes"]
        snapshot["pss_bytes"] += own["pss_bytes"]
    # The worker's descendants are the deployed actions' processes (whatever is deployed now,
    # `make demo`'s workflows included): counted apart, so the services alone can be compared.
    actions = [
        proc
        for group in snapshot["groups"]
        if group["name"] == "worker"
        for proc in group["processes"][1:]
    ]
    snapshot["action_processes"] = len(actions)
    snapshot["services_rss_bytes"] = snapshot["rss_bytes"] - sum(a["rss_bytes"] for a in actions)
    snapshot["services_pss_bytes"] = snapshot["pss_bytes"] - sum(a["pss_bytes"] for a in actions)
    return snapshot


# --------------------------------------------------------------------------- benchmarks


def bench_chain(platform: Platform, args: Any) -> dict[str, Any]:
    long_name, short_name = f"bench-chain-{args.steps}", "bench-chain-1"
    deploy_s: dict[str, float] = {}
    for name, steps in ((long_name, args.steps), (short_name, 1)):
        platform.install(name, steps, f"/bench/chain-{steps}")
        harness.say(SYSTEM, f"deploying {name}")
        deploy_s[name] = platform.deploy(name)
    result: dict[str, Any] = {"steps": args.steps, "warmup": args.warmup, "deploy_s": deploy_s}
    for name, key in ((long_name, "samples_s"), (short_name, "chain1_samples_s")):
        harness.say(SYSTEM, f"{name}: {args.warmup} warm-up + {args.runs} runs")
        run_ids: list[str] = []
        with platform.run_client() as http, step(f"trigger {name}"):

            def call(http: RunClient = http, name: str = name, ids: list[str] = run_ids) -> None:
                ids.append(platform.trigger(http, name))

            result[key] = harness.time_runs(call, args.runs, args.warmup)
        with step(f"read the runs of {name}"):
            server = platform.server_durations(run_ids[args.warmup :])
        result[key.replace("samples", "inrun_samples")] = server
    return result


def bench_throughput(platform: Platform, args: Any) -> dict[str, Any]:
    name = "bench-chain-1"
    if name not in platform.deployed:
        platform.install(name, 1, "/bench/chain-1")
        platform.deploy(name)
        # Its action process starts at the first run (a cold start, measured apart): not here.
        http = platform.run_client()
        for _ in range(max(args.warmup, 1)):
            platform.trigger(http, name)
    levels = []
    for clients in harness.clients_of(args.clients):
        harness.say(SYSTEM, f"throughput: {clients} client(s) on {name}")

        def make_call() -> Callable[[], object]:
            http = platform.run_client()
            return lambda: platform.trigger(http, name)

        levels.append(harness.throughput(make_call, clients, args.max_requests, args.max_seconds))
    return {"workflow": name, "levels": levels}


def wait_endpoint(platform: Platform, name: str, started: float) -> tuple[float, str]:
    """Post to the endpoint until it answers 200: seconds since `started`, last other answer."""
    last = ""
    with platform.http() as http:
        while True:
            try:
                response = http.post(
                    platform.endpoint(name),
                    params={"timeout": f"{RUN_TIMEOUT:g}"},
                    json={"value": "bench"},
                )
                if response.status_code == 200:
                    return time.perf_counter() - started, last
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.perf_counter() - started > DEPLOY_TIMEOUT:
                raise harness.BenchFailure(
                    f"the endpoint of {name} does not answer 200 {DEPLOY_TIMEOUT:.0f} s after the "
                    f"deploy request; last answer: {last}"
                )
            time.sleep(POLL)


def bench_deploy(platform: Platform, args: Any) -> dict[str, Any]:
    name = "bench-deploy-3"
    platform.install(name, 3, "/bench/deploy-3")
    samples: list[float] = []
    for index in range(args.deploy_runs):
        harness.say(SYSTEM, f"cold deploy of {name} ({index + 1}/{args.deploy_runs})")
        platform.undeploy(name)
        with step(f"deploy the workflow {name}"):
            started = time.perf_counter()
            platform.client.workflows.deploy(platform.project, name, wait=False)
            if name not in platform.deployed:
                platform.deployed.append(name)
            answered, _ = wait_endpoint(platform, name, started)
            samples.append(answered)
    return {"workflow": name, "actions": 3, "samples_s": samples}


def bench_build(platform: Platform) -> dict[str, Any]:
    result: dict[str, Any] = {}
    harness.say(SYSTEM, f"build of the unchanged {NOOP_ID} {NOOP_VERSION}")
    with step(f"build the unchanged {NOOP_ID}"):
        started = time.perf_counter()
        build = platform.client.actions.build(
            platform.project, NOOP_ID, NOOP_VERSION, timeout=BUILD_TIMEOUT
        )
        result["unchanged_s"] = time.perf_counter() - started
        result["unchanged_state"] = build.state
    nonce = time.strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)
    version = f"1.0-{nonce}"
    with tempfile.TemporaryDirectory(prefix="ryax-bench-") as tmp:
        folder = Path(tmp) / DEP_ID
        shutil.copytree(ACTIONS / "noop-dep", folder)
        metadata = folder / "ryax_metadata.yaml"
        metadata.write_text(
            metadata.read_text().replace('version: "1.0"', f'version: "{version}"', 1)
        )
        with (folder / "ryax_handler.py").open("a") as handler:
            handler.write(f"\n# benchmark build {nonce}: new content, so a real build\n")
        harness.say(SYSTEM, f"build of the new {DEP_ID} {version} (one PyPI dependency)")
        with step(f"upload {DEP_ID} {version}"):
            started = time.perf_counter()
            platform.client.repositories.upload(platform.project, folder)
            result["new_upload_scan_s"] = time.perf_counter() - started
    with step(f"build the new {DEP_ID} {version}"):
        started = time.perf_counter()
        build = platform.client.actions.build(
            platform.project, DEP_ID, version, timeout=BUILD_TIMEOUT
        )
        result["new_with_dependency_s"] = time.perf_counter() - started
        result["new_in_store_s"] = result["new_with_dependency_s"] + platform.wait_in_store(
            DEP_ID, version
        )
        result["new_state"] = build.state
        result["new_version"] = version
    return result


def bench_coldstart(args: Any) -> dict[str, Any]:
    import asyncio

    import coldstart

    try:
        return asyncio.run(coldstart.measure(args.runs, 8))
    except SystemExit as exc:
        raise harness.BenchFailure(str(exc)) from exc


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for package in ("ryax-cli", "ryax-runner", "ryax-worker", "ryax-studio"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        head = ""
    if head:
        found["ryax"] = f"git {head} (+ uncommitted changes, if any)"
    return found


def measure() -> dict[str, Any]:
    p = harness.parser(SYSTEM, __doc__.splitlines()[0])
    p.add_argument("--deploy-runs", type=int, default=3, help="cold deploys measured")
    p.add_argument(
        "--history-runs", type=int, default=history.TOTAL_RUNS, help="runs100k: runs stored"
    )
    args = p.parse_args()
    wanted = harness.selected(args.only)
    cold: dict[str, Any] | None = None
    notes: list[str] = []
    if "coldstart" in wanted and os.geteuid() != 0:
        if wanted == {"coldstart"}:
            raise harness.BenchFailure(
                "coldstart needs root (the worker's sandbox drops actions to nobody)"
            )
        notes.append("coldstart not measured: it needs root (bench/coldstart.py)")
        harness.say(SYSTEM, notes[-1])
    elif "coldstart" in wanted:
        harness.say(SYSTEM, "cold start of a sleeping step (bench/coldstart.py)")
        cold = bench_coldstart(args)
        if wanted == {"coldstart"}:
            return {"system": SYSTEM, "versions": versions(), "notes": [], "coldstart": cold}
    settings = Settings.from_env()
    harness.check_reachable(settings.url)
    document: dict[str, Any] = {
        "system": SYSTEM,
        "versions": versions(),
        "notes": notes,
        "setup": {"gateway": settings.url, "project": settings.project},
    }
    if cold is not None:
        document["coldstart"] = cold
    if "memory" in wanted:
        harness.say(SYSTEM, "memory of the platform's processes, idle (its steps asleep)")
        idle = wait_idle()
        document["memory"] = memory()
        document["memory"]["idle_wait"] = idle
    platform = Platform(settings)
    try:
        platform.login()
        platform.ensure_project()
        platform.ensure_noop()
        if "chain" in wanted:
            document["chain"] = bench_chain(platform, args)
        if "throughput" in wanted:
            document["throughput"] = bench_throughput(platform, args)
        if "deploy" in wanted:
            document["deploy"] = bench_deploy(platform, args)
        if "build" in wanted:
            document["build"] = bench_build(platform)
        if "runs100k" in wanted:

            def one_step() -> str:
                name = "bench-chain-1"
                if name not in platform.deployed:
                    platform.install(name, 1, "/bench/chain-1")
                    platform.deploy(name)
                return name

            document["runs100k"] = history.bench_runs100k(platform, args, one_step)
        if "memory" in wanted and platform.deployed:
            document["memory_loaded"] = memory()
            document["memory_loaded"]["deployed"] = list(platform.deployed)
    finally:
        platform.cleanup()
        platform.close()
    return document


if __name__ == "__main__":
    sys.exit(harness.main_guard(SYSTEM, measure))
