"""The worker on the runner's machine reaches it on its Unix socket (RYAX_RUNNER_WORKER_SOCKET)
rather than gRPC: the same stream, framed (docs/runner-worker-protocol.md "The local socket").
Here against the fake runner served on a socket: the credential travels in Register, steps run,
a broken stream is resumed without duplicates, and a refusal names what to fix."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb
from ryax_worker.settings import Settings

from .conftest import FakeRunner, running_worker
from .test_worker import deploy_handler, ints

pytestmark = pytest.mark.integration


async def test_a_worker_on_the_socket_runs_steps_and_resumes_after_a_break(
    socket_runner: tuple[FakeRunner, Path],
    make_settings: Callable[[str], Settings],
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
) -> None:
    runner, path = socket_runner
    runner.credential = "site-secret"
    # The gRPC address leads nowhere: only the socket can register this worker.
    settings = replace(
        make_settings("127.0.0.1:9"), runner_socket=path, site_credential="site-secret"
    )
    async with running_worker(runner, settings, s3_server, fresh_bucket, wrapper_deps) as worker:
        assert runner.authorizations == ["Bearer site-secret"]
        await deploy_handler(worker, "s1")
        worker.execute("e1", ints(lines=2), step_id="s1")
        first = await runner.until(lambda: runner.result("e1"))
        assert first.status == wpb.EXECUTION_STATUS_COMPLETED
        assert [line.seq for line in runner.logs("e1")] == [1, 2]

        runner.acking = False
        worker.execute("e2", ints(lines=1), step_id="s1")
        await runner.until(lambda: runner.result("e2"))
        runner.break_stream()
        await runner.until(lambda: len(runner.registers) == 2, within=15)
        runner.acking = True
        assert "e2" in runner.registers[1].running_execution_ids  # not acknowledged yet
        worker.execute("e3", ints(lines=1), step_id="s1")
        assert (await runner.until(lambda: runner.result("e3"))).status == (
            wpb.EXECUTION_STATUS_COMPLETED
        )
        seqs = [m.report_seq for m in runner.applied]
        assert seqs == sorted(set(seqs))  # re-sent reports applied once
        assert len(runner.applied_of("execution_result")) == 3


async def test_a_refused_credential_on_the_socket_says_what_to_fix(
    socket_runner: tuple[FakeRunner, Path],
    make_settings: Callable[[str], Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from ryax_worker.container import Container

    runner, path = socket_runner
    runner.credential = "site-secret"
    settings = replace(
        make_settings("127.0.0.1:9"), runner_socket=path, site_credential="stale-credential-1f3a"
    )
    connection = Container(settings=settings).connection()
    with caplog.at_level(logging.ERROR):
        connection.start()
        await runner.until(lambda: runner.authorizations, within=15)
        await runner.until(
            lambda: any("RYAX_SITE_CREDENTIAL" in r.getMessage() for r in caplog.records),
            within=5,
        )
    assert not connection.connected
    assert all("stale-credential-1f3a" not in r.getMessage() for r in caplog.records)
    await connection.close(flush_timeout=0.1)
