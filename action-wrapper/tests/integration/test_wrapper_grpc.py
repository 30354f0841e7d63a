"""A real gRPC round trip against real wrapper processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from ryax_action_wrapper.infrastructure.proto import action_service_pb2 as pb
from ryax_action_wrapper.infrastructure.proto import action_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration
Connect = Callable[[str], "pb_grpc.ActionServiceAsyncStub"]


def action(tmp_path: Path, name: str, code: str, file: str = "ryax_handler.py") -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / file).write_text(textwrap.dedent(code))
    return str(folder)


def io(name: str, type_: str, **kw: object) -> pb.IO:
    return pb.IO(name=name, type=type_, **kw)  # type: ignore[arg-type]


async def run(
    stub: pb_grpc.ActionServiceAsyncStub, work_dir: Path, **inputs: pb.Value
) -> list[pb.RunReply]:
    request = pb.RunRequest(execution_id="ex-1", inputs=inputs, work_dir=str(work_dir))
    return [reply async for reply in stub.Run(request)]


def result(replies: list[pb.RunReply]) -> pb.Result:
    assert replies[-1].WhichOneof("reply") == "result"
    assert all(r.WhichOneof("reply") != "result" for r in replies[:-1])
    return replies[-1].result


def logs(replies: list[pb.RunReply]) -> list[pb.Log]:
    return [r.log for r in replies if r.WhichOneof("reply") == "log"]


HANDLER = """
    import logging
    import subprocess
    from pathlib import Path

    import ryax

    log = logging.getLogger("word-count")

    def handle(request):
        text = Path(request["document"]).read_text()
        print("read", len(text), "characters")
        ryax.progress(0.5, "counted")
        log.info("words: %d", len(text.split()))
        subprocess.run(["echo", "from a child process"], check=True)
        Path("counts.txt").write_text(str(len(text.split())))
        for i in range(500):
            print(f"line {i}")
        return {"total": len(text.split()), "counts": "counts.txt", "ratio": 0.5}
