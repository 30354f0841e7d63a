"""Helpers shared by the root conftest.py, dev/platform.py and dev/tests: settings, free ports,
throwaway databases, vhosts and buckets, and a SeaweedFS S3 server that checks signatures.

Standard library only at import time: asyncpg, minio and aio_pika are imported inside the
functions that need them, so a service's unit tests never pull them in.

This file is loaded by path (never put dev/ on sys.path: dev/platform.py would shadow the
standard library's `platform`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from minio import Minio

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_STATE = REPO_ROOT / ".dev"
DEV_ENV_FILE = DEV_STATE / "env"
LOOPBACK = "127.0.0.1"

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
TEST_NAME_PREFIX = "ryax_test_"

T = TypeVar("T")


class DependencyUnavailable(RuntimeError):
    """A real component the tests or the demo need cannot be reached or started."""


# --------------------------------------------------------------------------- settings


def read_env_file(path: Path | None = None) -> dict[str, str]:
    """KEY=VALUE lines as written by dev/lib.sh (no quoting, no expansion)."""
    path = path or DEV_ENV_FILE
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value
    return values


def setting(name: str, default: str = "") -> str:
    """The process environment wins, then .dev/env (written by `make deps`), then `default`."""
    value = os.environ.get(name)
    if value:
        return value
    return read_env_file().get(name) or default


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def shared_state_dir() -> Path:
    """Secrets shared by every checkout of this user on this machine (see dev/lib.sh)."""
    configured = os.environ.get("RYAX_DEV_SHARED_STATE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ryax-dev"


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def secret(path: Path, *, nbytes: int = 24, shared: bool = False) -> str:
    """The secret stored in `path`, generated (mode 600) the first time.

    shared: the secret guards something every checkout on this machine shares (the database
    role), so it is also kept in shared_state_dir() and taken from there.
    """
    copy = shared_state_dir() / path.name
    if shared and path.exists() and path.read_text().strip() and not copy.exists():
        write_private(copy, path.read_text())
    if not path.exists() or not path.read_text().strip():
        if shared and copy.exists() and copy.read_text().strip():
            value = copy.read_text().strip()
        else:
            value = base64.urlsafe_b64encode(os.urandom(nbytes)).decode().rstrip("=")
            if shared:
                write_private(copy, value + "\n")
        write_private(path, value + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


STALE_AFTER_SECONDS = 6 * 3600


def unique_name(prefix: str = TEST_NAME_PREFIX) -> str:
    """prefix + creation time + random: a session killed before its teardown leaves names that a
    later session can recognise as stale (see is_stale)."""
    return f"{prefix}{int(time.time())}_{uuid.uuid4().hex[:8]}"


def is_stale(name: str, prefix: str = TEST_NAME_PREFIX, now: float | None = None) -> bool:
    """A test resource older than STALE_AFTER_SECONDS (no test runs that long)."""
    if not name.startswith(prefix):
        return False
    stamp, _, _ = name[len(prefix) :].partition("_")
    if not stamp.isdigit():
        return False
    return (now or time.time()) - int(stamp) > STALE_AFTER_SECONDS


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies, even killed with -9."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even if this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(factory()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


# --------------------------------------------------------------------------- ports


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Nothing listens there. SO_REUSEADDR as servers set it: connections of a stopped server
    lingering in TIME_WAIT do not make the port busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_ports(count: int, *, low: int = 20000, high: int = 30999) -> list[int]:
    """`count` distinct free loopback ports, below the kernel's ephemeral range so that outgoing
    connections are unlikely to take them between this check and their use."""
    chosen: list[int] = []
    for _ in range(10_000):
        port = random.randint(low, high)
        if port not in chosen and port_is_free(port):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise DependencyUnavailable(f"no {count} free loopback ports in {low}-{high}")


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise DependencyUnavailable(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- PostgreSQL


def with_database(dsn: str, database: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def to_sqlalchemy_url(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    if scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"not a postgresql:// DSN: {scheme}://...")
    return f"postgresql+asyncpg{sep}{rest}"


def redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class FreshDatabase(str):
    """A SQLAlchemy URL (postgresql+asyncpg://...) to a database of its own; `.dsn` is the plain
    postgresql:// DSN (asyncpg, psql), `.name` the database name."""

    name: str
    dsn: str

    def __new__(cls, *, name: str, dsn: str) -> FreshDatabase:
        obj = super().__new__(cls, to_sqlalchemy_url(dsn))
        obj.name = name
        obj.dsn = dsn
        return obj

    @property
    def url(self) -> str:
        return str(self)


async def _pg_execute(dsn: str, *statements: str, connect_timeout: float = 10.0) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        for statement in statements:
            await conn.execute(statement, timeout=60)
    finally:
        await conn.close()


async def _pg_fetchval(dsn: str, query: str, *args: object, connect_timeout: float = 10.0) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        return await conn.fetchval(query, *args, timeout=60)
    finally:
        await conn.close()


def check_postgres(dsn: str) -> None:
    try:
        run_coroutine(lambda: _pg_fetchval(dsn, "SELECT 1", connect_timeout=5))
    except Exception as exc:
        raise DependencyUnavailable(
            f"PostgreSQL at {redact(dsn)} does not accept a connection ({exc!r}); run "
            "`make deps` (dev/ensure-postgres.sh) or set RYAX_TEST_PG_DSN"
        ) from exc


def database_exists(server_dsn: str, name: str) -> bool:
    query = "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)"
    return bool(run_coroutine(lambda: _pg_fetchval(server_dsn, query, name)))


def database_names(server_dsn: str) -> list[str]:
    """Every database on the server, sorted."""
    query = "SELECT coalesce(array_agg(datname ORDER BY datname), '{}') FROM pg_database"
    return list(run_coroutine(lambda: _pg_fetchval(server_dsn, query)))


def drop_stale_databases(server_dsn: str) -> list[str]:
    """Drop the test databases of sessions killed before their teardown."""
    query = "SELECT coalesce(array_agg(datname), '{}') FROM pg_database WHERE datname LIKE $1"
    names = run_coroutine(lambda: _pg_fetchval(server_dsn, query, TEST_NAME_PREFIX + "%"))
    stale = [name for name in names if is_stale(name)]
    for name in stale:
        drop_database(server_dsn, name)
    return stale


def create_database(server_dsn: str, name: str | None = None) -> FreshDatabase:
    name = name or unique_name()
    run_coroutine(lambda: _pg_execute(server_dsn, f'CREATE DATABASE "{name}"'))
    return FreshDatabase(name=name, dsn=with_database(server_dsn, name))


def drop_database(server_dsn: str, name: str) -> None:
    # FORCE: a test that forgot to dispose its engine must not leave the database behind.
    statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    run_coroutine(lambda: _pg_execute(server_dsn, statement))


@contextlib.contextmanager
def temporary_database(server_dsn: str) -> Iterator[FreshDatabase]:
    database = create_database(server_dsn)
    try:
        yield database
    finally:
        drop_database(server_dsn, database.name)


# --------------------------------------------------------------------------- RabbitMQ


def amqp_with_vhost(amqp_url: str, vhost: str) -> str:
    parts = urllib.parse.urlsplit(amqp_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


def check_amqp(amqp_url: str) -> None:
    """A real AMQP login (aio_pika), so bad credentials are reported here and not in a test."""

    async def connect() -> None:
        import aio_pika

        connection = await aio_pika.connect(amqp_url, timeout=10)
        await connection.close()

    try:
        run_coroutine(connect)
    except Exception as exc:
        raise DependencyUnavailable(
            f"RabbitMQ at {redact(amqp_url)} refuses an AMQP login ({exc!r}); run `make deps` "
            "(dev/ensure-rabbitmq.sh) or set RYAX_TEST_AMQP_URL"
        ) from exc


@dataclass
class VhostAdmin:
    """Creates and deletes vhosts: with rabbitmqctl when the broker is this machine's and the
    command works, else through the management HTTP API."""

    amqp_url: str
    management_url: str = ""
    _use_rabbitmqctl: bool | None = field(default=None, init=False)

    @property
    def user(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.amqp_url).username or "guest")

    @property
    def password(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.amqp_url).password or "guest")

    def _management_base(self) -> str:
        if self.management_url:
            return self.management_url.rstrip("/")
        host = urllib.parse.urlsplit(self.amqp_url).hostname or LOOPBACK
        return f"http://{host}:15672"

    def _rabbitmqctl_usable(self) -> bool:
        if self._use_rabbitmqctl is None:
            host = urllib.parse.urlsplit(self.amqp_url).hostname or ""
            local = host in {"127.0.0.1", "localhost", "::1"}
            usable = local and shutil.which("rabbitmqctl") is not None
            if usable:
                try:
                    done = subprocess.run(
                        ["rabbitmqctl", "-q", "list_vhosts"],
                        capture_output=True,
                        timeout=30,
                        stdin=subprocess.DEVNULL,
                        check=False,
                    )
                    usable = done.returncode == 0
                except (OSError, subprocess.TimeoutExpired):
                    usable = False
            self._use_rabbitmqctl = usable
        return self._use_rabbitmqctl

    def _rabbitmqctl(self, *args: str) -> None:
        command = ["rabbitmqctl", "-q", *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DependencyUnavailable(f"rabbitmq: `{' '.join(command)}` timed out") from exc
        if done.returncode != 0:
            raise DependencyUnavailable(
                f"rabbitmq: `{' '.join(command)}` failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()}"
            )

    def _http(self, method: str, path: str, body: Mapping[str, str] | None = None) -> None:
        url = self._management_base() + path
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
        except (urllib.error.URLError, OSError) as exc:
            raise DependencyUnavailable(
                f"rabbitmq: neither rabbitmqctl nor the management API ({method} {url}) "
                f"can manage vhosts: {exc}"
            ) from exc

    def add(self, vhost: str) -> None:
        if self._rabbitmqctl_usable():
            self._rabbitmqctl("add_vhost", vhost)
            self._rabbitmqctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")
        else:
            quoted = urllib.parse.quote(vhost, safe="")
            self._http("PUT", f"/api/vhosts/{quoted}", {})
            permissions = {"configure": ".*", "write": ".*", "read": ".*"}
            user = urllib.parse.quote(self.user, safe="")
            self._http("PUT", f"/api/permissions/{quoted}/{user}", permissions)

    def delete(self, vhost: str) -> None:
        if self._rabbitmqctl_usable():
            self._rabbitmqctl("delete_vhost", vhost)
        else:
            self._http("DELETE", f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}")

    def names(self) -> list[str]:
        if self._rabbitmqctl_usable():
            done = subprocess.run(
                ["rabbitmqctl", "-q", "list_vhosts", "name"],
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
                check=True,
            )
            return done.stdout.split()
        request = urllib.request.Request(f"{self._management_base()}/api/vhosts")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return [entry["name"] for entry in json.load(response)]
        except (urllib.error.URLError, OSError) as exc:
            raise DependencyUnavailable(
                f"rabbitmq: neither rabbitmqctl nor the management API can list vhosts: {exc}"
            ) from exc

    def delete_stale(self) -> list[str]:
        """Delete the test vhosts of sessions killed before their teardown."""
        stale = [name for name in self.names() if is_stale(name)]
        for name in stale:
            self.delete(name)
        return stale

    def exists(self, vhost: str) -> bool:
        return vhost in self.names()


@contextlib.contextmanager
def temporary_vhost(admin: VhostAdmin) -> Iterator[str]:
    """Yields the AMQP URL of a new vhost the URL's user has every permission on."""
    vhost = unique_name()
    admin.add(vhost)
    try:
        yield amqp_with_vhost(admin.amqp_url, vhost)
    finally:
        admin.delete(vhost)


# --------------------------------------------------------------------------- S3 (SeaweedFS)


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def address(self) -> str:
        """host:port, as the minio client wants it."""
        return urllib.parse.urlsplit(self.endpoint).netloc

    @property
    def secure(self) -> bool:
        return self.endpoint.startswith("https://")

    def client(self, *, secret_key: str | None = None) -> Minio:
        """A minio client without retries (a refused request fails at once)."""
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2, read=30), retries=urllib3.Retry(total=0)
        )
        return Minio(
            self.address,
            access_key=self.access_key,
            secret_key=self.secret_key if secret_key is None else secret_key,
            secure=self.secure,
            region=self.region,
            http_client=http,
        )


