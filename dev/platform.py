"""Run the Ryax platform on this machine under supervisord: `make demo`, `make status`,
`make down`.

    python -P dev/platform.py up        build the web UI, generate .dev/run/*, (re)start
                                        supervisord, wait for health
    python -P dev/platform.py status    each program's state and health
    python -P dev/platform.py down      stop supervisord and everything under it
    python -P dev/platform.py scenario  run dev/demo_scenario.py against the running platform
    python -P dev/platform.py env NAME  print the environment a service runs with (shell syntax)
    python -P dev/platform.py reset     stop, then drop this checkout's databases, vhost and data

PostgreSQL and RabbitMQ are the shared ones `make deps` ensures (never stopped here). The demo's
state there belongs to this checkout: databases ryax_<id>_<service> and the vhost ryax_<id>,
where <id> is derived from the checkout's absolute path (checkout_id), so two clones on one
machine never share records. Under supervisord run: SeaweedFS (S3, data in .dev/data/s3),
Traefik (the gateway), nginx serving the web UI's build (webui/dist, routed at `/`) and every
service whose ryax_<name>/__main__.py exists. Logs: .dev/logs/<program>.log.

Overrides, for a caller that brings its own servers (the chaos suite, dev/chaos.py, starts a
private PostgreSQL and RabbitMQ and points the platform at them):
  RYAX_DEV_PG_DSN    the PostgreSQL server (postgresql://...) instead of the shared one
                     (RYAX_TEST_PG_DSN); the services' databases ryax_<id>_<service> go there
  RYAX_DEV_AMQP_URL  the broker URL the services get as is, vhost included (it must exist:
                     no vhost is created or deleted on it), instead of the shared broker's
                     vhost ryax_<id>
  RYAX_DEV_DATA_DIR  the folder of the platform's data (S3, repository clones, caches)
                     instead of .dev/data

Run with `python -P` (or from make): this file is named platform.py, and without -P its folder
would come first on sys.path and shadow the standard library's `platform` module.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.parse
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    del sys.path[0]  # started without -P: do not shadow the standard library's `platform`


def _load_devlib() -> ModuleType:
    name = "ryax_devlib"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / "devlib.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


devlib: Any = _load_devlib()

REPO: Path = devlib.REPO_ROOT
DEV: Path = devlib.DEV_STATE
RUN = DEV / "run"
LOGS = DEV / "logs"
DATA = Path(os.environ.get("RYAX_DEV_DATA_DIR") or DEV / "data")
S3_DATA = DATA / "s3"
VENV_BIN = REPO / ".venv" / "bin"
SUPERVISOR_CONF = RUN / "supervisord.conf"
SUPERVISOR_SOCK = RUN / "supervisor.sock"
SUPERVISOR_PID = RUN / "supervisord.pid"
TRAEFIK_DIR = RUN / "traefik"
ENV_DIR = RUN / "env"
SCENARIO = _HERE / "demo_scenario.py"
WEBUI = REPO / "webui"
WEBUI_DIST = WEBUI / "dist"
# Server-level rules shared with the image of the Helm chart (webui/Dockerfile).
WEBUI_NGINX_RULES = WEBUI / "nginx" / "ryax-webui.conf"
NGINX_DIR = RUN / "nginx"

HOST = "127.0.0.1"
GATEWAY_PORT = int(os.environ.get("RYAX_GATEWAY_PORT") or 8080)
GATEWAY_URL = f"http://{HOST}:{GATEWAY_PORT}"
RUNNER_GRPC_PORT = 8105
# The runner's Unix socket for the worker of this machine (docs/runner-worker-protocol.md "The
# local socket"): the same stream as on RUNNER_GRPC_PORT without gRPC's threads.
RUNNER_WORKER_SOCKET = RUN / "runner-worker.sock"
# The runner's second gRPC port, TLS only, for remote sites (docs/remote-sites.md); its
# certificate is signed by a private CA of this checkout (GRPC_PKI_DIR/ca.pem).
RUNNER_GRPC_TLS_PORT = 8119
WEBUI_PORT = 8109  # nginx serving webui/dist; the gateway routes `/` to it
S3_BUCKET = "ryax"


#: SeaweedFS is a Go program: its heap grows to twice what is live before a collection
#: (GOGC=100), so it idled at 240 to 330 MiB resident, the largest process of the platform.
#: GOGC=25 collects at 1.25 times the live heap: 154 MiB idle, for the same idle CPU (3 % of a
#: core). `RYAX_S3_GOGC` changes it (a percentage; "off": Go's default).
#:
#: `weed mini` (4.48) holds about 232 MiB of heap from its start, nearly all of it never
#: touched (26 MiB resident); moving files adds what the collector frees but Go keeps: 190 to
#: 220 MiB resident after moving 80 MiB. A soft limit above that heap makes Go give it back:
#: 320 MiB leaves 90 to 115 MiB resident after the same transfers, for the same idle CPU and
#: about 15 % more CPU while moving files. Below the heap's 232 MiB the collector runs all the
#: time (9 to 14 % of a core idle); at 256 MiB it runs every 3 MiB allocated (twice the CPU
#: per transfer). `RYAX_S3_GOMEMLIMIT` changes it (Go's syntax, e.g. 512MiB; "off": none).
#:
#: Most of that heap was the filer's default metadata store (8 LevelDB databases). With one
#: (`devlib.write_filer_store`) the heap is smaller: 137 to 150 MB live after `make bench`'s
#: builds and deploys (the filer's metadata log buffers 92 MB of it, reserved at start and barely
#: touched; LevelDB's write buffer 17 MB; the upload buffers SeaweedFS pools, 25 MB). 160 MiB
#: (168 MB) was too close: after hours of builds, deploys and benches the collector ran without
#: pause, 13 % of a core with nothing to do, and the bench's throughput lost a tenth. After the
#: same builds and deploys, resident: about 110 MB of pages of the executable (RssFile) that no
#: limit bounds, and a heap part that follows the limit (about the limit less 100 MB): 160 MiB,
#: 170 MB resident; 176 MiB, 188 MB; 192 and 224 MiB, 200 to 203 MB (the platform's idle total
#: 1,014 MiB at 224, against the 1 GiB of issue #18). 176 MiB keeps 35 to 45 MiB above the live
#: heap at rest, for 3 % of a core idle. Moving large files for long: raise it. A data folder
#: made with the default store keeps it (its files are found only there), and its 320 MiB, until
#: `make reset`.
S3_GOMEMLIMIT = "176MiB"
S3_GOMEMLIMIT_LEGACY_STORE = "320MiB"


def s3_legacy_store() -> bool:
    """The S3 data folder was made with `weed mini`'s default filer store (an older checkout)."""
    legacy: Path = S3_DATA / devlib.LEGACY_FILER_STORE_DIR
    return legacy.exists()


