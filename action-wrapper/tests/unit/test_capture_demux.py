"""The demultiplexing of a captured pipe: markers switch it between an execution's sink and
passing through, wherever the reads cut the bytes."""

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
    return Demux(LogStream.STDOUT, passed.append, "t0k3n"), passed


def feed_in_pieces(demux: Demux, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        demux.feed(data[start : start + size])


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 1000])
def test_each_execution_gets_its_own_lines_wherever_the_reads_cut(size: int) -> None:
    demux, passed = make()
    first, second = Recorder(), Recorder()
    stream = b"before\n"
    stream += demux.expect(first) + b"one\ntwo\nno newline"
    end_one, passed_one = demux.expect_end()
    stream += end_one + b"between, partial"
    stream += demux.expect(second) + b"three\n\r\nfour\r\n"
    end_two, passed_two = demux.expect_end()
    stream += end_two + b"after\n"

    feed_in_pieces(demux, stream, size)

    assert first.lines == [(LogStream.STDOUT, t) for t in ("one", "two", "no newline")]
    assert second.texts == ["three", "", "four"]
    assert b"".join(passed) == b"before\nbetween, partialafter\n"
    assert passed_one.passed.is_set() and passed_two.passed.is_set()


def test_an_end_not_read_yet_is_not_passed() -> None:
    demux, _ = make()
    sink = Recorder()
    start = demux.expect(sink)
    end, ended = demux.expect_end()
    demux.feed(start + b"line\n" + end[:-1])
    assert sink.texts == ["line"]
    assert not ended.passed.is_set()
    demux.feed(end[-1:])
    assert ended.passed.is_set()


def test_nul_bytes_and_lookalikes_of_the_marker_are_output() -> None:
    demux, passed = make()
    sink = Recorder()
    lookalike = b"\x00ryax-capture-other:E\n"
    demux.feed(b"\x00" + demux.expect(sink) + b"a\x00b\n" + lookalike + b"\x00ryax-cap")
    end, ended = demux.expect_end()
    demux.feed(end + b"\x00")
    demux.close()
    assert passed == [b"\x00", b"\x00"]
    assert sink.texts == ["a\x00b", lookalike[:-1].decode(), "\x00ryax-cap"]
    assert ended.passed.is_set()


def test_a_line_is_decoded_whole_even_split_inside_a_character() -> None:
    demux, _ = make()
    sink = Recorder()
    data = demux.expect(sink) + "héllo wörld\n".encode() + b"\xff\n"
    feed_in_pieces(demux, data, 1)
    assert sink.texts == ["héllo wörld", "\ufffd"]


def test_the_end_of_the_pipe_flushes_what_is_held() -> None:
    demux, passed = make()
    demux.feed(b"tail\x00ryax-")
    demux.close()
    assert b"".join(passed) == b"tail\x00ryax-"