@dataclass(frozen=True)
class WeedPorts:
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    # `weed mini` always runs an admin server; its worker dials admin + 10000 for gRPC whatever
    # -admin.port.grpc says, so that port must be free too.
    admin: int

    @property
    def admin_grpc(self) -> int:
        return self.admin + 10000

    def all(self) -> list[int]:
        return [
            self.s3,
            self.s3_grpc,
            self.master,
            self.master_grpc,
            self.volume,
            self.volume_grpc,
            self.filer,
            self.filer_grpc,
            self.admin,
            self.admin_grpc,
        ]

    @classmethod
    def pick(cls) -> WeedPorts:
        for _ in range(1000):
            admin = random.randint(20000, 22767)
            if port_is_free(admin) and port_is_free(admin + 10000):
                break
        else:
            raise DependencyUnavailable("no free loopback port pair for the SeaweedFS admin")
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = [
            port for port in free_ports(10) if port not in {admin, admin + 10000}
        ][:8]
        return cls(
            s3=s3,
            s3_grpc=s3_grpc,
            master=master,
            master_grpc=master_grpc,
            volume=volume,
            volume_grpc=volume_grpc,
            filer=filer,
            filer_grpc=filer_grpc,
            admin=admin,
        )


def weed_binary() -> str:
    configured = os.environ.get("RYAX_WEED_BIN")
    if configured:
        if not os.access(configured, os.X_OK):
            raise DependencyUnavailable(f"s3: RYAX_WEED_BIN={configured} is not an executable")
        return configured
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise DependencyUnavailable("the SeaweedFS `weed` binary is missing: run `make venv`")


