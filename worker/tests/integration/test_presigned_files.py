"""A site without the filestore's keys: files through presigned URLs the real runner signs.

The runner runs in-process (real HTTP, gRPC, PostgreSQL, RabbitMQ; runner/tests/runner_testkit)
on the real S3 server (SeaweedFS); the worker is a real `python -m ryax_worker` with no filestore
setting at all (RYAX_WORKER_FILES=presigned by default), the real action wrapper in its
sandbox. A file sent to an HTTP endpoint reaches the action and its output file reaches the
filestore, every byte through URLs the runner signed for that execution; a trigger on the site
puts its run's file under its own prefix; a file between two steps of the site is read from its
disk; a key outside the site's executions is refused (PERMISSION_DENIED, counted), a wrong
credential is UNAUTHENTICATED; an expired URL is asked for again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio

from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import Env
from ryax_worker.infrastructure.grpc.presign_client import RunnerPresigner
from ryax_worker.infrastructure.presigned import (
    GET,
    PUT,
    PresignDenied,
    PresignedTransfers,
    PresignedUrl,
)
from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb
from ryax_worker.infrastructure.proto import worker_service_pb2_grpc as wpb_grpc

from .conftest import REPO, build_artefact, sandbox_read_only_paths

sys.path.insert(0, str(REPO / "runner" / "tests"))
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import (
    Member,
    RunningRunner,
    deploy_request,
    fake_authz_app,
    free_port,
    publish,
    serve,
    start_runner,
    step,
)
from runner_testkit.harness import (
    io as io_field,
)

pytestmark = pytest.mark.integration
SITE = "remote-1"
ALICE = {"Authorization": "Bearer token-alice"}
HANDLER = {
    "ryax_handler.py": """
        def handle(request):
            with open(request["doc"]) as source:
                text = source.read()
            with open("upper.txt", "w") as target:
                target.write(text.upper())
            return {"result": "upper.txt"}
    """,
}


async def until(predicate: Callable[[], Any], seconds: float = 60.0) -> Any:
    async with asyncio.timeout(seconds):
        while True:
            if value := predicate():
                return value
            await asyncio.sleep(0.05)


@pytest.fixture
async def authz_url() -> AsyncIterator[str]:
    app_runner, url = await serve(
        fake_authz_app({"token-alice": Member("u-alice", "alice", {"proj-a": "alpha"})})
    )
    yield url
    await app_runner.cleanup()


def runner_filestore(s3_env: dict[str, str]) -> FilestoreSettings:
    return FilestoreSettings.read(Env(s3_env), default_dir=Path("/nonexistent"))


@pytest.fixture
async def runner(
    fresh_database: str, fresh_vhost: str, authz_url: str, s3_env: dict[str, str]
) -> AsyncIterator[RunningRunner]:
    running = await start_runner(
        fresh_database,
        fresh_vhost,
        runner_filestore(s3_env),
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
    )
    await running.container.filestore().ensure_ready()
    yield running
    await running.stop()


def upload(s3_server: Any, bucket: str, key: str, data: bytes) -> None:
    s3_server.client().put_object(bucket, key, io.BytesIO(data), len(data))


def in_filestore(s3_server: Any, bucket: str, key: str) -> bool:
    try:
        read(s3_server, bucket, key)
    except Exception:  # noqa: BLE001 - NoSuchKey
        return False
    return True


def read(s3_server: Any, bucket: str, key: str) -> bytes:
    response = s3_server.client().get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def counter(runner: RunningRunner, name: str, **labels: str) -> float:
    value = runner.container.metrics().registry.get_sample_value(name, labels)
    return float(value or 0.0)


def upper_step(
    step_id: str, parent: str, output: str, artefact_key: str, sha256: str, site: str = SITE
) -> Any:
    upper = step(
        step_id,
        parents=(parent,),
        inputs={"doc": ("ref", parent, output)},
        input_types={"doc": "file"},
        outputs=("result",),
        site_name=site,
    )
    upper.artefact_key, upper.artefact_sha256 = artefact_key, sha256
    upper.outputs[0].type = "file"
    return upper


def upper_workflow(artefact_key: str, sha256: str, *, twice: bool = False) -> Any:
    """An HTTP endpoint taking a file `doc`; step `upper` (on SITE) returns it upper-cased;
    `twice`: then step `again` (on SITE too) takes upper's file and does the same."""
    trigger = step("trigger", kind="trigger", outputs=("doc",))
    trigger.outputs[0].type = "file"
    steps = [trigger, upper_step("upper", "trigger", "doc", artefact_key, sha256)]
    if twice:
        steps.append(upper_step("again", "upper", "result", artefact_key, sha256))
    return deploy_request(
        steps,
        workflow_name="upper",
        fields=[io_field("doc", "file")],
        results=[("result", steps[-1].step_id, "result")],
    )


