"""The demultiplexing of a captured pipe: switched between an execution's sink (line by line)
and passing through, wherever the reads cut the bytes."""

from __future__ import annotations

import pytest

from ryax_action_wrapper.domain.model import LogStream
from ryax_action_wrapper.infrastructure.capture import Demux


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[LogStream, str]] = []

    def __call__(self, stream: LogStream, line: str) -> None:
        self.lines.append((stream, line))

    @property
    def texts(self) -> list[str]:
        return [line for _, line in self.lines]


def make() -> tuple[Demux, list[bytes]]:
    passed: list[bytes] = []
    return Demux(LogStream.STDOUT, passed.append), passed


def feed_in_pieces(demux: Demux, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        demux.feed(data[start : start + size])


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 1000])
def test_each_execution_gets_its_own_lines_wherever_the_reads_cut(size: int) -> None:
    demux, passed = make()
    first, second = Recorder(), Recorder()
    feed_in_pieces(demux, b"before\n", size)
    demux.switch(first)
    feed_in_pieces(demux, b"one\ntwo\nno newline", size)
    demux.switch(None)
    feed_in_pieces(demux, b"between, partial", size)
    demux.switch(second)
    feed_in_pieces(demux, b"three\n\r\nfour\r\n", size)
    demux.switch(None)
    feed_in_pieces(demux, b"after\n", size)

    assert first.lines == [(LogStream.STDOUT, t) for t in ("one", "two", "no newline")]
    assert second.texts == ["three", "", "four"]
    assert b"".join(passed) == b"before\nbetween, partialafter\n"


def test_complete_lines_reach_the_sink_at_once_the_line_in_progress_at_the_switch() -> None:
    demux, _ = make()
    sink = Recorder()
    demux.switch(sink)
    demux.feed(b"first\nsec")
    assert sink.texts == ["first"]
    demux.feed(b"ond\nthi")
    assert sink.texts == ["first", "second"]
    demux.feed(b"rd")
    assert sink.texts == ["first", "second"]
    demux.switch(None)
    assert sink.texts == ["first", "second", "third"]


def test_passing_through_holds_nothing_back() -> None:
    demux, passed = make()
    demux.feed(b"no newline")
    assert passed == [b"no newline"]


def test_nul_bytes_are_output() -> None:
    demux, passed = make()
    sink = Recorder()
    demux.feed(b"\x00")
    demux.switch(sink)
    demux.feed(b"a\x00b\n\x00")
    demux.switch(None)
    assert passed == [b"\x00"]
    assert sink.texts == ["a\x00b", "\x00"]


def test_a_line_is_decoded_whole_even_split_inside_a_character() -> None:
    demux, _ = make()
    sink = Recorder()
    demux.switch(sink)
    feed_in_pieces(demux, "héllo wörld\n".encode() + b"\xff\n", 1)
    assert sink.texts == ["héllo wörld", "\ufffd"]


def test_the_end_of_the_pipe_ends_the_line_in_progress() -> None:
    demux, _ = make()
    sink = Recorder()
    demux.switch(sink)
    demux.feed(b"tail")
    demux.close()
    assert sink.texts == ["tail"]
    demux.switch(None)
    assert sink.texts == ["tail"]