def s3_go_env(default_limit: str = S3_GOMEMLIMIT) -> list[str]:
    env = []
    value = os.environ.get("RYAX_S3_GOGC", "").strip() or "25"
    if value.lower() != "off":
        if not re.fullmatch(r"[1-9][0-9]{0,3}", value):
            raise SystemExit(
                f"RYAX_S3_GOGC={value!r}: not a GOGC percentage (e.g. 25, 100, or off)"
            )
        env.append(f"GOGC={value}")
    limit = os.environ.get("RYAX_S3_GOMEMLIMIT", "").strip() or default_limit
    if limit.lower() != "off":
        if not re.fullmatch(r"[1-9][0-9]{0,5}(B|KiB|MiB|GiB)", limit):
            raise SystemExit(
                f"RYAX_S3_GOMEMLIMIT={limit!r}: not a Go memory limit (e.g. 320MiB, 1GiB, or off)"
            )
        env.append(f"GOMEMLIMIT={limit}")
    return env


# SeaweedFS's fixed loopback ports (S3 on 8110; the rest are its internal servers).
S3_PORTS = devlib.WeedPorts(
    s3=8110,
    s3_grpc=8111,
    master=8112,
    master_grpc=8113,
    volume=8114,
    volume_grpc=8115,
    filer=8116,
    filer_grpc=8117,
    admin=8118,
)
S3_ADDRESS = f"{HOST}:{S3_PORTS.s3}"
S3_ENDPOINT = f"http://{S3_ADDRESS}"
HEALTH_TIMEOUT = float(os.environ.get("RYAX_DEMO_HEALTH_TIMEOUT") or 90)


# --------------------------------------------------------------------------- this checkout's state


