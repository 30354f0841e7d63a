"""The worker dials the runner over TLS with its site's credential: it registers when the
runner's certificate chains to its CA (`RYAX_RUNNER_CA_FILE`), presenting `authorization:
Bearer <credential>`; it refuses a runner its CA does not vouch for (nothing is sent). The
runner is the fake one (a real grpc.aio server) serving a certificate of a throwaway CA."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from grpc import aio, ssl_server_credentials

from ryax_kit.testing import ThrowawayPki, make_test_pki
from ryax_worker.container import Container
from ryax_worker.infrastructure.proto import worker_service_pb2_grpc as wpb_grpc
from ryax_worker.settings import Settings

from .conftest import FakeRunner

CREDENTIAL = "ryax_site_" + "c" * 43


@pytest.fixture
def pki(tmp_path: Path) -> ThrowawayPki:
    return make_test_pki(tmp_path / "pki", ("runner.test", "127.0.0.1"))


@pytest.fixture
async def tls_runner(pki: ThrowawayPki) -> AsyncIterator[tuple[FakeRunner, str]]:
    runner = FakeRunner()
    server = aio.server()
    wpb_grpc.add_WorkerServiceServicer_to_server(runner, server)
    credentials = ssl_server_credentials([(pki.key_file.read_bytes(), pki.cert_file.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield runner, f"127.0.0.1:{port}"
    await server.stop(0.5)


async def connect(settings: Settings) -> Container:
    container = Container(settings=settings)
    container.connection().start()
    return container


async def test_the_worker_registers_over_tls_presenting_its_credential(
    tls_runner: tuple[FakeRunner, str],
    make_settings: Callable[[str], Settings],
    pki: ThrowawayPki,
) -> None:
    runner, address = tls_runner
    # The certificate names runner.test and 127.0.0.1: both ways of checking it work.
    for server_name in ("", "runner.test"):
        settings = replace(
            make_settings(address),
            runner_ca_file=pki.ca_file,
            runner_tls_server_name=server_name,
            site_credential=CREDENTIAL,
        )
        container = await connect(settings)
        connection = container.connection()
        try:
            await runner.until(lambda c=connection: c.connected, within=15)  # type: ignore[misc]
            assert runner.registers[-1].site_name == "site-a"
            assert runner.authorizations[-1] == f"Bearer {CREDENTIAL}"
        finally:
            await connection.close(flush_timeout=1)


async def test_the_worker_refuses_a_runner_its_ca_does_not_vouch_for(
    tls_runner: tuple[FakeRunner, str],
    make_settings: Callable[[str], Settings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner, address = tls_runner
    stranger = make_test_pki(tmp_path / "stranger", ("runner.test", "127.0.0.1"))
    settings = replace(
        make_settings(address), runner_ca_file=stranger.ca_file, site_credential=CREDENTIAL
    )
    container = await connect(settings)
    connection = container.connection()
    try:
        await asyncio.sleep(2.0)
        assert not connection.connected
        assert runner.registers == [] and runner.authorizations == []
        assert "TLS handshake with the runner failed" in caplog.text
        assert CREDENTIAL not in caplog.text
    finally:
        await connection.close(flush_timeout=1)


async def test_a_certificate_for_another_name_is_refused(
    tls_runner: tuple[FakeRunner, str],
    make_settings: Callable[[str], Settings],
    pki: ThrowawayPki,
) -> None:
    runner, address = tls_runner
    settings = replace(
        make_settings(address),
        runner_ca_file=pki.ca_file,
        runner_tls_server_name="impostor.test",
        site_credential=CREDENTIAL,
    )
    container = await connect(settings)
    connection = container.connection()
    try:
        await asyncio.sleep(2.0)
        assert not connection.connected and runner.authorizations == []
    finally:
        await connection.close(flush_timeout=1)
