"""How an action process's executions travel: on the wrapper's session socket when it has one,
else on one Session call kept open, else (a wrapper older than Session) on a Run call each; a
fake stub (and a fake end of the socket) stands for the wrapper."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from ryax_kit.framing import HEADER as FRAME_HEADER
from ryax_worker.domain.model import DeploymentId, StepId, StepRef
from ryax_worker.infrastructure.local.process import (
    SESSION_SOCKET_NAME,
    ActionProcess,
    ProcessOptions,
    SessionBroken,
)
from ryax_worker.infrastructure.local.sandbox import Limits
from ryax_worker.infrastructure.proto import action_service_pb2 as apb


def log(line: str) -> apb.RunReply:
    return apb.RunReply(log=apb.Log(seq=1, line=line))


def done(value: str) -> apb.RunReply:
    return apb.RunReply(
        result=apb.Result(status=apb.RUN_STATUS_COMPLETED, error=value, log_line_count=1)
    )


def unimplemented() -> aio.AioRpcError:
    return aio.AioRpcError(
        grpc.StatusCode.UNIMPLEMENTED, aio.Metadata(), aio.Metadata(), "Method not found!"
    )


class FakeSession:
    """A Session call: answers each request with a log line and a result, or raises."""

    def __init__(self, fail: aio.AioRpcError | None = None) -> None:
        self.fail = fail
        self.written: list[str] = []
        self.pending: list[apb.RunReply] = []
        self.cancelled = False

    async def write(self, request: apb.RunRequest) -> None:
        self.written.append(request.execution_id)
        self.pending += [log(f"ran {request.execution_id}"), done(request.execution_id)]

    async def read(self) -> Any:
        if self.fail is not None:
            raise self.fail
        return self.pending.pop(0) if self.pending else aio.EOF

    def cancel(self) -> bool:
        self.cancelled = True
        return True


class FakeStub:
    def __init__(self, *, session: bool = True) -> None:
        self.with_session = session
        self.sessions: list[FakeSession] = []
        self.runs: list[str] = []

    def Session(self) -> FakeSession:  # noqa: N802 - the gRPC method name
        made = FakeSession(None if self.with_session else unimplemented())
        self.sessions.append(made)
        return made

    def Run(self, request: apb.RunRequest) -> Any:  # noqa: N802 - the gRPC method name
        self.runs.append(request.execution_id)

        class Call:
            def __aiter__(self) -> AsyncIterator[apb.RunReply]:
                return self.replies()

            async def replies(self) -> AsyncIterator[apb.RunReply]:
                yield log(f"ran {request.execution_id} on Run")
                yield done(request.execution_id)

            def cancel(self) -> bool:
                return False  # the call had ended

        return Call()


def process(tmp_path: Path, stub: FakeStub) -> ActionProcess:
    made = ActionProcess(
        ref=StepRef(DeploymentId("d1"), StepId("s1")),
        artefact_dir=tmp_path / "artefact",
        instance_dir=tmp_path / "instance",
        executions_dir=tmp_path / "executions",
        options=ProcessOptions(),
        limits=Limits(),
        on_line=lambda stream, line: None,
    )
    made.stub = stub  # type: ignore[assignment]
    return made


async def lines(made: ActionProcess, execution: str, *, session: bool = True) -> list[str]:
    request = apb.RunRequest(execution_id=execution)
    found = []
    async for reply in made.replies(request, session=session):
        found.append(reply.log.line if reply.WhichOneof("reply") == "log" else "result")
    return found


async def test_executions_share_one_session_call(tmp_path: Path) -> None:
    stub = FakeStub()
    made = process(tmp_path, stub)
    assert await lines(made, "e1") == ["ran e1", "result"]
    assert await lines(made, "e2") == ["ran e2", "result"]
    assert len(stub.sessions) == 1 and stub.sessions[0].written == ["e1", "e2"]
    assert stub.runs == [] and not stub.sessions[0].cancelled
    assert await lines(made, "trigger", session=False) == ["ran trigger on Run", "result"]


async def test_a_wrapper_without_session_gets_run_calls(tmp_path: Path) -> None:
    stub = FakeStub(session=False)
    made = process(tmp_path, stub)
    assert await lines(made, "e1") == ["ran e1 on Run", "result"]
    assert await lines(made, "e2") == ["ran e2 on Run", "result"]
    assert len(stub.sessions) == 1  # asked once, then never again
    assert stub.runs == ["e1", "e2"]


async def test_an_execution_stopped_before_its_result_closes_the_session(tmp_path: Path) -> None:
    stub = FakeStub()
    made = process(tmp_path, stub)
    replies = made.replies(apb.RunRequest(execution_id="e1"), session=True)
    first = await anext(replies)
    assert first.log.line == "ran e1"
    await replies.aclose()  # cancelled, timed out
    assert stub.sessions[0].cancelled
    assert await lines(made, "e2") == ["ran e2", "result"]
    assert len(stub.sessions) == 2  # a new call for the next execution


async def test_a_broken_session_raises_and_the_next_execution_opens_another(
    tmp_path: Path,
) -> None:
    stub = FakeStub()
    made = process(tmp_path, stub)
    assert await lines(made, "e1") == ["ran e1", "result"]
    stub.sessions[0].fail = aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, aio.Metadata(), aio.Metadata(), "socket closed"
    )
    with pytest.raises(aio.AioRpcError):
        await lines(made, "e2")
    assert stub.sessions[0].cancelled
    assert await lines(made, "e3") == ["ran e3", "result"]
    assert stub.runs == []


class SocketWrapper:
    """The wrapper's end of a session socket: answers each RunRequest with a log line and a
    result (`cut` closes the connection after the log line of that execution instead)."""

    def __init__(self, home: Path, cut: str = "") -> None:
        self.home = home
        self.cut = cut
        self.connections = 0
        self.received: list[str] = []
        self.closed = asyncio.Event()

    async def start(self) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self._serve, self.home / SESSION_SOCKET_NAME)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                (size,) = FRAME_HEADER.unpack(await reader.readexactly(FRAME_HEADER.size))
                request = apb.RunRequest.FromString(await reader.readexactly(size))
                self.received.append(request.execution_id)
                replies = [log(f"ran {request.execution_id} on the socket")]
                if request.execution_id != self.cut:
                    replies.append(done(request.execution_id))
                for reply in replies:
                    data = reply.SerializeToString()
                    writer.write(FRAME_HEADER.pack(len(data)) + data)
                await writer.drain()
                if request.execution_id == self.cut:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()
        self.closed.set()


def on_socket(tmp_path: Path, stub: FakeStub) -> ActionProcess:
    """A process whose wrapper said InitReply.session_socket, its home in tmp_path/home."""
    made = process(tmp_path, stub)
    (tmp_path / "home").mkdir()
    made._home_fd = os.open(tmp_path / "home", os.O_PATH | os.O_DIRECTORY)
    made._socket_supported = True
    return made


async def test_executions_travel_on_the_session_socket_one_connection(tmp_path: Path) -> None:
    stub = FakeStub()
    made = on_socket(tmp_path, stub)
    wrapper = SocketWrapper(tmp_path / "home")
    async with await wrapper.start():
        assert await lines(made, "e1") == ["ran e1 on the socket", "result"]
        assert await lines(made, "e2") == ["ran e2 on the socket", "result"]
        assert wrapper.connections == 1 and wrapper.received == ["e1", "e2"]
        assert stub.sessions == [] and stub.runs == []
        assert await lines(made, "trigger", session=False) == ["ran trigger on Run", "result"]
        # Stopped before its Result (cancelled, timed out): the connection is closed, which
        # stops the execution in the wrapper; the next execution connects again.
        replies = made.replies(apb.RunRequest(execution_id="e3"), session=True)
        assert (await anext(replies)).log.line == "ran e3 on the socket"
        await replies.aclose()
        await asyncio.wait_for(wrapper.closed.wait(), 5)
        assert await lines(made, "e4") == ["ran e4 on the socket", "result"]
        assert wrapper.connections == 2
        await made.stop()


async def test_a_session_socket_closed_before_the_result_raises_session_broken(
    tmp_path: Path,
) -> None:
    made = on_socket(tmp_path, FakeStub())
    wrapper = SocketWrapper(tmp_path / "home", cut="e2")
    async with await wrapper.start():
        assert await lines(made, "e1") == ["ran e1 on the socket", "result"]
        with pytest.raises(SessionBroken, match="closed its session socket"):
            await lines(made, "e2")
        assert await lines(made, "e3") == ["ran e3 on the socket", "result"]
        assert wrapper.connections == 2
        await made.stop()


async def test_an_unreachable_session_socket_falls_back_to_the_session_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stub = FakeStub()
    made = on_socket(tmp_path, stub)  # nothing listens on it
    assert await lines(made, "e1") == ["ran e1", "result"]
    assert await lines(made, "e2") == ["ran e2", "result"]
    assert len(stub.sessions) == 1 and stub.sessions[0].written == ["e1", "e2"]
    warned = [r for r in caplog.records if "session socket" in r.getMessage()]
    assert len(warned) == 1  # tried once, then the Session call only
