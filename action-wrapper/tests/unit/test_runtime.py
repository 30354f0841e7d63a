"""ActionRuntime with fakes: no imports of user files, no fd capture, no gRPC."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ryax_action_wrapper.application.context import current
from ryax_action_wrapper.application.ports import CodeLoadError, LineSink
from ryax_action_wrapper.application.runtime import ActionRuntime, NotInitialized
from ryax_action_wrapper.domain.io import IODeclaration, PathInfo, Value
from ryax_action_wrapper.domain.model import (
    ActionConfig,
    ActionKind,
    Event,
    ExecutionResult,
    LogLine,
    LogStream,
    NewRun,
    ProgressReport,
    RunStatus,
)


class FakeLoader:
    def __init__(self, entry: Callable[..., Any] | None = None, error: str = "") -> None:
        self.entry, self.error = entry, error

    def load(self, action_dir: str, kind: ActionKind) -> Callable[..., Any]:
        if self.entry is None:
            raise CodeLoadError(self.error or "ryax_handler.py not found")
        return self.entry


class FakeCapture:
    """Keeps the sink so fake user code can 'print' into it."""

    def __init__(self) -> None:
        self.sink: LineSink | None = None

    @contextmanager
    def capturing(self, sink: LineSink) -> Iterator[None]:
        self.sink = sink
        try:
            yield
        finally:
            self.sink = None

    def print(self, text: str) -> None:
        assert self.sink is not None
        self.sink(LogStream.STDOUT, text)


class FakeWorkdir:
    @contextmanager
    def entered(self, path: str) -> Iterator[None]:
        yield


def probe(path: str) -> PathInfo:
    return PathInfo("file", 1) if path.startswith("/files/") else PathInfo("missing")


def io(name: str, type_: str, **kw: Any) -> IODeclaration:
    return IODeclaration.parse(name=name, type=type_, **kw)


capture = FakeCapture()


def make_runtime(
    entry: Callable[..., Any] | None,
    kind: ActionKind = ActionKind.PROCESSOR,
    inputs: tuple[IODeclaration, ...] = (io("x", "integer"),),
    outputs: tuple[IODeclaration, ...] = (io("y", "integer"),),
    trigger_inputs: dict[str, Value] | None = None,
) -> ActionRuntime:
    runtime = ActionRuntime(
        loader=FakeLoader(entry), capture=capture, workdir=FakeWorkdir(), probe=probe
    )
    outcome = runtime.init(
        ActionConfig(
            action_dir="/act",
            kind=kind,
            inputs=inputs,
            outputs=outputs,
            trigger_inputs=trigger_inputs or {},
        )
    )
    assert outcome.ok, outcome.error
    return runtime


async def collect(runtime: ActionRuntime, inputs: dict[str, Value]) -> list[Event]:
    return [e async for e in runtime.run("e1", inputs, "/work")]


def result_of(events: list[Event]) -> ExecutionResult:
    last = events[-1]
    assert isinstance(last, ExecutionResult)
    assert not any(isinstance(e, ExecutionResult) for e in events[:-1])
    return last


async def test_sync_handler_completes_with_outputs() -> None:
    def handle(request: dict[str, Any]) -> dict[str, Any]:
        assert threading.current_thread() is not threading.main_thread()
        capture.print("working")
        return {"y": request["x"] + 1}

    events = await collect(make_runtime(handle), {"x": 41})
    result = result_of(events)
    assert result.status is RunStatus.COMPLETED
    assert result.outputs == {"y": 42}
    assert result.log_line_count == 1
    assert events[0] == LogLine(seq=1, stream=LogStream.STDOUT, line="working", at=events[0].at)  # type: ignore[union-attr]


async def test_async_handler_and_progress() -> None:
    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        ctx = current()
        assert ctx is not None
        ctx.report_progress(0.5, "half")
        await asyncio.sleep(0)
        return {"y": 0}

    events = await collect(make_runtime(handle), {"x": 1})
    assert ProgressReport(fraction=0.5, message="half") in events
    assert result_of(events).status is RunStatus.COMPLETED


async def test_list_of_dicts_gives_output_sets() -> None:
    events = await collect(make_runtime(lambda r: [{"y": 1}, {"y": 2}]), {"x": 1})
    result = result_of(events)
    assert result.outputs is None
    assert result.outputs_list == [{"y": 1}, {"y": 2}]


async def test_exception_fails_with_message_traceback_and_status() -> None:
    class RyaxException(Exception):
        def __init__(self, message: str, code: int) -> None:
            super().__init__(message)
            self.message, self.code = message, code

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        raise RyaxException("no such item", 404)

    result = result_of(await collect(make_runtime(handle), {"x": 1}))
    assert result.status is RunStatus.FAILED
    assert (result.error, result.http_status) == ("no such item", 404)
    assert "in handle" in result.traceback
    assert "ryax_action_wrapper" not in result.traceback  # the wrapper frames are left out


async def test_wrong_output_fails_naming_it() -> None:
    result = result_of(await collect(make_runtime(lambda r: {"y": "one"}), {"x": 1}))
    assert result.status is RunStatus.FAILED
    assert result.error == "output 'y': expected an integer, got str"


async def test_bad_input_fails_naming_it() -> None:
    result = result_of(await collect(make_runtime(lambda r: {"y": 1}), {"x": "abc"}))
    assert result.error == "input 'x': expected an integer, got 'abc'"


async def test_run_before_init() -> None:
    runtime = ActionRuntime(
        loader=FakeLoader(), capture=capture, workdir=FakeWorkdir(), probe=probe
    )
    outcome = runtime.init(ActionConfig(action_dir="/a", kind=ActionKind.PROCESSOR))
    assert outcome.error == "ryax_handler.py not found"
    with pytest.raises(NotInitialized):
        await collect(runtime, {})


async def test_executions_never_overlap() -> None:
    active: list[int] = []
    overlaps: list[int] = []

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        active.append(1)
        overlaps.append(len(active))
        await asyncio.sleep(0.01)
        active.pop()
        return {"y": 1}

    runtime = make_runtime(handle)
    await asyncio.gather(*(collect(runtime, {"x": 1}) for _ in range(3)))
    assert overlaps == [1, 1, 1]


async def test_lines_from_threads_are_numbered_in_order_before_the_result() -> None:
    def handle(request: dict[str, Any]) -> dict[str, Any]:
        def spam(tag: str) -> None:
            for i in range(200):
                capture.print(f"{tag}{i}")

        threads = [threading.Thread(target=spam, args=(t,)) for t in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"y": 1}

    events = await collect(make_runtime(handle), {"x": 1})
    lines = [e for e in events if isinstance(e, LogLine)]
    assert [line.seq for line in lines] == list(range(1, 401))
    assert [x.line for x in lines if x.line.startswith("a")] == [f"a{i}" for i in range(200)]
    assert result_of(events).log_line_count == 400


async def test_trigger_creates_runs_then_ends() -> None:
    async def run(service: Any, input_values: dict[str, Any]) -> None:
        for i in range(input_values["count"]):
            await service.create_run({"y": i})

    runtime = make_runtime(
        run, kind=ActionKind.TRIGGER, inputs=(io("count", "integer", default_json="3"),)
    )
    events = await collect(runtime, {})
    runs = [e for e in events if isinstance(e, NewRun)]
    assert [r.outputs for r in runs] == [{"y": 0}, {"y": 1}, {"y": 2}]
    assert result_of(events).status is RunStatus.COMPLETED


async def test_trigger_with_bad_run_outputs_fails() -> None:
    async def run(service: Any, input_values: dict[str, Any]) -> None:
        await service.create_run({"y": "nope"})

    runtime = make_runtime(run, kind=ActionKind.TRIGGER, inputs=())
    result = result_of(await collect(runtime, {}))
    assert result.status is RunStatus.FAILED
    assert "output 'y': expected an integer" in result.error


async def test_cancelling_the_stream_cancels_an_async_execution() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {"y": 1}

    runtime = make_runtime(handle)

    async def consume() -> None:
        async for _ in runtime.run("e", {"x": 1}, "/w"):
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    await asyncio.wait_for(cancelled.wait(), 2)
    # The next execution runs: the lock was released.
    assert result_of(await collect(make_runtime(lambda r: {"y": 2}), {"x": 1})).outputs == {"y": 2}


async def blocking(runtime: ActionRuntime, inputs: dict[str, Value]) -> list[Event]:
    """execute_blocking in a thread of its own (as the session socket runs it)."""
    events: list[Event] = []
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(runtime.execute_blocking, "e1", inputs, "/work", events.append, loop)
    return events


async def test_execute_blocking_runs_the_handler_in_the_calling_thread() -> None:
    seen: list[str] = []

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(threading.current_thread().name)
        capture.print("working")
        ctx = current()
        assert ctx is not None and ctx.execution_id == "e1"
        ctx.report_progress(2.0, "past the end")  # clamped
        capture.print("done")
        return {"y": request["x"] + 1, "extra": 1}

    runtime = make_runtime(handle)
    assert runtime.runs_in_thread
    events = await blocking(runtime, {"x": 41})
    assert seen and seen[0] != threading.main_thread().name
    lines = [e for e in events if isinstance(e, LogLine)]
    assert [(line.seq, line.line) for line in lines] == [
        (1, "working"),
        (2, "done"),
        (3, "WARNING ryax: ignored undeclared output(s): extra"),
    ]
    assert [e for e in events if isinstance(e, ProgressReport)] == [
        ProgressReport(fraction=1.0, message="past the end")
    ]
    result = result_of(events)
    assert (result.status, result.outputs, result.log_line_count) == (
        RunStatus.COMPLETED,
        {"y": 42},
        3,
    )
    assert not runtime.busy


async def test_execute_blocking_fails_on_a_bad_input_an_error_or_a_bad_output() -> None:
    def handle(request: dict[str, Any]) -> Any:
        if request["x"] == 0:
            raise ValueError("zero")
        return {"y": "not an integer"}

    runtime = make_runtime(handle)
    bad_input = result_of(await blocking(runtime, {"x": "a"}))
    assert bad_input.status is RunStatus.FAILED and "x" in bad_input.error
    raised = result_of(await blocking(runtime, {"x": 0}))
    assert (raised.status, raised.error) == (RunStatus.FAILED, "ValueError: zero")
    assert "raise ValueError" in raised.traceback
    bad_output = result_of(await blocking(runtime, {"x": 1}))
    assert bad_output.status is RunStatus.FAILED and "y" in bad_output.error


async def test_execute_blocking_awaits_what_a_sync_handler_returns_awaitable() -> None:
    async def later(x: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"y": x * 2}

    def handle(request: dict[str, Any]) -> Any:
        return later(request["x"])

    result = result_of(await blocking(make_runtime(handle), {"x": 4}))
    assert (result.status, result.outputs) == (RunStatus.COMPLETED, {"y": 8})


async def test_only_a_sync_processor_runs_in_thread_and_the_paths_never_overlap() -> None:
    async def handle_async(request: dict[str, Any]) -> dict[str, Any]:
        return {"y": 1}

    assert not make_runtime(handle_async).runs_in_thread
    with pytest.raises(NotInitialized):
        make_runtime(handle_async).execute_blocking(
            "e1", {"x": 1}, "/work", lambda e: None, asyncio.get_running_loop()
        )
    release = threading.Event()
    order: list[str] = []

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        order.append(f"start {request['x']}")
        if request["x"] == 1:
            release.wait(5)
        order.append(f"end {request['x']}")
        return {"y": request["x"]}

    runtime = make_runtime(handle)
    first = asyncio.create_task(blocking(runtime, {"x": 1}))
    while not runtime.busy:  # noqa: ASYNC110 - the other path runs in a thread
        await asyncio.sleep(0.001)
    second = asyncio.create_task(collect(runtime, {"x": 2}))  # the async path waits
    await asyncio.sleep(0.05)
    assert order == ["start 1"]
    release.set()
    await asyncio.gather(first, second)
    assert order == ["start 1", "end 1", "start 2", "end 2"]