"""


async def test_processor_with_file_input_logs_and_progress(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    stub = channel_to(target)
    health = health_pb2_grpc.HealthStub(grpc.aio.insecure_channel(target))
    service = "ryax.action_wrapper.v1.ActionService"
    before = await health.Check(health_pb2.HealthCheckRequest(service=service))
    assert before.status == health_pb2.HealthCheckResponse.NOT_SERVING

    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "wc", HANDLER),
            kind="processor",
            inputs=[io("document", "file")],
            outputs=[io("total", "integer"), io("counts", "file"), io("ratio", "float")],
        )
    )
    assert init.error == "", init.traceback
    assert init.wrapper_version and init.python_version.startswith("3.")
    after = await health.Check(health_pb2.HealthCheckRequest(service=service))
    assert after.status == health_pb2.HealthCheckResponse.SERVING

    document = tmp_path / "doc.txt"
    document.write_text("a b c d")
    for attempt in range(2):  # the process stays up for the next execution
        work_dir = tmp_path / f"work-{attempt}"
        replies = await run(
            stub,
            work_dir,
            document=pb.Value(file=pb.FileRef(key=str(document), name="doc.txt")),
        )
        res = result(replies)
        assert res.status == pb.RUN_STATUS_COMPLETED, res.error
        assert res.outputs["total"].int_value == 4
        assert res.outputs["ratio"].float_value == 0.5
        counts = res.outputs["counts"].file
        assert (counts.key, counts.name) == (str(work_dir / "counts.txt"), "counts.txt")
        assert Path(counts.key).read_text() == "4"  # noqa: ASYNC240

        lines = logs(replies)
        assert [line.seq for line in lines] == list(range(1, len(lines) + 1))
        assert res.log_line_count == len(lines) == 503
        texts = [(line.stream, line.line) for line in lines]
        assert texts[:2] == [
            (pb.LOG_STREAM_STDOUT, "read 7 characters"),
            (pb.LOG_STREAM_LOG, "INFO word-count: words: 4"),
        ]
        # The child's line comes through the pipe the capture pumps, the prints straight from
        # Python: in the log, but not ordered between them (on a loaded machine the pump may
        # read the pipe only at the end of the execution).
        assert (pb.LOG_STREAM_STDOUT, "from a child process") in texts
        printed = [t for t in texts if t[1].startswith("line ")]
        assert printed == [(pb.LOG_STREAM_STDOUT, f"line {i}") for i in range(500)]
        progress = [r.progress for r in replies if r.WhichOneof("reply") == "progress"]
        assert [(p.fraction, p.message) for p in progress] == [(0.5, "counted")]


async def test_exception_and_list_outputs(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    failing = channel_to(start_wrapper())
    init = await failing.Init(
        pb.InitRequest(
            action_dir=action(
                tmp_path,
                "fail",
                """
            from dataclasses import dataclass

            @dataclass
            class RyaxException(Exception):
                message: str
                code: int

            def check(value):
                if value > 3:
                    raise RyaxException(message=f"{value} is too big", code=422)

            def handle(request):
                print("about to fail")
                check(request["n"])
        """,
            ),
            kind="processor",
            inputs=[io("n", "integer")],
        )
    )
    assert init.error == ""
    res = result(await run(failing, tmp_path / "w1", n=pb.Value(int_value=7)))
    assert res.status == pb.RUN_STATUS_FAILED
    assert (res.error, res.http_status) == ("7 is too big", 422)
    assert "in check" in res.traceback and "RyaxException" in res.traceback
    assert res.log_line_count == 1

    listing = channel_to(start_wrapper())
    init = await listing.Init(
        pb.InitRequest(
            action_dir=action(
                tmp_path,
                "split",
                """
            async def handle(request):
                return [{"word": w} for w in request["text"].split()]
        """,
            ),
            kind="processor",
            inputs=[io("text", "string")],
            outputs=[io("word", "string")],
        )
    )
    assert init.error == ""
    res = result(await run(listing, tmp_path / "w2", text=pb.Value(string_value="x y z")))
    assert res.status == pb.RUN_STATUS_COMPLETED
    assert [s.outputs["word"].string_value for s in res.outputs_list] == ["x", "y", "z"]
    assert len(res.outputs) == 0 and res.outputs_is_list
    # An empty list is told apart from "no outputs": nothing runs downstream.
    res = result(await run(listing, tmp_path / "w2b", text=pb.Value(string_value="")))
    assert res.status == pb.RUN_STATUS_COMPLETED
    assert res.outputs_is_list and len(res.outputs_list) == 0

    # Missing and wrong outputs fail the execution, naming the output.
    bad = channel_to(start_wrapper())
    await bad.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "bad", "def handle(request):\n    return {'n': 'x'}\n"),
            kind="publisher",
            outputs=[io("n", "integer")],
        )
    )
    res = result(await run(bad, tmp_path / "w3"))
    assert res.status == pb.RUN_STATUS_FAILED
    assert res.error == "output 'n': expected an integer, got str"


async def test_init_reports_load_errors(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "broken", "import pandas_that_is_not_here\n"),
            kind="processor",
        )
    )
    assert init.error == (
        "ryax_handler.py: ModuleNotFoundError: No module named 'pandas_that_is_not_here'"
    )
    assert "ryax_handler.py" in init.traceback
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await run(stub, tmp_path / "w")
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    init = await stub.Init(
        pb.InitRequest(
            action_dir=str(tmp_path / "broken"),
            kind="processor",
            inputs=[io("x", "table")],
        )
    )
    assert "input 'x': unknown type 'table'" in init.error


async def test_trigger_yields_three_runs(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    target = start_wrapper()
    stub = channel_to(target)
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(
                tmp_path,
                "timer",
                """
            import asyncio
            from pathlib import Path

            async def run(service, input_values):
                for i in range(input_values["count"]):
                    print("run", i)
                    Path(f"payload-{i}.txt").write_text(str(i))
                    await service.create_run({"index": i, "payload": f"payload-{i}.txt"})
                    await asyncio.sleep(input_values["interval"])
        """,
                file="ryax_run.py",
            ),
            kind="trigger",
            inputs=[io("count", "integer"), io("interval", "float", default_value="0.01")],
            outputs=[io("index", "integer"), io("payload", "file")],
            trigger_inputs={"count": pb.Value(int_value=3)},
        )
    )
    assert init.error == ""
    replies = await run(stub, tmp_path / "trigger-work")
    runs = [r.new_run for r in replies if r.WhichOneof("reply") == "new_run"]
    assert [r.outputs["index"].int_value for r in runs] == [0, 1, 2]
    assert all(Path(r.outputs["payload"].file.key).is_file() for r in runs)  # noqa: ASYNC240
    assert all(r.at.seconds > 0 for r in runs)
    assert [line.line for line in logs(replies)] == ["run 0", "run 1", "run 2"]
    assert result(replies).status == pb.RUN_STATUS_COMPLETED
    health = health_pb2_grpc.HealthStub(grpc.aio.insecure_channel(target))
    ended = await health.Check(
        health_pb2.HealthCheckRequest(service="ryax.action_wrapper.v1.ActionService")
    )
    assert ended.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def slow_action(
    tmp_path: Path, stub: pb_grpc.ActionServiceAsyncStub
) -> pb_grpc.ActionServiceAsyncStub:
    """`stub`'s wrapper loaded with an action that sleeps `request["seconds"]`."""
    code = """
        import asyncio

        async def handle(request):
            await asyncio.sleep(request["seconds"])
            return {}
    """
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(tmp_path, "slow", code),
            kind="processor",
            inputs=[io("seconds", "float")],
        )
    )
    assert init.error == ""
    return stub


