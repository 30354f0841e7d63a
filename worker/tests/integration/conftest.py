"""Real pieces for the worker's integration tests: hand-built action artefacts (the builder's
layout, the real action-wrapper), a fake runner that is a real grpc.aio WorkerService server,
the real S3 server (root conftest), and a worker wired by its own container."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

import ryax_worker
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.framing import FrameError, frame, read_frame
from ryax_kit.settings import Env
from ryax_worker.container import Container
from ryax_worker.domain.model import RestartPolicy
from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb
from ryax_worker.infrastructure.proto import worker_service_pb2_grpc as wpb_grpc
from ryax_worker.settings import Settings, parse_node_pools

REPO = Path(ryax_worker.__file__).resolve().parents[2]
WRAPPER_PACKAGE = REPO / "action-wrapper" / "ryax_action_wrapper"


# --------------------------------------------------------------------------- artefacts


#: What the wrapper needs at run time (RUNTIME_REQUIREMENTS), as the builder's layer holds them.
WRAPPER_DEPS = ("grpc", "grpc_health", "google")


@pytest.fixture(scope="session")
def wrapper_deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wrapper's runtime dependencies copied once out of this venv, into a folder outside
    the repository: sandboxed actions see it (read-only), never the checkout."""
    target = tmp_path_factory.mktemp("wrapper-deps")
    target.chmod(0o755)  # pytest makes it 0700: the sandbox's user must read it
    site_packages = Path(site.getsitepackages()[0])
    for name in WRAPPER_DEPS:
        shutil.copytree(
            site_packages / name, target / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for dist in site_packages.glob("*.dist-info"):
        if dist.name.lower().startswith(("grpcio", "protobuf")):
            shutil.copytree(dist, target / dist.name)
    return target


def sandbox_read_only_paths(wrapper_deps: Path) -> tuple[Path, ...]:
    """What the test actions read besides the system: the interpreter's installation (this
    machine's Python may live outside /usr) and the wrapper's dependencies."""
    return (Path(sys.base_prefix), wrapper_deps)


def build_artefact(
    files: dict[str, str],
    *,
    kind: str = "processor",
    action_id: str = "test-action",
    deps: Path | None = None,
    deps_files: dict[str, str] | None = None,
) -> bytes:
    """A built action as the builder makes it: manifest.json, code/, deps/, wrapper/, run.sh.

    deps/ stays empty: run.sh puts `deps` (the wrapper's grpcio and protobuf, copied out of this
    venv) on PYTHONPATH after it, as the builder's `pip install --target deps` would provide them.
    """
    if not WRAPPER_PACKAGE.is_dir():
        pytest.skip(f"{WRAPPER_PACKAGE} is missing")
    interpreter = getattr(sys, "_base_executable", sys.executable)
    site_packages = str(deps) if deps else ":".join(site.getsitepackages())
    run_sh = textwrap.dedent(
        f"""\
        #!/bin/sh
        HERE="$(cd "$(dirname "$0")" && pwd)"
        export PYTHONPATH="$HERE/wrapper:$HERE/deps:$HERE/code:{site_packages}"
        exec {interpreter} -m ryax_action_wrapper "$@"
        """
    )
    manifest = {
        "action_id": action_id,
        "action_version": "1.0",
        "kind": kind,
        "python": "3.11",
        "wrapper_version": "test",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:

        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))

        add("manifest.json", json.dumps(manifest).encode())
        add("run.sh", run_sh.encode(), 0o755)
        for name, text in files.items():
            add(f"code/{name}", textwrap.dedent(text).encode())
        dirs = tarfile.TarInfo("deps")
        dirs.type = tarfile.DIRTYPE
        archive.addfile(dirs)
        for name, text in (deps_files or {}).items():  # the action's own dependencies
            add(f"deps/{name}", textwrap.dedent(text).encode())
        for path in sorted(WRAPPER_PACKAGE.rglob("*")):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            relative = path.relative_to(WRAPPER_PACKAGE.parent).as_posix()
            add(f"wrapper/{relative}", path.read_bytes())
    return buffer.getvalue()


@dataclass
class Artefact:
    key: str
    sha256: str


# --------------------------------------------------------------------------- fake runner