def write_s3_identities(path: Path, access_key: str, secret_key: str) -> None:
    """SeaweedFS S3 config: one identity with every right, so unsigned or badly signed requests
    are refused."""
    config = {
        "identities": [
            {
                "name": "ryax",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out, indent=2)


def weed_command(
    *,
    weed: str,
    data_dir: Path,
    ports: WeedPorts,
    s3_config: Path,
    socket_dir: Path,
    buckets: tuple[str, ...] = (),
    config_dir: Path | None = None,
) -> list[str]:
    """`weed mini`: master, volume, filer and S3 in one process on loopback, starting in about a
    second and stopping in two (`weed server -s3` takes 3 s up and 15 s down). With
    `config_dir`, SeaweedFS reads its filer.toml there (`write_filer_store`)."""
    command = [weed]
    if config_dir is not None:
        command.append(f"-config_dir={config_dir}")
    command += [
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        "-master.telemetry=false",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        f"-filer.localSocket={socket_dir / 'filer.sock'}",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        f"-s3.localSocket={socket_dir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={ports.admin}",
        f"-admin.port.grpc={ports.admin_grpc}",
    ]
    if buckets:
        command.append(f"-bucket={','.join(buckets)}")
    return command


#: The filer's metadata store for `weed mini` (its filer.toml): one LevelDB database. The default
#: store of `weed mini` (leveldb2, in `filerldb2`) opens 8 LevelDB databases whose write buffers,
#: with the filer's log buffers, put about 280 MB on SeaweedFS's heap from its start, mostly never
#: touched: the heap that a soft memory limit (GOMEMLIMIT) must stay above, lest the collector
#: run all the time. With one database the heap is 137 to 150 MB live after `make bench`'s
#: transfers (dev/platform.py, S3_GOMEMLIMIT), where leveldb2 needed a limit of 320 MiB.
FILER_STORE_DIR = "filer_leveldb"
#: The default store's folder: data that an older checkout wrote there stays readable only
#: with that store (dev/platform.py keeps it then).
LEGACY_FILER_STORE_DIR = "filerldb2"


def write_filer_store(config_dir: Path, data_dir: Path) -> None:
    """filer.toml in `config_dir`: the filer's metadata in one LevelDB database in `data_dir`."""
    config_dir.mkdir(parents=True, exist_ok=True)
    store = data_dir / FILER_STORE_DIR
    (config_dir / "filer.toml").write_text(
        "# Written by dev/devlib.py: the filer's metadata store (see FILER_STORE_DIR there).\n"
        f"[leveldb]\nenabled = true\ndir = {json.dumps(str(store))}\n"
    )


def remove_stale_weed_sockets(ports: WeedPorts) -> None:
    """weed puts gRPC unix sockets in /tmp named after the ports; a killed weed leaves them."""
    tmp = Path(tempfile.gettempdir())
    for port in ports.all():
        for stale in tmp.glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                stale.unlink()


def s3_ready(server: S3Server) -> bool:
    try:
        server.client().list_buckets()
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return False
    return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


@contextlib.contextmanager
def run_seaweedfs(*, startup_timeout: float = 60.0, attempts: int = 3) -> Iterator[S3Server]:
    """Start a private SeaweedFS S3 server on free loopback ports with fresh credentials;
    stop it and delete its data on exit."""
    weed = weed_binary()
    for old in Path(tempfile.gettempdir()).glob("ryax-s3-*"):
        # Left by a session killed before its teardown.
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE_AFTER_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix="ryax-s3-"))
    access_key = "ryax" + uuid.uuid4().hex[:12]
    secret_key = uuid.uuid4().hex + uuid.uuid4().hex
    config = workdir / "s3.json"
    write_s3_identities(config, access_key, secret_key)
    process: subprocess.Popen[bytes] | None = None
    ports: WeedPorts | None = None
    log_path = workdir / "weed.log"
    try:
        for attempt in range(1, attempts + 1):
            ports = WeedPorts.pick()
            data_dir = workdir / f"data{attempt}"
            data_dir.mkdir()
            write_filer_store(workdir / "config", data_dir)
            command = weed_command(
                weed=weed,
                data_dir=data_dir,
                ports=ports,
                s3_config=config,
                socket_dir=workdir,
                config_dir=workdir / "config",
            )
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=workdir,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            server = S3Server(f"http://{LOOPBACK}:{ports.s3}", access_key, secret_key)
            deadline = time.monotonic() + startup_timeout
            while process.poll() is None and time.monotonic() < deadline:
                if s3_ready(server):
                    break
                time.sleep(0.2)
            if process.poll() is None and s3_ready(server):
                yield server
                return
            # Exited (most likely a port taken meanwhile) or never answered: try other ports.
            stop_process(process)
            remove_stale_weed_sockets(ports)
            process = None
        raise DependencyUnavailable(
            f"s3: `weed mini` did not answer on 127.0.0.1 after {attempts} attempts "
            f"({startup_timeout:.0f}s each); last log lines:\n{tail(log_path)}"
        )
    finally:
        if process is not None:
            stop_process(process)
        if ports is not None:
            remove_stale_weed_sockets(ports)
        shutil.rmtree(workdir, ignore_errors=True)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def empty_and_remove_bucket(client: Minio, bucket: str) -> None:
    from minio.deleteobjects import DeleteObject

    objects = [
        DeleteObject(obj.object_name)
        for obj in client.list_objects(bucket, recursive=True, include_version=False)
        if obj.object_name is not None
    ]
    if objects:
        for error in client.remove_objects(bucket, objects):
            raise DependencyUnavailable(f"s3: cannot delete {error.name} from {bucket}: {error}")
    client.remove_bucket(bucket)


