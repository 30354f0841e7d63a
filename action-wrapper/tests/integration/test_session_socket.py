"""Session on the wrapper's session socket (`PATH.session` next to the gRPC socket `PATH`),
against real wrapper processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ryax_action_wrapper.infrastructure.grpc.session_socket import HEADER, session_socket_path
from ryax_action_wrapper.infrastructure.proto import action_service_pb2 as pb
from ryax_action_wrapper.infrastructure.proto import action_service_pb2_grpc as pb_grpc

from .test_wrapper_grpc import Connect, action, io, logs, result

pytestmark = pytest.mark.integration
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]

DOUBLE = """
    def handle(request):
        print("doubling", request["n"])
        if request["n"] < 0:
            raise ValueError("negative")
        return {"n": request["n"] * 2}
"""


#: A handler sleeping `request["seconds"]`: sync (its connection served by a thread of its own)
#: or async (served on the event loop).
SLEEPERS = {
    "sync": """
        import time

        def handle(request):
            time.sleep(request["seconds"])
            return {}
    """,
    "async": """
        import asyncio

        async def handle(request):
            await asyncio.sleep(request["seconds"])
            return {}
    """,
}


async def processor(
    stub: pb_grpc.ActionServiceAsyncStub,
    tmp_path: Path,
    name: str,
    code: str,
    inputs: list[pb.IO],
    outputs: list[pb.IO] | None = None,
) -> pb.InitReply:
    """Init a processor named `name` from `code`; its reply (checked: no error)."""
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, name, code),
            kind="processor",
            inputs=inputs,
            outputs=outputs or [],
        )
    )
    assert init.error == "", init.traceback
    return init


async def sleeper(tmp_path: Path, stub: Connect, target: str, kind: str) -> None:
    init = await processor(
        stub(target), tmp_path, f"sleep-{kind}", SLEEPERS[kind], [io("seconds", "float")]
    )
    assert init.session_socket


def seconds(execution_id: str, value: float, work_dir: Path) -> pb.RunRequest:
    return pb.RunRequest(
        execution_id=execution_id,
        inputs={"seconds": pb.Value(float_value=value)},
        work_dir=str(work_dir),
    )


async def connect(target: str) -> Streams:
    path = session_socket_path(target)
    assert path is not None
    return await asyncio.open_unix_connection(path)


async def send(streams: Streams, request: pb.RunRequest) -> None:
    data = request.SerializeToString()
    streams[1].write(HEADER.pack(len(data)) + data)
    await streams[1].drain()


async def read_reply(streams: Streams) -> pb.RunReply:
    (size,) = HEADER.unpack(await streams[0].readexactly(HEADER.size))
    return pb.RunReply.FromString(await streams[0].readexactly(size))


async def execute(streams: Streams, request: pb.RunRequest) -> list[pb.RunReply]:
    await send(streams, request)
    replies = [await read_reply(streams)]
    while replies[-1].WhichOneof("reply") != "result":
        replies.append(await read_reply(streams))
    return replies


async def closed(streams: Streams) -> bool:
    """The wrapper closed the connection (nothing more comes)."""
    return await asyncio.wait_for(streams[0].read(), 5) == b""


async def test_executions_one_after_the_other_on_one_connection(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    stub = channel_to(target)
    assert await closed(await connect(target)), "refused before Init"
    init = await processor(
        stub, tmp_path, "double", DOUBLE, [io("n", "integer")], [io("n", "integer")]
    )
    assert init.session_socket
    streams = await connect(target)
    seen = []
    for n in (1, 2, -1, 3):
        replies = await execute(
            streams,
            pb.RunRequest(
                execution_id=f"ex-{n}",
                inputs={"n": pb.Value(int_value=n)},
                work_dir=str(tmp_path / f"w{n}"),
            ),
        )
        outcome = result(replies)
        seen.append(
            (
                [line.line for line in logs(replies)],
                outcome.status,
                outcome.error,
                dict(outcome.outputs),
            )
        )
    assert seen == [
        (["doubling 1"], pb.RUN_STATUS_COMPLETED, "", {"n": pb.Value(int_value=2)}),
        (["doubling 2"], pb.RUN_STATUS_COMPLETED, "", {"n": pb.Value(int_value=4)}),
        (["doubling -1"], pb.RUN_STATUS_FAILED, "ValueError: negative", {}),
        (["doubling 3"], pb.RUN_STATUS_COMPLETED, "", {"n": pb.Value(int_value=6)}),
    ]
    streams[1].close()


async def test_closing_the_connection_stops_the_execution_and_the_wrapper_goes_on(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    marker = tmp_path / "cancelled"
    code = f"""
        import asyncio

        async def handle(request):
            print("started", flush=True)
            try:
                await asyncio.sleep(request["seconds"])
            except asyncio.CancelledError:
                open({str(marker)!r}, "w").close()
                raise
            return {{}}
    """
    init = await processor(channel_to(target), tmp_path, "slow", code, [io("seconds", "float")])
    assert init.session_socket
    streams = await connect(target)
    await send(
        streams,
        pb.RunRequest(
            execution_id="slow",
            inputs={"seconds": pb.Value(float_value=60)},
            work_dir=str(tmp_path / "w"),
        ),
    )
    assert (await read_reply(streams)).log.line == "started"
    streams[1].close()
    deadline = time.monotonic() + 5
    while not marker.exists():
        assert time.monotonic() < deadline, "the execution was not cancelled"
        await asyncio.sleep(0.02)
    again = await connect(target)
    replies = await execute(
        again,
        pb.RunRequest(
            execution_id="quick",
            inputs={"seconds": pb.Value(float_value=0)},
            work_dir=str(tmp_path / "w2"),
        ),
    )
    assert result(replies).status == pb.RUN_STATUS_COMPLETED
    again[1].close()


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("garbage", "why"),
    [
        (HEADER.pack(0xFFFFFFFF), "over the size limit"),
        (HEADER.pack(1) + b"\xff", "not a RunRequest"),
    ],
)
async def test_garbage_closes_only_its_connection(
    tmp_path: Path,
    start_wrapper: Callable[[], str],
    channel_to: Connect,
    garbage: bytes,
    why: str,
    kind: str,
) -> None:
    target = start_wrapper()
    await sleeper(tmp_path, channel_to, target, kind)
    bad = await connect(target)
    bad[1].write(garbage)
    assert await closed(bad)
    good = await connect(target)
    replies = await execute(good, seconds("after", 0, tmp_path / "w"))
    assert result(replies).status == pb.RUN_STATUS_COMPLETED
    good[1].close()
    log = (tmp_path / "wrapper-0.log").read_text()
    assert why in log


async def test_a_trigger_has_no_session_socket(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    init = await channel_to(target).Init(
        pb.InitRequest(
            action_dir=action(
                tmp_path, "idle", "async def run(service, input_values):\n    pass\n", "ryax_run.py"
            ),
            kind="trigger",
        )
    )
    assert init.error == "" and not init.session_socket
    assert await closed(await connect(target))


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_sigterm_with_an_idle_connection_stops_at_once(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect, kind: str
) -> None:
    target = start_wrapper()
    await sleeper(tmp_path, channel_to, target, kind)
    streams = await connect(target)
    replies = await execute(streams, seconds("one", 0, tmp_path / "w"))
    assert result(replies).status == pb.RUN_STATUS_COMPLETED
    pid = int((tmp_path / "wrapper-0.pid").read_text())
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    assert await closed(streams)
    while _alive(pid):
        assert time.monotonic() - started < 3, "an idle connection held the stop back"
        await asyncio.sleep(0.02)
    path = session_socket_path(target)
    assert path is not None and not Path(path).exists()  # noqa: ASYNC240 - a test's check


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_tcp_address_has_no_session_socket(tmp_path: Path, channel_to: Connect) -> None:
    assert session_socket_path("127.0.0.1:5000") is None
    assert session_socket_path("unix:@abstract") is None
    assert session_socket_path("unix:action.sock") == "action.sock.session"
    assert session_socket_path("unix:///run/a.sock") == "/run/a.sock.session"
    port_file = tmp_path / "port"
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, waited for below
        [
            sys.executable,
            "-m",
            "ryax_action_wrapper",
            "--address",
            "127.0.0.1:0",
            "--port-file",
            str(port_file),
        ],
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert process.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.02)
        stub = channel_to(f"127.0.0.1:{port_file.read_text()}")
        init = await processor(
            stub, tmp_path, "double", DOUBLE, [io("n", "integer")], [io("n", "integer")]
        )
        assert not init.session_socket
    finally:
        process.terminate()
        assert process.wait(10) == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_sigterm_during_an_execution_lets_it_end(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect, kind: str
) -> None:
    """The grace period: an execution in progress ends and its Result is sent, then the
    wrapper exits (0)."""
    target = start_wrapper()
    await sleeper(tmp_path, channel_to, target, kind)
    streams = await connect(target)
    await send(streams, seconds("last", 1.0, tmp_path / "w"))
    await asyncio.sleep(0.3)  # started
    pid = int((tmp_path / "wrapper-0.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    reply = await asyncio.wait_for(read_reply(streams), 10)
    assert reply.result.status == pb.RUN_STATUS_COMPLETED
    assert await closed(streams)
    started = time.monotonic()
    while _alive(pid):  # its exit status is checked by the fixture
        assert time.monotonic() - started < 10
        await asyncio.sleep(0.02)


async def test_a_sync_handler_runs_in_the_connection_s_thread_with_its_logs_in_order(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    """Lines from print, logging, a thread of the handler and a child process, and progress:
    all numbered in order before the Result; a connection closed mid-execution leaves the
    wrapper usable (the handler ends, unheard)."""
    target = start_wrapper()
    code = """
        import logging
        import subprocess
        import threading
        import time

        import ryax

        def handle(request):
            print("main thread:", threading.current_thread().name)
            logging.getLogger("x").info("from logging")
            t = threading.Thread(target=print, args=("from a thread",))
            t.start()
            t.join()
            subprocess.run(["echo", "from a child"], check=True)
            ryax.progress(0.5, "half")
            for i in range(300):
                print("line", i)
            time.sleep(request["seconds"])
            return {"n": 3}
    """
    init = await processor(
        channel_to(target), tmp_path, "chatty", code, [io("seconds", "float")], [io("n", "integer")]
    )
    assert init.session_socket
    streams = await connect(target)
    replies = await execute(streams, seconds("chatty", 0, tmp_path / "w"))
    lines = logs(replies)
    assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
    texts = [line.line for line in lines]
    assert texts[0] == "main thread: ryax-session"
    assert {"from a thread", "from a child"} <= set(texts)
    assert any("from logging" in t for t in texts)
    # (The child's line comes through the captured pipe: not ordered against the prints.)
    assert [t for t in texts if t.startswith("line ")] == [f"line {i}" for i in range(300)]
    assert [r.progress.fraction for r in replies if r.WhichOneof("reply") == "progress"] == [0.5]
    outcome = result(replies)
    assert outcome.status == pb.RUN_STATUS_COMPLETED and outcome.log_line_count == len(lines)
    assert dict(outcome.outputs) == {"n": pb.Value(int_value=3)}
    # Closed during the next execution: it ends unheard; the next connection is served.
    await send(streams, seconds("cut", 0.5, tmp_path / "w2"))
    await read_reply(streams)
    streams[1].close()
    again = await connect(target)
    replies = await asyncio.wait_for(execute(again, seconds("after", 0, tmp_path / "w3")), 10)
    assert result(replies).status == pb.RUN_STATUS_COMPLETED
    again[1].close()