@dataclass
class Session:
    register: wpb.Register
    outbox: asyncio.Queue[wpb.RunnerMessage | None] = field(default_factory=asyncio.Queue)


class FakeRunner(wpb_grpc.WorkerServiceServicer):
    """Stands in for the runner: applies each report once (report_seq), acknowledges, sends
    orders with increasing order_seq and re-sends the unacknowledged ones after a reconnect."""

    def __init__(self) -> None:
        self.received: list[wpb.WorkerMessage] = []
        self.applied: list[wpb.WorkerMessage] = []
        self.last_applied = 0
        self.registers: list[wpb.Register] = []
        self.session: Session | None = None
        self.acking = True
        self.orders: list[wpb.RunnerMessage] = []
        self.acked_order = 0
        self.heartbeat_seconds = 0.3
        self.changed = asyncio.Event()
        #: The `authorization` metadata of each Connect (the site's credential).
        self.authorizations: list[str] = []
        #: Set: a Connect without this credential is refused (UNAUTHENTICATED).
        self.credential = ""

    async def Connect(  # type: ignore[override]  # noqa: N802 - read/write API, no iterator
        self, request_iterator: Any, context: Any
    ) -> None:
        first = await context.read()
        metadata = dict(context.invocation_metadata() or ())
        self.authorizations.append(str(metadata.get("authorization", "")))
        if first is aio.EOF or first.WhichOneof("message") != "register":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Register first")
        if self.credential and metadata.get("authorization") != f"Bearer {self.credential}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "not this site's credential")
        register = first.register
        self.registers.append(register)
        session = Session(register)
        self.session = session
        await context.write(
            wpb.RunnerMessage(
                registered=wpb.Registered(
                    worker_id=register.worker_id,
                    site_id="site-1",
                    last_report_seq=self.last_applied,
                    heartbeat_interval_seconds=self.heartbeat_seconds,
                )
            )
        )
        for order in self.orders:
            if order.order_seq > max(register.last_seen_order_seq, self.acked_order):
                session.outbox.put_nowait(order)
        reader = asyncio.create_task(self._read(context, session))
        try:
            while True:
                message = await session.outbox.get()
                if message is None:
                    return
                await context.write(message)
        finally:
            reader.cancel()
            if self.session is session:
                self.session = None

    async def _read(self, context: Any, session: Session) -> None:
        while True:
            message = await context.read()
            if message is aio.EOF:
                session.outbox.put_nowait(None)
                return
            self.received.append(message)
            if message.report_seq > self.last_applied:
                self.last_applied = message.report_seq
                self.applied.append(message)
                if message.WhichOneof("message") == "ack":
                    self.acked_order = max(self.acked_order, message.ack.order_seq)
            if self.acking:
                session.outbox.put_nowait(
                    wpb.RunnerMessage(report_ack=wpb.ReportAck(report_seq=self.last_applied))
                )
            self.changed.set()

    # -- test helpers ------------------------------------------------------------------------

    def send(self, **order: Any) -> int:
        seq = len(self.orders) + 1
        message = wpb.RunnerMessage(order_seq=seq, **order)
        self.orders.append(message)
        if self.session is not None:
            self.session.outbox.put_nowait(message)
        return seq

    def break_stream(self) -> None:
        """End the current stream from the runner's side (the worker must reconnect)."""
        if self.session is not None:
            self.session.outbox.put_nowait(None)

    def applied_of(self, kind: str) -> list[Any]:
        return [getattr(m, kind) for m in self.applied if m.WhichOneof("message") == kind]

    def states(self, step_id: str = "s1") -> list[tuple[int, str]]:
        return [
            (s.state, s.reason) for s in self.applied_of("deployment_state") if s.step_id == step_id
        ]

    def result(self, execution_id: str) -> Any:
        found = [r for r in self.applied_of("execution_result") if r.execution_id == execution_id]
        return found[0] if found else None

    def logs(self, execution_id: str) -> list[Any]:
        return [
            line for line in self.applied_of("execution_log") if line.execution_id == execution_id
        ]

    async def until(self, predicate: Callable[[], Any], within: float = 30.0) -> Any:
        async with asyncio.timeout(within):
            while True:
                value = predicate()
                if value:
                    return value
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.05)


