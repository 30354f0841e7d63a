"""The builder against the real RabbitMQ, S3 server and pip (PyPI): build, run the artefact,
cache, pip failure, redelivery after a crash, and the service as a process."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from aiohttp.test_utils import TestServer

from ryax_action_builder.app import QUEUE, create_app, make_consumer
from ryax_action_builder.application.build_log import BuildLog
from ryax_action_builder.container import Container
from ryax_action_builder.domain.errors import BuildRefused
from ryax_action_builder.domain.model import (
    ActionKind,
    BuildId,
    BuildOrder,
    BuildPlan,
    PythonPackage,
    outcome_event_id,
    plan_build,
)
from ryax_action_builder.infrastructure.proto import builder_events_pb2 as pb
from ryax_action_builder.settings import Settings
from ryax_kit.filestore import S3Filestore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
Sender = Callable[..., Any]
Answers = Any  # conftest.Answers


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "RYAX_AMQP_URL": settings.amqp_url,
        "RYAX_HTTP_PORT": str(settings.http_port),
        "RYAX_S3_ENDPOINT": settings.filestore.s3_endpoint or "",
        "RYAX_S3_ACCESS_KEY": settings.filestore.s3_access_key,
        "RYAX_S3_SECRET_KEY": settings.filestore.s3_secret_key,
        "RYAX_S3_BUCKET": settings.filestore.s3_bucket,
        "RYAX_S3_REGION": settings.filestore.s3_region or "",
        "RYAX_BUILDER_CACHE_DIR": str(settings.cache_dir),
        "RYAX_BUILDER_WORK_DIR": str(settings.work_dir or ""),
        "RYAX_BUILDER_SHUTDOWN_GRACE_SECONDS": str(settings.shutdown_grace_seconds),
    }


def store_in(filestore: S3Filestore, tmp_path: Path) -> Callable[[str, bytes], Any]:
    async def store(key: str, data: bytes) -> None:
        await filestore.write_bytes(key, data, "application/gzip")

    return store


def decode(message: Any) -> pb.ActionBuilt | pb.ActionBuildFailed:
    if message.routing_key == "ActionBuilt":
        return pb.ActionBuilt.FromString(message.body)
    return pb.ActionBuildFailed.FromString(message.body)


async def run_artefact(
    artefact: Path,
    work: Path,
    inputs: dict[str, str] | None = None,
    outputs: tuple[str, ...] = ("slug",),
) -> tuple[Any, Any]:
    """Unpack the artefact as a worker would, start run.sh, Init and Run over gRPC (string
    inputs and outputs; by default the slugify action's)."""
    values = inputs if inputs is not None else {"text": "Hello, World!"}
    # The worker's side of the contract, from the wrapper's own generated code (another
    # package: imported by name so each service type-checks alone).
    wpb: Any = importlib.import_module(
        "ryax_action_wrapper.infrastructure.proto.action_service_pb2"
    )
    wpb_grpc: Any = importlib.import_module(
        "ryax_action_wrapper.infrastructure.proto.action_service_pb2_grpc"
    )

    unpacked = work / "unpacked"
    with tarfile.open(artefact) as tar:
        tar.extractall(unpacked, filter="data")
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert os.access(unpacked / "run.sh", os.X_OK)
    socket = work / "action.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # The artefact must not lean on the builder's virtualenv: a bare interpreter runs it.
    env["RYAX_PYTHON"] = sys.base_exec_prefix + "/bin/python3"
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, then awaited over gRPC
        [str(unpacked / "run.sh"), "--address", f"unix:{socket}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
            stub = wpb_grpc.ActionServiceStub(channel)
            init = await stub.Init(
                wpb.InitRequest(
                    action_dir=str(unpacked / "code"),
                    kind=manifest["kind"],
                    inputs=[wpb.IO(name=name, type="string") for name in values],
                    outputs=[wpb.IO(name=name, type="string") for name in outputs],
                )
            )
            assert init.error == "", init.traceback
            replies = [
                r
                async for r in stub.Run(
                    wpb.RunRequest(
                        execution_id="x",
                        inputs={k: wpb.Value(string_value=v) for k, v in values.items()},
                        work_dir=str(work / "exec"),
                    )
                )
            ]
        return manifest, replies
    finally:
        process.terminate()
        process.wait(10)


async def test_build_run_cache_and_failure(
    builder: Container,
    answers: Answers,
    order_sender: Sender,
    filestore: S3Filestore,
    tmp_path: Path,
    slugify_files: dict[str, str],
) -> None:
    store = store_in(filestore, tmp_path)

    # 1. A new action with one small PyPI dependency.
    started = time.monotonic()
    await order_sender(store, "build-1", slugify_files)
    await answers.wait_for(1)
    new_build_seconds = time.monotonic() - started
    built = decode(answers.messages[0])
    assert isinstance(built, pb.ActionBuilt), built
    assert answers.messages[0].message_id == outcome_event_id("build-1", "ActionBuilt")
    assert not built.cached
    assert built.artefact_key.startswith("artefacts/") and len(built.artefact_sha256) == 64
    assert "pip install --target deps -r requirements.txt" in built.build_log
    assert "python-slugify" in built.build_log
    print(
        f"\nnew build with one small dependency: {new_build_seconds:.2f}s "
        f"(builder-measured {built.duration_seconds:.2f}s)"
    )
    assert new_build_seconds <= 20

    # 2. The artefact runs: run.sh, Init, Run over gRPC.
    artefact = tmp_path / "artefact.tar.gz"
    await filestore.download(built.artefact_key, artefact)
    manifest, replies = await run_artefact(artefact, tmp_path)
    assert manifest["kind"] == "processor" and manifest["python"] == "3.11"
    result = replies[-1].result
    assert result.status == 1, result.error  # COMPLETED
    assert result.outputs["slug"].string_value == "hello-world"
    assert replies[0].log.line == "slugifying Hello, World!"

    # 3. Unchanged: answered from the cache.
    started = time.monotonic()
    await order_sender(store, "build-2", slugify_files)
    await answers.wait_for(2)
    cached_seconds = time.monotonic() - started
    cached = decode(answers.messages[1])
    assert isinstance(cached, pb.ActionBuilt)
    assert cached.cached
    assert (cached.artefact_key, cached.artefact_sha256) == (
        built.artefact_key,
        built.artefact_sha256,
    )
    print(
        f"unchanged rebuild (cache hit): {cached_seconds:.2f}s "
        f"(builder-measured {cached.duration_seconds:.2f}s)"
    )
    assert cached_seconds <= 1.0

    # 4. A requirement that does not exist: ActionBuildFailed with pip's error.
    bad = {**slugify_files, "requirements.txt": "ryax-no-such-package-for-tests==0.0.1\n"}
    await order_sender(store, "build-3", bad)
    await answers.wait_for(3)
    failed = decode(answers.messages[2])
    assert isinstance(failed, pb.ActionBuildFailed), failed
    assert failed.reason == (
        "requirements.txt: No matching distribution found for ryax-no-such-package-for-tests==0.0.1"
    )
    assert "ERROR: No matching distribution found" in failed.build_log
    assert answers.messages[2].message_id == outcome_event_id("build-3", "ActionBuildFailed")

    # 5. An unsafe archive is refused.
    unsafe = {**slugify_files, "../escape.py": "print('out')"}
    await order_sender(store, "build-4", unsafe)
    await answers.wait_for(4)
    refused = decode(answers.messages[3])
    assert isinstance(refused, pb.ActionBuildFailed)
    assert "escapes the archive root" in refused.reason

    # 6. The artefact deleted, its sidecar left: not a cache hit, really built and stored again.
    sidecar = built.artefact_key.removesuffix(".tar.gz") + ".json"
    await filestore.delete(built.artefact_key)
    assert await filestore.exists(sidecar)
    await order_sender(store, "build-5", slugify_files)
    await answers.wait_for(5)
    rebuilt = decode(answers.messages[4])
    assert isinstance(rebuilt, pb.ActionBuilt), rebuilt
    assert not rebuilt.cached and rebuilt.artefact_key == built.artefact_key
    assert "pip install --target deps -r requirements.txt" in rebuilt.build_log
    assert await filestore.exists(built.artefact_key)


async def test_answer_nobody_can_receive_yet_is_retried_not_lost(
    builder: Container,
    listen_later: Callable[[], Any],
    order_sender: Sender,
    filestore: S3Filestore,
    tmp_path: Path,
    slugify_files: dict[str, str],
) -> None:
    """No queue is bound to the builder's answers yet (the repository never started): the
    publish is refused as unroutable, the order stays unacknowledged and is tried again until
    the answer can be delivered."""
    registry = builder.metrics().registry

    def consumed(outcome: str) -> float:
        labels = {"queue": QUEUE, "outcome": outcome}
        return registry.get_sample_value("ryax_messages_consumed_total", labels) or 0.0

    await order_sender(store_in(filestore, tmp_path), "build-early", slugify_files)
    deadline = time.monotonic() + 120
    while consumed("retried") < 1:
        assert time.monotonic() < deadline, "the unroutable answer was never retried"
        await asyncio.sleep(0.1)
    assert consumed("handled") == 0 and consumed("dead_lettered") == 0

    answers = await listen_later()  # the repository starts: its queue is bound
    await answers.wait_for(1, seconds=60)
    answer = decode(answers.messages[0])
    assert isinstance(answer, pb.ActionBuilt), answer
    assert answers.messages[0].message_id == outcome_event_id("build-early", "ActionBuilt")
    assert answer.cached  # built on the first attempt; the retry found the artefact
    assert consumed("handled") == 1 and consumed("dead_lettered") == 0


class BlockingBuildTool:
    """Holds the build until the test 'crashes' the builder."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entered = asyncio.Event()

    @property
    def python_version(self) -> str:
        return str(self.real.python_version)

    @property
    def wrapper_version(self) -> str:
        return str(self.real.wrapper_version)

    async def build(
        self, plan: BuildPlan, source_dir: Path, work_dir: Path, log: BuildLog, built_at: datetime
    ) -> Path:
        self.entered.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_order_is_redelivered_after_a_crash_mid_build(
    settings: Settings,
    answers: Answers,
    order_sender: Sender,
    filestore: S3Filestore,
    tmp_path: Path,
    slugify_files: dict[str, str],
) -> None:
    # Builder A takes the order and dies mid-build (its connection drops, nothing acked).
    crashing = Container(settings=settings)
    real_tool = crashing.build_tool()
    await real_tool.start()
    blocking = BlockingBuildTool(real_tool)
    crashing.build_tool.override(blocking)
    await filestore.ensure_ready()
    await crashing.broker().connect()
    consumer_a = make_consumer(crashing)
    await consumer_a.start()
    files = {**slugify_files, "ryax_handler.py": slugify_files["ryax_handler.py"] + "\n# v2\n"}
    await order_sender(store_in(filestore, tmp_path), "build-crash", files)
    await asyncio.wait_for(blocking.entered.wait(), 60)
    await crashing.broker().close()  # the process is gone: the broker requeues the order
    await consumer_a.stop(grace_seconds=0)
    assert answers.messages == []

    # Builder B (a fresh process in real life) gets the order again and answers it.
    container = Container(settings=settings)
    server = TestServer(create_app(container), port=settings.http_port)
    await server.start_server()
    try:
        await answers.wait_for(1, seconds=180)
        answer = decode(answers.messages[0])
        assert isinstance(answer, pb.ActionBuilt), answer
        assert answers.messages[0].message_id == outcome_event_id("build-crash", "ActionBuilt")
        assert not answer.cached
        await asyncio.sleep(1)
        assert len(answers.messages) == 1
    finally:
        await server.close()


def test_service_process_builds_and_stops_on_sigterm(
    settings: Settings, filestore: S3Filestore, tmp_path: Path
) -> None:
    """`python -m ryax_action_builder`: ready, answers, metrics, then SIGTERM stops it."""

    async def scenario(process: subprocess.Popen[bytes]) -> None:
        base = f"http://127.0.0.1:{settings.http_port}"
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, "the builder exited"
                try:
                    async with http.get(base + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the builder never became ready"
                await asyncio.sleep(0.2)
            async with http.get(base + "/healthz") as resp:
                assert resp.status == 200
            async with http.get(base + "/metrics") as resp:
                assert "ryax_builds_total" in await resp.text()

    process = subprocess.Popen(
        [sys.executable, "-m", "ryax_action_builder"],
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        asyncio.run(scenario(process))
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- Nix-declared Python

COMPAT = Path(__file__).resolve().parents[3] / "examples" / "ryax-compat"


async def test_python_packages_declared_the_nix_way_are_built_and_run(
    builder: Container,
    answers: Answers,
    order_sender: Sender,
    filestore: S3Filestore,
    tmp_path: Path,
) -> None:
    """examples/ryax-compat/nix-python-deps: `pythonPackages.tabulate` and
    `python3Packages.dateutil` in spec.dependencies, `tabulate==0.9.0` in requirements.txt and a
    Nix package (`ffmpeg`): one pip run installs both files' packages, the handler imports them
    when the wrapper starts it. The order carries the packages as the repository maps them (it
    owns the table; the builder has none)."""
    folder = COMPAT / "nix-python-deps"
    if not folder.is_dir():
        pytest.skip("examples/ryax-compat is not present")
    files = {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}
    mapped = (
        PythonPackage("pythonPackages.tabulate", "tabulate"),
        PythonPackage("python3Packages.dateutil", "python-dateutil"),
    )
    await order_sender(store_in(filestore, tmp_path), "build-nix", files, python_packages=mapped)
    await answers.wait_for(1)
    built = decode(answers.messages[0])
    assert isinstance(built, pb.ActionBuilt), built
    log = built.build_log
    assert "spec.dependencies: pythonPackages.tabulate -> PyPI tabulate" in log
    assert "spec.dependencies: python3Packages.dateutil -> PyPI python-dateutil" in log
    assert "pip install --target deps -r requirements.txt tabulate python-dateutil" in log
    assert "WARNING: spec.dependencies: Nix package ffmpeg is not installed" in log

    artefact = tmp_path / "nix.tar.gz"
    await filestore.download(built.artefact_key, artefact)
    work = tmp_path / "run"
    manifest, replies = await run_artefact(
        artefact, work, {"dates": "2024-03-01; 1 April 2024"}, ("table",)
    )
    assert manifest["python_packages"] == [
        {"dependency": "pythonPackages.tabulate", "requirement": "tabulate"},
        {"dependency": "python3Packages.dateutil", "requirement": "python-dateutil"},
    ]
    result = replies[-1].result
    assert result.status == 1, result.error  # COMPLETED: dateutil and tabulate imported
    table = result.outputs["table"].string_value
    assert "2024-03-01" in table and "Friday" in table and "2024-04-01" in table
    deps = {entry.name for entry in (work / "unpacked" / "deps").iterdir()}
    assert "tabulate-0.9.0.dist-info" in deps  # the version requirements.txt pins
    assert any(name.startswith("python_dateutil-") for name in deps)


def wheel(directory: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A tiny pure-Python wheel, for pip to resolve without an index."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(directory / f"{dist}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


async def test_a_conflict_between_requirements_and_dependencies_fails_naming_both(
    settings: Settings, tmp_path: Path
) -> None:
    """requirements.txt pins ryaxtest-b 1.0; spec.dependencies declares pythonPackages.ryaxtest-a,
    whose only version needs ryaxtest-b 2.0. One pip run (offline: local wheels, found through
    options of requirements.txt: pip's sandbox sees the source, and its environment is the
    builder's own) cannot satisfy both, and the reason says which file asked for what."""
    tool = Container(settings=settings).build_tool()
    await tool.start()  # the wrapper layer, from the index
    source = tmp_path / "source"
    wheels = source / "wheels"
    wheels.mkdir(parents=True)
    wheel(wheels, "ryaxtest-a", "1.0", ("ryaxtest-b==2.0",))
    wheel(wheels, "ryaxtest-b", "1.0")
    wheel(wheels, "ryaxtest-b", "2.0")
    offline = f"--no-index\n--find-links {wheels}\n"
    (source / "ryax_handler.py").write_text("import ryaxtest_a\n\ndef handle(r):\n    return {}\n")

    def plan_for(requirements: str) -> BuildPlan:
        (source / "requirements.txt").write_text(offline + requirements)
        return plan_build(
            BuildOrder(
                event_id="e",
                build_id=BuildId("b-conflict"),
                project_id="p",
                action_id="a",
                action_version="1.0",
                kind=ActionKind.PROCESSOR,
                source_key="sources/x.tar.gz",
                source_sha256="",
                metadata_yaml="",
                python_packages=(PythonPackage("pythonPackages.ryaxtest-a", "ryaxtest-a"),),
            ),
            metadata={"spec": {"type": "python3", "dependencies": ["pythonPackages.ryaxtest-a"]}},
            source_files=frozenset({"ryax_handler.py", "requirements.txt"}),
            source_digest="ab" * 32,
            requirements=requirements,
            python_version=tool.python_version,
            wrapper_version=tool.wrapper_version,
        )

    log = BuildLog()
    with pytest.raises(BuildRefused) as refused:
        await tool.build(
            plan_for("ryaxtest-b==1.0\n"), source, tmp_path / "work-1", log, datetime.now(UTC)
        )
    assert refused.value.detail.startswith(
        "requirements.txt and spec.dependencies conflict: requirements.txt asks for "
        "ryaxtest-b==1.0; ryaxtest-a 1.0 from spec.dependencies (pythonPackages.ryaxtest-a) "
        "needs ryaxtest-b==2.0 (Cannot install"
    ), refused.value.detail
    assert "pip install --target deps -r requirements.txt ryaxtest-a" in log.text()

    # Without the pin, the same pip run installs both files' packages.
    built = await tool.build(
        plan_for("ryaxtest-b\n"), source, tmp_path / "work-2", BuildLog(), datetime.now(UTC)
    )
    with tarfile.open(built) as tar:
        names = set(tar.getnames())
    assert {"deps/ryaxtest_a/__init__.py", "deps/ryaxtest_b-2.0.dist-info/METADATA"} <= names