async def deployed(runner: RunningRunner, amqp_url: str, request: Any) -> None:
    await publish(amqp_url, request)
    engine = runner.container.engine()
    try:
        await until(
            lambda: (
                request.deployment_id in engine.deployments
                and engine.deployments[request.deployment_id].state == "deployed"
            ),
            seconds=90,
        )
    except TimeoutError:
        d = engine.deployments.get(request.deployment_id)
        raise AssertionError(f"not deployed: {d and (d.state, d.reason, d.steps)}") from None


async def run_endpoint(runner: RunningRunner, content: bytes) -> dict[str, Any]:
    """POST a file to the endpoint `upper`; the run's document once it ended."""
    base = f"{runner.url}/runner/v1/projects/alpha/endpoints/upper"
    form = aiohttp.FormData()
    form.add_field("doc", content, filename="in.txt")
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + "?mode=async", data=form, headers=ALICE) as answer,
    ):
        assert answer.status == 202, await answer.text()
        run_id = (await answer.json())["run_id"]
    run_url = f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}"
    doc: dict[str, Any] = {}
    async with asyncio.timeout(90), aiohttp.ClientSession() as session:
        while doc.get("state") not in ("completed", "failed", "cancelled"):
            await asyncio.sleep(0.1)
            async with session.get(run_url, headers=ALICE) as answer:
                doc = await answer.json()
    return doc


class RemoteWorker:
    """`python -m ryax_worker` for SITE (or `site`), its environment holding no filestore
    setting at all (no RYAX_S3_*, no RYAX_FILESTORE_DIR): files through presigned URLs, by
    default. Its cache is `folder`/cache: a worker started again on the same folder finds what
    the previous process left there (its log is appended to)."""

    def __init__(
        self,
        folder: Path,
        runner: RunningRunner,
        credential: str,
        wrapper_deps: Path,
        extra_env: dict[str, str] | None = None,
        *,
        site: str = SITE,
        worker_id: str = "w-remote",
    ):
        self.artefact = build_artefact(HANDLER, deps=wrapper_deps)
        self.sha256 = hashlib.sha256(self.artefact).hexdigest()
        self.artefact_key = f"artefacts/{self.sha256}.tar.gz"
        self.credential = credential
        self.data_home = folder / "data"  # where a default filestore directory would go
        self.port = free_port()
        self.log = folder / "worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= {
            "RYAX_RUNNER_GRPC_ADDRESS": runner.grpc_address,
            "RYAX_SITE_NAME": site,
            "RYAX_WORKER_ID": worker_id,
            "RYAX_SITE_CREDENTIAL": credential,
            "RYAX_HTTP_PORT": str(self.port),
            "RYAX_WORKER_CACHE_DIR": str(folder / "cache"),
            "RYAX_NODE_POOLS": "small:2:4G",
            "RYAX_SANDBOX_READ_ONLY_PATHS": ",".join(
                str(p) for p in sandbox_read_only_paths(wrapper_deps)
            ),
            "RYAX_RECONNECT_MAX_SECONDS": "1",
            "RYAX_LOG_FORMAT": "json",
            "XDG_DATA_HOME": str(self.data_home),
            **(extra_env or {}),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ryax_worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}{path}") as answer,
        ):
            return answer.status, await answer.text()

    async def metric(self, line_start: str) -> float:
        _, page = await self.get("/metrics")
        found = [line for line in page.splitlines() if line.startswith(line_start + " ")]
        return float(found[0].split()[-1]) if found else 0.0

    async def ready(self, seconds: float = 60) -> None:
        """Wait until its /readyz answers 200 with the filestore reachable (it may not die)."""
        async with asyncio.timeout(seconds):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    status, body = await self.get("/readyz")
                    if status == 200:
                        break
                assert self.process.poll() is None, self.log.read_text()
                await asyncio.sleep(0.2)
        assert json.loads(body)["checks"]["filestore"] is True

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def site_files() -> str:
    """RYAX_SITE_FILES of `remote_worker` ("": the default, `hold` in presigned mode)."""
    return ""


@pytest.fixture
async def remote_worker(
    runner: RunningRunner,
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
    site_files: str,
) -> AsyncIterator[RemoteWorker]:
    remote = RemoteWorker(
        tmp_path,
        runner,
        await runner.credential(SITE),
        wrapper_deps,
        extra_env={"RYAX_SITE_FILES": site_files} if site_files else None,
    )
    upload(s3_server, fresh_bucket, remote.artefact_key, remote.artefact)
    try:
        await remote.ready()
        yield remote
    finally:
        await asyncio.to_thread(remote.stop)
    assert "presigned URLs from the runner" in remote.log.read_text()
    assert "X-Amz-Signature" not in remote.log.read_text()  # never a URL in the log