class SocketContext:
    """What FakeRunner.Connect uses of a grpc.aio servicer context, on a Unix socket framed as
    the runner's local socket is (docs/runner-worker-protocol.md "The local socket"): the
    credential of Register stands for the `authorization` metadata, abort() sends Refused."""

    class Aborted(Exception):
        pass

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.first: Any = None
        self.credential = ""

    async def start(self) -> None:
        self.first = await self._next()
        if self.first is not aio.EOF:
            self.credential = self.first.register.credential

    def invocation_metadata(self) -> list[tuple[str, str]]:
        credential = self.credential
        return [("authorization", f"Bearer {credential}")] if credential else []

    async def read(self) -> Any:
        if self.first is not None:
            message, self.first = self.first, None
            return message
        return await self._next()

    async def _next(self) -> Any:
        payload = await read_frame(self.reader, 64 * 1024 * 1024)
        return aio.EOF if payload is None else wpb.WorkerMessage.FromString(payload)

    async def write(self, message: wpb.RunnerMessage) -> None:
        self.writer.write(frame(message.SerializeToString()))

    async def abort(self, code: grpc.StatusCode, detail: str) -> None:
        refused = wpb.RunnerMessage(refused=wpb.Refused(code=code.name, detail=detail))
        self.writer.write(frame(refused.SerializeToString()))
        raise SocketContext.Aborted(detail)


