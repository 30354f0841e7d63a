"""Descriptors made pipes, in this process, on spare descriptors (not 1 and 2): what a switch
reads, what the pump reads, what passes through, and that nothing holds a switch up."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ryax_action_wrapper.domain.model import LogStream
from ryax_action_wrapper.infrastructure import capture
from ryax_action_wrapper.infrastructure.capture import PipedDescriptors


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []
        self._lock = threading.Lock()

    def __call__(self, stream: LogStream, line: str) -> None:
        with self._lock:
            self.lines.append((stream, line))

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return [line for _, line in self.lines]


def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.005)


def read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def read_until(fd: int, size: int, within: float = 5.0) -> bytes:
    data = b""
    deadline = time.monotonic() + within
    while len(data) < size:
        assert time.monotonic() < deadline, f"{len(data)} bytes of {size}: {data[-80:]!r}"
        data += read_available(fd)
        time.sleep(0.005)
    return data


class Captured:
    """A spare descriptor (`fd`) captured; what passes through comes out of `through`."""

    def __init__(self) -> None:
        self.through, self.fd = os.pipe()
        self.pipes = PipedDescriptors(((self.fd, LogStream.STDOUT),))

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self, timeout: float = 2.0) -> None:
        self.pipes.close(timeout)


@pytest.fixture
def captured() -> Iterator[Captured]:
    made = Captured()
    yield made
    made.close()
    read_available(made.through)  # a pump writing to it must not stay blocked
    made.pipes.pump.join(5)
    assert not made.pipes.pump.is_alive()
    os.close(made.through)
    os.close(made.fd)


def test_an_execution_that_writes_nothing_reads_nothing_and_wakes_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts = {"drain": 0, "pump": 0}

    def counting(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            counts[name] += 1
            return original(*args)

        return counted

    monkeypatch.setattr(capture._Pipe, "drain", counting("drain", capture._Pipe.drain))
    monkeypatch.setattr(
        PipedDescriptors, "_pump_once", counting("pump", PipedDescriptors._pump_once)
    )
    made = Captured()
    try:
        eventually(lambda: counts["pump"] == 1)  # waiting for a first byte
        for _ in range(200):
            sink = Recorder()
            made.pipes.start(sink)
            made.pipes.switch(None)
            assert sink.lines == []
        assert counts == {"drain": 0, "pump": 1}
    finally:
        made.close()
        os.close(made.through)
        os.close(made.fd)


def test_what_is_written_just_before_the_end_is_the_executions(captured: Captured) -> None:
    for n in range(200):
        captured.write(f"between {n}\n".encode())
        sink = Recorder()
        captured.pipes.start(sink)
        captured.write(f"line {n}\n".encode())
        captured.write(f"partial {n}".encode())
        captured.pipes.switch(None)
        assert sink.lines == [(LogStream.STDOUT, f"line {n}"), (LogStream.STDOUT, f"partial {n}")]
    expected = b"".join(f"between {n}\n".encode() for n in range(200))
    assert read_until(captured.through, len(expected)) == expected


def test_lines_reach_the_sink_while_the_execution_runs(captured: Captured) -> None:
    sink = Recorder()
    captured.pipes.start(sink)
    captured.write(b"first\nsecond\nin progr")
    eventually(lambda: sink.texts == ["first", "second"])
    captured.write(b"ess\n")
    eventually(lambda: sink.texts == ["first", "second", "in progress"])
    captured.pipes.switch(None)
    assert sink.texts == ["first", "second", "in progress"]


def test_a_writer_that_keeps_writing_holds_no_switch_up() -> None:
    """A sink that writes a line back for every line it gets: the pipe is never empty."""
    made = Captured()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, made.through)  # what passes through is not read by the test
    os.close(devnull)
    echoes = {"count": 0}

    def echoing(stream: LogStream, line: str) -> None:
        echoes["count"] += 1
        os.write(made.fd, b"again\n")

    try:
        for _ in range(5):
            made.pipes.start(echoing)
            made.write(b"go\n")
            eventually(lambda: echoes["count"] > 10_000)
            began = time.monotonic()
            made.pipes.switch(None)
            assert time.monotonic() - began < 1.0  # about 20 ms: not behind the pump's reads
            echoes["count"] = 0
    finally:
        made.close()
        made.pipes.pump.join(5)
        assert not made.pipes.pump.is_alive()
        os.close(made.through)
        os.close(made.fd)


def test_an_original_stream_nobody_reads_holds_no_execution_up() -> None:
    made = Captured()
    try:
        made.write(b"x" * 100_000)  # more than the original's pipe holds: the pump blocks on it
        eventually(lambda: not made.pipes.lock.locked())
        sink = Recorder()
        began = time.monotonic()
        made.pipes.start(sink)
        made.write(b"mine\n")
        made.pipes.switch(None)
        assert time.monotonic() - began < 2.0
        assert sink.texts == ["mine"]
        made.close(timeout=0.1)
        assert read_until(made.through, 100_000) == b"x" * 100_000
        made.pipes.pump.join(5)
        assert not made.pipes.pump.is_alive()
    finally:
        os.close(made.through)
        os.close(made.fd)


def test_close_passes_through_what_is_left_and_waits_for_a_lingering_writer_only_so_long(
    captured: Captured,
) -> None:
    lingering = os.dup(captured.fd)  # as a subprocess the action left running holds it
    captured.write(b"before close\n")
    began = time.monotonic()
    captured.close(timeout=0.3)
    assert 0.25 < time.monotonic() - began < 2.0
    assert captured.pipes.pump.is_alive()
    os.write(lingering, b"after close\n")
    os.close(lingering)
    captured.pipes.pump.join(5)
    assert not captured.pipes.pump.is_alive()
    assert read_available(captured.through) == b"before close\nafter close\n"
    os.write(captured.fd, b"the descriptor is the original again\n")
    assert read_available(captured.through) == b"the descriptor is the original again\n"
