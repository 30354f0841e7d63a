"""The chaos suite (`make chaos`): faults injected into the platform, running as processes, while
runs go on; one row per fault, measured, against the targets of issue 12.

    .venv/bin/python -P dev/chaos.py [--only kill-runner,poison-nul,...] [--runs 150]
                                     [--clients 16] [--cut 10] [--short]
                                     [--out .dev/chaos/results.json]

1. Starts a PRIVATE PostgreSQL (initdb + pg_ctl on a free loopback port, data in .dev/chaos/pg;
   as root the server runs in a user namespace, as PostgreSQL refuses uid 0) and a PRIVATE
   RabbitMQ node (its own node name, ports, mnesia, logs and Erlang cookie in
   .dev/chaos/rabbitmq; it registers with the machine's epmd like any node). The machine's shared
   PostgreSQL, RabbitMQ and epmd are never touched.
2. Starts the platform under supervisord with dev/platform.py pointed at them (RYAX_DEV_PG_DSN,
   RYAX_DEV_AMQP_URL, RYAX_DEV_DATA_DIR=.dev/chaos/data), sets up the demo the way `make demo`
   does (dev/demo_scenario.py: project `demo`, examples/actions built, "Word count demo"
   deployed) and deploys examples/workflows/poison-output.yaml and http-error.yaml ("Failing
   endpoint", the workflow the event checks undeploy and deploy).
3. For each fault: clients post runs of "Word count demo" to its HTTP endpoint (`?mode=async`:
   a 202 means the run is recorded); once half of them are accepted (in flight) the fault is
   injected while the other half keeps coming; meanwhile "Failing endpoint" is undeployed and
   deployed again and `uppercase` is rebuilt (the events WorkflowUndeployed/WorkflowDeployed as the
   studio sees them, ActionBuilt as the repository sees it, ActionReady as the studio's store sees
   it). Then every accepted run must end before a deadline.
   - kill-<program>: SIGKILL to the program's real process (the pid supervisord runs, checked to
     be the service and not supervisord); supervisord must start it again (autorestart).
   - restart-rabbitmq, restart-postgres: the private server is stopped, left down a few seconds,
     started again. crash-postgres: the same with PostgreSQL's immediate stop (its processes
     quit without a checkpoint, as in a crash: commits made without waiting for the disk,
     the runner's step transitions, may be lost; accepted runs must not be).
   - cut-worker-network (root only: `ip netns`): the worker supervisord runs is replaced by the
     same worker in a network namespace of its own, joined to the host's by a veth pair; it
     dials the runner's gRPC port and S3 at the host side of the pair (relayed to their
     loopback ports), and its health port is relayed back to 127.0.0.1:8107. Its link is then
     set down for --cut seconds (10: longer than the runner's heartbeat timeout, so the site
     goes offline and comes back) and up again; nothing answers while it is down (no reset, no
     ICMP). The namespace, the pair and the relays are removed afterwards, whatever happened
     (and at the next start if a run was killed), and supervisord's worker is started again.
   - poison-<kind>: runs of "Poison output" whose action returns a hard value (a NUL byte, a
     lone surrogate, a 10 MB string, NaN) among normal runs.
4. Prints the table, writes the results (JSON), stops everything it started (platform,
   RabbitMQ node, PostgreSQL, leftover action processes) and exits 0 when every target is met,
   1 when one is missed, 2 when the suite could not run.

Targets (issue 12): no run lost (accepted and never ended, or unknown to the runner) and no run
failed for an infrastructure fault; no event lost; back to normal within 5 s of the program's
return (a new run completes, and every /readyz answers 200). A poison run ends FAILED naming the
output, or COMPLETED with the value read back as returned; the runs around it are not affected;
no run at all completing for 30 s after it ("wedged") is a miss.

The platform's fixed ports (8080, 8101-8118) must be free: the suite waits for them
(--wait-ports) and refuses to touch a platform it did not start.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.util
import json
import math
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    del sys.path[0]  # started without -P: dev/platform.py would shadow the standard library's

REPO = HERE.parent
DEV = REPO / ".dev"
ROOT = DEV / "chaos"
PG_DIR = ROOT / "pg"
RABBIT_DIR = ROOT / "rabbitmq"
DATA_DIR = ROOT / "data"
LOG_DIR = ROOT / "logs"
RESULTS = ROOT / "results.json"
# Written before the suite starts the platform, removed once it stopped it: a supervisord of this
# checkout running while it exists was left by a suite killed before its clean-up.
MARKER = ROOT / "platform-started"
PYTHON = REPO / ".venv" / "bin" / "python"
EXAMPLES = REPO / "examples" / "workflows"
POISON_WORKFLOW = EXAMPLES / "poison-output.yaml"
EVENTS_WORKFLOW = EXAMPLES / "http-error.yaml"
DEMO_WORKFLOW = "Word count demo"
REBUILT_ACTION = ("uppercase", "1.0")

MAX_RECOVER_S = 5.0
POST_TIMEOUT = 30.0  # a 202 waits for the run's record: the database may be down that long
WEDGE_S = 30.0
POISON_SPREAD_S = 15.0  # normal runs keep coming that long after the poison runs
TERMINAL = frozenset({"completed", "failed", "cancelled"})
KILLED_PROGRAMS = (
    "runner",
    "worker",
    "studio",
    "repository",
    "action-builder",
    "authorization",
    "gateway",
)
POISON_KINDS = ("huge", "nan", "surrogate", "nul")  # the known wedge (NUL) last
# Output each hard value is returned in, and the value a safe store gives back.
POISON_OUTPUT = {
    "nul": "text_value",
    "surrogate": "text_value",
    "huge": "text_value",
    "nan": "number_value",
}
CUT_FAULT = "cut-worker-network"
FAULTS = (
    *(f"kill-{name}" for name in KILLED_PROGRAMS),
    "restart-rabbitmq",
    "restart-postgres",
    "crash-postgres",
    CUT_FAULT,
    *(f"poison-{kind}" for kind in POISON_KINDS),
)
SHORT_FAULTS = ("kill-worker", "kill-runner", "restart-rabbitmq", CUT_FAULT, "poison-nul")
#: Faults of issue 12 the suite does not inject yet, and why.
NOT_DONE: dict[str, str] = {}


class ChaosError(Exception):
    """The suite cannot go on: a component did not start, the set-up failed."""


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat()


def timestamp(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def load_module(name: str, path: Path) -> ModuleType:
    """dev/ files are loaded by path: dev/ itself must never be on sys.path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ChaosError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def platform_module() -> Any:
    return load_module("ryax_dev_platform", HERE / "platform.py")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def run_command(
    command: list[str],
    *,
    what: str,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChaosError(f"{what}: `{shlex.join(command)}` failed: {exc}") from exc
    if done.returncode != 0:
        raise ChaosError(
            f"{what}: `{shlex.join(command)}` exited {done.returncode}:\n"
            f"{(done.stdout + done.stderr).strip()[-3000:]}"
        )
    return done.stdout


def free_port() -> int:
    port: int = platform_module().devlib.free_ports(1)[0]
    return port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------------------- private servers


def pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def rabbit_bindir() -> Path | None:
    # Debian's /usr/sbin/rabbitmq-* wrappers switch to the rabbitmq user and its cookie (the
    # shared node's): the scripts behind them run as the caller, with the caller's HOME.
    for folder in (Path("/usr/lib/rabbitmq/bin"), *Path("/usr/lib/rabbitmq/lib").glob("*/sbin")):
        if (folder / "rabbitmq-server").exists():
            return folder
    found = shutil.which("rabbitmq-server")
    return Path(found).parent if found else None


def missing_requirements() -> str:
    """Why the suite cannot run on this machine ('' when it can)."""
    if not sys.platform.startswith("linux"):
        return "the chaos suite runs on Linux only"
    if pg_bindir() is None:
        return "PostgreSQL's initdb is not installed (make deps installs PostgreSQL)"
    if rabbit_bindir() is None:
        return "rabbitmq-server is not installed (make deps installs RabbitMQ)"
    if os.geteuid() == 0 and shutil.which("unshare") is None:
        return "running as root needs unshare (util-linux) to start PostgreSQL as non-root"
    if not PYTHON.exists():
        return f"{PYTHON} is missing: run make venv"
    return ""


class PrivatePostgres:
    """A throwaway cluster on a loopback port of its own, data in `folder`."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.log = log
        self.port = 0
        self.password = ""
        bindir = pg_bindir()
        if bindir is None:
            raise ChaosError("PostgreSQL's initdb is not installed")
        self.bindir = bindir

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        if os.geteuid() != 0:
            return command
        # PostgreSQL refuses to run as root: run it in a user namespace where we are an ordinary
        # user that exists (it looks its name up), while the files stay ours outside.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        return [
            "unshare",
            "--user",
            f"--map-user={user.pw_uid}",
            f"--map-group={user.pw_gid}",
            "--",
            *command,
        ]

    def running(self) -> bool:
        pid_file = self.data / "postmaster.pid"
        try:
            return alive(int(pid_file.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return False

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self.password = secrets.token_hex(16)
            pwfile = self.folder / "password"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            run_command(
                self._command(
                    "initdb",
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ),
                what="postgresql: initdb",
                timeout=120,
            )
            self.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c max_connections=300"
        )
        run_command(
            self._command(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ),
            what=f"postgresql: start (log {self.log})",
            timeout=90,
        )

    def stop(self, mode: str = "fast") -> None:
        if not self.running():
            return
        run_command(
            self._command("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"),
            what="postgresql: stop",
            timeout=90,
        )


class PrivateRabbit:
    """A RabbitMQ node of its own: node name, AMQP and distribution ports, mnesia, logs,
    configuration, enabled plugins (none) and Erlang cookie (HOME) all in `folder`."""

    def __init__(self, folder: Path, log_dir: Path, node: str) -> None:
        self.folder = folder
        self.log_dir = log_dir
        self.node = node
        self.port = 0
        self.dist_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        bindir = rabbit_bindir()
        if bindir is None:
            raise ChaosError("rabbitmq-server is not installed")
        self.bindir = bindir

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid_file(self) -> Path:
        return self.folder / "rabbit.pid"

    def env(self) -> dict[str, str]:
        f = self.folder
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        env.update(
            {
                "HOME": str(f / "home"),
                "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(f / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.log_dir),
                "RABBITMQ_PID_FILE": str(self.pid_file),
                "RABBITMQ_CONFIG_FILE": str(f / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(f / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(f / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(f / "enabled_plugins"),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": (
                    "-kernel inet_dist_use_interface {127,0,0,1}"
                ),
            }
        )
        return env

    def ctl(self, *args: str, timeout: float = 90) -> str:
        return run_command(
            [str(self.bindir / "rabbitmqctl"), "-q", "-n", self.node, *args],
            what=f"rabbitmq ({self.node})",
            timeout=timeout,
            env=self.env(),
            cwd=self.folder,
        )

    def start(self) -> None:
        f = self.folder
        if not self.port:
            self.port, self.dist_port = platform_module().devlib.free_ports(2)
        for sub in ("home", "mnesia"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (f / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
        )
        (f / "advanced.config").write_text("[].\n")
        (f / "rabbitmq-env.conf").write_text("")
        (f / "enabled_plugins").write_text("[].\n")
        log = self.log_dir / "server.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.bindir / "rabbitmq-server")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=f,
                start_new_session=True,
            )
        try:
            # `wait` waits for the pid file and then for the node to boot (await_startup
            # fails at once while the node is not registered yet).
            self.ctl("wait", "--timeout", "90", str(self.pid_file), timeout=120)
        except ChaosError as exc:
            self.stop()
            raise ChaosError(f"{exc}\nlast lines of {log}:\n{tail(log)}") from exc

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            self.process = None
            return
        with contextlib.suppress(ChaosError):
            self.ctl("stop", str(self.pid_file), timeout=90)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Our own node, started in its own session: its whole group goes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        self.process = None

    def stop_leftover(self) -> None:
        """A node of this suite left running by a run killed before its clean-up."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return
        if self.node.encode() not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = now() + 60
        while alive(pid) and now() < deadline:
            time.sleep(0.2)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the platform


def wanted_ports() -> list[tuple[int, str]]:
    plat = platform_module()
    ports: list[tuple[int, str]] = plat.wanted_ports(plat.present_services())
    return ports


def busy_ports() -> list[str]:
    plat = platform_module()
    return [
        f"{port} ({who}) held by {plat.who_listens(port)}"
        for port, who in wanted_ports()
        if not plat.devlib.port_is_free(port)
    ]


def wait_ports_free(seconds: float, say: Callable[[str], None]) -> list[str]:
    """Wait until the platform's fixed ports are free: what is still busy after `seconds`."""
    deadline = now() + seconds
    busy = busy_ports()
    told = False
    while busy and now() < deadline:
        if not told:
            say(f"waiting up to {seconds:.0f} s for the platform's ports: {'; '.join(busy)}")
            told = True
        time.sleep(5)
        busy = busy_ports()
    return busy


class Platform:
    """The platform under supervisord, through dev/platform.py, with the suite's overrides."""

    def __init__(self, overrides: dict[str, str], log: Path) -> None:
        self.mod = platform_module()
        self.overrides = overrides
        self.log = log
        self._programs: dict[str, Any] = {}

    def _cli(self, command: str, timeout: float) -> None:
        env = {**os.environ, **self.overrides}
        with self.log.open("a") as out:
            out.write(f"\n$ dev/platform.py {command}\n")
            out.flush()
            done = subprocess.run(
                [str(PYTHON), "-P", str(HERE / "platform.py"), command],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=REPO,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            raise ChaosError(
                f"dev/platform.py {command} exited {done.returncode}; last lines of "
                f"{self.log}:\n{tail(self.log, 40)}"
            )

    def up(self) -> None:
        MARKER.parent.mkdir(parents=True, exist_ok=True)
        MARKER.write_text(f"{os.getpid()}\n")
        self._cli("up", timeout=600)
        secrets_ = self.mod.load_secrets()
        self._programs = {
            p.name: p for p in self.mod.programs_for(self.mod.present_services(), secrets_)
        }

    def down(self) -> None:
        if self.mod.supervisord_pid() is not None:
            self._cli("down", timeout=180)
        MARKER.unlink(missing_ok=True)

    def running_here(self) -> bool:
        return self.mod.supervisord_pid() is not None

    def autorestart(self) -> dict[str, bool]:
        """Each program's autorestart setting in the generated supervisord.conf."""
        found: dict[str, bool] = {}
        current = ""
        for line in self.mod.SUPERVISOR_CONF.read_text().splitlines():
            if line.startswith("[program:"):
                current = line[len("[program:") : -1]
            elif current and line.replace(" ", "").startswith("autorestart="):
                found[current] = line.split("=", 1)[1].strip() == "true"
        return found

    def info(self, name: str) -> dict[str, Any]:
        try:
            entry: dict[str, Any] = self.mod.process_info().get(name, {})
        except Exception:  # noqa: BLE001 - supervisord busy or restarting: unknown for now
            return {}
        return entry

    def healthy(self, name: str) -> bool:
        program = self._programs.get(name)
        return bool(program is not None and program.health())

    def all_ready(self) -> bool:
        """Every service's /readyz answers 200, the gateway and S3 answer."""
        status = self.mod.http_status
        for service in self.mod.present_services():
            if status(f"http://127.0.0.1:{service.http_port}/readyz", timeout=2.0) != 200:
                return False
        return self.healthy("gateway") and self.healthy("s3")

    def restart_programs(self, names: list[str]) -> None:
        proxy = self.mod.supervisor_proxy()
        for name in names:
            with contextlib.suppress(Exception):
                proxy.supervisor.stopProcess(name, True)
        for name in reversed(names):
            proxy.supervisor.startProcess(name, True)


def data_processes(folder: Path = DATA_DIR) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of the processes running from `folder` or naming it (the
    worker's action processes run from its cache; S3 keeps its data in the data folder)."""
    found = []
    marker = str(folder)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
            ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if marker in cmdline or cwd.startswith(marker):
            found.append((int(entry.name), ppid, cmdline.strip()))
    return found


def descends_from(pid: int, ancestor: int) -> bool:
    current = pid
    for _ in range(64):
        if current == ancestor:
            return True
        if current <= 1:
            return False
        try:
            current = int(Path(f"/proc/{current}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


# --------------------------------------------------------------------------- worker network cut


def netns_problem() -> str:
    """Why the worker cannot be put in a network namespace here ('' when it can)."""
    problem: str = platform_module().devlib.netns_problem()
    return problem


class NetnsWorker:
    """The platform's worker, run in a network namespace of its own for the network cut: the
    worker supervisord runs is stopped, this one is started with the same settings
    (.dev/run/env/worker.env) but for the addresses: it dials the runner's gRPC port and the
    S3 API at the host side of the veth pair (relayed to the platform's loopback ports) and
    serves its health port inside (relayed back to 127.0.0.1:8107 for /readyz). stop() puts
    things back as they were, whatever happened."""

    def __init__(self, platform: Platform, tag: str, log: Path) -> None:
        self.platform = platform
        devlib = platform.mod.devlib
        self.link = devlib.NetnsLink(tag, prefix="ryax-chaos")
        self.log = log
        self.relays: Any = None
        self.process: subprocess.Popen[bytes] | None = None
        self._supervised_stopped = False

    def start(self) -> None:
        mod = self.platform.mod
        service = next(s for s in mod.SERVICES if s.folder == "worker")
        env_file = mod.ENV_DIR / f"{service.program}.env"
        settings = mod.devlib.read_env_file(env_file)
        try:
            self.link.create()
        except mod.devlib.NetnsError as exc:
            raise ChaosError(str(exc)) from exc
        host, inside = self.link.host_ip, self.link.ns_ip
        grpc_port, s3_port, http_port = mod.RUNNER_GRPC_PORT, mod.S3_PORTS.s3, service.http_port
        proxy = mod.supervisor_proxy()
        proxy.supervisor.stopProcess("worker", True)
        self._supervised_stopped = True
        self.relays = mod.devlib.Relays(
            [
                (host, grpc_port, mod.HOST, grpc_port),
                (host, s3_port, mod.HOST, s3_port),
                (mod.HOST, http_port, inside, http_port),
            ]
        )
        try:
            self.relays.start()
        except mod.devlib.NetnsError as exc:
            raise ChaosError(str(exc)) from exc
        overrides = {
            "RYAX_RUNNER_GRPC_ADDRESS": f"{host}:{grpc_port}",
            "RYAX_S3_ENDPOINT": f"{host}:{s3_port}",
            "RYAX_HTTP_HOST": inside,
        }
        if not settings.get("RYAX_RUNNER_CA_FILE"):
            # The veth pair is the suite's own, on this machine: plaintext as on loopback.
            overrides["RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT"] = "true"
        elif not settings.get("RYAX_RUNNER_TLS_SERVER_NAME"):
            overrides["RYAX_RUNNER_TLS_SERVER_NAME"] = mod.HOST
        exports = " && ".join(f"export {k}={shlex.quote(v)}" for k, v in overrides.items())
        # Across the veth pair, not the runner's Unix socket (it would go round the cut).
        script = (
            f"set -a && . {shlex.quote(str(env_file))} && set +a && {exports} && "
            "unset RYAX_RUNNER_WORKER_SOCKET && "
            f"exec {shlex.quote(str(PYTHON))} -m {service.package}"
        )
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.link.name, "bash", "-c", script],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO / service.folder,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> list[str]:
        """Stop the namespaced worker (SIGTERM, then everything in the namespace is killed),
        the relays and the namespace; start supervisord's worker again. What went wrong."""
        problems: list[str] = []
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                problems.append("the namespaced worker did not stop on SIGTERM in 40 s")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        self.process = None
        try:
            self.link.destroy()
        except Exception as exc:  # noqa: BLE001 - go on putting things back
            problems.append(f"network namespace: {exc}")
        if self.relays is not None:
            self.relays.stop()
            self.relays = None
        if self._supervised_stopped:
            try:
                self.platform.mod.supervisor_proxy().supervisor.startProcess("worker", True)
                self._supervised_stopped = False
            except Exception as exc:  # noqa: BLE001 - reported; settle() rebuilds if needed
                problems.append(f"supervisord's worker did not start again: {exc}")
        return problems


# --------------------------------------------------------------------------- load and checks


@dataclass
class Accepted:
    run_id: str
    index: int
    text: str
    at: float


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def demo_results_ok(text: str, results: Any) -> bool:
    """examples/workflows/demo.yaml: summary '<TEXT> | <slug>'; words, the words of the report
    (its title 'Posted text' included) for a text of plain space-separated words."""
    if not isinstance(results, dict):
        return False
    summary_ok = results.get("summary") == f"{text.upper()} | {slug(text)}"
    return summary_ok and results.get("words") == len(text.split()) + 2


class Load:
    """Clients posting runs of the demo workflow through the gateway (`?mode=async`: a 202 means
    the run is recorded). The first `burst` runs go as fast as the clients can; the others wait
    for release() and then come at `rate` per second. A refused post is tried again."""

    def __init__(
        self,
        ctx: Context,
        label: str,
        *,
        runs: int,
        clients: int,
        burst: int,
        rate: float,
        post_seconds: float,
    ) -> None:
        self.ctx = ctx
        self.label = label
        self.runs = runs
        self.burst = burst
        self.rate = rate
        self.post_seconds = post_seconds
        self.accepted: list[Accepted] = []
        self.rejected = 0
        self.unanswered = 0
        self.never_accepted = 0
        self.answers: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._outstanding = 0
        self._local = threading.local()
        self._next = 0
        self._released = threading.Event()
        self._release_at = 0.0
        self._deadline = 0.0
        self._started = 0.0
        self._threads = [
            threading.Thread(target=self._client, name=f"load-{label}-{i}", daemon=True)
            for i in range(clients)
        ]

    def start(self) -> None:
        self._started = now()
        self._deadline = self._started + self.post_seconds
        for thread in self._threads:
            thread.start()

    def release(self) -> None:
        self._release_at = now()
        self._released.set()

    def wait_accepted(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.accepted) >= count, timeout=timeout)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=max(0.0, self._deadline - now()) + POST_TIMEOUT + 10)

    def stop(self) -> None:
        """No new post (those under way end with their answer or their timeout)."""
        self._deadline = now()
        self._released.set()

    def posting(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def outstanding(self) -> int:
        """Posts sent and not answered yet."""
        with self._cond:
            return self._outstanding

    def last_accept(self) -> float:
        with self._cond:
            return max((run.at for run in self.accepted), default=self._started)

    def _take(self) -> int | None:
        with self._cond:
            if self._next >= self.runs:
                return None
            self._next += 1
            return self._next - 1

    def _client(self) -> None:
        with self.ctx.http() as http:
            while (index := self._take()) is not None:
                if index >= self.burst:
                    self._released.wait(timeout=max(0.0, self._deadline - now()))
                    due = self._release_at + (index - self.burst) / self.rate
                    time.sleep(max(0.0, min(due, self._deadline) - now()))
                self._post(http, index)

    def _post(self, http: Any, index: int) -> None:
        text = f"chaos {self.label} {index}"
        while now() < self._deadline:
            answer = self._send(http, text)
            if answer is None:
                with self._cond:
                    self.accepted.append(Accepted(self._run_id, index, text, now()))
                    self._cond.notify_all()
                return
            with self._cond:
                self.answers[answer] += 1
                if answer == "timeout":
                    self.unanswered += 1
                else:
                    self.rejected += 1
            if answer != "timeout":
                time.sleep(0.2)
        with self._cond:
            self.never_accepted += 1

    def _send(self, http: Any, text: str) -> str | None:
        """One post: None when accepted (the run id in the thread's _run_id), else what came."""
        import httpx

        with self._cond:
            self._outstanding += 1
        try:
            response = http.post(
                self.ctx.demo_endpoint,
                params={"mode": "async"},
                json={"text": text},
                timeout=POST_TIMEOUT,
            )
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return type(exc).__name__
        finally:
            with self._cond:
                self._outstanding -= 1
        if response.status_code != 202:
            return f"HTTP {response.status_code}"
        self._local.run_id = str(
            response.json().get("run_id") or response.headers.get("Ryax-Run-Id")
        )
        return None

    @property
    def _run_id(self) -> str:
        return str(self._local.run_id)


class Watch(threading.Thread):
    """Calls `check` until it answers True (ok_at) or the deadline passes."""

    def __init__(self, name: str, check: Callable[[], bool], deadline: float, interval: float):
        super().__init__(name=name, daemon=True)
        self.check = check
        self.deadline = deadline
        self.interval = interval
        self.ok_at: float | None = None

    def run(self) -> None:
        while now() < self.deadline:
            try:
                if self.check():
                    self.ok_at = now()
                    return
            except Exception:  # noqa: BLE001 - the platform is not back yet, whatever the error
                pass
            time.sleep(self.interval)


@dataclass
class EventOutcome:
    event: str
    arrived: bool
    seconds: float | None = None
    detail: str = ""


class EventCheck(threading.Thread):
    """During a fault: undeploy and deploy the second workflow and rebuild an action; each state
    transition must be seen within the deadline (as the studio and the repository show it)."""

    def __init__(self, ctx: Context, deadline_s: float) -> None:
        super().__init__(name="events", daemon=True)
        self.ctx = ctx
        self.deadline_s = deadline_s
        self.outcomes: list[EventOutcome] = []
        self.error = ""

    EXPECTED = 4

    def run(self) -> None:
        try:
            with self.ctx.sdk_client() as client:
                self._cycle(client)
        except Exception as exc:  # noqa: BLE001 - reported as the check's error, counted lost
            self.error = f"{type(exc).__name__}: {exc}"

    def lost(self) -> int:
        return self.EXPECTED - sum(1 for o in self.outcomes if o.arrived)

    def _request(self, what: str, call: Callable[[], Any]) -> tuple[bool, Any, str]:
        """Send until the service accepts it (it may be the one that is down)."""
        sdk = self.ctx.sdk()
        deadline = now() + self.deadline_s
        last = ""
        while now() < deadline:
            try:
                return True, call(), ""
            except sdk.RyaxError as exc:
                last = f"{what}: {type(exc).__name__}: {exc}"[:300]
            time.sleep(0.3)
        return False, None, last or f"{what}: not accepted"

    def _await(
        self, event: str, check: Callable[[], tuple[bool | None, str]], started: float
    ) -> None:
        """check: (True: arrived, False: not yet, None: ended otherwise, detail)."""
        deadline = started + self.deadline_s
        detail = ""
        while now() < deadline:
            try:
                done, detail = check()
            except Exception as exc:  # noqa: BLE001 - the service is still down: ask again
                done, detail = False, f"{type(exc).__name__}: {exc}"[:300]
            if done is None:
                self.outcomes.append(EventOutcome(event, False, None, detail))
                return
            if done:
                self.outcomes.append(EventOutcome(event, True, now() - started, detail))
                return
            time.sleep(0.2)
        self.outcomes.append(
            EventOutcome(event, False, None, f"not seen in {self.deadline_s:.0f} s; {detail}")
        )

    def _refused(self, event: str, detail: str) -> None:
        self.outcomes.append(EventOutcome(event, False, None, f"request refused: {detail}"))

    def _cycle(self, client: Any) -> None:
        project, workflow = self.ctx.project, self.ctx.events_workflow

        def deployment_state() -> str:
            current = client.workflows.deployment(project, workflow)
            return "undeployed" if current is None else str(current.state).lower()

        def state_is(*states: str) -> Callable[[], tuple[bool | None, str]]:
            def check() -> tuple[bool | None, str]:
                state = deployment_state()
                return state in states, f"state {state}"

            return check

        started = now()
        ok, _, why = self._request(
            "undeploy", lambda: client.workflows.undeploy(project, workflow, wait=False)
        )
        event = "WorkflowUndeployed (studio)"
        if ok:
            self._await(event, state_is("undeployed", "stopped", "not_deployed"), started)
        else:
            self._refused(event, why)

        started = now()
        ok, _, why = self._request(
            "deploy", lambda: client.workflows.deploy(project, workflow, wait=False)
        )
        event = "WorkflowDeployed (studio)"
        if ok:
            self._await(event, state_is("deployed", "running", "ready", "active"), started)
        else:
            self._refused(event, why)

        action_id, version = REBUILT_ACTION

        def ready_at() -> Any:
            for entry in client.actions.store(project):
                if entry.action_id == action_id and entry.version == version:
                    return entry.ready_at
            return None

        # Read through _request too: the service answering it may be the one that is down.
        ok, before, why = self._request("store", ready_at)
        if not ok:
            self._refused("ActionBuilt (repository)", why)
            self._refused("ActionReady (studio store)", why)
            return
        started = now()
        ok, build, why = self._request(
            "build",
            lambda: client.actions.build(project, action_id, version, wait=False, force=True),
        )
        if not ok:
            self._refused("ActionBuilt (repository)", why)
            self._refused("ActionReady (studio store)", why)
            return

        def built() -> tuple[bool | None, str]:
            current = client.actions.get_build(project, build.id)
            if current.failed:
                return None, f"build {build.id} {current.state}: {current.error}"
            return bool(current.done), f"build {current.state}"

        self._await("ActionBuilt (repository)", built, started)

        def ready() -> tuple[bool | None, str]:
            current = ready_at()
            return current is not None and (before is None or current > before), f"{current}"

        self._await("ActionReady (studio store)", ready, started)


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    fault: str
    accepted: int = 0
    completed: int = 0
    failed: int = 0
    lost: int = 0
    wrong_results: int = 0
    rejected_posts: int = 0
    unanswered_posts: int = 0
    never_accepted: int = 0
    in_flight_at_fault: int = 0
    events_expected: int = 0
    events_lost: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    down_s: float | None = None
    recover_run_s: float | None = None
    recover_ready_s: float | None = None
    restarted: bool | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)
    lost_states: dict[str, int] = field(default_factory=dict)
    poison: dict[str, Any] | None = None
    wedged: bool | None = None
    unable: str = ""  # the fault could not be injected on this machine, and why
    problems: list[str] = field(default_factory=list)  # misses found while injecting
    misses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def judge(self) -> None:
        miss = self.misses.append
        if self.unable:
            miss(f"could not run: {self.unable}")
            return
        self.misses.extend(self.problems)
        if self.lost:
            miss(f"{self.lost} run(s) lost")
        if self.failed:
            miss(f"{self.failed} run(s) failed")
        if self.wrong_results:
            miss(f"{self.wrong_results} run(s) completed with wrong results")
        if self.events_lost:
            miss(f"{self.events_lost}/{self.events_expected} event(s) lost")
        if self.restarted is False:
            miss("supervisord did not start the program again")
        if self.wedged:
            miss(f"wedged: no run completed for {WEDGE_S:.0f} s after the poison run")
        if self.poison is not None and self.poison["bad"]:
            miss(f"{self.poison['bad']}/{self.poison['runs']} poison run(s) handled badly")
        if self.poison is None:
            for what, value in (("a run", self.recover_run_s), ("/readyz", self.recover_ready_s)):
                if value is None:
                    miss(f"{what}: not back to normal")
                elif value > MAX_RECOVER_S:
                    miss(f"{what}: back to normal after {value:.1f} s > {MAX_RECOVER_S:.0f} s")

    def summary(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    header = (
        "fault",
        "accepted",
        "completed",
        "failed",
        "lost",
        "events lost",
        "down s",
        "run back s",
        "ready s",
        "result",
    )
    lines = [header]
    for r in rows:
        events = f"{r.events_lost}/{r.events_expected}" if r.events_expected else "-"
        lines.append(
            (
                r.fault,
                str(r.accepted),
                str(r.completed),
                str(r.failed),
                str(r.lost),
                events,
                fmt(r.down_s),
                fmt(r.recover_run_s),
                fmt(r.recover_ready_s),
                "ok" if not r.misses else "MISS",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        cells = [
            cell.ljust(width) if i in (0, len(header) - 1) else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths))
    return "\n".join(out)


def details(rows: list[Row]) -> str:
    out = []
    for r in rows:
        bits = list(r.misses)
        if r.failure_reasons:
            reason, count = max(r.failure_reasons.items(), key=lambda item: item[1])
            bits.append(f"most failures ({count}): {reason}")
        if r.poison is not None:
            bits.append(f"poison: {r.poison['summary']}")
        bits += r.notes
        if bits:
            out.append(f"{r.fault}: " + "; ".join(bits))
    return "\n".join(out)


# --------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class Options:
    faults: tuple[str, ...] = FAULTS
    runs: int = 150
    clients: int = 16
    rate: float = 20.0
    poison_runs: int = 3
    post_seconds: float = 90.0
    run_deadline: float = 120.0
    event_deadline: float = 60.0
    recover_deadline: float = 60.0
    outage: float = 3.0
    # The worker's link stays cut that long: longer than the runner's heartbeat timeout (6 s),
    # so the runner sees the site go away and come back.
    cut: float = 10.0
    wait_ports: float = 600.0
    out: Path = RESULTS


SHORT = Options(
    faults=SHORT_FAULTS,
    runs=24,
    clients=8,
    rate=12.0,
    poison_runs=1,
    post_seconds=60.0,
    run_deadline=45.0,
    event_deadline=30.0,
    recover_deadline=30.0,
    wait_ports=120.0,
    out=ROOT / "results-short.json",
)


@dataclass
class Context:
    url: str
    project: str
    token: str
    user: str
    password: str
    events_workflow: str
    poison_workflow: str

    @property
    def demo_endpoint(self) -> str:
        return self.endpoint(DEMO_WORKFLOW)

    def endpoint(self, workflow: str) -> str:
        return (
            f"/runner/v1/projects/{urllib.parse.quote(self.project, safe='')}/endpoints/"
            f"{urllib.parse.quote(workflow, safe='')}"
        )

    def http(self) -> Any:
        import httpx

        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30.0,
        )

    def sdk(self) -> Any:
        return importlib.import_module("ryax_cli.sdk")

    def sdk_client(self) -> Any:
        return self.sdk().Client(self.url, self.token, timeout=30.0, poll_interval=0.2)


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (its children's too) to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class Suite:
    """Everything the suite starts, and the faults. start() then run_fault() for each, stop()
    in any case (also after a failed start)."""

    def __init__(self, options: Options, say: Callable[[str], None] | None = None) -> None:
        self.options = options
        self._say = say or (lambda line: print(line, flush=True))
        self.t0 = now()
        plat = platform_module()
        node = f"ryax-chaos-{plat.NAMES.checkout_id}@localhost"
        self.pg = PrivatePostgres(PG_DIR, LOG_DIR / "postgresql.log")
        self.rabbit = PrivateRabbit(RABBIT_DIR, LOG_DIR / "rabbitmq", node)
        self.platform: Platform | None = None
        self.ctx: Context | None = None
        self.autorestart: dict[str, bool] = {}
        self.setup_seconds = 0.0
        self.rebuilds = 0
        self.rows: list[Row] = []
        self.netns_tag = plat.NAMES.checkout_id
        self.netns_worker: NetnsWorker | None = None

    def say(self, line: str) -> None:
        self._say(f"[chaos {now() - self.t0:6.1f}s] {line}")

    # ----------------------------------------------------------------------- start and stop

    def start(self) -> None:
        started = now()
        problem = missing_requirements()
        if problem:
            raise ChaosError(problem)
        plat = platform_module()
        if plat.supervisord_pid() is not None:
            if not MARKER.exists():
                raise ChaosError(
                    "the platform of this checkout is running (make demo?): `make down` first; "
                    "the chaos suite runs a platform of its own"
                )
            self.say("a platform left by an earlier chaos run is running: stopping it")
            Platform({}, LOG_DIR / "platform.log").down()
        busy = wait_ports_free(self.options.wait_ports, self.say)
        if busy:
            raise ChaosError("the platform's ports are busy: " + "; ".join(busy))
        self._clean_leftovers()
        self._start_stack()
        self.setup_seconds = now() - started
        self.say(f"ready in {self.setup_seconds:.0f} s")

    def _clean_leftovers(self) -> None:
        if self.pg.running():
            self.say("stopping a PostgreSQL left by an earlier chaos run")
            self.pg.stop("immediate")
        self.rabbit.stop_leftover()
        if not netns_problem():
            link = platform_module().devlib.NetnsLink(self.netns_tag, prefix="ryax-chaos")
            if link.exists():
                self.say(f"removing the network namespace {link.name} left by an earlier run")
            link.destroy()
        self._kill_data_processes("left by an earlier chaos run")

    def _start_stack(self) -> None:
        for folder in (PG_DIR, RABBIT_DIR, LOG_DIR / "rabbitmq"):
            shutil.rmtree(folder, ignore_errors=True)
        # Data from scratch, except the builder's cache (downloaded wheels: faster builds).
        if DATA_DIR.exists():
            for entry in DATA_DIR.iterdir():
                if entry.name != "builder-cache":
                    shutil.rmtree(entry, ignore_errors=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.say(f"starting a private PostgreSQL (data in {PG_DIR.relative_to(REPO)})")
        self.pg.start()
        self.say(
            f"starting a private RabbitMQ node {self.rabbit.node} "
            f"(data in {RABBIT_DIR.relative_to(REPO)})"
        )
        self.rabbit.start()
        overrides = {
            "RYAX_DEV_PG_DSN": self.pg.dsn,
            "RYAX_DEV_AMQP_URL": self.rabbit.url,
            "RYAX_DEV_DATA_DIR": str(DATA_DIR),
        }
        self.platform = Platform(overrides, LOG_DIR / "platform.log")
        self.say(
            f"starting the platform on 127.0.0.1:{self.pg.port} (PostgreSQL) and "
            f"127.0.0.1:{self.rabbit.port} (RabbitMQ)"
        )
        self.platform.up()
        self.autorestart = self.platform.autorestart()
        self.say(f"setting up the demo (log {LOG_DIR.relative_to(REPO) / 'setup.log'})")
        self.ctx = self._set_up()

    def stop(self) -> None:
        errors = []
        for what, step in (
            ("worker's network namespace", self._stop_netns_worker),
            ("platform", self._stop_platform),
            ("rabbitmq", self.rabbit.stop),
            ("postgresql", self.pg.stop),
        ):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway, then report
                errors.append(f"{what}: {exc}")
        self._kill_data_processes("still running after the platform stopped")
        self.say("stopped: platform, RabbitMQ node, PostgreSQL")
        if errors:
            raise ChaosError("clean-up: " + "; ".join(errors))

    def _stop_netns_worker(self) -> None:
        worker, self.netns_worker = self.netns_worker, None
        if worker is not None:
            problems = worker.stop()
            if problems:
                raise ChaosError("; ".join(problems))

    def _stop_platform(self) -> None:
        platform = self.platform or Platform({}, LOG_DIR / "platform.log")
        if MARKER.exists() or self.platform is not None:
            platform.down()

    def _kill_data_processes(self, why: str) -> None:
        leftovers = [p for p in data_processes() if p[0] != os.getpid()]
        for pid, _, cmdline in leftovers:
            self.say(f"killing process {pid} {why}: {cmdline[:120]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def rebuild(self, why: str) -> None:
        """Everything from scratch: a fault left the platform unusable."""
        self.rebuilds += 1
        self.say(f"starting everything again from scratch: {why}")
        self._stop_platform()
        self.rabbit.stop()
        self.pg.stop()
        self._kill_data_processes("left by the stopped platform")
        self.rabbit.port = 0
        self._start_stack()

    def _set_up(self) -> Context:
        scenario = load_module("ryax_chaos_demo_scenario", HERE / "demo_scenario.py")
        plat = platform_module()
        secrets_ = plat.load_secrets()
        settings = scenario.Settings(
            url=plat.GATEWAY_URL,
            admin_user=secrets_.admin_user,
            admin_password=secrets_.admin_password,
            demo_user="demo",
            demo_password=scenario.secret_file(scenario.DEV / "demo-password"),
            project="demo",
            text=scenario.DEFAULT_TEXT,
        )
        log = LOG_DIR / "setup.log"
        try:
            with output_to(log), tempfile.TemporaryDirectory(prefix="ryax-chaos-") as tmp:
                outcome = scenario.scenario(settings, Path(tmp))
        except scenario.StepFailed as exc:
            raise ChaosError(f"demo set-up: {exc}; last lines of {log}:\n{tail(log)}") from exc
        sdk: Any = importlib.import_module("ryax_cli.sdk")
        with sdk.Client(settings.url, timeout=60.0, poll_interval=0.2) as client:
            client.login(outcome["user"], outcome["password"])
            names = {}
            try:
                existing = {w.name for w in client.workflows.list(settings.project)}
                for path in (POISON_WORKFLOW, EVENTS_WORKFLOW):
                    text = path.read_text()
                    name = scenario.yaml.safe_load(text)["spec"]["human_name"]
                    if name in existing:
                        client.workflows.undeploy(settings.project, name, timeout=120)
                        client.workflows.replace_yaml(settings.project, name, text)
                    else:
                        client.workflows.import_yaml(settings.project, text)
                    client.workflows.deploy(settings.project, name, timeout=300)
                    names[path] = name
            except sdk.RyaxError as exc:
                raise ChaosError(f"deploying the chaos workflows: {exc}") from exc
            return Context(
                url=settings.url,
                project=settings.project,
                token=str(client.token),
                user=outcome["user"],
                password=outcome["password"],
                events_workflow=names[EVENTS_WORKFLOW],
                poison_workflow=names[POISON_WORKFLOW],
            )

    # ----------------------------------------------------------------------- helpers

    @property
    def context(self) -> Context:
        if self.ctx is None:
            raise ChaosError("the suite is not started")
        return self.ctx

    @property
    def plat(self) -> Platform:
        if self.platform is None:
            raise ChaosError("the suite is not started")
        return self.platform

    def probe_run(self) -> Callable[[], bool]:
        """A check: one synchronous run of the demo workflow completes with its results."""
        ctx = self.context
        http = ctx.http()

        def check() -> bool:
            text = "chaos probe"
            response = http.post(
                ctx.demo_endpoint, params={"timeout": "10"}, json={"text": text}, timeout=15.0
            )
            return response.status_code == 200 and demo_results_ok(text, response.json())

        return check

    def watch_recovery(self, since: float) -> tuple[Watch, Watch]:
        deadline = since + self.options.recover_deadline
        run = Watch("probe-run", self.probe_run(), deadline, 0.1)
        ready = Watch("probe-ready", self.plat.all_ready, deadline, 0.1)
        run.start()
        ready.start()
        return run, ready

    def settle(self, row: Row) -> None:
        """Before a fault: the platform answers and completes a run (else start again)."""
        watches = self.watch_recovery(now())
        for watch in watches:
            watch.join()
        if all(watch.ok_at is not None for watch in watches):
            return
        self.rebuild(f"not back to normal before {row.fault}")
        row.notes.append("the platform was started again from scratch before this fault")

    def list_runs(self, http: Any, since: float) -> dict[str, dict[str, Any]] | None:
        ctx = self.context
        found: dict[str, dict[str, Any]] = {}
        cursor = None
        path = f"/runner/v1/projects/{urllib.parse.quote(ctx.project, safe='')}/runs"
        try:
            while True:
                params = {"since": iso(since - 5), "limit": "500"}
                if cursor:
                    params["cursor"] = cursor
                response = http.get(path, params=params, timeout=30.0)
                if response.status_code != 200:
                    return None
                body = response.json()
                found.update({doc["id"]: doc for doc in body["runs"]})
                cursor = body.get("next_cursor")
                if not cursor:
                    return found
        except Exception:  # noqa: BLE001 - runner or gateway down: ask again later
            return None

    def collect(
        self,
        ids: Callable[[], list[str]],
        since: float,
        deadline: Callable[[], float],
        load: Load | None = None,
        wedge_from: float | None = None,
    ) -> tuple[dict[str, dict[str, Any]], bool]:
        """The runs' records once all ended (and `load` posts no more), or at the deadline.
        With `wedge_from`: stop early, wedged, when no run of `load` completed for WEDGE_S while
        some of its runs, or of its posts, wait."""
        docs: dict[str, dict[str, Any]] = {}
        with self.context.http() as http:
            while True:
                listed = self.list_runs(http, since)
                if listed is not None:
                    docs = listed
                wanted = ids()
                ended = [i for i in wanted if docs.get(i, {}).get("state") in TERMINAL]
                posting = load is not None and load.posting()
                if len(ended) == len(wanted) and not posting:
                    return docs, False
                if wedge_from is not None and load is not None:
                    normal = [run.run_id for run in load.accepted]
                    completions = [
                        timestamp(docs[i].get("ended_at")) or 0.0
                        for i in normal
                        if docs.get(i, {}).get("state") == "completed"
                    ]
                    last = max([wedge_from, *completions])
                    waiting = load.outstanding() or any(
                        docs.get(i, {}).get("state") not in TERMINAL for i in normal
                    )
                    if waiting and now() - last > WEDGE_S:
                        return docs, True
                if now() > deadline():
                    return docs, False
                time.sleep(0.5)

    def count_runs(self, row: Row, load: Load, docs: dict[str, dict[str, Any]]) -> None:
        reasons: Counter[str] = Counter()
        lost_states: Counter[str] = Counter()
        row.accepted = len(load.accepted)
        for run in load.accepted:
            doc = docs.get(run.run_id)
            state = doc.get("state") if doc else None
            if doc is None or state not in TERMINAL:
                row.lost += 1
                lost_states[state or "unknown to the runner"] += 1
            elif state == "completed":
                if demo_results_ok(run.text, doc.get("results")):
                    row.completed += 1
                else:
                    row.wrong_results += 1
            else:
                row.failed += 1
                reasons[f"{state}: {(doc.get('reason') or '')[:160]}"] += 1
        row.failure_reasons = dict(reasons.most_common(5))
        row.lost_states = dict(lost_states)
        row.rejected_posts = load.rejected
        row.unanswered_posts = load.unanswered
        row.never_accepted = load.never_accepted
        if load.never_accepted:
            row.notes.append(f"{load.never_accepted} run(s) never accepted")
        if load.answers:
            refused = ", ".join(f"{k} x{v}" for k, v in load.answers.most_common(4))
            row.notes.append(f"refused posts (tried again): {refused}")

    def first_completion(
        self, load: Load, docs: dict[str, dict[str, Any]], since: float
    ) -> float | None:
        ends = [
            ts
            for run in load.accepted
            if docs.get(run.run_id, {}).get("state") == "completed"
            and (ts := timestamp(docs[run.run_id].get("ended_at"))) is not None
            and ts >= since
        ]
        return min(ends, default=None)

    # ----------------------------------------------------------------------- faults

    def run_fault(self, fault: str) -> Row:
        if fault not in FAULTS:
            raise ChaosError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        row = Row(fault)
        started = now()
        self.say(f"{fault}: start")
        self.settle(row)
        if fault.startswith("poison-"):
            self._poison(row, fault.removeprefix("poison-"))
        elif fault == CUT_FAULT:
            self._network_cut(row)
        else:
            self._infrastructure(row, fault)
        row.judge()
        row.seconds = now() - started
        self.rows.append(row)
        verdict = "ok" if not row.misses else "MISS: " + "; ".join(row.misses)
        self.say(
            f"{fault}: {row.accepted} accepted, {row.completed} completed, {row.failed} failed, "
            f"{row.lost} lost, events lost {row.events_lost}/{row.events_expected}, run back "
            f"{fmt(row.recover_run_s)} s, ready {fmt(row.recover_ready_s)} s -> {verdict}"
        )
        return row

    def _new_load(self, label: str, runs: int, rate: float | None = None) -> Load:
        o = self.options
        return Load(
            self.context,
            label,
            runs=runs,
            clients=o.clients,
            burst=runs // 2,
            rate=rate or o.rate,
            post_seconds=o.post_seconds,
        )

    def _infrastructure(self, row: Row, fault: str) -> None:
        o = self.options
        load = self._new_load(fault, o.runs)
        load.start()
        if not load.wait_accepted(load.burst, timeout=60):
            row.notes.append(f"only {len(load.accepted)} run(s) accepted before the fault")
        row.in_flight_at_fault = len(load.accepted)
        events = EventCheck(self.context, o.event_deadline)
        events.start()
        load.release()
        injected = now()
        returned = self._inject(row, fault)
        row.down_s = None if returned is None else returned - injected
        since = returned if returned is not None else now()
        run_watch, ready_watch = self.watch_recovery(since)
        load.join()
        ids = [run.run_id for run in load.accepted]
        docs, _ = self.collect(
            lambda: ids, injected - 60, lambda: load.last_accept() + o.run_deadline
        )
        run_watch.join()
        ready_watch.join()
        events.join(timeout=o.event_deadline * 4 + 30)
        self.count_runs(row, load, docs)
        if returned is not None:
            firsts = [
                t
                for t in (self.first_completion(load, docs, returned), run_watch.ok_at)
                if t is not None
            ]
            row.recover_run_s = min(firsts) - returned if firsts else None
            row.recover_ready_s = (
                ready_watch.ok_at - returned if ready_watch.ok_at is not None else None
            )
        row.events_expected = EventCheck.EXPECTED
        row.events_lost = events.lost()
        row.events = [asdict(o) for o in events.outcomes]
        if events.error:
            row.notes.append(f"event check: {events.error}")
        for outcome in events.outcomes:
            if not outcome.arrived:
                row.notes.append(f"event lost: {outcome.event} ({outcome.detail[:200]})")
        if fault == "kill-worker":
            self._orphans(row)

    def _inject(self, row: Row, fault: str) -> float | None:
        """Inject the fault; when the program (or server) is back: its time, None if never."""
        if fault.startswith("kill-"):
            return self._kill(row, fault.removeprefix("kill-"))
        if fault == "restart-rabbitmq":
            self.say(f"{fault}: stopping the private RabbitMQ node for {self.options.outage} s")
            self.rabbit.stop()
            time.sleep(self.options.outage)
            self.rabbit.start()
            return now()
        if fault == CUT_FAULT and self.netns_worker is not None:
            link = self.netns_worker.link
            self.say(
                f"{fault}: cutting the worker's link ({link.host_if}, {link.host_ip} <-> "
                f"{link.ns_ip}) for {self.options.cut} s ({row.in_flight_at_fault} run(s) accepted)"
            )
            link.cut()
            try:
                time.sleep(self.options.cut)
            finally:
                link.restore()
            return now()
        if fault in ("restart-postgres", "crash-postgres"):
            mode = "immediate" if fault == "crash-postgres" else "fast"
            self.say(
                f"{fault}: stopping the private PostgreSQL ({mode}) for {self.options.outage} s"
            )
            self.pg.stop(mode)
            time.sleep(self.options.outage)
            self.pg.start()
            return now()
        raise ChaosError(f"no way to inject {fault}")

    def _network_cut(self, row: Row) -> None:
        """The worker in a network namespace of its own; its link cut during a load of runs,
        then restored. The worker supervisord runs is back afterwards, whatever happened."""
        problem = netns_problem()
        if problem:
            row.unable = problem
            return
        log = LOG_DIR / "worker-netns.log"
        worker = NetnsWorker(self.plat, self.netns_tag, log)
        self.netns_worker = worker
        try:
            started = now()
            worker.start()
            watches = self.watch_recovery(now())
            for watch in watches:
                watch.join()
            if not all(watch.ok_at is not None for watch in watches):
                row.unable = (
                    f"the worker in its network namespace did not complete a run in "
                    f"{self.options.recover_deadline:.0f} s (log {log}):\n{tail(log, 15)}"
                )
                return
            row.notes.append(
                f"worker in network namespace {worker.link.name} ({worker.link.ns_ip}), the "
                f"runner's gRPC port and S3 through {worker.link.host_ip}; a run completed "
                f"{now() - started:.1f} s after it started"
            )
            self._infrastructure(row, CUT_FAULT)
            if not worker.running():
                row.problems.append(f"the worker in its namespace exited (log {log})")
        finally:
            self.netns_worker = None
            row.problems.extend(worker.stop())

    def _kill(self, row: Row, program: str) -> float | None:
        plat = self.plat
        info = plat.info(program)
        pid = int(info.get("pid") or 0)
        if info.get("statename") != "RUNNING" or not pid:
            raise ChaosError(f"{program} is not running under supervisord: {info}")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        expected = (
            b"traefik" if program == "gateway" else b"ryax_" + program.replace("-", "_").encode()
        )
        if expected not in cmdline or b"supervisord" in cmdline:
            raise ChaosError(f"pid {pid} of {program} is not the program itself: {cmdline[:200]!r}")
        if not self.autorestart.get(program):
            row.notes.append(f"supervisord.conf: autorestart is not true for {program}")
        self.say(f"kill-{program}: kill -9 {pid} ({row.in_flight_at_fault} run(s) accepted)")
        os.kill(pid, signal.SIGKILL)
        deadline = now() + self.options.recover_deadline
        new_pid = 0
        while now() < deadline:
            info = plat.info(program)
            current = int(info.get("pid") or 0)
            if current and current != pid and info.get("statename") in ("STARTING", "RUNNING"):
                new_pid = current
            if new_pid and plat.healthy(program):
                row.restarted = True
                row.notes.append(f"pid {pid} -> {new_pid}")
                return now()
            time.sleep(0.05)
        row.restarted = bool(new_pid)
        return None

    def _orphans(self, row: Row) -> None:
        """Action processes the killed worker left: not under the worker now running."""
        worker = int(self.plat.info("worker").get("pid") or 0)
        orphans = [
            p
            for p in data_processes(DATA_DIR / "worker-cache")
            if worker and not descends_from(p[0], worker)
        ]
        if orphans:
            row.notes.append(
                f"{len(orphans)} action process(es) orphaned by the killed worker still run"
            )

    def _poison(self, row: Row, kind: str) -> None:
        o = self.options
        ctx = self.context
        # The second half comes over POISON_SPREAD_S after the poison runs: other runs want to
        # complete all along, as the wedge check needs.
        runs = max(10, o.runs // 2)
        load = self._new_load(f"poison-{kind}", runs, rate=(runs - runs // 2) / POISON_SPREAD_S)
        load.start()
        load.wait_accepted(load.burst, timeout=60)
        row.in_flight_at_fault = len(load.accepted)
        load.release()
        posted = now()
        poison_ids, unaccepted = self._post_poison(kind, o.poison_runs)
        self.say(f"poison-{kind}: {len(poison_ids)}/{o.poison_runs} poison run(s) accepted")
        docs, wedged = self.collect(
            lambda: [*(run.run_id for run in load.accepted), *poison_ids],
            posted - 60,
            lambda: load.last_accept() + o.run_deadline,
            load=load,
            wedge_from=posted,
        )
        load.stop()
        load.join()
        self.count_runs(row, load, docs)
        row.wedged = wedged
        with ctx.http() as http:
            outcomes = [self._poison_outcome(http, kind, run_id) for run_id in poison_ids]
        outcomes += [
            {"run_id": None, "ok": False, "outcome": f"post never accepted ({answer})"}
            for answer in unaccepted
        ]
        bad = [x for x in outcomes if not x["ok"]]
        summary = Counter(x["outcome"] for x in outcomes)
        row.poison = {
            "kind": kind,
            "output": POISON_OUTPUT[kind],
            "runs": len(outcomes),
            "bad": len(bad),
            "outcomes": outcomes,
            "summary": ", ".join(f"{v}x {k}" for k, v in summary.items()),
        }
        if wedged:
            self._unwedge(row)

    def _post_poison(self, kind: str, count: int) -> tuple[list[str], list[str]]:
        """`count` poison runs posted at once (one client each): the accepted runs' ids, and
        the last answer of each post never accepted."""
        import httpx

        ctx = self.context
        ids: list[str] = []
        unaccepted: list[str] = []
        deadline = now() + 2 * POST_TIMEOUT

        def post() -> None:
            last = "not sent"
            with ctx.http() as http:
                while now() < deadline:
                    try:
                        response = http.post(
                            ctx.endpoint(ctx.poison_workflow),
                            params={"mode": "async"},
                            json={"kind": kind},
                            timeout=POST_TIMEOUT,
                        )
                    except httpx.TimeoutException:
                        # Maybe recorded, maybe not: not posted again (no answer is the outcome).
                        last = f"no answer in {POST_TIMEOUT:.0f} s"
                        break
                    except Exception as exc:  # noqa: BLE001 - refused: again until the deadline
                        last = type(exc).__name__
                        time.sleep(0.2)
                        continue
                    if response.status_code == 202:
                        ids.append(str(response.json()["run_id"]))
                        return
                    last = f"HTTP {response.status_code}"
                    time.sleep(0.2)
            unaccepted.append(last)

        clients = [threading.Thread(target=post, daemon=True) for _ in range(count)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=3 * POST_TIMEOUT)
        return ids, unaccepted

    def _poison_outcome(self, http: Any, kind: str, run_id: str) -> dict[str, Any]:
        ctx = self.context
        output = POISON_OUTPUT[kind]
        path = f"/runner/v1/projects/{urllib.parse.quote(ctx.project, safe='')}/runs/{run_id}"
        base = {"run_id": run_id, "ok": False}
        try:
            response = http.get(path, timeout=60.0)
        except Exception as exc:  # noqa: BLE001 - reported as the outcome
            return {**base, "outcome": f"unreadable ({type(exc).__name__})"}
        if response.status_code != 200:
            return {**base, "outcome": f"unreadable (HTTP {response.status_code})"}
        doc = response.json()
        state = doc.get("state")
        errors = " ".join(
            [str(doc.get("reason") or "")] + [str(s.get("error") or "") for s in doc["steps"]]
        )
        if state == "failed":
            named = output in errors
            return {
                **base,
                "ok": named,
                "outcome": "failed naming the output" if named else "failed without its name",
                "error": errors.strip()[:300],
            }
        if state == "completed":
            value = (doc.get("results") or {}).get(output)
            intact = poison_value_intact(kind, value)
            return {
                **base,
                "ok": intact,
                "outcome": "completed, value intact" if intact else "completed, value altered",
                "value": repr(value)[:80],
            }
        return {**base, "outcome": f"not ended ({state})"}

    def _unwedge(self, row: Row) -> None:
        """The poison stopped the platform: restart runner and worker, else start again."""
        self.say(f"{row.fault}: wedged; restarting runner and worker")
        try:
            self.plat.restart_programs(["worker", "runner"])
        except Exception as exc:  # noqa: BLE001 - the rebuild below covers it
            row.notes.append(f"restart of runner and worker failed: {exc}")
        watch = Watch("unwedge", self.probe_run(), now() + WEDGE_S, 0.2)
        watch.start()
        watch.join()
        if watch.ok_at is not None:
            row.notes.append("wedged: a restart of runner and worker cleared it")
            return
        row.notes.append(
            "wedged: still after a restart of runner and worker; the platform was started again "
            "from scratch"
        )
        self.rebuild(f"wedged by {row.fault}")


def poison_value_intact(kind: str, value: Any) -> bool:
    if kind == "nan":
        return isinstance(value, float) and math.isnan(value)
    expected = {
        "nul": "before\x00after",
        "surrogate": "lone \ud800 surrogate",
        "huge": "x" * (10 * 1024 * 1024),
    }[kind]
    return bool(value == expected)


# --------------------------------------------------------------------------- main


def report(
    suite: Suite | None, rows: list[Row], options: Options, error: str = ""
) -> dict[str, Any]:
    return {
        "finished_at": iso(now()),
        "host": os.uname().nodename,
        "cores": os.cpu_count(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "targets": {
            "lost": 0,
            "failed (infrastructure faults)": 0,
            "events lost": 0,
            "back to normal within s": MAX_RECOVER_S,
            "wedged after a poison run (no completion for s)": WEDGE_S,
        },
        "setup_seconds": suite.setup_seconds if suite else None,
        "rebuilds": suite.rebuilds if suite else 0,
        "autorestart": suite.autorestart if suite else {},
        "faults": [asdict(row) for row in rows],
        "not_done": [{"fault": k, "why": v} for k, v in NOT_DONE.items()],
        "error": error,
        "ok": not error and all(not row.misses for row in rows),
    }


def write_results(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def run_suite(options: Options, say: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Start, run every fault, stop; write the results. (exit status, printed report)."""
    rows: list[Row] = []
    suite: Suite | None = None
    error = ""
    try:
        suite = Suite(options, say)
        try:
            suite.start()
            for fault in options.faults:
                suite.run_fault(fault)
        finally:
            rows = suite.rows
            suite.stop()
    except ChaosError as exc:
        error = str(exc)
    except KeyboardInterrupt:
        error = "interrupted"
    document = report(suite, rows, options, error)
    write_results(options.out, document)
    lines = [
        "",
        f"Chaos suite, {document['finished_at']} on {document['host']} ({document['cores']} "
        f"cores); {options.runs} runs per fault, set-up {fmt(document['setup_seconds'])} s",
        table(rows),
        "",
        details(rows),
    ]
    lines += [f"{item['fault']}: {item['why']}" for item in document["not_done"]]
    if error:
        lines.append(f"ERROR: {error}")
    lines.append(f"Results: {options.out}")
    text = "\n".join(lines)
    if error:
        return 2, text
    return (0 if document["ok"] else 1), text


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="dev/chaos.py", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--short", action="store_true", help="the reduced set of `make test`")
    parser.add_argument("--only", help=f"comma-separated faults among: {', '.join(FAULTS)}")
    parser.add_argument("--runs", type=int, help="runs per fault (150; --short 24)")
    parser.add_argument("--clients", type=int, help="concurrent HTTP clients (16)")
    parser.add_argument("--rate", type=float, help="runs/s of the half posted during the fault")
    parser.add_argument("--cut", type=float, help="seconds the worker's link stays cut (10)")
    parser.add_argument("--wait-ports", type=float, help="seconds to wait for busy ports (600)")
    parser.add_argument("--out", type=Path, help=f"results file ({RESULTS})")
    args = parser.parse_args(argv)
    options = SHORT if args.short else Options()
    if args.only:
        faults = tuple(name.strip() for name in args.only.split(",") if name.strip())
        unknown = [name for name in faults if name not in FAULTS]
        if unknown:
            parser.error(f"unknown fault(s) {', '.join(unknown)}; one of {', '.join(FAULTS)}")
        options = replace(options, faults=faults)
    for name in ("runs", "clients", "rate", "cut", "wait_ports", "out"):
        value = getattr(args, name)
        if value is not None:
            options = replace(options, **{name: value})
    return options


def main(argv: list[str]) -> int:
    options = parse(argv)

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    status, text = run_suite(options)
    print(text, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