async def test_cancelled_run_leaves_the_wrapper_usable(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = await slow_action(tmp_path, channel_to(start_wrapper()))
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        request = pb.RunRequest(
            execution_id="slow",
            inputs={"seconds": pb.Value(float_value=30)},
            work_dir=str(tmp_path / "w"),
        )
        async for _ in stub.Run(request, timeout=0.5):
            pass
    assert excinfo.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    res = result(await run(stub, tmp_path / "w2", seconds=pb.Value(float_value=0)))
    assert res.status == pb.RUN_STATUS_COMPLETED


async def test_session_runs_executions_one_after_the_other_on_one_call(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    session = stub.Session()
    # The refusal may end the call before the request is sent: the write then fails too.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await session.write(pb.RunRequest(execution_id="early", work_dir=str(tmp_path / "w0")))
    assert await session.code() == grpc.StatusCode.FAILED_PRECONDITION
    init = await stub.Init(
        pb.InitRequest(
            action_dir=action(
                tmp_path,
                "double",
                """
            def handle(request):
                print("doubling", request["n"])
                if request["n"] < 0:
                    raise ValueError("negative")
                return {"n": request["n"] * 2}
        """,
            ),
            kind="processor",
            inputs=[io("n", "integer")],
            outputs=[io("n", "integer")],
        )
    )
    assert init.error == ""
    session = stub.Session()
    seen = []
    for n in (1, 2, -1, 3):
        await session.write(
            pb.RunRequest(
                execution_id=f"ex-{n}",
                inputs={"n": pb.Value(int_value=n)},
                work_dir=str(tmp_path / f"w{n}"),
            )
        )
        replies = []
        while True:
            reply = await session.read()
            assert reply is not grpc.aio.EOF
            replies.append(reply)
            if reply.WhichOneof("reply") == "result":
                break
        seen.append(
            ([line.line for line in logs(replies)], result(replies).status, result(replies).error)
        )
    assert seen == [
        (["doubling 1"], pb.RUN_STATUS_COMPLETED, ""),
        (["doubling 2"], pb.RUN_STATUS_COMPLETED, ""),
        (["doubling -1"], pb.RUN_STATUS_FAILED, "ValueError: negative"),
        (["doubling 3"], pb.RUN_STATUS_COMPLETED, ""),
    ]
    await session.done_writing()
    assert await session.read() is grpc.aio.EOF
    assert await session.code() == grpc.StatusCode.OK


async def test_session_cancelled_mid_execution_leaves_the_wrapper_usable(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = await slow_action(tmp_path, channel_to(start_wrapper()))
    session = stub.Session()
    await session.write(
        pb.RunRequest(
            execution_id="slow",
            inputs={"seconds": pb.Value(float_value=30)},
            work_dir=str(tmp_path / "w"),
        )
    )
    session.cancel()
    with pytest.raises(asyncio.CancelledError):
        await session.read()
    again = stub.Session()
    await again.write(
        pb.RunRequest(
            execution_id="quick",
            inputs={"seconds": pb.Value(float_value=0)},
            work_dir=str(tmp_path / "w2"),
        )
    )
    reply = await again.read()
    assert reply.result.status == pb.RUN_STATUS_COMPLETED
    again.cancel()


async def test_session_is_refused_for_a_trigger(
    tmp_path: Path, start_wrapper: Callable[[], str], channel_to: Connect
) -> None:
    stub = channel_to(start_wrapper())
    await stub.Init(
        pb.InitRequest(
            action_dir=action(
                tmp_path, "idle", "async def run(service, input_values):\n    pass\n", "ryax_run.py"
            ),
            kind="trigger",
        )
    )
    session = stub.Session()
    with pytest.raises(grpc.aio.AioRpcError) as excinfo:
        await session.read()
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "trigger" in (excinfo.value.details() or "")


def test_once_mode(tmp_path: Path) -> None:
    folder = action(
        tmp_path,
        "once",
        """
        def handle(request):
            print("hello", request["name"])
            return {"greeting": "hello " + request["name"]}
    """,
    )
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "init": {
                    "action_dir": folder,
                    "kind": "processor",
                    "inputs": [{"name": "name", "type": "string"}],
                    "outputs": [{"name": "greeting", "type": "string"}],
                },
                "run": {
                    "execution_id": "e",
                    "inputs": {"name": {"string_value": "you"}},
                    "work_dir": str(tmp_path / "w"),
                },
            }
        )
    )
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "ryax_action_wrapper", "--once", str(request), str(out)],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["init"]["wrapper_version"]
    assert document["replies"][0]["log"]["line"] == "hello you"
    final = document["replies"][-1]["result"]
    assert final["status"] == "RUN_STATUS_COMPLETED"
    assert final["outputs"]["greeting"]["string_value"] == "hello you"


def test_once_mode_streams_every_reply_to_the_events_file(tmp_path: Path) -> None:
    folder = action(
        tmp_path,
        "events",
        """
        import ryax

        def handle(request):
            print("one")
            ryax.progress(0.5, "half")
            print("two")
            return {"n": 2}
    """,
    )
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "init": {
                    "action_dir": folder,
                    "kind": "processor",
                    "outputs": [{"name": "n", "type": "integer"}],
                },
                "run": {"execution_id": "e", "work_dir": str(tmp_path / "w")},
            }
        )
    )
    out, events = tmp_path / "result.json", tmp_path / "events.jsonl"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "ryax_action_wrapper", "--once"),
            *(str(request), str(out), "--events", str(events)),
        ],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    streamed = [json.loads(line) for line in events.read_text().splitlines()]
    assert streamed == json.loads(out.read_text())["replies"]
    assert [next(iter(r)) for r in streamed] == ["log", "progress", "log", "result"]
    assert streamed[-1]["result"]["outputs"]["n"]["int_value"] == "2"
