"""Capture an execution's output: file descriptors 1 and 2 (print, C extensions, subprocesses)
and `logging` records, line by line, into the execution's sink.

Descriptors 1 and 2 become pipes once per process, their read ends non-blocking. One pump
thread, for the life of the process, waits (poll) until a pipe holds something, then reads it
under the capture's lock into that pipe's Demux: while an execution runs, its complete lines go
to the execution's sink as they come (a long execution streams live); between executions the
bytes go through to the process's original stdout and stderr, as if nothing were captured (the
worker reports them as the step's own log lines, tied to no execution: a background thread, or
a process the action left running, writing after its execution ended).

An execution's start and its end switch the Demuxes in the thread running the execution: after
flushing Python's streams and C stdio, it takes the same lock, reads itself whatever the pipes
still hold, and switches while holding it. Every read happens under the lock, so a pipe found
empty with the lock held means that everything written to it before is already fed: what was
written before an execution started is not its, what it wrote before it ended is (its last line
without a newline too), whoever wrote it (the action's threads, C code, a subprocess). An
execution that writes nothing costs one poll at each switch: no read, no thread woken, nothing
waited for. A switch reads at most what a pipe can hold (plus one read), so a process that keeps
writing cannot keep it reading; the pump gives the lock back as often, and lets a switch waiting
for it go first.

What is passed through is written by the pump alone, after it gave the lock back: an original
stdout slow to be read never holds up an execution's start or end.

The wrapper's own log goes to a copy of the original stderr taken at start, so it is never
mixed into an action's log.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import io
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import TextIO, cast

from ..application.ports import LineSink
from ..domain.model import LogStream
from .logging import JsonFormatter, TextFormatter

#: How long the end of the process waits for the pipes to be closed by every writer (a process
#: the action left running may hold them open).
CLOSE_TIMEOUT_SECONDS = 2.0
_WRAPPER_LOGGERS = ("ryax_action_wrapper", "grpc", "asyncio")
_READ_SIZE = 65536
#: How long the pump, giving the lock back, waits at most for a waiting switch to take it.
_YIELD_SECONDS = 0.5

log = logging.getLogger(__name__)

_LIBC: list[ctypes.CDLL] = []


def _libc_fflush() -> None:
    """C stdio's buffers out (a C extension's printf) before the sink changes; the C library is
    loaded once (loading it per execution showed in the hop-path profile)."""
    with suppress(OSError, AttributeError):
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None))
        _LIBC[0].fflush(None)


class Demux:
    """The bytes of one pipe: while a sink is set, its complete lines go to the sink as they
    come, and the line in progress when the sink changes as its last line; while none is, the
    bytes go through to `passthrough` as they come. Not thread-safe: the capture's lock."""

    def __init__(self, stream: LogStream, passthrough: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._passthrough = passthrough
        self._sink: LineSink | None = None
        self._partial: list[bytes] = []  # the sink's line in progress, in pieces

    def feed(self, chunk: bytes) -> None:
        """Bytes read from the pipe."""
        sink = self._sink
        if sink is None:
            self._passthrough(chunk)
            return
        last = chunk.rfind(b"\n")
        if last < 0:
            self._partial.append(chunk)
            return
        complete = chunk[:last]
        if self._partial:
            self._partial.append(complete)
            complete = b"".join(self._partial)
            self._partial = []
        for raw in complete.split(b"\n"):
            self._emit(sink, raw)
        if last + 1 < len(chunk):
            self._partial.append(chunk[last + 1 :])

    def switch(self, sink: LineSink | None) -> None:
        """From now on to `sink` (None: through); the line in progress ends first."""
        self._end_line()
        self._sink = sink

    def close(self) -> None:
        """End of the pipe: the line in progress ends."""
        self._end_line()

    def _end_line(self) -> None:
        if self._partial and self._sink is not None:
            self._emit(self._sink, b"".join(self._partial))
        self._partial = []

    def _emit(self, sink: LineSink, raw: bytes) -> None:
        sink(self._stream, raw.decode("utf-8", errors="replace").rstrip("\r"))


def _pipe_size(fd: int) -> int:
    try:
        return max(fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ), _READ_SIZE)
    except (OSError, AttributeError):  # not Linux: the default size of a Linux pipe
        return _READ_SIZE


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Pipe:
    """Descriptor 1 or 2 made a pipe for the life of the process; its read end non-blocking."""

    def __init__(self, fd: int, stream: LogStream) -> None:
        self.fd = fd
        self.original = os.dup(fd)
        self.read_end, self.write_end = os.pipe()  # the wrapper's own write end: fd again
        os.set_blocking(self.read_end, False)
        self.outgoing = bytearray()  # passed through, for the pump to write to `original`
        self.demux = Demux(stream, self.outgoing.extend)
        self.at_eof = False
        os.dup2(self.write_end, fd)  # inheritable: subprocesses write into the pipe too

    def drain(self) -> None:
        """What the pipe holds, into the demux (the lock held): until it is empty, or once as
        much as it can hold was read; everything written before the call is read either way, and
        a writer that keeps writing does not keep the caller here."""
        budget = _pipe_size(self.read_end)  # a writer may have resized it
        while budget > 0 and not self.at_eof:
            try:
                chunk = os.read(self.read_end, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # the action closed the wrapper's descriptor: nothing more to read
                chunk = b""
            if not chunk:
                self.at_eof = True
                self.demux.close()
                return
            self.demux.feed(chunk)
            budget -= len(chunk)

    def take_outgoing(self) -> bytes:
        data = bytes(self.outgoing)
        self.outgoing.clear()
        return data

    def restore(self) -> None:
        os.dup2(self.original, self.fd)
        os.close(self.write_end)


#: The descriptors a process's output is captured from.
STANDARD_DESCRIPTORS = ((1, LogStream.STDOUT), (2, LogStream.STDERR))


class PipedDescriptors:
    """Descriptors (1 and 2) made pipes, and the one pump thread reading them."""

    def __init__(self, descriptors: Sequence[tuple[int, LogStream]] = STANDARD_DESCRIPTORS) -> None:
        self.lock = threading.Lock()
        self._pid = os.getpid()
        self._wake_read, self._wake_write = os.pipe()  # passed-through bytes for the pump
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        made: list[_Pipe] = []
        try:
            for fd, stream in descriptors:
                made.append(_Pipe(fd, stream))
        except OSError:
            for pipe in made:
                pipe.restore()
            raise
        self.pipes = made
        self._open = {pipe.read_end: pipe for pipe in made}  # until their end (the lock held)
        # Which pipes hold something, for the switches (used only with the lock held).
        self._probe = select.poll()
        for pipe in made:
            self._probe.register(pipe.read_end, select.POLLIN)
        self._stopped = False
        self._closed = False
        self._switch_waits = False  # a switch waits for the lock the pump holds
        self.pump = threading.Thread(target=self._pump, name="ryax-capture", daemon=True)
        self.pump.start()

    def start(self, sink: LineSink) -> None:
        """An execution starts: what was written so far is not its; then its sink."""
        for pipe in self.pipes:
            # The pipe again, wherever the last execution may have pointed the descriptor.
            os.dup2(pipe.write_end, pipe.fd)
        self.switch(sink)

    def switch(self, sink: LineSink | None) -> None:
        """Everything written to the pipes so far fed to the demuxes, then `sink` for what comes
        next (None: through to the original streams)."""
        self._take_lock()
        try:
            self._drain_ready()
            for pipe in self.pipes:
                pipe.demux.switch(sink)
            self._wake_pump()
        finally:
            self.lock.release()

    def close(self, timeout: float) -> None:
        """Descriptors 1 and 2 back to the originals, what was written until now passed
        through; the pump ends when every writer closed the pipes (at most `timeout` waited)."""
        if os.getpid() != self._pid:
            return  # a child the action forked, ending: the pipes and their lock are its parent's
        self._take_lock()
        try:
            if self._closed:
                return
            self._closed = True
            for pipe in self.pipes:
                pipe.restore()
            self._drain_ready()
            for pipe in self.pipes:
                pipe.demux.switch(None)
            self._wake_pump()
        finally:
            self.lock.release()
        self.pump.join(timeout)

    def _take_lock(self) -> None:
        """The lock, for a switch: when the pump holds it, the switch goes before the pump takes
        it again (a lock is not fair: the pump, reading a process that keeps writing, could
        take it again and again first)."""
        if not self.lock.acquire(blocking=False):
            self._switch_waits = True
            self.lock.acquire()
            self._switch_waits = False

    def _let_the_switch_go(self) -> None:
        """In the pump, the lock given back: until a waiting switch has it (bounded)."""
        deadline = time.monotonic() + _YIELD_SECONDS
        while self._switch_waits and time.monotonic() < deadline:
            time.sleep(0.0002)

    def _drain_ready(self) -> None:
        # With nothing written, one poll and no read.
        for fd, _ in self._probe.poll(0):
            pipe = self._open.get(fd)
            if pipe is not None:
                pipe.drain()

    def _wake_pump(self) -> None:
        """For bytes a switch passed through: the pump writes them (the lock held)."""
        if not self._stopped and any(pipe.outgoing for pipe in self.pipes):
            with suppress(BlockingIOError):  # full: the pump has a wake-up coming anyway
                os.write(self._wake_write, b"\0")

    def _pump(self) -> None:
        """Until every pipe ended: wait until one holds something, read it (the lock held),
        write what passes through (the lock given back)."""
        poller = select.poll()
        for pipe in self.pipes:
            poller.register(pipe.read_end, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        done = False
        try:
            while not done:
                try:
                    done = self._pump_once(poller)
                except Exception:  # a dead pump would leave the action blocked on a full pipe
                    log.exception("the output capture failed to read its pipes")
                    time.sleep(0.1)
        finally:
            with self.lock:
                self._stopped = True
                os.close(self._wake_read)
                os.close(self._wake_write)

    def _pump_once(self, poller: select.poll) -> bool:
        ready = poller.poll()
        with self.lock:
            for fd, _ in ready:
                if fd == self._wake_read:
                    with suppress(BlockingIOError):
                        while os.read(fd, _READ_SIZE):
                            pass
                    continue
                pipe = self._open.get(fd)
                if pipe is None:
                    continue
                pipe.drain()
                if pipe.at_eof:
                    poller.unregister(fd)
                    self._probe.unregister(fd)
                    del self._open[fd]
                    os.close(fd)
            outgoing = [(pipe.original, pipe.take_outgoing()) for pipe in self.pipes]
            done = not self._open
        if self._switch_waits:
            self._let_the_switch_go()
        for fd, data in outgoing:
            if data:
                # Nobody reading the original stream any more must not stop the pump.
                with suppress(OSError):
                    _write_all(fd, data)
        return done


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


class FdCapture:
    """The capture of one process: set up at the first execution, switched at each one."""

    def __init__(self, log_handler: CaptureLogHandler) -> None:
        self._log_handler = log_handler
        self._pipes: PipedDescriptors | None = None
        self._lock = threading.Lock()

    def _started(self) -> PipedDescriptors:
        with self._lock:
            if self._pipes is None:
                self._pipes = PipedDescriptors()
                atexit.register(self.close)
            return self._pipes

    @contextmanager
    def capturing(self, sink: LineSink) -> Iterator[None]:
        _flush_all()
        pipes = self._started()
        python_streams = (sys.stdout, sys.stderr)
        writers: list[_LineWriter] = []
        try:
            pipes.start(sink)
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
            # Back to passing through, once everything written so far reached the sink.
            pipes.switch(None)

    def close(self) -> None:
        """The process ends: descriptors 1 and 2 back to the originals, what is left in the
        pipes passed through (a process the action left may keep a pipe open: not waited for
        longer than CLOSE_TIMEOUT_SECONDS)."""
        with self._lock:
            pipes, self._pipes = self._pipes, None
        if pipes is None:
            return
        _flush_all()
        pipes.close(CLOSE_TIMEOUT_SECONDS)


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
