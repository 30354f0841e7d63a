"""How an action process's executions travel: on one Session call kept open, else (a wrapper
older than Session) on a Run call each; a fake stub stands for the wrapper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from ryax_worker.domain.model import DeploymentId, StepId, StepRef
from ryax_worker.infrastructure.local.process import ActionProcess, ProcessOptions
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
