"""Capture an execution's output: file descriptors 1 and 2 (print, C extensions, subprocesses)
and `logging` records, line by line, into the execution's sink.

Descriptors 1 and 2 become pipes once per process, read by one pump thread each for the life of
the process; each execution switches the pumps to its sink and back, by markers written into the
pipes themselves, so the switch happens at its place in the stream: what was written before an
execution started is not its, what it wrote before it ended is (the end waits until both pumps
have passed its end marker), whoever wrote it (the action's threads, C code, a subprocess).
Between executions (a background thread, or a process the action left running, writing after its
execution ended) the pumps pass the bytes through to the process's original stdout and stderr,
as if nothing were captured: the worker reports them as the step's own log lines, tied to no
execution.

The wrapper's own log goes to a copy of the original stderr taken at start, so it is never
mixed into an action's log.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import io
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TextIO, cast

from ..application.ports import LineSink
from ..domain.model import LogStream
from .logging import JsonFormatter, TextFormatter

#: How long the end of an execution waits for its output still in the pipes to be read.
DRAIN_TIMEOUT_SECONDS = 2.0
_WRAPPER_LOGGERS = ("ryax_action_wrapper", "grpc", "asyncio")
_READ_SIZE = 65536

log = logging.getLogger(__name__)

_LIBC: list[ctypes.CDLL] = []


def _libc_fflush() -> None:
    """C stdio's buffers out (a C extension's printf) before the sink changes; the C library is
    loaded once (loading it per execution showed in the hop-path profile)."""
    with suppress(OSError, AttributeError):
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None))
        _LIBC[0].fflush(None)


class _End:
    """The end marker of one execution: set once the pump has passed it."""

    def __init__(self) -> None:
        self.passed = threading.Event()


class Demux:
    """The bytes of one pipe, cut at the switch markers: between a start and an end marker,
    complete lines go to that execution's sink (a last line without newline at its end);
    elsewhere the bytes go through to `passthrough` as they come.

    A marker is `<prefix>S\\n` (start: takes the next sink queued by `expect`) or `<prefix>E\\n`
    (end: flushes the line in progress, sets the next end queued); the prefix holds a random
    token of this process, so nothing an action writes is taken for one."""

    def __init__(self, stream: LogStream, passthrough: Callable[[bytes], None], token: str) -> None:
        self._stream = stream
        self._passthrough = passthrough
        self.prefix = f"\x00ryax-capture-{token}:".encode()
        self._sinks: collections.deque[LineSink] = collections.deque()
        self._ends: collections.deque[_End] = collections.deque()
        self._sink: LineSink | None = None
        self._held = b""  # not delivered yet: a line in progress, or what may begin a marker

    def expect(self, sink: LineSink) -> bytes:
        """The start marker to write for `sink` (queued until the pump reaches it)."""
        self._sinks.append(sink)
        return self.prefix + b"S\n"

    def expect_end(self) -> tuple[bytes, _End]:
        end = _End()
        self._ends.append(end)
        return self.prefix + b"E\n", end

    def feed(self, chunk: bytes) -> None:
        """Bytes read from the pipe (the pump's thread only)."""
        data = self._held + chunk
        while True:
            at = data.find(self.prefix)
            if at < 0:
                break
            stop = data.find(b"\n", at + len(self.prefix))
            if stop < 0:
                break  # the rest of the marker comes with the next read
            self._deliver(data[:at], final=True)
            self._switch(data[at + len(self.prefix) : stop])
            data = data[stop + 1 :]
        cut = len(data) - self._partial_prefix(data)
        self._held = self._deliver(data[:cut], final=False) + data[cut:]

    def close(self) -> None:
        """End of the pipe: what is held goes out."""
        self._deliver(self._held, final=True)
        self._held = b""

    def _partial_prefix(self, data: bytes) -> int:
        """How many bytes at the end of `data` may begin a marker (held for the next read)."""
        at = data.find(self.prefix[:1], max(len(data) - len(self.prefix) - 2, 0))
        while at >= 0:
            tail = data[at:]
            if self.prefix.startswith(tail) or tail.startswith(self.prefix):
                return len(tail)
            at = data.find(self.prefix[:1], at + 1)
        return 0

    def _deliver(self, data: bytes, *, final: bool) -> bytes:
        """Hand `data` on; what is not handed on yet (a line in progress) is returned."""
        if not data:
            return b""
        sink = self._sink
        if sink is None:
            self._passthrough(data)
            return b""
        *lines, rest = data.split(b"\n")
        for raw in lines:
            self._emit(sink, raw)
        if final and rest:
            self._emit(sink, rest)
            return b""
        return rest

    def _emit(self, sink: LineSink, raw: bytes) -> None:
        sink(self._stream, raw.decode("utf-8", errors="replace").rstrip("\r"))

    def _switch(self, kind: bytes) -> None:
        if kind == b"S" and self._sinks:
            self._sink = self._sinks.popleft()
        elif kind == b"E" and self._ends:
            self._sink = None
            self._ends.popleft().passed.set()


class _Pump(threading.Thread):
    """Reads one pipe for the life of the process into its Demux."""

    def __init__(self, fd: int, demux: Demux, stream: LogStream) -> None:
        super().__init__(name=f"ryax-capture-{stream}", daemon=True)
        self._fd, self._demux = fd, demux

    def run(self) -> None:
        try:
            while chunk := os.read(self._fd, _READ_SIZE):
                self._demux.feed(chunk)
            self._demux.close()
        finally:
            os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _passthrough(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        # Nobody reading the original stream any more must not stop the pump.
        with suppress(OSError):
            _write_all(fd, data)

    return write


class _LineWriter(io.TextIOBase):
    """sys.stdout / sys.stderr during an execution: complete lines go straight to the sink, in
    the writing thread, so prints and logging records keep their relative order."""

    def __init__(self, stream: LogStream, sink: LineSink, fd: int, encoding: str) -> None:
        super().__init__()
        self._stream, self._sink, self._fd = stream, sink, fd
        self._encoding = encoding
        self._pending = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        # Code that hands sys.stdout to a subprocess writes into the captured descriptor.
        return self._fd

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._sink(self._stream, line.rstrip("\r"))
        return len(text)

    def flush(self) -> None:
        """A partial line stays pending until its newline (or the end of the execution)."""

    def finish(self) -> None:
        with self._lock:
            rest, self._pending = self._pending, ""
        if rest:
            self._sink(self._stream, rest.rstrip("\r"))


class CaptureLogHandler(logging.Handler):
    """On the root logger: user records go to the running execution's sink (one Log line per
    text line), or to the wrapper's own log when no execution runs."""

    def __init__(self, fallback: logging.Handler) -> None:
        super().__init__(logging.NOTSET)
        self.sink: LineSink | None = None
        self._fallback = fallback
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_WRAPPER_LOGGERS):
            self._fallback.handle(record)
            return
        sink = self.sink
        if sink is None:
            self._fallback.handle(record)
            return
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a broken record must not break the action
            self.handleError(record)
            return
        for line in text.splitlines() or [""]:
            sink(LogStream.LOG, line)


class _Descriptor:
    """Descriptor 1 or 2 made a pipe for the life of the process."""

    def __init__(self, fd: int, stream: LogStream, token: str) -> None:
        self.fd = fd
        self.original = os.dup(fd)
        read_end, self.write_end = os.pipe()  # the wrapper's own write end: markers
        self.demux = Demux(stream, _passthrough(self.original), token)
        os.dup2(self.write_end, fd)  # inheritable: subprocesses write into the pipe too
        self.pump = _Pump(read_end, self.demux, stream)
        self.pump.start()

    def restore(self) -> None:
        os.dup2(self.original, self.fd)
        os.close(self.write_end)


class FdCapture:
    """The capture of one process: set up at the first execution, switched at each one."""

    def __init__(self, log_handler: CaptureLogHandler) -> None:
        self._log_handler = log_handler
        self._descriptors: list[_Descriptor] = []
        self._lock = threading.Lock()

    def _started(self) -> list[_Descriptor]:
        with self._lock:
            if not self._descriptors:
                token = secrets.token_hex(16)
                made: list[_Descriptor] = []
                try:
                    for fd, stream in ((1, LogStream.STDOUT), (2, LogStream.STDERR)):
                        made.append(_Descriptor(fd, stream, token))
                except OSError:
                    for descriptor in made:
                        descriptor.restore()
                    raise
                self._descriptors = made
                atexit.register(self.close)
            return self._descriptors

    @contextmanager
    def capturing(self, sink: LineSink) -> Iterator[None]:
        _flush_all()
        switched: list[_Descriptor] = []
        python_streams = (sys.stdout, sys.stderr)
        writers: list[_LineWriter] = []
        try:
            for descriptor in self._started():
                # The pipe again, wherever the last execution may have pointed the descriptor.
                os.dup2(descriptor.write_end, descriptor.fd)
                _write_all(descriptor.write_end, descriptor.demux.expect(sink))
                switched.append(descriptor)
            writers = [
                _LineWriter(LogStream.STDOUT, sink, 1, _encoding(sys.stdout)),
                _LineWriter(LogStream.STDERR, sink, 2, _encoding(sys.stderr)),
            ]
            sys.stdout, sys.stderr = (cast(TextIO, w) for w in writers)
            self._log_handler.sink = sink
            yield
        finally:
            self._log_handler.sink = None
            sys.stdout, sys.stderr = python_streams
            for writer in writers:
                writer.finish()
            _flush_all()
            self._end(switched)

    @staticmethod
    def _end(switched: list[_Descriptor]) -> None:
        """Back to passing through, once everything written so far reached the sink."""
        ends = []
        for descriptor in switched:
            marker, end = descriptor.demux.expect_end()
            _write_all(descriptor.write_end, marker)
            ends.append(end)
        for end in ends:
            if not end.passed.wait(DRAIN_TIMEOUT_SECONDS):
                log.warning(
                    "output of the execution still unread at its end: it goes to the step's log",
                    extra={"waited_seconds": DRAIN_TIMEOUT_SECONDS},
                )

    def close(self) -> None:
        """The process ends: descriptors 1 and 2 back to the originals, what is left in the
        pipes passed through (a process the action left may keep a pipe open: not waited for
        longer than DRAIN_TIMEOUT_SECONDS)."""
        with self._lock:
            descriptors, self._descriptors = self._descriptors, []
        _flush_all()
        for descriptor in descriptors:
            descriptor.restore()
        for descriptor in descriptors:
            descriptor.pump.join(DRAIN_TIMEOUT_SECONDS)


def _encoding(stream: TextIO | None) -> str:
    return getattr(stream, "encoding", None) or "utf-8"


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    _libc_fflush()


def setup_process_streams(level: str = "INFO", fmt: str = "text") -> CaptureLogHandler:
    """Once at start: the wrapper's log on a private copy of stderr; line-buffered stdout so an
    action's prints stream live; the root logger feeding the capture."""
    private: TextIO = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    wrapper_handler = logging.StreamHandler(private)
    wrapper_handler.setFormatter(
        JsonFormatter("action-wrapper") if fmt == "json" else TextFormatter()
    )
    own = logging.getLogger("ryax_action_wrapper")
    own.handlers[:] = [wrapper_handler]
    own.setLevel(level.upper())
    own.propagate = False
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    capture_handler = CaptureLogHandler(wrapper_handler)
    root = logging.getLogger()
    root.handlers[:] = [capture_handler]
    # Actions' INFO records are worth keeping in the run's log.
    root.setLevel(logging.INFO)
    return capture_handler