def checkout_id(checkout: Path) -> str:
    """Short and stable: the first 8 hex digits of the sha256 of the checkout's absolute path.
    Two clones (two paths) get two ids; the same clone always gets the same one."""
    return hashlib.sha256(str(checkout.resolve()).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class StateNames:
    """Where a checkout's demo keeps its state on the shared PostgreSQL and RabbitMQ."""

    checkout_id: str

    @property
    def prefix(self) -> str:
        return f"ryax_{self.checkout_id}"

    @property
    def vhost(self) -> str:
        return self.prefix

    def database(self, folder: str) -> str:
        """The database of the service in `folder` (the service creates it when missing)."""
        return f"{self.prefix}_{folder.replace('-', '_')}"

    def owns_database(self, name: str) -> bool:
        return name.startswith(self.prefix + "_")

    @classmethod
    def of(cls, checkout: Path) -> StateNames:
        return cls(checkout_id(checkout))


NAMES = StateNames.of(REPO)
AMQP_VHOST = NAMES.vhost


@dataclass(frozen=True)
class Service:
    folder: str
    http_port: int
    routed: bool  # reachable through the gateway under /<folder>

    @property
    def package(self) -> str:
        return "ryax_" + self.folder.replace("-", "_")

    @property
    def program(self) -> str:
        return self.folder

    @property
    def database(self) -> str:
        return NAMES.database(self.folder)

    def exists(self) -> bool:
        return (REPO / self.folder / self.package / "__main__.py").is_file()


# Keep in sync with SERVICES in the Makefile (action-wrapper and cli are not long-running services).
SERVICES = (
    Service("authorization", 8101, routed=True),
    Service("repository", 8102, routed=True),
    Service("studio", 8103, routed=True),
    Service("runner", 8104, routed=True),
    Service("action-builder", 8106, routed=False),
    Service("worker", 8107, routed=False),
)


# --------------------------------------------------------------------------- output


def say(message: str = "") -> None:
    print(message, flush=True)


def fail(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# --------------------------------------------------------------------------- secrets and env


#: The services that store sealed values (ryax_kit.crypto): each gets a root secret of its own
#: as RYAX_SECRET_KEY, so a leaked one opens no other service's data. No other program gets one.
SEALING_SERVICES = ("repository", "studio", "runner")
#: The one secret every service was given before (token signing and encryption): still offered
#: to the sealing services as RYAX_SECRET_KEY_PREVIOUS while it exists, so what a checkout
#: sealed with it opens; `python -m ryax_<service>.reseal` then deleting the file retires it.
LEGACY_SECRET_KEY = DEV / "secret-key"


#: The site of the demo's worker (a local one), created by the runner from its configuration.
DEMO_SITE = "local"


@dataclass(frozen=True)
class Secrets:
    admin_user: str
    admin_password: str
    #: authorization's token-signing key (Ed25519, PEM): only authorization is given it.
    signing_key_file: Path
    #: The root secret of each service in SEALING_SERVICES, by folder.
    data_keys: dict[str, str]
    s3_access_key: str
    s3_secret_key: str
    #: The studio <-> runner service credential (the studio's internal route).
    internal_token: str = ""
    #: The credential of the demo's site (DEMO_SITE): the runner's built-in site, which its
    #: worker presents (docs/remote-sites.md).
    site_credential: str = ""


def signing_key(path: Path) -> Path:
    """The Ed25519 private key (PEM, PKCS#8) in `path`, generated (mode 600) the first time."""
    if not path.exists() or not path.read_text().strip():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        devlib.write_private(path, pem.decode())
    path.chmod(0o600)
    return path


GRPC_PKI_DIR = DEV / "grpc-tls"
GRPC_PKI_DAYS = 365


def grpc_pki() -> tuple[Path, Path, Path]:
    """(CA, certificate, key) of the runner's TLS port: a CA of this checkout's and a
    certificate for 127.0.0.1 and localhost, made again when missing or within 2 days of its
    end. The CA's key is not kept: nothing else can be signed with it."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509

    ca, cert, key = (GRPC_PKI_DIR / n for n in ("ca.pem", "server.pem", "server.key"))
    fresh = False
    if ca.is_file() and cert.is_file() and key.is_file():
        ends = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
        fresh = ends - datetime.now(UTC) > timedelta(days=2)
    if not fresh:
        from ryax_kit.testing import make_test_pki

        GRPC_PKI_DIR.mkdir(parents=True, exist_ok=True)
        GRPC_PKI_DIR.chmod(0o700)
        pki = make_test_pki(GRPC_PKI_DIR, (HOST, "localhost"), days=GRPC_PKI_DAYS)
        ca, cert, key = pki.ca_file, pki.cert_file, pki.key_file
    return ca, cert, key


def load_secrets() -> Secrets:
    DEV.mkdir(parents=True, exist_ok=True)
    DEV.chmod(0o700)
    return Secrets(
        admin_user=os.environ.get("RYAX_ADMIN_USER") or "admin",
        admin_password=os.environ.get("RYAX_ADMIN_PASSWORD")
        or devlib.secret(DEV / "admin-password", nbytes=12),
        # Per checkout, like the databases whose tokens and sealed values they guard.
        signing_key_file=signing_key(DEV / "auth-signing-key.pem"),
        # 32 random bytes, url-safe base64 (43 characters), one per service.
        data_keys={
            folder: devlib.secret(DEV / f"secret-key-{folder}", nbytes=32)
            for folder in SEALING_SERVICES
        },
        s3_access_key="ryax" + devlib.secret(DEV / "s3-access-key", nbytes=9).lower(),
        s3_secret_key=devlib.secret(DEV / "s3-secret-key", nbytes=30),
        internal_token=devlib.secret(DEV / "internal-token", nbytes=32),
        site_credential=devlib.secret(DEV / f"site-credential-{DEMO_SITE}", nbytes=32),
    )


def pg_dsn() -> str:
    override = os.environ.get("RYAX_DEV_PG_DSN")
    if override:
        return override
    dsn: str = devlib.setting("RYAX_TEST_PG_DSN", devlib.DEFAULT_PG_DSN)
    return dsn


def amqp_server_url() -> str:
    url: str = devlib.setting("RYAX_TEST_AMQP_URL", devlib.DEFAULT_AMQP_URL)
    return url


def amqp_override() -> str:
    """RYAX_DEV_AMQP_URL: a broker of the caller's, vhost included (see the module's doc)."""
    return os.environ.get("RYAX_DEV_AMQP_URL", "")


def services_amqp_url() -> str:
    return amqp_override() or devlib.amqp_with_vhost(amqp_server_url(), AMQP_VHOST)


def common_env(s: Secrets) -> dict[str, str]:
    return {
        "RYAX_AMQP_URL": services_amqp_url(),
        "RYAX_HTTP_HOST": HOST,
        "RYAX_RUNNER_GRPC_ADDRESS": f"{HOST}:{RUNNER_GRPC_PORT}",
        "RYAX_RUNNER_WORKER_SOCKET": str(RUNNER_WORKER_SOCKET),
        "RYAX_AUTHORIZATION_URL": f"http://{HOST}:8101",
        "RYAX_GATEWAY_URL": GATEWAY_URL,
        # host:port (what the minio client takes); RYAX_S3_SECURE says http or https.
        "RYAX_S3_ENDPOINT": S3_ADDRESS,
        "RYAX_S3_SECURE": "false",
        "RYAX_S3_ACCESS_KEY": s.s3_access_key,
        "RYAX_S3_SECRET_KEY": s.s3_secret_key,
        "RYAX_S3_BUCKET": S3_BUCKET,
        "RYAX_LOG_FORMAT": "json",
        "RYAX_ADMIN_USER": s.admin_user,
        "RYAX_ADMIN_PASSWORD": s.admin_password,
        "PYTHONUNBUFFERED": "1",
    }


def service_env(service: Service, s: Secrets) -> dict[str, str]:
    env = common_env(s)
    database = devlib.with_database(pg_dsn(), service.database)
    env["RYAX_DATABASE_URL"] = devlib.to_sqlalchemy_url(database)
    env["RYAX_HTTP_PORT"] = str(service.http_port)
    # Keys and the admin's password: only to the service that uses each.
    if service.folder == "authorization":
        env["RYAX_AUTH_SIGNING_KEY_FILE"] = str(s.signing_key_file)
    else:
        del env["RYAX_ADMIN_USER"], env["RYAX_ADMIN_PASSWORD"]
    if service.folder in s.data_keys:
        env["RYAX_SECRET_KEY"] = s.data_keys[service.folder]
        legacy = LEGACY_SECRET_KEY.read_text().strip() if LEGACY_SECRET_KEY.is_file() else ""
        if len(legacy) >= 32:
            env["RYAX_SECRET_KEY_PREVIOUS"] = legacy
    # The studio <-> runner service credential (the studio's internal route, which gives the
    # runner a deployment's secret values): only to these two.
    if service.folder in ("studio", "runner") and s.internal_token:
        env["RYAX_INTERNAL_TOKEN"] = s.internal_token
    if service.folder == "runner":
        env["RYAX_STUDIO_URL"] = f"http://{HOST}:8103"
    # The demo's site: the runner creates it (its built-in site) with this credential, which
    # the worker presents; only these two get it.
    if service.folder == "runner":
        _, cert, key = grpc_pki()
        env["RYAX_RUNNER_GRPC_TLS_ADDRESS"] = f"{HOST}:{RUNNER_GRPC_TLS_PORT}"
        env["RYAX_RUNNER_GRPC_TLS_CERT_FILE"] = str(cert)
        env["RYAX_RUNNER_GRPC_TLS_KEY_FILE"] = str(key)
    if service.folder == "runner" and s.site_credential:
        env["RYAX_RUNNER_BUILTIN_SITE"] = f"{DEMO_SITE}:local"
        env["RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL"] = s.site_credential
    if service.folder == "worker" and s.site_credential:
        env["RYAX_SITE_NAME"] = DEMO_SITE
        env["RYAX_SITE_CREDENTIAL"] = s.site_credential
    data = DATA
    if service.folder == "repository":
        # The demo imports examples/actions from this machine: local paths are allowed here
        # (and only here: the default refuses local and private addresses).
        env["RYAX_REPOSITORY_ALLOW_LOCAL"] = "true"
        env["RYAX_REPOSITORY_WORK_DIR"] = str(data / "repository")
    elif service.folder == "action-builder":
        env["RYAX_BUILDER_CACHE_DIR"] = str(data / "builder-cache")
    elif service.folder == "worker":
        env["RYAX_WORKER_CACHE_DIR"] = str(data / "worker-cache")
    return env


def env_file_text(env: dict[str, str]) -> str:
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(env.items()))


# --------------------------------------------------------------------------- web UI


def webui_present() -> bool:
    return (WEBUI / "package.json").is_file()


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def nginx_config(
    *, port: int, root: Path, rules: Path, prefix: Path, access_log: Path, user: str | None
) -> str:
    """A whole nginx.conf for nginx run in the foreground by supervisord: one server on
    loopback serving `root` with the shared `rules`; pid and temporary files in `prefix`; errors
    on stderr (the program's log). `user`: the workers' user when nginx is started by root."""
    temp = prefix / "tmp"
    lines = [
        "# Generated by dev/platform.py: edit that file (or webui/nginx/ryax-webui.conf).",
        "daemon off;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        "error_log stderr warn;",
    ]
    if user:
        lines.append(f"user {user};")
    lines += [
        "events { worker_connections 256; }",
        "http {",
        "    include /etc/nginx/mime.types;",
        "    default_type application/octet-stream;",
        "    sendfile on;",
        f"    access_log {access_log};",
        *(
            f"    {name}_temp_path {temp / name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ),
        "    server {",
        f"        listen {HOST}:{port};",
        f"        root {root};",
        f"        include {rules};",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def prepare_webui() -> None:
    """nginx installed (dev/ensure-nginx.sh) and webui/dist built when its sources changed
    (dev/webui.sh build, with .venv's Node.js)."""
    for command, what in (
        (["bash", str(_HERE / "ensure-nginx.sh")], "nginx"),
        (["bash", str(_HERE / "webui.sh"), "build"], "the web UI's build"),
    ):
        if subprocess.run(command, cwd=REPO, timeout=1800, check=False).returncode != 0:
            fail(f"{what}: command failed: {shlex.join(command)} (its error is above)")
    if nginx_binary() is None:
        fail("nginx is not installed: bash dev/ensure-nginx.sh (as root) installs it")


# --------------------------------------------------------------------------- supervisord


def supervisor_proxy() -> Any:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=f"unix://{SUPERVISOR_SOCK}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervisord_pid() -> int | None:
    try:
        pid = int(SUPERVISOR_PID.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"supervisord" in cmdline else None


def supervisord_answers() -> bool:
    if not SUPERVISOR_SOCK.exists():
        return False
    try:
        return supervisor_proxy().supervisor.getState()["statename"] == "RUNNING"  # type: ignore[no-any-return]
    except (OSError, xmlrpc.client.Error, http.client.HTTPException):
        return False


def process_info() -> dict[str, dict[str, Any]]:
    if not supervisord_answers():
        return {}
    return {info["name"]: info for info in supervisor_proxy().supervisor.getAllProcessInfo()}


#: supervisord's priority of the filestore (lower: started first, stopped last).
FIRST_UP_LAST_DOWN = 100


def supervisor_config(programs: list[tuple[str, str, Path, int]]) -> str:
    """programs: (name, shell command, working directory, seconds to wait on stop)."""

    def esc(text: object) -> str:
        return str(text).replace("%", "%%")

    lines = [
        "; Generated by dev/platform.py: edit that file.",
        "[unix_http_server]",
        f"file = {esc(SUPERVISOR_SOCK)}",
        "chmod = 0700",
        "",
        "[supervisord]",
        f"logfile = {esc(LOGS / 'supervisord.log')}",
        f"pidfile = {esc(SUPERVISOR_PID)}",
        f"directory = {esc(REPO)}",
        "logfile_maxbytes = 10MB",
        "logfile_backups = 2",
        "loglevel = info",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl = unix://{esc(SUPERVISOR_SOCK)}",
        "",
    ]
    for name, command, directory, stop_seconds in programs:
        lines += [
            f"[program:{name}]",
            f"command = /bin/bash -c {esc(shlex.quote(command))}",
            f"directory = {esc(directory)}",
            # The filestore starts first and stops last: the services find it up when they
            # start, and close their connections to it before it goes.
            f"priority = {FIRST_UP_LAST_DOWN if name == 's3' else 999}",
            "autostart = true",
            "autorestart = true",
            "startsecs = 2",
            "startretries = 3",
            "stopsignal = TERM",
            f"stopwaitsecs = {stop_seconds}",
            # The whole process group: a worker's action processes go with it.
            "stopasgroup = true",
            "killasgroup = true",
            "redirect_stderr = true",
            f"stdout_logfile = {esc(LOGS / (name + '.log'))}",
            "stdout_logfile_maxbytes = 20MB",
            "stdout_logfile_backups = 2",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- ports


def who_listens(port: int) -> str:
    if not shutil.which("ss"):
        return "unknown process"
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown process"
    users = out.split("users:", 1)[1] if "users:" in out else ""
    return users.strip() or "unknown process"


def wanted_ports(services: list[Service]) -> list[tuple[int, str]]:
    ports = [(GATEWAY_PORT, "gateway (traefik, RYAX_GATEWAY_PORT)")]
    if webui_present():
        ports.append((WEBUI_PORT, "webui (nginx)"))
    ports += [(port, "s3 (seaweedfs)") for port in S3_PORTS.all()]
    for service in services:
        ports.append((service.http_port, f"{service.program} (HTTP)"))
        if service.folder == "runner":
            ports.append((RUNNER_GRPC_PORT, "runner (gRPC for workers)"))
            ports.append((RUNNER_GRPC_TLS_PORT, "runner (gRPC with TLS for remote sites)"))
    return ports


def check_ports_free(services: list[Service]) -> None:
    busy = [
        f"port {port} wanted by {who} is already in use by {who_listens(port)}"
        for port, who in wanted_ports(services)
        if not devlib.port_is_free(port)
    ]
    if busy:
        fail("cannot start the platform:\n  " + "\n  ".join(busy))


# --------------------------------------------------------------------------- health


def http_status(url: str, timeout: float = 2.0) -> int | None:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass(frozen=True)
class Program:
    name: str
    url: str
    health: Callable[[], bool]
    detail: str = ""


def s3_healthy(s: Secrets) -> bool:
    server = devlib.S3Server(S3_ENDPOINT, s.s3_access_key, s.s3_secret_key)
    try:
        return bool(server.client().bucket_exists(S3_BUCKET))
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False


def healthz_probe(base_url: str) -> Callable[[], bool]:
    return lambda: http_status(f"{base_url}/healthz") == 200


def webui_url() -> str:
    return f"{GATEWAY_URL}/"


def programs_for(services: list[Service], s: Secrets) -> list[Program]:
    programs = [
        Program("s3", S3_ENDPOINT, lambda: s3_healthy(s), f"S3 API, bucket {S3_BUCKET}"),
        Program(
            "gateway",
            GATEWAY_URL,
            lambda: http_status(f"{GATEWAY_URL}/ping") == 200,
            "traefik",
        ),
    ]
    if webui_present():
        nginx_url = f"http://{HOST}:{WEBUI_PORT}"
        programs.append(
            Program(
                "webui",
                webui_url(),
                lambda: http_status(f"{nginx_url}/") == 200,
                f"nginx serving webui/dist; direct {nginx_url}",
            )
        )
    for service in services:
        direct = f"http://{HOST}:{service.http_port}"
        url = f"{GATEWAY_URL}/{service.folder}" if service.routed else direct
        detail = f"direct {direct}" if service.routed else "not routed"
        if service.folder == "runner":
            detail += f"; gRPC {HOST}:{RUNNER_GRPC_PORT}, with TLS {HOST}:{RUNNER_GRPC_TLS_PORT}"
        programs.append(Program(service.program, url, healthz_probe(direct), detail))
    return programs


def wait_healthy(programs: list[Program]) -> None:
    for program in programs:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        first_pid = None
        while not program.health():
            info = process_info().get(program.name, {})
            state = info.get("statename", "UNKNOWN")
            pid = info.get("pid") or None
            first_pid = first_pid or pid
            # A pid that changed means it crashed and supervisord restarted it.
            crashed = state in {"FATAL", "EXITED", "STOPPED", "BACKOFF", "UNKNOWN"} or (
                pid is not None and pid != first_pid
            )
            if crashed or time.monotonic() > deadline:
                log = LOGS / f"{program.name}.log"
                reason = (
                    f"crashed (state {state})"
                    if crashed
                    else f"not healthy after {HEALTH_TIMEOUT:.0f}s"
                )
                fail(
                    f"{program.name} {reason} ({program.url}). Last lines of {log}:\n"
                    f"{devlib.tail(log, 40)}\n"
                    "The rest of the platform is left running: `make status`, `make down`."
                )
            time.sleep(0.5)
        say(f"  {program.name}: healthy")


def print_table(programs: list[Program]) -> None:
    info = process_info()
    rows = [("PROGRAM", "STATE", "PID", "HEALTH", "URL", "DETAIL")]
    for program in programs:
        entry = info.get(program.name, {})
        pid = entry.get("pid") or ""
        rows.append(
            (
                program.name,
                entry.get("statename", "-"),
                str(pid),
                "ok" if program.health() else "DOWN",
                program.url,
                program.detail,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        say(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[5]
        )


def pg_location() -> str:
    parts = urllib.parse.urlsplit(pg_dsn())
    return f"{parts.hostname or HOST}:{parts.port or 5432}"


def state_line() -> str:
    broker = (
        f"broker {devlib.redact(amqp_override())}" if amqp_override() else f"vhost {NAMES.vhost}"
    )
    return (
        f"Database: {NAMES.prefix}_* on {pg_location()}, {broker}   "
        f"(checkout {NAMES.checkout_id}: {REPO}; make reset starts again from nothing)"
    )


def print_credentials(s: Secrets) -> None:
    password_source = (
        "RYAX_ADMIN_PASSWORD" if os.environ.get("RYAX_ADMIN_PASSWORD") else ".dev/admin-password"
    )
    say()
    if webui_present():
        say(f"Web UI:   {webui_url()}   (log in as {s.admin_user} / {s.admin_password})")
    say(f"Gateway:  {GATEWAY_URL}   (API docs: {GATEWAY_URL}/<service>/docs)")
    say(f"Admin:    {s.admin_user} / {s.admin_password}   (password from {password_source})")
    say(
        f"S3:       {S3_ENDPOINT} bucket {S3_BUCKET} (keys: .dev/s3-access-key, .dev/s3-secret-key)"
    )
    say(
        f"Sites:    remote workers dial {HOST}:{RUNNER_GRPC_TLS_PORT} with TLS "
        f"(RYAX_RUNNER_CA_FILE={GRPC_PKI_DIR / 'ca.pem'}; docs/remote-sites.md)"
    )
    say(state_line())
    say(f"Logs:     {LOGS}/<program>.log      Stop: make down      State: make status")


# --------------------------------------------------------------------------- commands


def present_services() -> list[Service]:
    return [service for service in SERVICES if service.exists()]


#: The gateway's access log (.dev/logs/gateway-access.log) is off unless
#: RYAX_GATEWAY_ACCESS_LOG=on: writing it cost Traefik a fifth of its CPU per request under the
#: bench's load (0.42 -> 0.33 ms per one-step run). The services' own request metrics
#: (`ryax_http_requests_total`, `ryax_http_request_seconds`) count every request either way.
def gateway_access_log() -> str:
    value = os.environ.get("RYAX_GATEWAY_ACCESS_LOG", "").strip().lower() or "off"
    if value not in ("on", "off"):
        raise SystemExit(f"RYAX_GATEWAY_ACCESS_LOG={value!r}: on or off")
    if value == "off":
        return ""
    return (
        "accessLog:\n"
        f'  filePath: "{LOGS / "gateway-access.log"}"\n'
        "  # Written asynchronously, off the request path (up to 64 lines wait in memory).\n"
        "  bufferingSize: 64\n"
    )


def generate(services: list[Service], s: Secrets) -> None:
    for folder in (RUN, LOGS, S3_DATA, TRAEFIK_DIR, ENV_DIR, NGINX_DIR / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    s3_config = RUN / "s3-identities.json"
    devlib.write_s3_identities(s3_config, s.s3_access_key, s.s3_secret_key)

    template = string.Template((_HERE / "traefik" / "traefik.yml.in").read_text())
    dynamic = TRAEFIK_DIR / "dynamic.yml"
    (TRAEFIK_DIR / "traefik.yml").write_text(
        template.substitute(
            gateway_port=GATEWAY_PORT,
            dynamic_config=dynamic,
            access_log=gateway_access_log(),
        )
    )
    dynamic.write_text(traefik_routes(webui=webui_present()))

    s3_config_dir: Path | None = RUN / "s3-config"
    s3_limit = S3_GOMEMLIMIT
    if s3_legacy_store():
        s3_config_dir, s3_limit = None, S3_GOMEMLIMIT_LEGACY_STORE
    else:
        devlib.write_filer_store(RUN / "s3-config", S3_DATA)
    weed = devlib.weed_command(
        weed=str(VENV_BIN / "weed"),
        data_dir=S3_DATA,
        ports=S3_PORTS,
        s3_config=s3_config,
        socket_dir=RUN,
        buckets=(S3_BUCKET,),
        config_dir=s3_config_dir,
    )
    programs: list[tuple[str, str, Path, int]] = [
        ("s3", "exec " + shlex.join(["env", *s3_go_env(s3_limit), *weed]), REPO, 20),
        (
            "gateway",
            f"exec {shlex.quote(str(VENV_BIN / 'traefik'))} "
            f"--configFile={shlex.quote(str(TRAEFIK_DIR / 'traefik.yml'))}",
            REPO,
            10,
        ),
    ]
    nginx = nginx_binary()
    if webui_present() and nginx is not None:
        conf = NGINX_DIR / "nginx.conf"
        conf.write_text(
            nginx_config(
                port=WEBUI_PORT,
                root=WEBUI_DIST,
                rules=WEBUI_NGINX_RULES,
                prefix=NGINX_DIR,
                access_log=LOGS / "webui-access.log",
                # Started by root (make demo as root), the workers drop to nobody: what they
                # serve (webui/dist) is world-readable.
                user="nobody nogroup" if os.geteuid() == 0 else None,
            )
        )
        nginx_command = [nginx, "-p", str(NGINX_DIR), "-e", "stderr", "-c", str(conf)]
        programs.append(("webui", f"exec {shlex.join(nginx_command)}", REPO, 10))
    for service in services:
        env_file = ENV_DIR / f"{service.program}.env"
        devlib.write_private(env_file, env_file_text(service_env(service, s)))
        command = (
            f"set -a && . {shlex.quote(str(env_file))} && set +a && "
            f"exec {shlex.quote(str(VENV_BIN / 'python'))} -m {service.package}"
        )
        programs.append((service.program, command, REPO / service.folder, 15))
    SUPERVISOR_CONF.write_text(supervisor_config(programs))


#: Routes of a service that other services call directly, never through the gateway.
INTERNAL_PREFIXES = {"studio": "/studio/internal"}
#: Prefixes a service serves besides /<service>: the runner serves the projects' user API
#: (/user-api/<project>/<path>, the deployed HTTP API triggers, as published Ryax does).
EXTRA_PREFIXES = {"runner": ("/user-api",)}


def traefik_routes(*, webui: bool = True) -> str:
    """The gateway's routes: each service under /<service>, and the web UI at `/` with the
    lowest priority (1), so every service prefix wins over it."""
    lines = [
        "# Generated by dev/platform.py: the gateway's routes (Traefik file provider).",
        "# Paths are passed on unchanged: each service serves under /<service>/ (the runner also",
        "# /user-api/); the rest is the web UI's (priority 1, the lowest: a service prefix wins).",
        "http:",
        "  routers:",
    ]
    routed = [service for service in SERVICES if service.routed]
    for service in routed:
        prefix = f"/{service.folder}"
        rule = " || ".join(
            f"Path(`{p}`) || PathPrefix(`{p}/`)"
            for p in (prefix, *EXTRA_PREFIXES.get(service.folder, ()))
        )
        if service.folder in INTERNAL_PREFIXES:
            # Service-to-service routes are never routed (the web UI's route answers them).
            rule = f"({rule}) && !PathPrefix(`{INTERNAL_PREFIXES[service.folder]}`)"
        lines += [
            f"    {service.program}:",
            f'      rule: "{rule}"',
            "      entryPoints: [web]",
            f"      service: {service.program}",
        ]
    if webui:
        lines += [
            "    webui:",
            '      rule: "PathPrefix(`/`)"',
            "      priority: 1",
            "      entryPoints: [web]",
            "      service: webui",
        ]
    lines.append("  services:")
    backends = [(service.program, service.http_port) for service in routed]
    if webui:
        backends.append(("webui", WEBUI_PORT))
    for name, port in backends:
        lines += [
            f"    {name}:",
            "      loadBalancer:",
            "        servers:",
            f'          - url: "http://{HOST}:{port}"',
        ]
    return "\n".join(lines) + "\n"


def ensure_vhost() -> None:
    """Idempotent: add_vhost on an existing vhost succeeds (permissions are set again). Not
    with RYAX_DEV_AMQP_URL: that broker and its vhost are the caller's."""
    if amqp_override():
        return
    try:
        vhost_admin().add(AMQP_VHOST)
    except devlib.DependencyUnavailable as error:
        fail(f"rabbitmq: cannot create vhost {AMQP_VHOST!r}: {error}")


def start_supervisord() -> None:
    command = [str(VENV_BIN / "supervisord"), "-c", str(SUPERVISOR_CONF)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        fail(f"command failed: {shlex.join(command)}\n{done.stdout}{done.stderr}")
    deadline = time.monotonic() + 30
    while not supervisord_answers():
        if time.monotonic() > deadline:
            fail(
                f"supervisord does not answer on {SUPERVISOR_SOCK} after 30s; see "
                f"{LOGS / 'supervisord.log'}:\n{devlib.tail(LOGS / 'supervisord.log')}"
            )
        time.sleep(0.2)


def cmd_up() -> int:
    if supervisord_pid() is not None:
        say("The platform is already running: stopping it to start it again cleanly.")
        cmd_down()
    services = present_services()
    if webui_present():
        prepare_webui()  # first: the ports are checked just before they are taken
    check_ports_free(services)
    forget_state_of_lost_secrets()
    s = load_secrets()
    ensure_vhost()
    generate(services, s)
    names = ", ".join(service.program for service in services) or "none yet"
    webui = "webui, " if webui_present() else ""
    say(f"Starting s3, gateway, {webui}and services ({names}) under supervisord")
    start_supervisord()
    programs = programs_for(services, s)
    wait_healthy(programs)
    say()
    print_table(programs)
    print_credentials(s)
    return 0


def cmd_down() -> int:
    pid = supervisord_pid()
    if pid is None:
        say("The platform is not running.")
        SUPERVISOR_SOCK.unlink(missing_ok=True)
        return 0
    say(f"Stopping supervisord (pid {pid}) and its programs")
    try:
        supervisor_proxy().supervisor.shutdown()
    except (OSError, xmlrpc.client.Error, http.client.HTTPException):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while supervisord_pid() == pid:
        if time.monotonic() > deadline:
            fail(f"supervisord (pid {pid}) still runs 90s after shutdown; see {LOGS}")
        time.sleep(0.2)
    SUPERVISOR_SOCK.unlink(missing_ok=True)
    say("Stopped.")
    return 0


def cmd_status() -> int:
    say(state_line())
    if supervisord_pid() is None:
        say("The platform is not running (make demo starts it).")
        return 0
    done = subprocess.run(
        [str(VENV_BIN / "supervisorctl"), "-c", str(SUPERVISOR_CONF), "status"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    say(done.stdout.rstrip())
    say()
    s = load_secrets()
    programs = programs_for(present_services(), s)
    print_table(programs)
    unhealthy = [program.name for program in programs if not program.health()]
    if unhealthy:
        say(f"Unhealthy: {', '.join(unhealthy)} (logs in {LOGS})")
        return 1
    return 0


def checkout_databases(server_dsn: str, names: StateNames) -> list[str]:
    """The databases of the checkout `names` describes on the server, and no other's."""
    return [name for name in devlib.database_names(server_dsn) if names.owns_database(name)]


def drop_checkout_state(
    names: StateNames, *, server_dsn: str, vhosts: Any, data: Path
) -> tuple[list[str], bool]:
    """Drop the checkout's databases and vhost and remove its data folder; never another
    checkout's state. (dropped databases, whether the vhost existed)."""
    databases = checkout_databases(server_dsn, names)
    for name in databases:
        devlib.drop_database(server_dsn, name)
    had_vhost = vhosts.exists(names.vhost)
    if had_vhost:
        vhosts.delete(names.vhost)
    shutil.rmtree(data, ignore_errors=True)
    return databases, had_vhost


def vhost_admin() -> Any:
    return devlib.VhostAdmin(amqp_server_url(), devlib.setting("RYAX_TEST_AMQP_MANAGEMENT_URL", ""))


def forget_state_of_lost_secrets() -> None:
    """A checkout whose `.dev/` is new (a fresh clone where an earlier one stood: the same path,
    so the same databases) has none of the keys its databases were written with: no admin
    password to log in with, no key to open the sealed values. Its databases, vhost and data
    are dropped before its new secrets are made, as `make reset` would, saying so."""
    if any((DEV / f"secret-key-{folder}").exists() for folder in SEALING_SERVICES):
        return
    if not checkout_databases(pg_dsn(), NAMES):
        return
    databases, _ = drop_checkout_state(NAMES, server_dsn=pg_dsn(), vhosts=vhost_admin(), data=DATA)
    say(
        f"Dropped the state of checkout {NAMES.checkout_id} ({', '.join(databases)}): it was "
        f"made with secrets {DEV} no longer holds"
    )


def cmd_reset() -> int:
    cmd_down()
    try:
        devlib.check_postgres(pg_dsn())
        databases, had_vhost = drop_checkout_state(
            NAMES, server_dsn=pg_dsn(), vhosts=vhost_admin(), data=DATA
        )
    except devlib.DependencyUnavailable as error:
        fail(f"reset: {error}")
        return 1
    say(
        f"Dropped {len(databases)} database(s) of checkout {NAMES.checkout_id} on "
        f"{pg_location()}: {', '.join(databases) or 'none'}"
    )
    say(f"Vhost {NAMES.vhost}: {'deleted' if had_vhost else 'absent'}")
    say(f"Removed {DATA}. `make demo` starts again from nothing.")
    return 0


def cmd_scenario() -> int:
    if not SCENARIO.exists():
        say(f"No {SCENARIO.relative_to(REPO)}: no demo scenario to run.")
        return 0
    s = load_secrets()
    env = {**os.environ, **common_env(s), "RYAX_REPO_ROOT": str(REPO)}
    command = [str(VENV_BIN / "python"), "-P", str(SCENARIO)]
    say(f"Running {shlex.join(command)}")
    return subprocess.run(command, env=env, cwd=REPO, check=False).returncode


def cmd_env(name: str) -> int:
    service = next((service for service in SERVICES if service.program == name), None)
    if service is None:
        fail(f"no service {name!r}; one of: {', '.join(s.program for s in SERVICES)}")
        return 1
    sys.stdout.write(env_file_text(service_env(service, load_secrets())))
    return 0


def main(argv: list[str]) -> int:
    socket.setdefaulttimeout(30)  # no call to supervisord may hang
    parser = argparse.ArgumentParser(prog="dev/platform.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status", "scenario", "reset"):
        sub.add_parser(name)
    env = sub.add_parser("env")
    env.add_argument("service")
    args = parser.parse_args(argv)
    if args.command == "env":
        return cmd_env(args.service)
    commands: dict[str, Callable[[], int]] = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "scenario": cmd_scenario,
        "reset": cmd_reset,
    }
    return commands[args.command]()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BrokenPipeError:  # `make status | head`
        sys.stderr.close()
        sys.exit(0)
