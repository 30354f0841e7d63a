from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from ryax_action_wrapper.infrastructure.proto import action_service_pb2_grpc as pb_grpc

WrapperFactory = Callable[[], str]


@pytest.fixture
def start_wrapper(tmp_path: Path) -> Iterator[WrapperFactory]:
    """Start real wrapper processes (`python -m ryax_action_wrapper`) on unix sockets; each
    call returns a gRPC target. All are stopped (SIGTERM) after the test."""
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        socket = tmp_path / f"wrapper-{len(processes)}.sock"
        # Written once the server listens (the socket exists from its bind, a little before).
        ready = tmp_path / f"wrapper-{len(processes)}.port"
        log = open(tmp_path / f"wrapper-{len(processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ryax_action_wrapper",
                "--address",
                f"unix:{socket}",
                "--port-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        processes.append(process)
        (tmp_path / f"wrapper-{len(processes) - 1}.pid").write_text(str(process.pid))
        deadline = time.monotonic() + 15
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"wrapper did not start: {(tmp_path / log.name).read_text(errors='replace')}"
                )
            time.sleep(0.02)
        return f"unix:{socket}"

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            assert process.wait(10) == 0, "the wrapper must stop cleanly on SIGTERM"
        except subprocess.TimeoutExpired:
            process.kill()
            raise


@pytest.fixture
async def channel_to() -> AsyncIterator[Callable[[str], pb_grpc.ActionServiceAsyncStub]]:
    channels: list[grpc.aio.Channel] = []

    def connect(target: str) -> pb_grpc.ActionServiceAsyncStub:
        channel = grpc.aio.insecure_channel(target)
        channels.append(channel)
        return pb_grpc.ActionServiceStub(channel)

    yield connect
    for channel in channels:
        await channel.close()
