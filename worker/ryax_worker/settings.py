"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ryax_kit.filestore import FilestoreSettings
from ryax_kit.net import is_loopback_endpoint
from ryax_kit.settings import CommonSettings, ConfigurationError, Env

from .domain.errors import InvalidInput
from .domain.model import NodePool, parse_duration, parse_memory
from .infrastructure.local.sandbox import nobody

BACKENDS = ("local", "slurm")
PLANNED_BACKENDS = ("kubernetes",)
SANDBOXES = ("bwrap", "none")
#: Platform settings an action never gets, whatever RYAX_ACTION_ENV_PASSTHROUGH says (but the
#: interpreter choice of run.sh).
PASSTHROUGH_ALLOWED_RYAX = ("RYAX_PYTHON",)


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_RUNNER_GRPC_ADDRESS: the runner's WorkerService (host:port); the worker dials it.
    runner_address: str = "127.0.0.1:8105"
    #: RYAX_RUNNER_CA_FILE: the CA certificate(s) (PEM) the runner's TLS certificate is checked
    #: against: given, the worker connects with TLS only. Default: none (plaintext, which is
    #: refused for a non-loopback runner address unless RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT=true).
    runner_ca_file: Path | None = None
    #: RYAX_RUNNER_TLS_SERVER_NAME: the name the runner's certificate must carry when it is not
    #: the host of RYAX_RUNNER_GRPC_ADDRESS (e.g. the runner is reached by IP address).
    runner_tls_server_name: str = ""
    #: RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT: "true" lets the worker talk to a non-loopback runner
    #: without TLS (its credential and the steps' data then cross the network in clear).
    runner_allow_plaintext: bool = False
    #: RYAX_RUNNER_WORKER_SOCKET: the runner's Unix socket (path), for a worker on the runner's
    #: machine: given, the Connect stream goes there instead of RYAX_RUNNER_GRPC_ADDRESS (the
    #: same messages without gRPC's threads; docs/runner-worker-protocol.md "The local
    #: socket"). The runner must serve it (its own RYAX_RUNNER_WORKER_SOCKET). Default: none.
    runner_socket: Path | None = None
    #: RYAX_SITE_NAME: the site this worker serves (created by an admin: `ryax site create`).
    site_name: str = "local"
    #: RYAX_SITE_CREDENTIAL: the site's credential (shown once by `ryax site create` or
    #: `ryax site rotate`), presented to the runner on every connection; or
    #: RYAX_SITE_CREDENTIAL_FILE: a file holding it. Without one the runner refuses the worker.
    site_credential: str = field(default="", repr=False)
    #: RYAX_WORKER_ID: stable id of this worker, kept across restarts (default: the site name).
    worker_id: str = "local"
    #: RYAX_WORKER_BACKEND: "local" (processes on this machine) or "slurm" (a Slurm job per
    #: execution; the RYAX_SLURM_* settings below); kubernetes is planned.
    backend: str = "local"
    #: RYAX_NODE_POOLS: JSON list of {"name","cpu","memory" (bytes or "8G"),"gpu","max_time"
    #: (seconds or "12h")} or "name:cpu:memory[:gpu[:max_time]],..."; default: one pool
    #: "default" with this machine's cores/memory (no max time).
    node_pools: tuple[NodePool, ...] = ()
    #: RYAX_SITE_LABELS: JSON object or "key=value,key=value".
    site_labels: dict[str, str] = field(default_factory=dict)
    #: RYAX_WORKER_CACHE_DIR: artefacts, action instances, execution work dirs.
    #: Default: $XDG_CACHE_HOME/ryax/worker-<site> (~/.cache/ryax/worker-<site>).
    cache_dir: Path = Path("~/.cache/ryax/worker-local")
    #: RYAX_S3_ENDPOINT (host:port, or http(s)://host:port whose scheme then decides TLS),
    #: RYAX_S3_ACCESS_KEY and RYAX_S3_SECRET_KEY (both required with an endpoint),
    #: RYAX_S3_BUCKET (default ryax), RYAX_S3_SECURE (default false), RYAX_S3_REGION (default
    #: none), RYAX_S3_PUBLIC_ENDPOINT: the shared filestore through the S3 API.
    #: RYAX_FILESTORE_DIR: a local-directory filestore, used when RYAX_S3_ENDPOINT is unset.
    #: Default: $XDG_DATA_HOME/ryax/filestore (~/.local/share/ryax/filestore).
    #: See ryax_kit.filestore.FilestoreSettings.
    filestore: FilestoreSettings = field(
        default_factory=lambda: FilestoreSettings.read(
            Env({}), default_dir=Path("~/.local/share/ryax/filestore")
        )
    )
    #: RYAX_WORKER_FILES: how files move. "direct": through the filestore settings above (the
    #: platform's S3 keys, or a directory shared with the runner). "presigned": no filestore
    #: settings at all; the worker asks the runner for short-lived presigned URLs of exactly
    #: the objects its executions and steps move (WorkerService.PresignTransfers) and GETs/PUTs
    #: them over HTTP(S): for a site that must not hold the platform's keys. Default: "direct"
    #: when RYAX_S3_ENDPOINT or RYAX_FILESTORE_DIR is set, else "presigned".
    files: str = "direct"
    #: RYAX_FILE_ATTEMPTS: attempts of one presigned transfer on transient errors (connection
    #: errors, 5xx, 429, an expired URL, which is asked for again). Default 4.
    file_attempts: int = 4
    #: RYAX_SITE_FILES_MAX_BYTES: the most bytes of published files kept on this site's disk
    #: (<cache>/site-files, by sha256, least recently used dropped first), so a step of this
    #: site reads a file another one wrote without downloading it. 0 = keep none. Default 1 GiB.
    site_files_max_bytes: int = 1024**3
    #: RYAX_SITE_FILES: "copy": every output file is uploaded to the filestore and a copy kept
    #: on this site's disk for its other steps. "hold": an execution's output files stay on
    #: this site's disk only (durable, pinned until their run ends) and are uploaded only when
    #: the runner asks (another site, a user's download, a run's results): a file passed
    #: between two steps of this site never crosses the network. The site's disk then holds
    #: the only copy until published (docs/remote-sites.md). Default: "hold" for a remote site
    #: (RYAX_WORKER_FILES=presigned), "copy" for a worker beside the filestore ("direct").
    site_files: str = "copy"
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: health and metrics (/healthz /readyz /metrics).
    http_host: str = "127.0.0.1"
    http_port: int = 8107
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_HEARTBEAT_SECONDS: heartbeat period until the runner's Registered says otherwise.
    heartbeat_seconds: float = 2.0
    #: RYAX_RUNNER_SILENCE_SECONDS: reconnect when nothing came from the runner for that long
    #: (it acknowledges heartbeats); 0 = never.
    runner_silence_seconds: float = 30.0
    #: RYAX_RECONNECT_MAX_SECONDS: longest wait between two connection attempts.
    reconnect_max_seconds: float = 10.0
    #: RYAX_SHUTDOWN_GRACE_SECONDS: on SIGTERM, how long running executions may go on.
    shutdown_grace_seconds: float = 30.0
    #: RYAX_ACTION_START_TIMEOUT_SECONDS: start + Init of an action process.
    action_start_timeout_seconds: float = 120.0
    #: RYAX_ACTION_STOP_GRACE_SECONDS: SIGTERM -> SIGKILL delay when stopping an action.
    action_stop_grace_seconds: float = 10.0
    #: RYAX_ACTION_MAX_FAILURES: consecutive deaths of an action before its step is FAILED.
    action_max_failures: int = 5
    #: RYAX_ACTION_LOG_LEVEL: log level of the action wrapper itself (its lines, and anything
    #: the process prints outside an execution, become the step's log on the runner).
    action_log_level: str = "warning"
    #: RYAX_ACTION_ENV_PASSTHROUGH: comma-separated names of worker variables actions also see
    #: (no RYAX_* name but RYAX_PYTHON: platform settings never reach actions).
    action_env_passthrough: tuple[str, ...] = ()
    #: RYAX_SANDBOX: "bwrap" runs each action process in a bubblewrap sandbox, as an
    #: unprivileged user, seeing only its artefact, its own folders and the system (default,
    #: when bwrap is installed); "none" runs actions as this worker's user with its view of the
    #: machine, and is refused unless RYAX_SANDBOX_ALLOW_NONE=true (machines without bubblewrap).
    sandbox: str = "bwrap"
    #: RYAX_SANDBOX_ALLOW_NONE: "true" accepts RYAX_SANDBOX=none (logged loudly at start).
    sandbox_allow_none: bool = False
    #: RYAX_SANDBOX_UID / RYAX_SANDBOX_GID: the unprivileged user and group actions run as when
    #: the worker is root (default nobody/nogroup; 0 is refused). A worker that is not root
    #: runs them under its own uid in a user namespace.
    sandbox_uid: int = 65534
    sandbox_gid: int = 65534
    #: RYAX_SANDBOX_READ_ONLY_PATHS: comma-separated host paths every action may read, bound
    #: read-only at the same path (e.g. a Python installed outside /usr). Default: none.
    sandbox_read_only_paths: tuple[Path, ...] = ()
    #: RYAX_ACTION_RETENTION_SECONDS: a deployed step whose action process ran nothing for that
    #: long has its process stopped (local backend); the step stays READY and the next
    #: execution starts it again (a cold start, from the fork server). 0 = never stop. Triggers
    #: never stop. Default 30 s.
    action_retention_seconds: float = 30.0
    #: RYAX_ACTION_ALWAYS_WARM: comma-separated steps whose process never stops for being idle:
    #: an action id (every step using it), a deployment id (a whole deployed workflow) or
    #: `<deployment id>/<step id>`. Default: none.
    action_always_warm: tuple[str, ...] = ()
    #: RYAX_ACTION_FORK_SERVER: "true" (default) forks action processes from a fork server that
    #: has the wrapper's modules imported (cold starts skip the imports; memory is shared),
    #: into the step's sandbox; "false" starts each from its run.sh. Used by a root worker with
    #: RYAX_SANDBOX=bwrap only (docs/run-path.md).
    action_fork_server: bool = True
    #: RYAX_ACTION_MAX_PROCESSES: processes and threads of one action (pids.max under cgroups
    #: v2; else RLIMIT_NPROC, which counts every process of the sandbox's user together).
    action_max_processes: int = 1024
    #: RYAX_SLURM_SHARED_DIR (slurm backend, required): a directory the worker and every
    #: compute node see at the same path (artefacts, executions' inputs and work, job files).
    slurm_shared_dir: Path | None = None
    #: RYAX_SLURM_POLL_SECONDS: how often job states (squeue/sacct) and job output are read.
    slurm_poll_seconds: float = 2.0
    #: RYAX_SLURM_SBATCH_OPTIONS: options added to every sbatch, split like a shell command line
    #: (e.g. "--account=proj42 --qos=normal"). Default: none.
    slurm_sbatch_options: tuple[str, ...] = ()
    #: RYAX_SLURM_PARTITIONS: comma-separated partitions offered as node pools. Default: every
    #: partition that is up (node pools come from `sinfo`; RYAX_NODE_POOLS is not used).
    slurm_partitions: tuple[str, ...] = ()

    @property
    def use_s3(self) -> bool:
        return bool(self.filestore.s3_endpoint)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read every variable; a missing or malformed one stops the process with
        `configuration error: ...` naming the variable (ConfigurationError is a SystemExit)."""
        e = Env.from_os(env)
        common = CommonSettings.read(e, default_port=8107)
        site = e.text("RYAX_SITE_NAME", "local")
        backend = e.text("RYAX_WORKER_BACKEND", "local", lower=True)
        if backend not in BACKENDS:
            planned = " (planned, not implemented yet)" if backend in PLANNED_BACKENDS else ""
            raise ConfigurationError(
                f"RYAX_WORKER_BACKEND={backend!r}{planned}: supported backends are "
                + ", ".join(BACKENDS)
            )
        cache_home = e.path("XDG_CACHE_HOME") or Path.home() / ".cache"
        data_home = e.path("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        filestore = FilestoreSettings.read(e, default_dir=data_home / "ryax" / "filestore")
        if filestore.s3_endpoint and not (filestore.s3_access_key and filestore.s3_secret_key):
            raise ConfigurationError(
                "RYAX_S3_ACCESS_KEY and RYAX_S3_SECRET_KEY are required with S3"
            )
        files = read_files_mode(e)
        passthrough = e.items("RYAX_ACTION_ENV_PASSTHROUGH")
        platform = [
            n for n in passthrough if n.startswith("RYAX_") and n not in PASSTHROUGH_ALLOWED_RYAX
        ]
        if platform:
            raise ConfigurationError(
                f"RYAX_ACTION_ENV_PASSTHROUGH: {', '.join(platform)}: platform settings are "
                "never given to actions"
            )
        default_uid, default_gid = nobody()
        uid = e.integer("RYAX_SANDBOX_UID", default_uid, minimum=1)
        gid = e.integer("RYAX_SANDBOX_GID", default_gid, minimum=1)
        try:
            node_pools = parse_node_pools(e.text("RYAX_NODE_POOLS"))
            site_labels = parse_labels(e.text("RYAX_SITE_LABELS"))
        except InvalidInput as error:
            raise ConfigurationError(error.detail) from error
        runner_address = e.text("RYAX_RUNNER_GRPC_ADDRESS", "127.0.0.1:8105")
        ca_file = e.path("RYAX_RUNNER_CA_FILE")
        allow_plaintext = e.flag("RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT")
        if ca_file is not None and not ca_file.is_file():
            raise ConfigurationError(f"RYAX_RUNNER_CA_FILE={ca_file}: no such file")
        if ca_file is None and not allow_plaintext and not is_loopback_endpoint(runner_address):
            raise ConfigurationError(
                f"RYAX_RUNNER_GRPC_ADDRESS={runner_address}: a runner that is not on this machine "
                "is reached with TLS: give RYAX_RUNNER_CA_FILE (or set "
                "RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT=true inside a trusted network)"
            )
        return cls(
            **asdict(common),
            runner_address=runner_address,
            runner_ca_file=ca_file,
            runner_tls_server_name=e.text("RYAX_RUNNER_TLS_SERVER_NAME"),
            runner_allow_plaintext=allow_plaintext,
            runner_socket=e.socket_path("RYAX_RUNNER_WORKER_SOCKET"),
            site_name=site,
            site_credential=read_credential(e),
            worker_id=e.text("RYAX_WORKER_ID", site),
            backend=backend,
            node_pools=node_pools,
            site_labels=site_labels,
            cache_dir=e.path("RYAX_WORKER_CACHE_DIR") or cache_home / "ryax" / f"worker-{site}",
            filestore=filestore,
            files=files,
            file_attempts=e.integer("RYAX_FILE_ATTEMPTS", 4, minimum=1, maximum=20),
            site_files_max_bytes=e.integer("RYAX_SITE_FILES_MAX_BYTES", 1024**3, minimum=0),
            site_files=e.text(
                "RYAX_SITE_FILES",
                "hold" if files == "presigned" else "copy",
                choices=("copy", "hold"),
                lower=True,
            ),
            heartbeat_seconds=e.number("RYAX_HEARTBEAT_SECONDS", 2.0, minimum=0.01),
            runner_silence_seconds=e.number("RYAX_RUNNER_SILENCE_SECONDS", 30.0, minimum=0),
            reconnect_max_seconds=e.number("RYAX_RECONNECT_MAX_SECONDS", 10.0, minimum=0),
            shutdown_grace_seconds=e.number("RYAX_SHUTDOWN_GRACE_SECONDS", 30.0, minimum=0),
            action_start_timeout_seconds=e.number(
                "RYAX_ACTION_START_TIMEOUT_SECONDS", 120.0, minimum=0
            ),
            action_stop_grace_seconds=e.number("RYAX_ACTION_STOP_GRACE_SECONDS", 10.0, minimum=0),
            action_max_failures=e.integer("RYAX_ACTION_MAX_FAILURES", 5, minimum=0),
            action_log_level=e.text("RYAX_ACTION_LOG_LEVEL", "warning"),
            action_env_passthrough=passthrough,
            sandbox=read_sandbox(e),
            sandbox_allow_none=e.flag("RYAX_SANDBOX_ALLOW_NONE"),
            sandbox_uid=uid,
            sandbox_gid=gid,
            sandbox_read_only_paths=tuple(
                Path(p).expanduser() for p in e.items("RYAX_SANDBOX_READ_ONLY_PATHS")
            ),
            action_max_processes=e.integer("RYAX_ACTION_MAX_PROCESSES", 1024, minimum=16),
            action_retention_seconds=e.number("RYAX_ACTION_RETENTION_SECONDS", 30.0, minimum=0),
            action_always_warm=tuple(e.items("RYAX_ACTION_ALWAYS_WARM")),
            action_fork_server=e.flag("RYAX_ACTION_FORK_SERVER", True),
            **read_slurm(e, backend),
        )


FILES_MODES = ("direct", "presigned")


def read_files_mode(e: Env) -> str:
    """RYAX_WORKER_FILES, by default "direct" when the filestore is configured (an S3 endpoint
    or a directory), else "presigned"."""
    configured = e.raw("RYAX_S3_ENDPOINT") or e.raw("RYAX_FILESTORE_DIR")
    return e.text(
        "RYAX_WORKER_FILES",
        "direct" if configured else "presigned",
        choices=FILES_MODES,
        lower=True,
    )


def read_slurm(e: Env, backend: str) -> dict[str, Any]:
    """The RYAX_SLURM_* settings (RYAX_SLURM_SHARED_DIR is required by the slurm backend)."""
    shared = e.path("RYAX_SLURM_SHARED_DIR")
    if backend == "slurm" and shared is None:
        raise ConfigurationError(
            "RYAX_SLURM_SHARED_DIR: the slurm backend needs a directory the worker and the "
            "compute nodes share (same path on both)"
        )
    try:
        options = tuple(shlex.split(e.text("RYAX_SLURM_SBATCH_OPTIONS")))
    except ValueError as error:
        raise ConfigurationError(f"RYAX_SLURM_SBATCH_OPTIONS: {error}") from error
    if any(not option.startswith("-") for option in options):
        raise ConfigurationError("RYAX_SLURM_SBATCH_OPTIONS: sbatch options only (-x, --name=v)")
    return {
        "slurm_shared_dir": shared.expanduser() if shared is not None else None,
        "slurm_poll_seconds": e.number("RYAX_SLURM_POLL_SECONDS", 2.0, minimum=0.1),
        "slurm_sbatch_options": options,
        "slurm_partitions": e.items("RYAX_SLURM_PARTITIONS"),
    }


def read_credential(e: Env) -> str:
    """RYAX_SITE_CREDENTIAL, else the content of RYAX_SITE_CREDENTIAL_FILE (stripped)."""
    credential = e.text("RYAX_SITE_CREDENTIAL").strip()
    path = e.path("RYAX_SITE_CREDENTIAL_FILE")
    if credential and path is not None:
        raise ConfigurationError(
            "RYAX_SITE_CREDENTIAL and RYAX_SITE_CREDENTIAL_FILE: give one of them"
        )
    if path is not None:
        try:
            credential = path.read_text().strip()
        except OSError as error:
            raise ConfigurationError(
                f"RYAX_SITE_CREDENTIAL_FILE={path}: cannot be read ({error.strerror})"
            ) from error
    if any(c.isspace() or not c.isprintable() for c in credential):
        raise ConfigurationError("RYAX_SITE_CREDENTIAL: a credential is one word")
    return credential


def read_sandbox(e: Env) -> str:
    """RYAX_SANDBOX, checked: bwrap must be installed, none must be allowed."""
    installed = shutil.which("bwrap") is not None
    sandbox = e.text("RYAX_SANDBOX", "bwrap" if installed else "", lower=True)
    if not sandbox:
        raise ConfigurationError(
            "RYAX_SANDBOX: bubblewrap (bwrap) is not installed: install it (apt-get install "
            "bubblewrap), or set RYAX_SANDBOX=none and RYAX_SANDBOX_ALLOW_NONE=true to run "
            "actions unsandboxed"
        )
    if sandbox not in SANDBOXES:
        raise ConfigurationError(f"RYAX_SANDBOX={sandbox!r}: expected bwrap or none")
    if sandbox == "bwrap" and not installed:
        raise ConfigurationError("RYAX_SANDBOX=bwrap: bwrap is not installed (bubblewrap)")
    if sandbox == "none" and not e.flag("RYAX_SANDBOX_ALLOW_NONE"):
        raise ConfigurationError(
            "RYAX_SANDBOX=none runs actions unsandboxed (as this worker's user, seeing its "
            "files): refused unless RYAX_SANDBOX_ALLOW_NONE=true"
        )
    return sandbox


def machine_node_pool() -> NodePool:
    """One pool describing this machine."""
    cpu = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 1024**3
    return NodePool(name="default", cpu=cpu or 1.0, memory_bytes=memory, gpu=0)


@contextmanager
def _reading(variable: str) -> Iterator[None]:
    """Any error met while reading `variable` becomes an InvalidInput naming it."""
    try:
        yield
    except InvalidInput as error:
        if error.field == variable:
            raise
        raise InvalidInput(variable, error.detail) from error
    except json.JSONDecodeError as error:
        raise InvalidInput(variable, f"not valid JSON: {error}") from error
    except (ValueError, TypeError) as error:
        raise InvalidInput(variable, str(error)) from error


def parse_node_pools(text: str) -> tuple[NodePool, ...]:
    """RYAX_NODE_POOLS: JSON, or "name:cpu:memory[:gpu[:max_time]]" items separated by
    commas."""
    with _reading("RYAX_NODE_POOLS"):
        return _node_pools(text.strip())


def _node_pools(text: str) -> tuple[NodePool, ...]:
    if not text:
        return (machine_node_pool(),)
    pools: list[NodePool] = []
    if text.startswith(("[", "{")):
        data = json.loads(text)
        items = [data] if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise InvalidInput("RYAX_NODE_POOLS", "expected a JSON list of pools")
        for item in items:
            if not isinstance(item, dict) or "name" not in item:
                raise InvalidInput("RYAX_NODE_POOLS", f"a pool needs a name: {item!r}")
            memory = item.get("memory_bytes", item.get("memory", 0))
            max_time = item.get("max_time_seconds", item.get("max_time", 0))
            pools.append(
                NodePool(
                    name=str(item["name"]),
                    cpu=float(item.get("cpu", 0)),
                    memory_bytes=memory if isinstance(memory, int) else parse_memory(str(memory)),
                    gpu=int(item.get("gpu", 0)),
                    max_time_seconds=(
                        float(max_time)
                        if isinstance(max_time, int | float)
                        else parse_duration(str(max_time))
                    ),
                )
            )
    else:
        for item in filter(None, (part.strip() for part in text.replace(";", ",").split(","))):
            parts = item.split(":")
            if len(parts) not in (3, 4, 5):
                raise InvalidInput(
                    "RYAX_NODE_POOLS",
                    f"{item!r}: expected name:cpu:memory[:gpu[:max_time]], e.g. big:8:32G:0:12h",
                )
            pools.append(
                NodePool(
                    name=parts[0],
                    cpu=float(parts[1]),
                    memory_bytes=parse_memory(parts[2]),
                    gpu=int(parts[3] or 0) if len(parts) >= 4 else 0,
                    max_time_seconds=parse_duration(parts[4]) if len(parts) == 5 else 0.0,
                )
            )
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise InvalidInput("RYAX_NODE_POOLS", f"pool names must be unique: {names}")
    return tuple(pools)


def parse_labels(text: str) -> dict[str, str]:
    """RYAX_SITE_LABELS: a JSON object, or "key=value" items separated by commas."""
    with _reading("RYAX_SITE_LABELS"):
        return _labels(text.strip())


def _labels(text: str) -> dict[str, str]:
    if not text:
        return {}
    if text.startswith("{"):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise InvalidInput("RYAX_SITE_LABELS", "expected a JSON object")
        return {str(k): str(v) for k, v in data.items()}
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput("RYAX_SITE_LABELS", f"{item!r}: expected key=value")
        labels[key.strip()] = value.strip()
    return labels
