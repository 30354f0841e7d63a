"""The runner's Unix socket for the worker on its machine (RYAX_RUNNER_WORKER_SOCKET): the
Connect stream without gRPC, as docs/runner-worker-protocol.md "The local socket" says. A worker
registers there with its site's credential and runs steps as on gRPC; a refusal is a Refused
message naming why; a connection that breaks the framing is closed without stopping the
others; a stopping runner ends the streams and removes the socket."""

from __future__ import annotations

import asyncio
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runner_testkit.fake_worker import FakeWorker, SocketRefused
from runner_testkit.harness import RunningRunner

from ryax_kit.framing import HEADER, frame, read_frame
from ryax_runner.infrastructure.grpc.server import WorkerSocketServer
from ryax_runner.infrastructure.proto import worker_service_pb2 as pb

from .test_flow import deployed, greet, post, simple_workflow, until

pytestmark = pytest.mark.integration


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Short, whatever pytest's tmp_path is: a Unix socket's path is at most 107 bytes.
    folder = Path(tempfile.mkdtemp(prefix="ryax-sock-", dir="/tmp"))
    yield folder / "runner-worker.sock"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def runner_settings(socket_path: Path) -> dict[str, Any]:
    return {"worker_socket": socket_path}


async def exchange(path: Path, *payloads: bytes) -> list[pb.RunnerMessage | None]:
    """Write frames (raw bytes for a payload that starts with b"RAW:") on a connection of its
    own and close its writing side, then read until the runner closes it: its messages, None
    for the close."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    for payload in payloads:
        writer.write(payload[4:] if payload.startswith(b"RAW:") else frame(payload))
    writer.write_eof()
    answers: list[pb.RunnerMessage | None] = []
    while True:
        data = await asyncio.wait_for(read_frame(reader, 1 << 20), 10)
        if data is None:
            answers.append(None)
            break
        answers.append(pb.RunnerMessage.FromString(data))
    writer.close()
    return answers


async def test_a_worker_on_the_socket_registers_and_runs_steps(
    runner: RunningRunner, amqp_url: str, socket_path: Path
) -> None:
    assert stat.S_IMODE((await asyncio.to_thread(socket_path.stat)).st_mode) == 0o600
    worker = FakeWorker(
        "", credential=await runner.credential(), handler=greet, socket_path=socket_path
    )
    await worker.start()
    try:
        await deployed(runner, amqp_url, simple_workflow())
        base = f"{runner.url}/runner/v1/projects/alpha/endpoints/hello"
        for name in ("ann", "bob", "cy"):
            assert await post(base, {"name": name}) == (200, {"greeting": f"hello {name}"})
        status, body = await post(base, {"name": "boom"})
        assert status == 418 and body["detail"] == "I am a teapot"
        sites = runner.container.engine().sites.values()
        assert [s.worker_address for s in sites if s.name == "site-1"] == [f"unix:{socket_path}"]
        # Acks came back on the socket: nothing is left unacknowledged.
        await until(lambda: not worker.unacked)
    finally:
        await worker.stop()


async def test_a_wrong_credential_is_refused_with_a_refused_message(
    runner: RunningRunner, socket_path: Path
) -> None:
    await runner.credential()
    worker = FakeWorker("", credential="not-it", socket_path=socket_path)
    with pytest.raises(SocketRefused) as refused:
        await worker.start()
    assert refused.value.code == "UNAUTHENTICATED"
    assert "not-it" not in refused.value.detail
    await worker.stop()
    without = FakeWorker("", socket_path=socket_path)
    with pytest.raises(SocketRefused, match="UNAUTHENTICATED"):
        await without.start()
    await without.stop()


async def test_bad_streams_are_closed_and_the_next_worker_is_served(
    runner: RunningRunner, socket_path: Path
) -> None:
    credential = await runner.credential()
    heartbeat = pb.WorkerMessage(heartbeat=pb.Heartbeat(seq=1)).SerializeToString()
    answers = await exchange(socket_path, heartbeat)
    assert answers[0] is not None and answers[0].refused.code == "INVALID_ARGUMENT"
    assert "Register" in answers[0].refused.detail and answers[-1] is None
    # Bytes that are not a WorkerMessage; a length over the limit; closed inside a length.
    assert await exchange(socket_path, b"\xff\xff\xff") == [None]
    assert await exchange(socket_path, b"RAW:" + HEADER.pack(1 << 30)) == [None]
    assert await exchange(socket_path, b"RAW:\x00\x00") == [None]
    worker = FakeWorker("", credential=credential, handler=greet, socket_path=socket_path)
    await worker.start()
    assert worker.registered.is_set()
    await worker.stop()


async def test_a_stopping_runner_ends_the_streams_and_removes_its_socket(
    runner: RunningRunner, socket_path: Path
) -> None:
    worker = FakeWorker("", credential=await runner.credential(), socket_path=socket_path)
    await worker.start()
    servicer = runner.container.grpc_server().servicer
    assert servicer.connected == 1
    await runner.stop()
    assert servicer.connected == 0
    assert not await asyncio.to_thread(socket_path.exists)
    await until(lambda: worker._task is not None and worker._task.done())
    await worker.stop()


async def test_a_path_that_is_not_a_socket_is_not_taken_over(
    runner: RunningRunner, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("someone's file")
    server = WorkerSocketServer(runner.container.grpc_server().servicer, taken)
    with pytest.raises(OSError, match=f"RYAX_RUNNER_WORKER_SOCKET={taken}: exists and is not"):
        await server.start()
    assert taken.read_text() == "someone's file"