@contextlib.contextmanager
def temporary_bucket(server: S3Server) -> Iterator[str]:
    client = server.client()
    bucket = unique_name("ryax-test-").replace("_", "-")
    client.make_bucket(bucket)
    try:
        yield bucket
    finally:
        empty_and_remove_bucket(client, bucket)


# --------------------------------------------------------------------------- network namespaces
# (root only: the chaos suite's network cut, the remote_site end-to-end tests)


def netns_problem() -> str:
    """Why the worker cannot be put in a network namespace here ('' when it can)."""
    if os.geteuid() != 0:
        return "a network namespace needs root (`ip netns add`)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    return ""


def _ip(*args: str, check: bool = True) -> str:
    command = ["ip", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not check:
            return ""
        raise NetnsError(f"`{' '.join(command)}` failed: {exc}") from exc
    if check and done.returncode != 0:
        raise NetnsError(f"`{' '.join(command)}` failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


class NetnsError(RuntimeError):
    """A network namespace, its veth pair or a relay could not be set up."""


class NetnsLink:
    """A network namespace joined to the host's by a veth pair (a /30 of 10.213.0.0/16: the
    host side host_ip, inside ns_ip). cut() sets the host side down: from then on what the
    worker sends is dropped without an answer or an error (no RST, no ICMP, no failed ARP), as
    on a cut cable further away or a NAT that forgot the flow; restore() sets it up again."""

    def __init__(self, tag: str, prefix: str = "ryax-netns") -> None:
        self.name = f"{prefix}-{tag}"
        # Interface names: at most 15 characters, unique per prefix and tag.
        short = "rx" + prefix.rsplit("-", 1)[-1][:1]
        self.host_if = f"{short}{tag[:8]}h"
        self.ns_if = f"{short}{tag[:8]}n"
        self.host_ip = ""
        self.ns_ip = ""

    def exists(self) -> bool:
        return Path(f"/run/netns/{self.name}").exists()

    def pids(self) -> list[int]:
        if not self.exists():
            return []
        out = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=30
        ).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def _free_subnet(self) -> int:
        used = _ip("-o", "-4", "addr", "show") + _ip("-4", "route", "show", "table", "all")
        for third in range(64, 256):
            if f"10.213.{third}." not in used:
                return third
        raise NetnsError("no free /30 in 10.213.64.0/18 for the veth pair")

    def create(self) -> None:
        self.destroy()
        third = self._free_subnet()
        self.host_ip, self.ns_ip = f"10.213.{third}.1", f"10.213.{third}.2"
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            inside = ("netns", "exec", self.name, "ip")
            _ip(*inside, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            _ip(*inside, "link", "set", self.ns_if, "up")
            _ip(*inside, "link", "set", "lo", "up")
            # The host side's address is known statically inside: with the link down, no failed
            # ARP lookup turns into 'No route to host' for the worker; its packets just vanish.
            mac = Path(f"/sys/class/net/{self.host_if}/address").read_text().strip()
            _ip(
                *inside,
                "neigh",
                "replace",
                self.host_ip,
                "lladdr",
                mac,
                "dev",
                self.ns_if,
                "nud",
                "permanent",
            )
        except NetnsError:
            self.destroy()
            raise

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def destroy(self) -> None:
        """Everything still in the namespace is killed, then the pair and the namespace go
        (idempotent: also what an earlier run killed before its clean-up left)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("link", "del", self.host_if, check=False)
        if self.exists():
            _ip("netns", "del", self.name, check=False)


class Relays:
    """TCP relays in a thread of their own, (listen host, port) -> (target host, port): e.g. the
    host namespace's end of a veth pair reaches the platform's loopback ports, and the host's
    loopback reaches a worker's health port in its namespace. A relay passes bytes as they
    come, so gRPC keepalives and HTTP/2 frames go end to end; a cut link stalls it silently."""

    CONNECT_TIMEOUT = 5.0

    def __init__(self, routes: list[tuple[str, int, str, int]]) -> None:
        self.routes = routes
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: Any = None

    def start(self) -> None:
        import asyncio

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                self._error = exc
                self._ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="relays", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise NetnsError(f"relays {self.routes}: {self._error or 'did not start'}")

    async def _serve(self) -> None:
        import asyncio

        self._stop = asyncio.Event()
        writers: set[Any] = set()

        async def pipe(reader: Any, writer: Any) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        def handler(target: tuple[str, int]) -> Callable[[Any, Any], Any]:
            async def relay(reader: Any, writer: Any) -> None:
                writers.add(writer)
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(*target), self.CONNECT_TIMEOUT
                    )
                except (OSError, TimeoutError):
                    writer.close()
                    writers.discard(writer)
                    return
                writers.add(up_writer)
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
                writers.difference_update((writer, up_writer))

            return relay

        servers = [
            await asyncio.start_server(handler((to_host, to_port)), host, port, reuse_address=True)
            for host, port, to_host, to_port in self.routes
        ]
        self._ready.set()
        await self._stop.wait()
        for server in servers:
            server.close()
        for writer in list(writers):
            writer.transport.abort()
        for server in servers:
            await server.wait_closed()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None


def relays_in_namespace(
    namespace: str, routes: list[tuple[str, int, str, int]], log: Path
) -> subprocess.Popen[bytes]:
    """Relays run inside `namespace` (a process of their own there, until it is terminated):
    e.g. its own 127.0.0.1:PORT to the host side of its veth pair, for a program inside that
    must dial an address it was given as the host sees it (a presigned URL's host). Returns once
    they listen."""
    code = (
        "import importlib.util, signal, sys, threading\n"
        f"spec = importlib.util.spec_from_file_location('ryax_devlib', {str(Path(__file__))!r})\n"
        "lib = importlib.util.module_from_spec(spec)\n"
        "sys.modules['ryax_devlib'] = lib\n"
        "spec.loader.exec_module(lib)\n"
        f"relays = lib.Relays({routes!r})\n"
        "relays.start()\n"
        "print('listening', flush=True)\n"
        "stop = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *_: stop.set())\n"
        "stop.wait()\n"
        "relays.stop()\n"
    )
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", code],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while b"listening" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise NetnsError(f"relays in {namespace} did not start: {log.read_text()[-500:]}")
        time.sleep(0.05)
    return process
