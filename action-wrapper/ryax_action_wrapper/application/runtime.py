"""The use cases of the wrapper: load an action (Init) and run it (Run).

One execution at a time: a processor's executions are queued behind a lock that is released
only when the user code really returned (a sync handler in a thread cannot be interrupted).

A processor's or publisher's sync handler may also be run by `execute_blocking`, in the
caller's thread (the wrapper's session socket): no event-loop round trip and no thread hop per
execution, its events handed to a sink as they come.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.errors import DomainError
from ..domain.io import PathProbe, Value, convert_inputs, validate_outputs
from ..domain.model import (
    ActionConfig,
    ActionKind,
    Event,
    ExecutionResult,
    InitOutcome,
    LogStream,
    RunStatus,
    clamp_fraction,
    describe_exception,
)
from .channel import DirectChannel, EventChannel
from .context import activated
from .ports import CodeLoader, CodeLoadError, OutputCapture, WorkingDirectory
from .trigger_service import TriggerService

log = logging.getLogger(__name__)
_WRAPPER_DIR = str(Path(__file__).resolve().parents[1])


class NotInitialized(Exception):
    """Run before a successful Init."""


@dataclass
class _Execution:
    """The context the `ryax` helper module sees during one Run."""

    execution_id: str
    channel: EventChannel | DirectChannel

    def report_progress(self, fraction: float, message: str) -> None:
        self.channel.emit_progress(clamp_fraction(fraction), str(message or ""))


class ActionRuntime:
    def __init__(
        self,
        *,
        loader: CodeLoader,
        capture: OutputCapture,
        workdir: WorkingDirectory,
        probe: PathProbe,
    ) -> None:
        self._loader = loader
        self._capture = capture
        self._workdir = workdir
        self._probe = probe
        self._config: ActionConfig | None = None
        self._entry: Callable[..., Any] | None = None
        self._lock = asyncio.Lock()
        #: Held by the execution running, whichever path runs it (`run` or `execute_blocking`).
        self._exclusive = threading.Lock()

    @property
    def config(self) -> ActionConfig | None:
        return self._config

    @property
    def ready(self) -> bool:
        return self._entry is not None

    @property
    def busy(self) -> bool:
        return self._lock.locked() or self._exclusive.locked()

    @property
    def runs_in_thread(self) -> bool:
        """A processor's or publisher's sync handler: `execute_blocking` can run it."""
        return (
            self._entry is not None
            and self._config is not None
            and self._config.kind is not ActionKind.TRIGGER
            and not inspect.iscoroutinefunction(self._entry)
        )

    def init(self, config: ActionConfig) -> InitOutcome:
        """Load the user code; the outcome says why it cannot run, if it cannot."""
        self._entry = None
        self._config = config
        try:
            entry = self._loader.load(config.action_dir, config.kind)
        except CodeLoadError as exc:
            return InitOutcome(error=exc.error, traceback=exc.traceback)
        if config.kind is ActionKind.TRIGGER and config.trigger_inputs:
            # Check the trigger's static inputs now rather than at Run.
            try:
                convert_inputs(config.inputs, config.trigger_inputs, self._probe)
            except DomainError as exc:
                return InitOutcome(error=exc.detail)
        self._entry = entry
        return InitOutcome()

    async def run(
        self, execution_id: str, inputs: Mapping[str, Value], work_dir: str
    ) -> AsyncIterator[Event]:
        """The events of one execution (processor, publisher) or of the trigger's life; the
        last one is the ExecutionResult. Cancelling the iteration cancels the execution."""
        if self._entry is None or self._config is None:
            raise NotInitialized("the action is not loaded: call Init first (and check its error)")
        await self._lock.acquire()
        try:
            # Free unless the other path runs one (never both, in practice: polled).
            while not self._exclusive.acquire(blocking=False):  # noqa: ASYNC110 - a thread's lock
                await asyncio.sleep(0.005)
        except BaseException:
            self._lock.release()
            raise
        loop = asyncio.get_running_loop()
        channel = EventChannel(loop)
        if self._config.kind is ActionKind.TRIGGER:
            body = self._run_trigger(channel, self._entry, self._config, work_dir)
        else:
            body = self._run_handler(channel, self._entry, self._config, inputs, work_dir)
        task = asyncio.create_task(
            self._execute(channel, execution_id, work_dir, body), name=f"execution-{execution_id}"
        )
        task.add_done_callback(lambda _: self._release())
        try:
            async for event in channel.events():
                yield event
        finally:
            if not task.done():
                task.cancel()
            channel.close()

    @contextmanager
    def _scope(
        self, execution_id: str, channel: EventChannel | DirectChannel, work_dir: str
    ) -> Iterator[None]:
        """What an execution runs in: its output captured, its context for the `ryax` module,
        its work directory."""
        with (
            self._capture.capturing(channel.emit_line),
            activated(_Execution(execution_id, channel)),
            self._workdir.entered(work_dir),
        ):
            yield

    def _release(self) -> None:
        self._exclusive.release()
        self._lock.release()

    def execute_blocking(
        self,
        execution_id: str,
        inputs: Mapping[str, Value],
        work_dir: str,
        sink: Callable[[Event], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """One execution of a sync handler (`runs_in_thread`) in the calling thread, which must
        not be `loop`'s: its events go to `sink` as they come (from this thread and the
        capture's), numbered and in order, the ExecutionResult last, after every line. Waits
        for an execution running on the other path to end. What the handler returns awaitable
        is awaited on `loop`."""
        entry, config = self._entry, self._config
        if entry is None or config is None or not self.runs_in_thread:
            raise NotInitialized("no sync handler of a processor or publisher is loaded")
        channel = DirectChannel(sink)
        with self._exclusive:
            result = ExecutionResult(status=RunStatus.FAILED, error="the execution did not end")
            try:
                with self._scope(execution_id, channel, work_dir):
                    request = self._request(config, inputs)
                    if isinstance(request, ExecutionResult):
                        result = request
                    else:
                        try:
                            returned = entry(request)
                            if inspect.isawaitable(returned):
                                returned = asyncio.run_coroutine_threadsafe(
                                    _awaited(returned), loop
                                ).result()
                        except Exception as exc:  # noqa: BLE001 - a user error fails it
                            result = _failed(exc)
                        else:
                            result = self._outcome(channel, config, returned, work_dir)
            except Exception as exc:
                log.exception("execution failed in the wrapper", extra={"execution": execution_id})
                result = _wrapper_error(exc)
            # The capture has ended: every line was handed over, the result goes after them.
            channel.finish(result)

    async def _execute(
        self,
        channel: EventChannel,
        execution_id: str,
        work_dir: str,
        body: Coroutine[Any, Any, ExecutionResult],
    ) -> None:
        result = ExecutionResult(status=RunStatus.FAILED, error="the execution did not end")
        try:
            with self._scope(execution_id, channel, work_dir):
                result = await body
        except asyncio.CancelledError:
            channel.close()
            raise
        except Exception as exc:
            log.exception("execution failed in the wrapper", extra={"execution": execution_id})
            result = _wrapper_error(exc)
        finally:
            body.close()  # never started when the set-up failed
        # The capture has ended: every line is queued, so the result goes after all of them.
        channel.finish(result)

    async def _run_handler(
        self,
        channel: EventChannel,
        entry: Callable[..., Any],
        config: ActionConfig,
        inputs: Mapping[str, Value],
        work_dir: str,
    ) -> ExecutionResult:
        request = self._request(config, inputs)
        if isinstance(request, ExecutionResult):
            return request
        try:
            returned = await _call(entry, request)
        except Exception as exc:  # noqa: BLE001 - any user error fails the execution
            return _failed(exc)
        return self._outcome(channel, config, returned, work_dir)

    def _request(
        self, config: ActionConfig, inputs: Mapping[str, Value]
    ) -> dict[str, Any] | ExecutionResult:
        """The handler's argument, or the FAILED result naming the input that is wrong."""
        try:
            return convert_inputs(config.inputs, inputs, self._probe)
        except DomainError as exc:
            return ExecutionResult(status=RunStatus.FAILED, error=exc.detail)

    def _outcome(
        self,
        channel: EventChannel | DirectChannel,
        config: ActionConfig,
        returned: Any,
        work_dir: str,
    ) -> ExecutionResult:
        """The result of what the handler returned (checked against the declared outputs)."""
        try:
            outputs = validate_outputs(
                config.outputs, returned, work_dir=work_dir, probe=self._probe
            )
        except DomainError as exc:
            return ExecutionResult(status=RunStatus.FAILED, error=exc.detail)
        if outputs.ignored:
            channel.emit_line(
                LogStream.LOG,
                f"WARNING ryax: ignored undeclared output(s): {', '.join(outputs.ignored)}",
            )
        if outputs.single:
            return ExecutionResult(status=RunStatus.COMPLETED, outputs=outputs.sets[0])
        return ExecutionResult(status=RunStatus.COMPLETED, outputs_list=outputs.sets)

    async def _run_trigger(
        self,
        channel: EventChannel,
        entry: Callable[..., Any],
        config: ActionConfig,
        work_dir: str,
    ) -> ExecutionResult:
        try:
            input_values = convert_inputs(config.inputs, config.trigger_inputs, self._probe)
        except DomainError as exc:
            return ExecutionResult(status=RunStatus.FAILED, error=exc.detail)
        service = TriggerService(
            channel=channel,
            outputs=config.outputs,
            input_values=input_values,
            work_dir=work_dir,
            probe=self._probe,
            loop=asyncio.get_running_loop(),
        )
        try:
            await _call(entry, service, input_values)
        except Exception as exc:  # noqa: BLE001 - a crashing trigger ends its Run, FAILED
            return _failed(exc)
        return ExecutionResult(status=RunStatus.COMPLETED)


