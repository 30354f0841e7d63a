"""Session on a plain Unix socket: ActionService's Session without gRPC's machinery.

The same RunRequest and RunReply messages as the Session call, each sent as a 4-byte big-endian
length and then its bytes, on `PATH.session` next to the gRPC socket `PATH`. A connection is a
Session call: requests one after the other, each answered by its Log and Progress replies and
its Result last; closing the connection stops the execution in progress, as cancelling the call
does. InitReply.session_socket tells the worker it may connect (see action_service.proto).

Why: grpc.aio hands every message from its event-engine threads to a poller thread and then to
the event loop; for a no-op execution that was most of the wrapper's CPU (about 20 thread
switches per execution). Here a message is read and written by the event loop itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import AsyncIterator, Callable

from google.protobuf.message import DecodeError

from ...application.runtime import ActionRuntime
from ...domain.model import ActionKind
from ..proto import action_service_pb2 as pb

log = logging.getLogger(__name__)
HEADER = struct.Struct(">I")
SUFFIX = ".session"


def session_socket_path(address: str) -> str | None:
    """Where the session socket of a wrapper served on `address` is (None: not a Unix one)."""
    if not address.startswith("unix:") or address.startswith("unix:@"):
        return None
    return address.removeprefix("unix:").removeprefix("//") + SUFFIX


def frame(message: bytes) -> bytes:
    return HEADER.pack(len(message)) + message


class SessionSocket:
    """Serves Session on a Unix socket; connections are accepted once Init succeeded for a
    processor or a publisher (refused, closed at once, before)."""

    def __init__(
        self,
        runtime: ActionRuntime,
        execute: Callable[[pb.RunRequest], AsyncIterator[pb.RunReply]],
        path: str,
        max_bytes: int,
    ) -> None:
        self._runtime = runtime
        #: The replies of one execution (ActionServicer.execute).
        self._execute = execute
        self.path = path
        self._max_bytes = max_bytes
        self._server: asyncio.AbstractServer | None = None
        #: Each connection's task, and whether an execution is in progress on it.
        self._connections: dict[asyncio.Task[None], bool] = {}
        self._stopping = False

    @property
    def open(self) -> bool:
        """True when a connection would be served: the action is loaded and not a trigger."""
        config = self._runtime.config
        return (
            self._server is not None
            and self._runtime.ready
            and config is not None
            and config.kind is not ActionKind.TRIGGER
        )

    async def start(self) -> None:
        # A Unix socket path holds at most 107 bytes; too long, the gRPC socket alone serves.
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        except OSError as error:
            log.warning(
                "no session socket: the Session call only",
                extra={"path": self.path, "error": str(error)},
            )

    async def stop(self, grace: float) -> None:
        """Stop accepting; an execution in progress gets `grace` seconds to end, then it is
        cancelled; idle connections are closed at once."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        for task, executing in self._connections.items():
            if not executing:
                task.cancel()
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if not self.open or self._stopping:
            writer.close()
            return
        self._connections[task] = False
        requests: asyncio.Queue[pb.RunRequest] = asyncio.Queue()
        reading = asyncio.create_task(self._read(reader, requests, task))
        try:
            while not self._stopping:
                request = await requests.get()
                self._connections[task] = True
                async for reply in self._execute(request):
                    writer.write(frame(reply.SerializeToString()))
                    await writer.drain()
                self._connections[task] = False
        except (asyncio.CancelledError, ConnectionError):
            pass  # closed by the worker (what ran is cancelled) or by stop()
        finally:
            del self._connections[task]
            reading.cancel()
            writer.close()

    async def _read(
        self,
        reader: asyncio.StreamReader,
        requests: asyncio.Queue[pb.RunRequest],
        connection: asyncio.Task[None],
    ) -> None:
        """Queue the requests as they come; at the end of the connection, or at a message that
        is not one, stop the connection (and so what runs on it)."""
        try:
            while True:
                (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                if size > self._max_bytes:
                    log.warning(
                        "session socket: a message over the size limit; connection closed",
                        extra={"bytes": size, "limit": self._max_bytes},
                    )
                    break
                requests.put_nowait(pb.RunRequest.FromString(await reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker closed the connection
        except DecodeError as error:
            log.warning(
                "session socket: not a RunRequest; connection closed", extra={"error": str(error)}
            )
        connection.cancel()