async def test_a_worker_without_filestore_settings_moves_files_through_presigned_urls(
    runner: RunningRunner,
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    remote_worker: RemoteWorker,
) -> None:
    await deployed(
        runner, fresh_vhost, upper_workflow(remote_worker.artefact_key, remote_worker.sha256)
    )
    doc = await run_endpoint(runner, b"presigned hello\n")
    [upper] = [s for s in doc["steps"] if s["step_id"] == "upper"]
    assert doc["state"] == "completed", upper["error"]
    output = upper["outputs"]["result"]
    assert output["key"] == f"runs/{doc['id']}/{upper['execution_id']}/result/upper.txt"
    assert read(s3_server, fresh_bucket, output["key"]) == b"PRESIGNED HELLO\n"
    assert output["sha256"] == hashlib.sha256(b"PRESIGNED HELLO\n").hexdigest()
    assert upper["site_name"] == SITE

    # Every byte went through URLs the runner signed for this site; no filestore there.
    bytes_moved = 'ryax_worker_file_bytes_total{direction="%s",mode="%s"}'
    artefact = remote_worker.artefact
    assert await remote_worker.metric(bytes_moved % ("download", "presigned")) == len(
        artefact
    ) + len(b"presigned hello\n")
    assert await remote_worker.metric(bytes_moved % ("upload", "presigned")) == 16
    assert await remote_worker.metric(bytes_moved % ("download", "direct")) == 0
    assert not remote_worker.data_home.exists()
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="get") == 2
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="put") == 1

    # The execution ended: its input is not this site's to read any more.
    presigner = RunnerPresigner(
        address=runner.grpc_address, site_name=SITE, credential=remote_worker.credential
    )
    try:
        with pytest.raises(PresignDenied, match="PERMISSION_DENIED"):
            await presigner.presign(GET, upper["inputs"]["doc"]["key"])
    finally:
        await presigner.close()


@pytest.mark.parametrize("site_files", ["copy"])  # every output uploaded (hold: test_held_files)
async def test_a_file_between_two_steps_of_the_site_is_not_downloaded_again(
    runner: RunningRunner,
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    remote_worker: RemoteWorker,
) -> None:
    request = upper_workflow(remote_worker.artefact_key, remote_worker.sha256, twice=True)
    await deployed(runner, fresh_vhost, request)
    doc = await run_endpoint(runner, b"twice\n")
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert doc["state"] == "completed", [s["error"] for s in steps.values()]
    again = steps["again"]
    assert again["inputs"]["doc"]["key"] == steps["upper"]["outputs"]["result"]["key"]
    assert read(s3_server, fresh_bucket, again["outputs"]["result"]["key"]) == b"TWICE\n"
    # GET: the artefact (once: both steps run it) and the endpoint's file; upper's output was
    # read by `again` from the site's disk. PUT: both outputs (the filestore keeps them).
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="get") == 2
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="put") == 2
    bytes_moved = 'ryax_worker_file_bytes_total{direction="download",mode="%s"}'
    assert await remote_worker.metric(bytes_moved % "site-local") == len(b"TWICE\n")
    assert await remote_worker.metric(bytes_moved % "presigned") == len(
        remote_worker.artefact
    ) + len(b"twice\n")


TRIGGER = {
    "ryax_run.py": """
        import asyncio

        async def run(service, input_values):
            with open("event.txt", "w") as f:
                f.write(input_values["text"])
            await service.create_run({"doc": "event.txt"})
            await asyncio.sleep(3600)
    """,
}


async def test_a_trigger_on_the_site_puts_its_files_under_its_own_prefix(
    runner: RunningRunner,
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    remote_worker: RemoteWorker,
    wrapper_deps: Path,
) -> None:
    source = build_artefact(TRIGGER, kind="trigger", deps=wrapper_deps)
    source_sha = hashlib.sha256(source).hexdigest()
    upload(s3_server, fresh_bucket, f"artefacts/{source_sha}.tar.gz", source)
    trigger = step("source", kind="trigger", inputs={"text": "from a trigger\n"}, outputs=("doc",))
    trigger.outputs[0].type = "file"
    trigger.artefact_key, trigger.artefact_sha256 = f"artefacts/{source_sha}.tar.gz", source_sha
    trigger.settings.site_name = SITE
    upper = upper_step("upper", "source", "doc", remote_worker.artefact_key, remote_worker.sha256)
    request = deploy_request([trigger, upper], workflow_name="fed", http_endpoint=False)
    await deployed(runner, fresh_vhost, request)

    runs_url = f"{runner.url}/runner/v1/projects/alpha/runs"
    doc: dict[str, Any] = {}
    async with asyncio.timeout(90), aiohttp.ClientSession() as session:
        while doc.get("state") != "completed":
            await asyncio.sleep(0.1)
            async with session.get(runs_url, headers=ALICE) as answer:
                runs = (await answer.json())["runs"]
            if runs:
                async with session.get(f"{runs_url}/{runs[0]['id']}", headers=ALICE) as answer:
                    doc = await answer.json()
                assert doc["state"] != "failed", doc
    steps = {s["step_id"]: s for s in doc["steps"]}
    given = steps["upper"]["inputs"]["doc"]
    assert given["key"].startswith(f"triggers/{request.deployment_id}/source/")
    assert read(s3_server, fresh_bucket, given["key"]) == b"from a trigger\n"
    output = steps["upper"]["outputs"]["result"]
    assert read(s3_server, fresh_bucket, output["key"]) == b"FROM A TRIGGER\n"
    # PUT: the trigger's file and upper's output; GET: the two artefacts (upper read the
    # trigger's file from the site's disk).
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="put") == 2
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="get") == 2


