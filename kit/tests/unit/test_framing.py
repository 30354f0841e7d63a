"""Length-prefixed messages on a byte stream (ryax_kit.framing)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from ryax_kit.framing import HEADER, HIGH_WATER_BYTES, FrameError, frame, read_frame, write_frame


def stream(*chunks: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


async def test_messages_come_back_whole_and_in_order_then_none_at_the_end() -> None:
    data = frame(b"first") + frame(b"") + frame(b"x" * 70_000)
    # Split anywhere: a message may arrive in pieces.
    reader = stream(data[:3], data[3:9], data[9:])
    assert await read_frame(reader, 1 << 20) == b"first"
    assert await read_frame(reader, 1 << 20) == b""
    assert await read_frame(reader, 1 << 20) == b"x" * 70_000
    assert await read_frame(reader, 1 << 20) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (HEADER.pack(101) + b"x" * 101, "a message of 101 bytes (at most 100)"),
        (b"\x00\x00", "the stream ended inside a message's length (2 of 4 bytes)"),
        (HEADER.pack(10) + b"abc", "the stream ended inside a message (3 of 10 bytes)"),
    ],
)
async def test_a_broken_frame_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(FrameError) as error:
        await read_frame(stream(data), 100)
    assert str(error.value) == message


async def test_a_message_over_the_limit_is_refused_before_it_is_read() -> None:
    reader = stream(HEADER.pack(1 << 30), eof=False)  # nothing of its body ever comes
    with pytest.raises(FrameError, match="1073741824 bytes"):
        await asyncio.wait_for(read_frame(reader, 1 << 20), 1)


async def test_write_frame_sends_what_read_frame_reads_and_waits_for_a_slow_reader() -> None:
    left, right = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=left)
    peer_reader, peer_writer = await asyncio.open_connection(sock=right)
    big = b"y" * (3 * HIGH_WATER_BYTES)  # more than the buffer may hold: waits for the peer
    sending = asyncio.create_task(write_frame(writer, big))
    await asyncio.sleep(0.05)
    assert not sending.done()  # held until the peer reads
    assert await read_frame(peer_reader, 1 << 30) == big
    await asyncio.wait_for(sending, 5)
    await write_frame(writer, b"small")  # under the mark: no wait
    assert await read_frame(peer_reader, 100) == b"small"
    writer.close()
    peer_writer.close()
