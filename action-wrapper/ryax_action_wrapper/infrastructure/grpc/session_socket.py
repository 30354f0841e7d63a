"""Session on a plain Unix socket: ActionService's Session without gRPC's machinery.

The same RunRequest and RunReply messages as the Session call, each sent as a 4-byte big-endian
length and then its bytes, on `PATH.session` next to the gRPC socket `PATH`. A connection is a
Session call: requests one after the other, each answered by its Log and Progress replies and
its Result last; closing the connection stops the execution in progress, as cancelling the call
does (a sync handler's ends once it returned: it cannot be interrupted). InitReply.session_socket
tells the worker it may connect (see action_service.proto).

Why: grpc.aio hands every message from its event-engine threads to a poller thread and then to
the event loop; for a no-op execution that was most of the wrapper's CPU (about 20 thread
switches per execution). Here a message is read and written by the event loop itself, or, for
a sync handler, the connection is served by a thread of its own that reads a request, runs the
handler and writes the replies itself: no event-loop round trip and no hop to an executor
thread per execution (ActionRuntime.execute_blocking).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
import threading
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
    processor or a publisher (refused, closed at once, before). A sync handler's connection is
    served by a thread of its own, an async handler's on the event loop."""

    def __init__(
        self,
        runtime: ActionRuntime,
        execute: Callable[[pb.RunRequest], AsyncIterator[pb.RunReply]],
        execute_blocking: Callable[
            [pb.RunRequest, Callable[[pb.RunReply], None], asyncio.AbstractEventLoop], None
        ],
        path: str,
        max_bytes: int,
    ) -> None:
        self._runtime = runtime
        #: The replies of one execution (ActionServicer.execute, .execute_blocking).
        self._execute = execute
        self._execute_blocking = execute_blocking
        self.path = path
        self._max_bytes = max_bytes
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        #: Each connection served on the loop (its task), and each served by a thread (its
        #: socket); with whether an execution is in progress on it.
        self._connections: dict[asyncio.Task[None], bool] = {}
        self._threads: dict[socket.socket, bool] = {}
        self._threads_lock = threading.Lock()
        self._threads_done = threading.Condition(self._threads_lock)
        self._stopping = False

    @property
    def open(self) -> bool:
        """True when a connection would be served: the action is loaded and not a trigger."""
        config = self._runtime.config
        return (
            self._listener is not None
            and self._runtime.ready
            and config is not None
            and config.kind is not ActionKind.TRIGGER
        )

    async def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(self.path).st_mode):
                    os.unlink(self.path)  # left by a process that died
            # A Unix socket path holds at most 107 bytes; too long, the gRPC socket alone serves.
            listener.bind(self.path)
            listener.listen(8)
            listener.setblocking(False)
        except OSError as error:
            listener.close()
            log.warning(
                "no session socket: the Session call only",
                extra={"path": self.path, "error": str(error)},
            )
            return
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept(listener))

    async def stop(self, grace: float) -> None:
        """Stop accepting; an execution in progress gets `grace` seconds to end, then it is
        cancelled (a sync handler cannot be: its connection is closed once it returned); idle
        connections are closed at once."""
        self._stopping = True
        if self._accepting is not None:
            self._accepting.cancel()
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        for task, executing in self._connections.items():
            if not executing:
                task.cancel()
        self._shut_threads(idle_only=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._connections:
            _, late = await asyncio.wait(list(self._connections), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
        await asyncio.to_thread(self._wait_threads, max(deadline - loop.time(), 0.0))
        self._shut_threads(idle_only=False)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as error:
                log.warning("session socket: accept failed", extra={"error": str(error)})
                await asyncio.sleep(0.1)
                continue
            if not self.open or self._stopping:
                connection.close()
            elif self._runtime.runs_in_thread:
                connection.setblocking(True)
                with self._threads_lock:
                    self._threads[connection] = False
                threading.Thread(
                    target=self._serve_in_thread,
                    args=(connection, loop),
                    name="ryax-session",
                    daemon=True,
                ).start()
            else:
                task = asyncio.create_task(self._serve(connection))
                self._connections[task] = False

    # -- on the event loop (async handlers) ---------------------------------------------------

    async def _serve(self, connection: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=connection)
        except OSError:
            connection.close()
            del self._connections[task]
            return
        requests: asyncio.Queue[pb.RunRequest] = asyncio.Queue()
        reading = asyncio.create_task(self._read(reader, requests, task))
        try:
            # Ends when the worker closes the connection (what runs is cancelled) or by stop().
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                while not self._stopping:
                    request = await requests.get()
                    self._connections[task] = True
                    async for reply in self._execute(request):
                        writer.write(frame(reply.SerializeToString()))
                        await writer.drain()
                    self._connections[task] = False
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
        # The worker closed the connection, or sent what is not a request (logged).
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, _BadMessage):
            while True:
                size = self._size(await reader.readexactly(HEADER.size))
                request = _parsed(await reader.readexactly(size))
                assert request is not None
                requests.put_nowait(request)
        connection.cancel()

    # -- in a thread (sync handlers) ------------------------------------------------------------

    def _serve_in_thread(self, connection: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        """Requests read, handlers run and replies written by this thread. A connection closed
        by the worker during an execution ends once the handler returned (a sync handler
        cannot be interrupted, as on the other paths)."""
        broken = False

        def send(reply: pb.RunReply) -> None:
            nonlocal broken
            if broken:
                return
            try:
                connection.sendall(frame(reply.SerializeToString()), socket.MSG_NOSIGNAL)
            except OSError:
                broken = True  # the worker is gone: the execution goes on unheard

        try:
            while not self._stopping and not broken:
                request = self._receive(connection)
                if request is None:
                    return
                self._mark(connection, executing=True)
                try:
                    self._execute_blocking(request, send, loop)
                finally:
                    self._mark(connection, executing=False)
        except Exception:
            log.exception("session socket: the connection's thread failed")
        finally:
            with self._threads_lock:
                del self._threads[connection]
                self._threads_done.notify_all()
            connection.close()

    def _receive(self, connection: socket.socket) -> pb.RunRequest | None:
        """The next request (None: the connection ended, or sent something that is not one)."""
        try:
            header = _receive_exactly(connection, HEADER.size)
            if header is None:
                return None
            return _parsed(_receive_exactly(connection, self._size(header)))
        except _BadMessage:
            return None
        except OSError:
            return None

    def _mark(self, connection: socket.socket, *, executing: bool) -> None:
        with self._threads_lock:
            self._threads[connection] = executing

    def _shut_threads(self, *, idle_only: bool) -> None:
        """End the connections served by threads: a thread waiting for a request wakes up to
        the end of its connection."""
        with self._threads_lock:
            for connection, executing in self._threads.items():
                if idle_only and executing:
                    continue
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _wait_threads(self, seconds: float) -> None:
        with self._threads_lock:
            self._threads_done.wait_for(lambda: not any(self._threads.values()), timeout=seconds)

    # -- framing ----------------------------------------------------------------------------------

    def _size(self, header: bytes) -> int:
        """The size of the message `header` announces; _BadMessage over the limit."""
        (size,) = HEADER.unpack(header)
        if size > self._max_bytes:
            log.warning(
                "session socket: a message over the size limit; connection closed",
                extra={"bytes": size, "limit": self._max_bytes},
            )
            raise _BadMessage
        return int(size)


class _BadMessage(Exception):
    """A message that is not a RunRequest, or too large (logged where it is raised)."""


def _parsed(data: bytes | None) -> pb.RunRequest | None:
    """The request in `data` (None: no data, the connection ended); _BadMessage if it is not
    one."""
    if data is None:
        return None
    try:
        return pb.RunRequest.FromString(data)
    except DecodeError as error:
        log.warning(
            "session socket: not a RunRequest; connection closed", extra={"error": str(error)}
        )
        raise _BadMessage from error


def _receive_exactly(connection: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None when the connection ends first."""
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = connection.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