@pytest.fixture
async def socket_runner() -> AsyncIterator[tuple[FakeRunner, Path]]:
    """The fake runner on a Unix socket of its own (a short path: at most 107 bytes)."""
    runner = FakeRunner()
    folder = Path(tempfile.mkdtemp(prefix="ryax-sock-", dir="/tmp"))
    path = folder / "runner-worker.sock"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        context = SocketContext(reader, writer)
        try:
            await context.start()
            await runner.Connect(None, context)
        except (SocketContext.Aborted, OSError, FrameError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, path=str(path))
    try:
        yield runner, path
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def fake_runner() -> AsyncIterator[tuple[FakeRunner, str]]:
    runner = FakeRunner()
    server = aio.server()
    wpb_grpc.add_WorkerServiceServicer_to_server(runner, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield runner, f"127.0.0.1:{port}"
    await server.stop(0.5)


# --------------------------------------------------------------------------- worker


@dataclass
class WorkerUnderTest:
    container: Container
    runner: FakeRunner
    store: Any  # minio client on the test bucket
    bucket: str
    cache_dir: Path
    deps: Path | None = None

    def upload(self, key: str, data: bytes) -> None:
        self.store.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def read(self, key: str) -> bytes:
        response = self.store.get_object(self.bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def artefact(
        self,
        files: dict[str, str],
        kind: str = "processor",
        deps_files: dict[str, str] | None = None,
    ) -> Artefact:
        data = build_artefact(files, kind=kind, deps=self.deps, deps_files=deps_files)
        sha = hashlib.sha256(data).hexdigest()
        key = f"artefacts/{sha}.tar.gz"
        self.upload(key, data)
        return Artefact(key=key, sha256=sha)

    def deploy(
        self,
        artefact: Artefact,
        *,
        step_id: str = "s1",
        kind: str = "processor",
        inputs: list[wpb.IO] | None = None,
        outputs: list[wpb.IO] | None = None,
        trigger_inputs: dict[str, wpb.Value] | None = None,
        resources: wpb.Resources | None = None,
    ) -> int:
        return self.runner.send(
            deploy=wpb.Deploy(
                deployment_id="d1",
                step_id=step_id,
                action_id="test-action",
                action_version="1.0",
                action_kind=kind,
                artefact_key=artefact.key,
                artefact_sha256=artefact.sha256,
                is_trigger=kind == "trigger",
                trigger_inputs=trigger_inputs or {},
                inputs=inputs or [],
                outputs=outputs or [],
                resources=resources,
            )
        )

    def execute(
        self,
        execution_id: str,
        inputs: dict[str, wpb.Value] | None = None,
        *,
        step_id: str = "s1",
        timeout: float = 0.0,
    ) -> int:
        return self.runner.send(
            execute=wpb.Execute(
                execution_id=execution_id,
                run_id="r1",
                deployment_id="d1",
                step_id=step_id,
                inputs=inputs or {},
                timeout_seconds=timeout,
            )
        )

    async def ready(self, step_id: str = "s1") -> None:
        await self.runner.until(
            lambda: any(
                s == wpb.DEPLOYMENT_STATE_KIND_READY for s, _ in self.runner.states(step_id)
            ),
            within=60,
        )


@pytest.fixture
def make_settings(
    tmp_path: Path, s3_env: dict[str, str], wrapper_deps: Path
) -> Callable[[str], Settings]:
    def make(runner_address: str) -> Settings:
        return Settings(
            runner_address=runner_address,
            site_name="site-a",
            worker_id="worker-a",
            site_labels={"zone": "test"},
            node_pools=parse_node_pools("small:2:4G"),
            cache_dir=tmp_path / "cache",
            filestore=FilestoreSettings.read(Env(s3_env), default_dir=tmp_path / "unused"),
            heartbeat_seconds=0.3,
            action_start_timeout_seconds=60,
            action_stop_grace_seconds=3,
            sandbox="bwrap",
            sandbox_read_only_paths=sandbox_read_only_paths(wrapper_deps),
        )

    return make


@contextlib.asynccontextmanager
async def running_worker(
    runner: FakeRunner, settings: Settings, s3_server: Any, bucket: str, deps: Path
) -> AsyncIterator[WorkerUnderTest]:
    """A worker wired by its container on `settings`, connected to `runner`."""
    container = Container(settings=settings)
    backend = container.backend()
    # Quick restarts in tests; two consecutive deaths and the step is FAILED.
    backend._policy = RestartPolicy(
        initial_delay_seconds=0.2, max_delay_seconds=1, max_consecutive_failures=2
    )
    backend._options = replace(backend._options, health_interval_seconds=1.0)
    await container.filestore().ensure_ready()
    await backend.start()
    connection = container.connection()
    connection.start()
    under_test = WorkerUnderTest(
        container=container,
        runner=runner,
        store=s3_server.client(),
        bucket=bucket,
        cache_dir=settings.cache_dir,
        deps=deps,
    )
    await runner.until(lambda: connection.connected, within=15)
    try:
        yield under_test
    finally:
        await container.worker().shutdown(grace_seconds=5)
        await connection.close(flush_timeout=2)
        shutil.rmtree(settings.cache_dir, ignore_errors=True)


@pytest.fixture
async def worker(
    fake_runner: tuple[FakeRunner, str],
    make_settings: Callable[[str], Settings],
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
) -> AsyncIterator[WorkerUnderTest]:
    runner, address = fake_runner
    async with running_worker(
        runner, make_settings(address), s3_server, fresh_bucket, wrapper_deps
    ) as under_test:
        yield under_test


# --------------------------------------------------------------------------- slurm


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[Path]:
    """The checkout's private single-node Slurm (dev/ensure-slurm.sh, run by `make test`;
    started here too if it does not answer), as SLURM_CONF for the whole session."""
    devlib: Any = sys.modules["ryax_devlib"]  # loaded by the root conftest.py
    conf = devlib.setting("RYAX_TEST_SLURM_CONF")
    env = {**os.environ, "SLURM_CONF": conf}
    answers = bool(conf) and shutil.which("scontrol") is not None
    if answers:
        ping = subprocess.run(
            ["scontrol", "ping"], env=env, capture_output=True, text=True, timeout=30
        )
        answers = "is UP" in ping.stdout
    if not answers:
        script = REPO / "dev" / "ensure-slurm.sh"
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=1200)
        conf = str(REPO / ".dev" / "slurm" / "etc" / "slurm.conf")
        if done.returncode != 0:
            message = f"slurm: dev/ensure-slurm.sh failed: {done.stderr.strip()[-500:]}"
            if devlib.in_ci():
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield Path(conf)
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous


@pytest.fixture
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """RYAX_SLURM_SHARED_DIR of a test: on this machine, the compute node's too."""
    path = tmp_path_factory.mktemp("slurm-shared")
    yield path
    shutil.rmtree(path, ignore_errors=True)
