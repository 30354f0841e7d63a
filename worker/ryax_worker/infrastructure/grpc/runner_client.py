"""The worker's side of WorkerService.Connect: dial, register, pump reports and orders, and
reconnect with backoff when the stream breaks.

Every Connect carries the site's credential (`authorization: Bearer <credential>` metadata).
With a CA file the channel is TLS and the runner's certificate must chain to that CA (and name
the runner's host, or `server_name`); without one it is plaintext (settings.py refuses that
for a runner that is not on this machine, unless allowed).

With `socket_path` (RYAX_RUNNER_WORKER_SOCKET, a runner on this machine) the stream goes over
the runner's Unix socket instead: the same messages, framed (ryax_kit.framing), the credential
in Register, a refusal as a Refused message (docs/runner-worker-protocol.md "The local socket").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from ryax_kit.core import Clock
from ryax_kit.framing import FrameError, read_frame, write_frame

from ...application.reports import ReportQueue
from ...application.worker import Worker
from ...domain.model import Backoff, Heartbeat
from ..proto import worker_service_pb2 as wpb
from ..proto import worker_service_pb2_grpc as wpb_grpc
from . import mappers

log = logging.getLogger(__name__)
#: Keepalive pings find a dead path (a cut link, a NAT that forgot us: nothing arrives, no
#: error) within 10 s; the runner accepts a ping every 4 s. `ping_timeout_ms` is what ends the
#: connection when a ping goes unanswered: without it a flow-control ping sent just before the
#: cut is outstanding, keepalive sends none of its own, and the default 60 s applies
#: (tests/integration/test_runner_link.py).
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def dial(address: str, ca_file: Path | None, server_name: str = "") -> aio.Channel:
    """A channel to the runner: TLS checked against `ca_file` (read at each call: a renewed CA
    file is taken without a restart), else plaintext."""
    if ca_file is None:
        return aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
    options: list[tuple[str, Any]] = list(CHANNEL_OPTIONS)
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return aio.secure_channel(address, credentials, options=options)


class StreamBroken(Exception):
    """The stream ended or the runner broke the protocol: reconnect."""


class RunnerRefused(Exception):
    """The runner refused the stream on its Unix socket (Refused: a gRPC status code's name and
    what is wrong)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class SocketCall:
    """A Connect stream on the runner's Unix socket, with what RunnerConnection uses of a
    grpc.aio call: write, read (aio.EOF at the end), done_writing, cancel."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, path: Path) -> SocketCall:
        reader, writer = await asyncio.open_unix_connection(str(path))
        return cls(reader, writer)

    async def write(self, message: wpb.WorkerMessage) -> None:
        if self._writer.is_closing():
            raise StreamBroken("the runner's socket is closed")
        await write_frame(self._writer, message.SerializeToString())

    async def read(self) -> wpb.RunnerMessage | object:
        try:
            payload = await read_frame(self._reader, MAX_MESSAGE_BYTES)
        except FrameError as exc:
            raise StreamBroken(f"the runner's socket: {exc}") from None
        if payload is None:
            return aio.EOF
        try:
            message = wpb.RunnerMessage.FromString(payload)
        except DecodeError:
            raise StreamBroken(
                f"the runner sent {len(payload)} bytes that are not a RunnerMessage"
            ) from None
        if message.WhichOneof("message") == "refused":
            raise RunnerRefused(message.refused.code, message.refused.detail)
        return message

    async def done_writing(self) -> None:
        if self._writer.can_write_eof() and not self._writer.is_closing():
            self._writer.write_eof()

    def cancel(self) -> None:
        self._writer.close()


class RunnerConnection:
    """Keeps exactly one Connect stream open to the runner."""

    def __init__(
        self,
        *,
        address: str,
        worker: Worker,
        reports: ReportQueue,
        clock: Clock,
        heartbeat_seconds: float = 2.0,
        register_timeout_seconds: float = 10.0,
        silence_timeout_seconds: float = 0.0,
        backoff: Backoff | None = None,
        credential: str = "",
        ca_file: Path | None = None,
        server_name: str = "",
        socket_path: Path | None = None,
    ) -> None:
        self._address = address
        self._socket_path = socket_path
        self._credential = credential
        self._ca_file = ca_file
        self._server_name = server_name
        self._worker = worker
        self._reports = reports
        self._clock = clock
        self._default_heartbeat = heartbeat_seconds
        self._register_timeout = register_timeout_seconds
        self._silence_timeout = silence_timeout_seconds
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self._call: Any = None
        self._stopping = asyncio.Event()
        self._heartbeat_seq = 0
        self._last_heard = 0.0
        self.registered = asyncio.Event()
        self.site_id = ""
        self.sessions = 0

    @property
    def connected(self) -> bool:
        return self.registered.is_set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="runner-connection")

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Send what is left (bounded), half-close the stream, stop reconnecting."""
        if self.connected and not await self._reports.wait_settled(flush_timeout):
            buffer = self._reports.buffer
            log.warning(
                "closing with unacknowledged reports",
                extra={"pending": buffer.pending(), "unacked": buffer.unacked()},
            )
        self._stopping.set()
        call = self._call
        if call is not None:
            with contextlib.suppress(Exception):
                await call.done_writing()
        if self._task is not None:
            try:
                # The runner ends its side once ours is closed; don't wait for it forever.
                await asyncio.wait_for(asyncio.shield(self._task), timeout=2.0)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - stop anyway
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure means: reconnect
                if not self._stopping.is_set():
                    refused = _refused(error)
                    log.log(
                        logging.ERROR if refused else logging.WARNING,
                        refused or "runner stream broken",
                        extra={"address": self.target, "reason": _describe(error)},
                    )
            finally:
                self.registered.clear()
                self._call = None
            if self._stopping.is_set():
                return
            delay = self._backoff.next_delay() * random.uniform(0.8, 1.2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _channel(self) -> aio.Channel:
        return dial(self._address, self._ca_file, self._server_name)

    @property
    def target(self) -> str:
        """Where the stream goes (for logs)."""
        return f"unix:{self._socket_path}" if self._socket_path else self._address

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        """A Connect stream: on the runner's Unix socket when given one, else a gRPC call."""
        if self._socket_path is not None:
            call = await SocketCall.connect(self._socket_path)
            try:
                yield call
            finally:
                call.cancel()
            return
        async with self._channel() as channel:
            stub = wpb_grpc.WorkerServiceStub(channel)
            metadata = (
                (("authorization", f"Bearer {self._credential}"),) if self._credential else ()
            )
            yield stub.Connect(metadata=metadata)

    async def _session(self) -> None:
        async with self._open() as call:
            self._call = call
            registration = self._worker.registration()
            register = mappers.register_to_proto(registration)
            if self._socket_path is not None:  # no call metadata there
                register.register.credential = self._credential
            await call.write(register)
            first = await asyncio.wait_for(call.read(), timeout=self._register_timeout)
            if not isinstance(first, wpb.RunnerMessage) or first.WhichOneof("message") != (
                "registered"
            ):
                raise StreamBroken("the runner did not answer Register with Registered")
            registered = first.registered
            self._reports.resume(registered.last_report_seq)
            self.site_id = registered.site_id
            self._worker.registered_as(registered.site_id)
            interval = registered.heartbeat_interval_seconds or self._default_heartbeat
            self.sessions += 1
            self._backoff.reset()
            self._last_heard = asyncio.get_running_loop().time()
            self.registered.set()
            log.info(
                "registered with the runner",
                extra={
                    "address": self.target,
                    "site_id": registered.site_id,
                    "last_report_seq": registered.last_report_seq,
                    "last_seen_order_seq": registration.last_seen_order_seq,
                    "heartbeat_seconds": interval,
                },
            )
            tasks = [
                asyncio.create_task(self._send(call), name="runner-send"),
                asyncio.create_task(self._receive(call), name="runner-receive"),
                asyncio.create_task(self._heartbeats(interval), name="runner-heartbeat"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if error is not None:
                        raise error
                raise StreamBroken("the runner closed the stream")
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(BaseException):
                        await task
                call.cancel()

    async def _send(self, call: Any) -> None:
        while True:
            numbered = await self._reports.next()
            await call.write(mappers.bounded_report_to_proto(numbered.seq, numbered.report))

    async def _receive(self, call: Any) -> None:
        while True:
            message = await call.read()
            if message is aio.EOF:
                return
            self._last_heard = asyncio.get_running_loop().time()
            self._dispatch(message)

    def _dispatch(self, message: wpb.RunnerMessage) -> None:
        if message.acked_report_seq:  # an ack carried by an order (Register.acks_with_orders)
            self._reports.ack(message.acked_report_seq)
        kind = message.WhichOneof("message")
        if kind == "report_ack":
            self._reports.ack(message.report_ack.report_seq)
            return
        if kind == "registered" or kind is None:
            return
        order = mappers.order_from_proto(message)
        if order is None:
            log.warning("unknown message from the runner", extra={"kind": kind})
            return
        self._worker.handle(order)

    async def _heartbeats(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._heartbeat_seq += 1
            self._worker.flush_ack()
            self._reports.report(Heartbeat(seq=self._heartbeat_seq, at=self._clock.now()))
            await asyncio.sleep(interval)
            silent = loop.time() - self._last_heard
            if self._silence_timeout > 0 and silent > self._silence_timeout:
                raise StreamBroken(f"nothing heard from the runner for {silent:.0f} s")


_REFUSED_CREDENTIAL = (
    "the runner refused this worker's site credential (RYAX_SITE_CREDENTIAL): "
    "was it rotated or revoked? (`ryax site show`)"
)


def _refused(error: BaseException) -> str:
    """What the operator must fix when the runner refuses this worker ('' otherwise)."""
    if isinstance(error, RunnerRefused) and error.code == grpc.StatusCode.UNAUTHENTICATED.name:
        return _REFUSED_CREDENTIAL
    if isinstance(error, aio.AioRpcError):
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            return _REFUSED_CREDENTIAL
        if error.code() == grpc.StatusCode.UNAVAILABLE and "ssl" in (error.details() or "").lower():
            return "TLS handshake with the runner failed: check RYAX_RUNNER_CA_FILE"
    return ""


def _describe(error: BaseException) -> str:
    if isinstance(error, aio.AioRpcError):
        code = error.code()
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        return f"{name}: {error.details()}"
    if isinstance(error, TimeoutError):
        return "timed out waiting for Registered"
    return f"{type(error).__name__}: {error}"