async def test_keys_outside_the_sites_executions_and_bad_credentials_are_refused(
    runner: RunningRunner,
) -> None:
    credential = await runner.credential(SITE)
    presigner = RunnerPresigner(address=runner.grpc_address, site_name=SITE, credential=credential)
    try:
        for method, key in (
            (GET, "artefacts/someone-elses.tar.gz"),
            (GET, "runs/r1/e1/out/result.txt"),
            (PUT, "runs/r1/e1/out/result.txt"),
            (PUT, "artefacts/forged.tar.gz"),
        ):
            with pytest.raises(PresignDenied) as denied:
                await presigner.presign(method, key)
            assert "PERMISSION_DENIED" in str(denied.value) and key in str(denied.value)
        assert counter(runner, "ryax_runner_presign_denied_total", site=SITE) == 4

        wrong = RunnerPresigner(address=runner.grpc_address, site_name=SITE, credential="w" * 43)
        with pytest.raises(PresignDenied) as denied:
            await wrong.presign(GET, "artefacts/a.tar.gz")
        assert "UNAUTHENTICATED" in str(denied.value)
        await wrong.close()
        assert counter(runner, "ryax_runner_worker_auth_failures_total", reason="wrong") == 1

        async with aio.insecure_channel(runner.grpc_address) as channel:
            stub = wpb_grpc.WorkerServiceStub(channel)
            metadata = (("authorization", f"Bearer {credential}"),)
            for request in (
                wpb.PresignRequest(site_name=SITE),  # nothing asked
                wpb.PresignRequest(
                    site_name=SITE,
                    transfers=[wpb.TransferRequest(method=wpb.TRANSFER_METHOD_GET, key="../x")],
                ),
                wpb.PresignRequest(site_name=SITE, transfers=[wpb.TransferRequest(key="a/b")]),
            ):
                with pytest.raises(aio.AioRpcError) as error:
                    await stub.PresignTransfers(request, metadata=metadata)
                assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await presigner.close()


class ExpiredFirst:
    """The real runner's URLs, the first one handed over only once it has expired (as when a
    transfer waits in a queue past its URL's lifetime)."""

    def __init__(self, source: RunnerPresigner, wait_seconds: float) -> None:
        self._source, self._wait, self.asked = source, wait_seconds, 0

    async def presign(self, method: str, key: str) -> PresignedUrl:
        url = await self._source.presign(method, key)
        self.asked += 1
        if self.asked == 1:
            await asyncio.sleep(self._wait)
        return url


async def test_an_expired_url_is_asked_for_again(
    fresh_database: str,
    fresh_vhost: str,
    authz_url: str,
    s3_env: dict[str, str],
    s3_server: Any,
    fresh_bucket: str,
    tmp_path: Path,
) -> None:
    running = await start_runner(
        fresh_database,
        fresh_vhost,
        runner_filestore(s3_env),
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
        presign_ttl_seconds=1,
    )
    credential = await running.credential(SITE)
    site_worker = FakeWorker(running.grpc_address, site_name=SITE, credential=credential)
    await site_worker.start()
    presigner = RunnerPresigner(address=running.grpc_address, site_name=SITE, credential=credential)
    transfers = PresignedTransfers(ExpiredFirst(presigner, 2.2), backoff_seconds=0.05)
    try:
        await site_worker.registered.wait()
        request = upper_workflow("artefacts/slow.tar.gz", "0" * 64)
        await deployed(running, fresh_vhost, request)
        upload(s3_server, fresh_bucket, "artefacts/slow.tar.gz", b"the artefact")

        await transfers.download("artefacts/slow.tar.gz", tmp_path / "artefact")
        assert (tmp_path / "artefact").read_bytes() == b"the artefact"
        assert (transfers.stats.urls_requested, transfers.stats.urls_renewed) == (2, 1)
        assert counter(running, "ryax_runner_presigned_urls_total", site=SITE, method="get") == 2
    finally:
        await transfers.close()
        await presigner.close()
        await site_worker.stop()
        await running.stop()
