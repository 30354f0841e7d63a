"""The capture of a real wrapper process's output across many executions: each execution gets
exactly its own lines, whatever wrote them (print, logging, os.write on the descriptors, C
stdio, a subprocess), the last ones included; what is written between executions is not any
execution's, and goes to the process's own stdout."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ryax_action_wrapper.infrastructure.proto import action_service_pb2 as pb
from ryax_action_wrapper.infrastructure.proto import action_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration
Connect = Callable[[str], "pb_grpc.ActionServiceAsyncStub"]


def action(tmp_path: Path, name: str, code: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "ryax_handler.py").write_text(textwrap.dedent(code))
    return str(folder)


def io(name: str, type_: str) -> pb.IO:
    return pb.IO(name=name, type=type_)


def result(replies: list[pb.RunReply]) -> pb.Result:
    assert replies[-1].WhichOneof("reply") == "result"
    return replies[-1].result


def logs(replies: list[pb.RunReply]) -> list[pb.Log]:
    return [r.log for r in replies if r.WhichOneof("reply") == "log"]


OUT, ERR, LOG = pb.LOG_STREAM_STDOUT, pb.LOG_STREAM_STDERR, pb.LOG_STREAM_LOG

EVERY_WRITER = """
    import ctypes
    import logging
    import os
    import subprocess
    import sys
    import threading

    libc = ctypes.CDLL(None)
    log = logging.getLogger("tagged")

    def handle(request):
        tag = request["tag"]
        print(f"{tag} print")
        log.info("%s logging", tag)
        os.write(1, f"{tag} fd1\\n".encode())
        os.write(2, f"{tag} fd2\\n".encode())
        libc.printf(f"{tag} printf\\n".encode())  # C stdio: buffered, flushed at the end
        subprocess.run(["echo", f"{tag} child"], check=True)
        worker = threading.Thread(target=lambda: print(f"{tag} thread"))
        worker.start()
        worker.join()
        print(f"{tag} stderr print", file=sys.stderr)
        os.write(1, f"{tag} fd1 no newline".encode())
        return {}
"""


async def test_many_executions_in_a_row_each_get_exactly_their_lines(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "every", EVERY_WRITER),
            kind="processor",
            inputs=[io("tag", "string")],
        )
    )
    assert init.error == "", init.traceback
    for n in range(40):
        tag = f"execution-{n}"
        request = pb.RunRequest(
            execution_id=tag,
            inputs={"tag": pb.Value(string_value=tag)},
            work_dir=str(tmp_path / tag),
        )
        replies = [reply async for reply in stub.Run(request)]
        assert result(replies).status == pb.RUN_STATUS_COMPLETED, result(replies).error
        lines = logs(replies)
        assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
        assert result(replies).log_line_count == len(lines)
        # Python-level lines come in the order written; those through the descriptors too.
        assert sorted((line.stream, line.line) for line in lines) == sorted(
            [
                (OUT, f"{tag} print"),
                (LOG, f"INFO tagged: {tag} logging"),
                (OUT, f"{tag} fd1"),
                (ERR, f"{tag} fd2"),
                (OUT, f"{tag} printf"),
                (OUT, f"{tag} child"),
                (OUT, f"{tag} thread"),
                (ERR, f"{tag} stderr print"),
                (OUT, f"{tag} fd1 no newline"),
            ]
        ), n
        through_fd1 = [line.line for line in lines if line.line.endswith(("fd1", "newline"))]
        assert through_fd1 == [f"{tag} fd1", f"{tag} fd1 no newline"]


BURST = """
    import os

    def handle(request):
        n = request["n"]
        # More than a pipe holds (64 KiB): the pump must keep reading while the action writes.
        os.write(1, b"".join(b"burst %06d %s\\n" % (i, b"x" * 80) for i in range(n)))
        for i in range(n):
            print(f"print {i}")
        os.write(2, b"last, without newline")
        return {}
"""


async def test_a_large_burst_reaches_its_execution_whole_and_in_order(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "burst", BURST),
            kind="processor",
            inputs=[io("n", "integer")],
        )
    )
    assert init.error == "", init.traceback
    for attempt, n in enumerate((20_000, 3)):
        request = pb.RunRequest(
            execution_id=f"burst-{attempt}",
            inputs={"n": pb.Value(int_value=n)},
            work_dir=str(tmp_path / f"w{attempt}"),
        )
        replies = [reply async for reply in stub.Run(request)]
        assert result(replies).status == pb.RUN_STATUS_COMPLETED
        lines = logs(replies)
        assert len(lines) == 2 * n + 1
        burst = [line.line for line in lines if line.line.startswith("burst ")]
        assert burst == [f"burst {i:06d} {'x' * 80}" for i in range(n)]
        printed = [line.line for line in lines if line.line.startswith("print ")]
        assert printed == [f"print {i}" for i in range(n)]
        assert [(line.stream, line.line) for line in lines if line.stream == ERR] == [
            (ERR, "last, without newline")
        ]


def wait_for(path: Path, text: bytes, within: float = 10.0) -> bytes:
    deadline = time.monotonic() + within
    while text not in (content := path.read_bytes()):
        assert time.monotonic() < deadline, f"{text!r} not in {path}: {content!r}"
        time.sleep(0.05)
    return content


LATE = """
    import os
    import threading
    import time

    def handle(request):
        if request["late"]:
            def later():
                time.sleep(0.3)
                os.write(1, b"late from a background thread\\n")
                print("late print from a background thread")
            threading.Thread(target=later, daemon=True).start()
        print("on time")
        return {}
