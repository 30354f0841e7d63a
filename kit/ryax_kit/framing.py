"""Messages on a byte stream (a Unix socket): each travels as a 4-byte big-endian length, then
its bytes. The runner's socket for the worker on its machine speaks it
(docs/runner-worker-protocol.md "The local socket"), as does the action wrapper's session
socket.

    await write_frame(writer, message.SerializeToString())
    payload = await read_frame(reader, limit=16 * 1024 * 1024)  # None: closed between two
"""

from __future__ import annotations

import asyncio
import struct

HEADER = struct.Struct(">I")
#: Bytes waiting to be sent above which write_frame waits for the peer to read (flow control).
HIGH_WATER_BYTES = 1024 * 1024


class FrameError(Exception):
    """The peer broke the framing: a message over the limit, or the stream cut inside one."""


def frame(payload: bytes) -> bytes:
    """`payload` with its length in front."""
    return HEADER.pack(len(payload)) + payload


async def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Send one message; wait for the peer to read only when more than HIGH_WATER_BYTES are
    waiting to be sent (a drain after every message costs a coroutine each, for nothing while
    the peer keeps up). OSError when the connection is gone."""
    writer.write(frame(payload))
    if writer.transport.get_write_buffer_size() > HIGH_WATER_BYTES:
        await writer.drain()


async def read_frame(reader: asyncio.StreamReader, limit: int) -> bytes | None:
    """The next message's bytes; None when the peer closed the stream between two messages.
    FrameError for one longer than `limit` bytes (nothing of it is read) or cut short."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError(
            f"the stream ended inside a message's length ({len(exc.partial)} of 4 bytes)"
        ) from None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise FrameError(f"a message of {size} bytes (at most {limit})")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameError(
            f"the stream ended inside a message ({len(exc.partial)} of {size} bytes)"
        ) from None
