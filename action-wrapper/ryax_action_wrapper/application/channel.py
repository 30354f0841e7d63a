"""The events of one Run call, in order: log lines (numbered here), progress, new runs, and the
final result. Producers may be any thread; the consumer is the Run stream on the event loop
(EventChannel), or a sink called at once (DirectChannel: an execution run outside the loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ..domain.io import Value
from ..domain.model import Event, ExecutionResult, LogLine, LogStream, NewRun, ProgressReport

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass
class _Pending:
    """An event whose producer waits until the consumer has taken it (backpressure)."""

    event: Event
    taken: asyncio.Future[None]


class _Numbered:
    """Log lines numbered and handed to `hand` under one lock, in emission order; nothing
    after the end."""

    def __init__(self, hand: Callable[[Event], None], clock: Clock) -> None:
        self._hand = hand
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._closed = False

    @property
    def line_count(self) -> int:
        with self._lock:
            return self._seq

    def emit_line(self, stream: LogStream, text: str) -> None:
        """Number a line and hand it over (any thread). Lines after the end are dropped."""
        with self._lock:
            if self._closed:
                return
            self._seq += 1
            self._hand(LogLine(seq=self._seq, stream=stream, line=text, at=self._clock()))

    def emit_progress(self, fraction: float, message: str) -> None:
        with self._lock:
            if not self._closed:
                self._hand(ProgressReport(fraction=fraction, message=message))


class EventChannel(_Numbered):
    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock = utc_now) -> None:
        super().__init__(self._schedule, clock)
        self._loop = loop
        # Everything is scheduled on the loop under the lock: the loop runs callbacks in the
        # order they were scheduled, so queue order = numbering order = emission order.
        self._queue: asyncio.Queue[Event | _Pending | None] = asyncio.Queue()

    def send_new_run(self, outputs: dict[str, Value]) -> asyncio.Future[None]:
        """Queue a run (from the loop thread); the future resolves when the stream took it."""
        taken: asyncio.Future[None] = self._loop.create_future()
        run = NewRun(outputs=outputs, at=self._clock())
        with self._lock:
            if self._closed:
                taken.set_exception(RuntimeError("the trigger's Run stream has ended"))
                return taken
            self._schedule(_Pending(run, taken))
        return taken

    def finish(self, result: ExecutionResult) -> None:
        """Queue the result after every line so far, with the final line count; then close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._schedule(replace(result, log_line_count=self._seq))
            self._schedule(None)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._schedule(None)

    def _schedule(self, item: Event | _Pending | None) -> None:
        if self._loop.is_closed():
            return
        if _running_loop() is self._loop:  # no need to wake the loop up from its own thread
            self._loop.call_soon(self._queue.put_nowait, item)
        else:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, _Pending):
                yield item.event
                if not item.taken.done():
                    item.taken.set_result(None)
            else:
                yield item


class DirectChannel(_Numbered):
    """The events of one execution run in a thread of its own, handed to `sink` as they come
    (from any thread): numbered and handed under one lock, so the sink sees them in order, and
    the result last. `sink` may block (backpressure on whoever emits)."""

    def __init__(self, sink: Callable[[Event], None], clock: Clock = utc_now) -> None:
        super().__init__(sink, clock)

    def finish(self, result: ExecutionResult) -> None:
        """Hand the result over, after every line so far, with the final line count; then
        drop whatever comes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._hand(replace(result, log_line_count=self._seq))