"""


async def test_lines_written_between_executions_go_to_the_process_stdout(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    stub = channel_to(target)
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "late", LATE),
            kind="processor",
            inputs=[io("late", "boolean")],
        )
    )
    assert init.error == "", init.traceback

    async def run(late: bool) -> list[str]:
        request = pb.RunRequest(
            execution_id=f"late-{late}",
            inputs={"late": pb.Value(bool_value=late)},
            work_dir=str(tmp_path / "w"),
        )
        replies = [reply async for reply in stub.Run(request)]
        assert result(replies).status == pb.RUN_STATUS_COMPLETED
        return [line.line for line in logs(replies)]

    assert await run(True) == ["on time"]
    process_log = tmp_path / "wrapper-0.log"  # the wrapper's stdout and stderr (conftest)
    text = await asyncio.to_thread(wait_for, process_log, b"late print from a background thread")
    assert b"late from a background thread\n" in text
    assert await run(False) == ["on time"]


MODES = """
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    def handle(request):
        tag, mode = request["tag"], request["mode"]
        if mode == "silent":
            return {}
        if mode == "fd":
            # C-level writes as the very last thing the execution does, the last one partial.
            os.write(1, f"{tag} fd1\\n".encode())
            os.write(2, f"{tag} partial".encode())
            return {}
        if mode == "child":
            # A process that writes during the execution and goes on after it ended.
            flag = Path(f"{tag}.flag")
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import os, sys, time; os.write(1, b'%s child during\\\\n');"
                    " open(sys.argv[1], 'w').close(); time.sleep(0.3);"
                    " os.write(1, b'%s child after\\\\n')" % (tag, tag),
                    str(flag.resolve()),
                ]
            )
            while not flag.exists():
                time.sleep(0.01)
            return {}
        if mode == "stream":
            # Lines that must reach the worker before the execution ends: it waits for the
            # test to have seen them.
            go = Path(request["go"])
            os.write(1, f"{tag} tick 1\\n".encode())
            subprocess.run(["echo", f"{tag} tick 2"], check=True)
            deadline = time.monotonic() + 10
            while not go.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("the lines written were not streamed while running")
                time.sleep(0.01)
            os.write(1, f"{tag} tick 3".encode())
            return {}
        raise ValueError(mode)
"""


async def init_modes(tmp_path: Path, stub: pb_grpc.ActionServiceAsyncStub) -> None:
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "modes", MODES),
            kind="processor",
            inputs=[
                io("tag", "string"),
                io("mode", "string"),
                pb.IO(name="go", type="string", optional=True),
            ],
        )
    )
    assert init.error == "", init.traceback


def run_request(tmp_path: Path, tag: str, mode: str, **extra: str) -> pb.RunRequest:
    inputs = {"tag": pb.Value(string_value=tag), "mode": pb.Value(string_value=mode)}
    inputs.update({name: pb.Value(string_value=value) for name, value in extra.items()})
    return pb.RunRequest(execution_id=tag, inputs=inputs, work_dir=str(tmp_path / "work"))


async def test_silent_and_writing_executions_back_to_back_keep_their_lines(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    await init_modes(tmp_path, stub)
    for n in range(60):
        tag = f"e{n}"
        mode = "silent" if n % 3 else "fd"
        replies = [reply async for reply in stub.Run(run_request(tmp_path, tag, mode))]
        assert result(replies).status == pb.RUN_STATUS_COMPLETED, result(replies).error
        lines = sorted((line.stream, line.line) for line in logs(replies))
        assert result(replies).log_line_count == len(lines)
        if mode == "silent":
            assert lines == [], n
        else:
            assert lines == [(OUT, f"{tag} fd1"), (ERR, f"{tag} partial")], n


async def test_a_subprocess_writing_during_and_after_its_execution(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    stub = channel_to(target)
    await init_modes(tmp_path, stub)
    (tmp_path / "work").mkdir()
    replies = [reply async for reply in stub.Run(run_request(tmp_path, "c1", "child"))]
    assert result(replies).status == pb.RUN_STATUS_COMPLETED, result(replies).error
    assert [line.line for line in logs(replies)] == ["c1 child during"]
    # Meanwhile another execution runs: what the child writes then is that execution's.
    replies = [reply async for reply in stub.Run(run_request(tmp_path, "s1", "silent"))]
    assert logs(replies) == []
    process_log = tmp_path / "wrapper-0.log"
    text = await asyncio.to_thread(wait_for, process_log, b"c1 child after\n")
    assert b"c1 child during" not in text
    replies = [reply async for reply in stub.Run(run_request(tmp_path, "s2", "silent"))]
    assert logs(replies) == []


async def test_a_long_execution_streams_its_lines_before_it_ends(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    await init_modes(tmp_path, stub)
    go = tmp_path / "go"
    seen: list[str] = []
    async for reply in stub.Run(run_request(tmp_path, "long", "stream", go=str(go))):
        if reply.WhichOneof("reply") == "log":
            seen.append(reply.log.line)
            if seen == ["long tick 1", "long tick 2"]:
                go.touch()  # the execution ends only once both lines were received
        elif reply.WhichOneof("reply") == "result":
            assert reply.result.status == pb.RUN_STATUS_COMPLETED, reply.result.error
    assert seen == ["long tick 1", "long tick 2", "long tick 3"]