async def _call(entry: Callable[..., Any], *args: Any) -> Any:
    """Await an async entry on the loop; run a sync one in a thread (the server stays
    responsive). A thread cannot be interrupted: on cancellation, wait until it returns."""
    if inspect.iscoroutinefunction(entry):
        return await entry(*args)
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    future = loop.run_in_executor(None, ctx.run, entry, *args)
    try:
        returned = await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise
    if inspect.isawaitable(returned):
        returned = await returned
    return returned


def _wrapper_error(exc: Exception) -> ExecutionResult:
    return ExecutionResult(
        status=RunStatus.FAILED,
        error=f"action wrapper error: {exc}",
        traceback="".join(traceback.format_exception(exc)),
    )


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _failed(exc: BaseException) -> ExecutionResult:
    error, status = describe_exception(exc)
    return ExecutionResult(
        status=RunStatus.FAILED, error=error, traceback=user_traceback(exc), http_status=status
    )


def user_traceback(exc: BaseException) -> str:
    """The traceback from the first frame of user code (the wrapper's frames are noise)."""
    te = traceback.TracebackException.from_exception(exc)
    frames = list(te.stack)
    start = 0
    for index, frame in enumerate(frames):
        if not _is_plumbing(frame.filename):
            start = index
            break
    else:
        start = len(frames)
    te.stack = traceback.StackSummary.from_list(frames[start:])
    return "".join(te.format())


def _is_plumbing(filename: str) -> bool:
    if filename.startswith(_WRAPPER_DIR):
        return True
    parts = Path(filename).parts
    return any(p in ("asyncio", "concurrent") for p in parts[-3:-1]) or filename.endswith(
        ("threading.py", "contextvars.py")
    )
