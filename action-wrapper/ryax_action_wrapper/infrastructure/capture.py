"""Capture an execution's output: file descriptors 1 and 2 (print, C extensions, subprocesses)
and `logging` records, line by line, into the execution's sink.

The wrapper's own log goes to a copy of the original stderr taken at start, so it is never
mixed into an action's log.
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO, cast

from ..application.ports import LineSink
from ..domain.model import LogStream
from .logging import JsonFormatter, TextFormatter

#: How long the end of an execution waits for output still in the pipes (a process the action
#: started in the background may keep them open forever).
DRAIN_TIMEOUT_SECONDS = 2.0
_WRAPPER_LOGGERS = ("ryax_action_wrapper", "grpc", "asyncio")


_LIBC: list[ctypes.CDLL] = []


def _libc_fflush() -> None:
    """C stdio's buffers out (a C extension's printf) before the descriptors move; the C
    library is loaded once (loading it per execution showed in the hop-path profile)."""
    with suppress(OSError, AttributeError):
        if not _LIBC:
            _LIBC.append(ctypes.CDLL(None))
        _LIBC[0].fflush(None)


class _Pump(threading.Thread):
    """Reads one pipe to its end and hands complete lines to the sink."""

    def __init__(self, fd: int, stream: LogStream, sink: LineSink) -> None:
        super().__init__(name=f"ryax-capture-{stream}", daemon=True)
        self._fd, self._stream, self._sink = fd, stream, sink

    def run(self) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._emit(raw)
            if pending:
                self._emit(pending)
        finally:
            os.close(self._fd)

    def _emit(self, raw: bytes) -> None:
        self._sink(self._stream, raw.decode("utf-8", errors="replace").rstrip("\r"))


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
    def __init__(self, log_handler: CaptureLogHandler) -> None:
        self._log_handler = log_handler

    @contextmanager
    def capturing(self, sink: LineSink) -> Iterator[None]:
        _flush_all()
        pumps: list[_Pump] = []
        saved: list[tuple[int, int]] = []
        writers: list[_LineWriter] = []
        python_streams = (sys.stdout, sys.stderr)
        try:
            for fd, stream in ((1, LogStream.STDOUT), (2, LogStream.STDERR)):
                read_end, write_end = os.pipe()
                saved.append((fd, os.dup(fd)))
                os.dup2(write_end, fd)  # inheritable: subprocesses write into the pipe too
                os.close(write_end)
                pump = _Pump(read_end, stream, sink)
                pump.start()
                pumps.append(pump)
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
            # Restoring 1 and 2 closes the last write ends: the pumps read to EOF and stop.
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            for pump in pumps:
                pump.join(DRAIN_TIMEOUT_SECONDS)


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
