"""Sites over the real HTTP API and gRPC port, the port serving TLS (a throwaway CA made in the
test): an admin creates a site and gets its credential once; a worker registers over TLS with
it; none, a wrong or a revoked one is UNAUTHENTICATED (logged, counted, no site appears);
rotating cuts the connected worker off; a worker that does not trust the runner's CA refuses
it."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, free_port, start_runner

from ryax_kit.testing import ThrowawayPki, make_test_pki

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer token-admin"}
ALICE = {"Authorization": "Bearer token-alice"}


@pytest.fixture
def pki(tmp_path: Path) -> ThrowawayPki:
    return make_test_pki(tmp_path / "pki", ("localhost", "127.0.0.1"))


@pytest.fixture
async def tls_runner(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, pki: ThrowawayPki
) -> AsyncIterator[RunningRunner]:
    running = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "filestore",
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=2.0,
        grpc_tls_cert_file=pki.cert_file,
        grpc_tls_key_file=pki.key_file,
    )
    yield running
    await running.stop()


async def call(
    runner: RunningRunner, method: str, path: str, headers: dict[str, str], **kwargs: Any
) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{runner.url}/runner{path}", headers=headers, **kwargs) as r,
    ):
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body, r.headers


def tls_worker(runner: RunningRunner, pki: ThrowawayPki, credential: str, **kw: Any) -> FakeWorker:
    return FakeWorker(
        runner.grpc_address,
        credential=credential,
        root_certificates=pki.ca_file.read_bytes(),
        node_pools=[("big", 8.0, 32 * 2**30, 1)],
        **kw,
    )


async def refusal(worker: FakeWorker) -> grpc.StatusCode:
    with pytest.raises(aio.AioRpcError) as refused:
        await worker.start()
    await worker.stop()
    return refused.value.code()


async def failures(runner: RunningRunner) -> dict[str, float]:
    status, text, _ = await call(runner, "GET", "/metrics", {})
    assert status == 200
    found = {}
    for line in str(text).splitlines():
        if line.startswith("ryax_runner_worker_auth_failures_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
    return found


async def test_an_admin_creates_a_site_and_its_worker_registers_over_tls(
    tls_runner: RunningRunner, pki: ThrowawayPki
) -> None:
    r = tls_runner
    status, body, _ = await call(r, "POST", "/v1/sites", ALICE, json={"name": "s", "type": "local"})
    assert status == 403 and body["error"] == "forbidden"
    status, body, _ = await call(r, "POST", "/v1/sites", {}, json={"name": "s", "type": "local"})
    assert status == 401
    status, body, _ = await call(
        r, "POST", "/v1/sites", ADMIN, json={"name": "site-1", "type": "nope"}
    )
    assert status == 400 and "type: one of local, slurm, kubernetes" in body["detail"]

    status, body, headers = await call(
        r, "POST", "/v1/sites", ADMIN, json={"name": "site-1", "type": "local"}
    )
    assert status == 201 and headers["Cache-Control"] == "no-store"
    credential = body["credential"]
    site = body["site"]
    assert (site["name"], site["state"], site["credential"], site["connected"]) == (
        "site-1",
        "offline",
        "active",
        False,
    )
    assert site["created_by"] == "admin" and site["created_at"]
    status, body, _ = await call(
        r, "POST", "/v1/sites", ADMIN, json={"name": "site-1", "type": "local"}
    )
    assert status == 409

    worker = tls_worker(r, pki, credential)
    await worker.start()
    status, shown, _ = await call(r, "GET", "/v1/sites/site-1", ADMIN)
    assert status == 200 and credential not in str(shown)
    assert (shown["state"], shown["connected"], shown["worker_id"]) == ("online", True, "worker-1")
    assert shown["worker_address"].startswith("ipv4:127.0.0.1:") and shown["version"] == "fake"
    assert shown["node_pools"] == [
        {
            "name": "big",
            "cpu": 8.0,
            "memory_bytes": 32 * 2**30,
            "gpu": 1,
            "max_time_seconds": 0.0,
        }
    ]
    # Members of a project see the sites too (never a credential), not the admin routes.
    status, listed, _ = await call(r, "GET", "/v1/projects/alpha/sites", ALICE)
    assert status == 200 and [s["name"] for s in listed["sites"]] == ["site-1"]
    assert (await call(r, "GET", "/v1/sites", ALICE))[0] == 403
    await worker.stop()


async def test_no_wrong_or_revoked_credential_is_refused_logged_counted_and_changes_nothing(
    tls_runner: RunningRunner, pki: ThrowawayPki, caplog: pytest.LogCaptureFixture
) -> None:
    r = tls_runner
    credential = await r.credential("site-1")
    caplog.set_level(logging.WARNING, logger="ryax_runner.infrastructure.grpc.server")
    assert await refusal(tls_worker(r, pki, "")) == grpc.StatusCode.UNAUTHENTICATED
    assert await refusal(tls_worker(r, pki, "ryax_site_guess")) == grpc.StatusCode.UNAUTHENTICATED
    intruder = tls_worker(r, pki, "ryax_site_guess", site_name="elsewhere")
    assert await refusal(intruder) == grpc.StatusCode.UNAUTHENTICATED
    # Nothing appeared or changed: one site, never registered.
    status, body, _ = await call(r, "GET", "/v1/sites?archived=true", ADMIN)
    assert [(s["name"], s["worker_id"], s["state"]) for s in body["sites"]] == [
        ("site-1", "", "offline")
    ]
    status, body, _ = await call(r, "DELETE", "/v1/sites/site-1/credential", ADMIN)
    assert status == 200 and body["credential"] == "revoked"
    assert await refusal(tls_worker(r, pki, credential)) == grpc.StatusCode.UNAUTHENTICATED
    assert await failures(r) == {"missing": 1.0, "wrong": 1.0, "unknown_site": 1.0, "revoked": 1.0}
    refused = [
        rec for rec in caplog.records if rec.getMessage() == "worker refused: site credential"
    ]
    assert [(rec.site, rec.reason) for rec in refused] == [  # type: ignore[attr-defined]
        ("site-1", "missing"),
        ("site-1", "wrong"),
        ("elsewhere", "unknown_site"),
        ("site-1", "revoked"),
    ]
    assert all(rec.peer.startswith("ipv4:127.0.0.1:") for rec in refused)  # type: ignore[attr-defined]
    assert credential not in caplog.text and "ryax_site_guess" not in caplog.text


async def test_rotating_cuts_the_connected_worker_and_its_old_credential_is_refused(
    tls_runner: RunningRunner, pki: ThrowawayPki
) -> None:
    r = tls_runner
    old = await r.credential("site-1")
    worker = tls_worker(r, pki, old)
    await worker.start()
    status, body, headers = await call(r, "POST", "/v1/sites/site-1/credential", ADMIN)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    new = body["credential"]
    assert new != old and body["site"]["connected"] is False
    # The runner ended the stream.
    assert worker._task is not None
    await asyncio.wait_for(asyncio.shield(worker._task), 5)
    await worker.disconnect()
    assert await refusal(tls_worker(r, pki, old)) == grpc.StatusCode.UNAUTHENTICATED
    again = tls_worker(r, pki, new)
    await again.start()
    assert r.container.engine().find_site("site-1").state == "online"
    await again.stop()


async def test_a_second_worker_with_the_credential_is_refused_while_the_first_serves(
    tls_runner: RunningRunner, pki: ThrowawayPki
) -> None:
    r = tls_runner
    credential = await r.credential("site-1")
    first = tls_worker(r, pki, credential, worker_id="first")
    await first.start()
    second = tls_worker(r, pki, credential, worker_id="second")
    assert await refusal(second) == grpc.StatusCode.ALREADY_EXISTS
    assert r.container.engine().find_site("site-1").worker_id == "first"
    await first.stop()


async def test_a_worker_refuses_a_runner_its_ca_does_not_vouch_for(
    tls_runner: RunningRunner, pki: ThrowawayPki, tmp_path: Path
) -> None:
    r = tls_runner
    credential = await r.credential("site-1")
    other = make_test_pki(tmp_path / "other", ("localhost", "127.0.0.1"))
    stranger = FakeWorker(
        r.grpc_address, credential=credential, root_certificates=other.ca_file.read_bytes()
    )
    assert await refusal(stranger) == grpc.StatusCode.UNAVAILABLE
    # Plaintext against the TLS port does not get through either.
    assert await refusal(FakeWorker(r.grpc_address, credential=credential)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    # The runner saw no registration: the site never had a worker.
    assert r.container.engine().find_site("site-1").worker_id == ""


async def test_a_second_tls_port_serves_remote_sites_beside_the_plaintext_loopback_one(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, pki: ThrowawayPki
) -> None:
    tls_address = f"127.0.0.1:{free_port()}"
    r = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "filestore",
        authz_url,
        grpc_tls_cert_file=pki.cert_file,
        grpc_tls_key_file=pki.key_file,
        grpc_tls_address=tls_address,
    )
    try:
        credential = await r.credential("site-1")
        # The platform's own worker, on the loopback port: plaintext.
        local = FakeWorker(r.grpc_address, credential=credential, worker_id="local")
        await local.start()
        assert r.container.engine().find_site("site-1").worker_id == "local"
        await local.stop()
        # A remote site on the second port: TLS only, checked against the CA.
        remote_credential = await r.credential("site-2")
        plaintext = FakeWorker(tls_address, site_name="site-2", credential=remote_credential)
        assert await refusal(plaintext) == grpc.StatusCode.UNAVAILABLE
        assert r.container.grpc_server().tls_port == int(tls_address.rsplit(":", 1)[1])
        remote = FakeWorker(
            tls_address,
            site_name="site-2",
            credential=remote_credential,
            worker_id="remote",
            root_certificates=pki.ca_file.read_bytes(),
        )
        await remote.start()
        assert r.container.engine().find_site("site-2").worker_id == "remote"
        await remote.stop()
        # The loopback port does not speak TLS.
        tls_on_plain = FakeWorker(
            r.grpc_address, credential=credential, root_certificates=pki.ca_file.read_bytes()
        )
        assert await refusal(tls_on_plain) == grpc.StatusCode.UNAVAILABLE
    finally:
        await r.stop()


async def test_archiving_a_site_retires_it(tls_runner: RunningRunner, pki: ThrowawayPki) -> None:
    r = tls_runner
    credential = await r.credential("site-1")
    worker = tls_worker(r, pki, credential)
    await worker.start()
    status, body, _ = await call(r, "POST", "/v1/sites/site-1/archive", ADMIN)
    assert status == 200 and body["archived_at"] and body["state"] == "offline"
    assert body["credential"] == "revoked"
    await worker.disconnect()
    assert await refusal(tls_worker(r, pki, credential)) == grpc.StatusCode.UNAUTHENTICATED
    status, listed, _ = await call(r, "GET", "/v1/projects/alpha/sites", ALICE)
    assert listed["sites"] == []
    status, listed, _ = await call(r, "GET", "/v1/sites?archived=true", ADMIN)
    assert [s["name"] for s in listed["sites"]] == ["site-1"]
    status, _, _ = await call(r, "POST", "/v1/sites/site-1/credential", ADMIN)
    assert status == 409


# -- a real worker process (`python -m ryax_worker`) ----------------------------------------------


def start_worker_process(
    runner: RunningRunner, tmp_path: Path, ca_file: Path, credential: str, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """The worker service as its own process, dialling the runner over TLS."""
    port = runner.grpc_address.rsplit(":", 1)[1]
    log_file = tmp_path / f"{name}.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "RYAX_RUNNER_GRPC_ADDRESS": f"localhost:{port}",
        "RYAX_RUNNER_CA_FILE": str(ca_file),
        "RYAX_SITE_NAME": "site-1",
        "RYAX_WORKER_ID": name,
        "RYAX_SITE_CREDENTIAL": credential,
        "RYAX_HTTP_PORT": str(free_port()),
        "RYAX_WORKER_CACHE_DIR": str(tmp_path / f"{name}-cache"),
        "RYAX_FILESTORE_DIR": str(tmp_path / "filestore"),
        "RYAX_SANDBOX": "none",
        "RYAX_SANDBOX_ALLOW_NONE": "true",
        "RYAX_RECONNECT_MAX_SECONDS": "0.5",
        "RYAX_LOG_FORMAT": "json",
    }
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ryax_worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return process, log_file


async def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    for _ in range(100):
        if process.poll() is not None:
            return
        await asyncio.sleep(0.1)
    process.kill()


async def eventually(predicate: Any, seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.1)


async def test_a_real_worker_process_registers_over_tls_and_is_cut_off_by_a_rotation(
    tls_runner: RunningRunner, pki: ThrowawayPki, tmp_path: Path
) -> None:
    r = tls_runner
    engine = r.container.engine()
    credential = await r.credential("site-1")
    process, log_file = start_worker_process(r, tmp_path, pki.ca_file, credential, "real")
    try:
        site = engine.find_site("site-1")
        await eventually(lambda: site.worker_id == "real" and site.state == "online")
        assert engine.links[site.id].channel is not None
        assert site.node_pools and site.node_pools[0].name == "default"
        assert site.version and site.worker_address.startswith("ipv4:127.0.0.1:")
        # Rotated: the worker's stream is cut and its reconnections are refused.
        engine.rotate_site_credential("site-1", "tests")
        await eventually(lambda: "refused this worker's site credential" in log_file.read_text())
        assert engine.links[site.id].channel is None
    finally:
        await stop_process(process)
    assert credential not in log_file.read_text()


async def test_a_real_worker_process_refuses_a_runner_its_ca_does_not_vouch_for(
    tls_runner: RunningRunner, tmp_path: Path
) -> None:
    r = tls_runner
    credential = await r.credential("site-1")
    other = make_test_pki(tmp_path / "other", ("localhost", "127.0.0.1"))
    process, log_file = start_worker_process(r, tmp_path, other.ca_file, credential, "wary")
    try:
        await eventually(lambda: "TLS handshake with the runner failed" in log_file.read_text())
        assert r.container.engine().find_site("site-1").worker_id == ""
    finally:
        await stop_process(process)


# -- the built-in site of the configuration (make demo, the Helm chart) ----------------------------

BUILTIN = "ryax_site_" + "b" * 43


async def test_the_builtin_site_is_created_at_start_and_its_worker_connects(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path
) -> None:
    async def start() -> RunningRunner:
        return await start_runner(
            db_url,
            amqp_url,
            tmp_path / "filestore",
            authz_url,
            builtin_site_name="local",
            builtin_site_kind="local",
            builtin_site_credential=BUILTIN,
        )

    r = await start()
    try:
        status, shown, _ = await call(r, "GET", "/v1/sites/local", ADMIN)
        assert status == 200 and (shown["created_by"], shown["credential"]) == (
            "configuration",
            "active",
        )
        worker = FakeWorker(r.grpc_address, site_name="local", credential=BUILTIN)
        await worker.start()
        await worker.stop()
        # An admin rotates it: the configured credential no longer works...
        status, _, _ = await call(r, "POST", "/v1/sites/local/credential", ADMIN)
        assert status == 200
        stale = FakeWorker(r.grpc_address, site_name="local", credential=BUILTIN)
        assert await refusal(stale) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await r.stop()
    # ...until the runner starts again with its configuration (recorded, not just in memory).
    r = await start()
    try:
        worker = FakeWorker(r.grpc_address, site_name="local", credential=BUILTIN)
        await worker.start()
        assert r.container.engine().find_site("local").state == "online"
        await worker.stop()
        status, listed, _ = await call(r, "GET", "/v1/sites", ADMIN)
        assert [s["name"] for s in listed["sites"]] == ["local"]
    finally:
        await r.stop()
