"""The WorkerService gRPC server (grpc.aio): one bidirectional stream per worker.

See docs/runner-worker-protocol.md (and the .proto) for the protocol. The servicer is
thin: it maps messages and hands them to the engine, whose methods do not block.

A worker presents its site's credential in the call's metadata (`authorization: Bearer
<credential>`); the engine checks it before anything about the site changes. A refusal is
UNAUTHENTICATED, logged with the site claimed and the peer (never the credential) and counted
in `ryax_runner_worker_auth_failures_total{reason}`. With a certificate and key (TlsFiles) the
port serves TLS only.

PresignTransfers (unary) hands a site's worker presigned URLs for the objects its executions and
deployed steps move, once the engine said the site may (its credential, then `TransferGrants`).
URLs are bearer secrets: they are never logged; keys are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn, Protocol

import grpc
from google.protobuf.message import DecodeError
from grpc import aio
from prometheus_client import CollectorRegistry, Counter

from ryax_kit.filestore import Filestore, FilestoreError, InvalidKey, PresignNotSupported, check_key
from ryax_kit.framing import FrameError, frame, read_frame, write_frame
from ryax_kit.net import is_loopback_endpoint

from ...application.engine import (
    MAX_TRANSFERS,
    Engine,
    SiteTaken,
    TransferAsk,
    TransferDenied,
    TransferMethod,
    WorkerRefused,
)
from ...application.messages import Outgoing, ReportAck
from ...domain.errors import DomainError
from ...domain.site import SiteId
from ..proto import worker_service_pb2 as pb
from ..proto import worker_service_pb2_grpc as pb_grpc
from .mappers import outgoing_to_proto, register_from_proto, report_from_proto

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    # An unanswered ping (keepalive or flow-control probe) ends the connection after 5 s: with
    # the default (60 s) a silently cut worker's connection lingers a minute.
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Workers ping every 5 s (runner_client.py): accepted from 4 s, so timer jitter never
    # counts as a strike.
    ("grpc.http2.min_ping_interval_without_data_ms", 4_000),
    ("grpc.http2.max_pings_without_data", 0),
]


class StreamChannel:
    """Outgoing side of one worker stream: an ordered, non-blocking queue.

    For a worker that reads `RunnerMessage.acked_report_seq` (`Register.acks_with_orders`), a
    ReportAck is not a message of its own when an order is waiting to leave: the next message
    written carries it (`stamp`); a ReportAck queued behind an order that carried it is not
    written. After a commit, the orders it released are queued just before its ack: under load
    nearly every ack rides on an Execute."""

    def __init__(self, *, acks_with_orders: bool = False) -> None:
        self.queue: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        self.closed = False
        self.reason = ""
        self.acks_with_orders = acks_with_orders
        self._ack_due = 0  # the highest report_seq to acknowledge
        self._ack_sent = 0

    def send(self, message: Outgoing) -> None:
        if self.closed:
            return
        if isinstance(message, ReportAck) and self.acks_with_orders:
            self._ack_due = max(self._ack_due, message.report_seq)
            if not self.queue.empty():
                return  # a message waiting to leave carries it
        self.queue.put_nowait(outgoing_to_proto(message))

    def stamp(self, message: pb.RunnerMessage) -> pb.RunnerMessage | None:
        """`message` as it is written: carrying the ack due, if any; None for a ReportAck
        already carried by an earlier message (nothing to write)."""
        if not self.acks_with_orders:
            return message
        is_ack = message.WhichOneof("message") == "report_ack"
        if self._ack_due <= self._ack_sent:
            return None if is_ack else message
        self._ack_sent = self._ack_due
        if is_ack:
            message.report_ack.report_seq = self._ack_sent
        else:
            message.acked_report_seq = self._ack_sent
        return message

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed, self.reason = True, reason
            self.queue.put_nowait(None)


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """The server's certificate (PEM, chain included) and private key (PEM)."""

    cert_file: Path
    key_file: Path

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_file.read_bytes(), self.cert_file.read_bytes())]
        )


def presented_credential(metadata: object) -> str:
    """The credential of `authorization: Bearer <credential>` in the call's metadata."""
    for key, value in metadata or ():  # type: ignore[attr-defined]
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, rest = value.strip().partition(" ")
            if scheme.lower() == "bearer":
                return rest.strip()
    return ""


_METHODS = {
    pb.TRANSFER_METHOD_GET: TransferMethod.GET,
    pb.TRANSFER_METHOD_PUT: TransferMethod.PUT,
}


@dataclass(frozen=True, kw_only=True)
class Presigner:
    """Signs URLs with the runner's filestore (S3), for `ttl` (RYAX_RUNNER_PRESIGN_TTL_SECONDS),
    on its public endpoint (RYAX_RUNNER_FILESTORE_PUBLIC_URL)."""

    store: Filestore
    ttl: timedelta

    async def sign(self, method: TransferMethod, key: str) -> str:
        if method is TransferMethod.GET:
            return await self.store.presigned_get_url(key, self.ttl)
        return await self.store.presigned_put_url(key, self.ttl)


def transfer_asks_from_proto(request: pb.PresignRequest) -> list[TransferAsk]:
    """The asks of a request; ValueError naming what is wrong (a method, a key, the count)."""
    if not 1 <= len(request.transfers) <= MAX_TRANSFERS:
        raise ValueError(f"ask for 1 to {MAX_TRANSFERS} objects, not {len(request.transfers)}")
    asks = []
    for index, transfer in enumerate(request.transfers):
        method = _METHODS.get(transfer.method)
        if method is None:
            raise ValueError(f"transfers[{index}]: method must be GET or PUT")
        try:
            check_key(transfer.key)
        except InvalidKey as error:
            raise ValueError(f"transfers[{index}]: {error}") from None
        asks.append(TransferAsk(method=method, key=transfer.key))
    return asks


class StreamClosed(Exception):
    """A worker's stream on the Unix socket ended or broke (`reason`: how, '' for a close)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class WorkerStream(Protocol):
    """One worker's Connect stream, on gRPC or on the runner's Unix socket."""

    @property
    def peer(self) -> str: ...

    def credential(self, register: pb.Register) -> str:
        """The site credential the worker presented."""
        ...

    async def read(self) -> pb.WorkerMessage | None:
        """The worker's next message; None at the end of the stream."""
        ...

    async def write(self, message: pb.RunnerMessage) -> None: ...

    async def refuse(self, code: grpc.StatusCode, detail: str) -> NoReturn:
        """End the stream with why (a gRPC status, or a Refused message on the socket)."""
        ...


class GrpcStream:
    """A Connect call's stream (grpc.aio)."""

    def __init__(self, context: aio.ServicerContext[pb.WorkerMessage, pb.RunnerMessage]) -> None:
        self._context = context
        self.peer = context.peer() or ""

    def credential(self, register: pb.Register) -> str:
        return presented_credential(self._context.invocation_metadata())

    async def read(self) -> pb.WorkerMessage | None:
        message = await self._context.read()
        return message if isinstance(message, pb.WorkerMessage) else None

    async def write(self, message: pb.RunnerMessage) -> None:
        await self._context.write(message)

    async def refuse(self, code: grpc.StatusCode, detail: str) -> NoReturn:
        await self._context.abort(code, detail)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


class SocketStream:
    """A worker's stream on the runner's Unix socket: framed messages (ryax_kit.framing), the
    credential in Register, a refusal as a Refused message. What goes wrong on the connection
    (a cut, a bad frame, a message that does not parse) is StreamClosed."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str):
        self._reader = reader
        self._writer = writer
        self.peer = peer

    def credential(self, register: pb.Register) -> str:
        return register.credential

    async def read(self) -> pb.WorkerMessage | None:
        try:
            payload = await read_frame(self._reader, MAX_MESSAGE_BYTES)
        except FrameError as exc:
            raise StreamClosed(str(exc)) from None
        except OSError as exc:
            raise StreamClosed(f"{type(exc).__name__}: {exc}") from None
        if payload is None:
            return None
        try:
            return pb.WorkerMessage.FromString(payload)
        except DecodeError:
            raise StreamClosed(
                f"a message of {len(payload)} bytes that is not a WorkerMessage"
            ) from None

    async def write(self, message: pb.RunnerMessage) -> None:
        if self._writer.is_closing():
            raise StreamClosed()
        try:
            await write_frame(self._writer, message.SerializeToString())
        except OSError as exc:
            raise StreamClosed(f"{type(exc).__name__}: {exc}") from None

    async def refuse(self, code: grpc.StatusCode, detail: str) -> NoReturn:
        refused = pb.RunnerMessage(refused=pb.Refused(code=code.name, detail=detail))
        with contextlib.suppress(OSError):
            self._writer.write(frame(refused.SerializeToString()))
            await self._writer.drain()
        self._writer.close()
        raise StreamClosed(f"refused: {code.name}: {detail}")


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(
        self,
        engine: Engine,
        registry: CollectorRegistry | None = None,
        presigner: Presigner | None = None,
    ) -> None:
        self._engine = engine
        self._presigner = presigner
        self.connected = 0
        self.auth_failures = Counter(
            "ryax_runner_worker_auth_failures",
            "worker registrations (and presign requests) refused for their site credential, by "
            "reason (missing, unknown_site, wrong, revoked, no_credential, archived)",
            ["reason"],
            registry=registry,
        )
        self.presigned = Counter(
            "ryax_runner_presigned_urls",
            "presigned filestore URLs handed to sites' workers, by site and method (get, put)",
            ["site", "method"],
            registry=registry,
        )
        self.presign_denied = Counter(
            "ryax_runner_presign_denied",
            "presign requests refused because an object was not the site's to move, by site",
            ["site"],
            registry=registry,
        )

    async def PresignTransfers(  # noqa: N802 - gRPC method name
        self,
        request: pb.PresignRequest,
        context: aio.ServicerContext[pb.PresignRequest, pb.PresignResponse],
    ) -> pb.PresignResponse:
        peer = context.peer() or ""
        credential = presented_credential(context.invocation_metadata())
        try:
            self._engine.authenticate_site(request.site_name, credential)
        except WorkerRefused as exc:
            self.auth_failures.labels(reason=str(exc.reason)).inc()
            log.warning(
                "presign refused: site credential",
                extra={"site": exc.site_name[:200], "peer": peer, "reason": str(exc.reason)},
            )
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.detail)
        try:
            asks = transfer_asks_from_proto(request)
        except ValueError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        try:
            site = self._engine.authorise_transfers(request.site_name, credential, asks)
        except TransferDenied as exc:
            self.presign_denied.labels(site=request.site_name).inc()
            log.warning(
                "presign refused: not the site's object",
                extra={"site": request.site_name, "peer": peer, "key": exc.key[:300]},
            )
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, exc.detail)
        if self._presigner is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "this runner hands out no presigned URLs"
            )
        assert self._presigner is not None
        expires_at = datetime.now(UTC) + self._presigner.ttl
        answer = pb.PresignResponse()
        try:
            for ask in asks:
                url = await self._presigner.sign(ask.method, ask.key)
                signed = answer.transfers.add(
                    method=pb.TRANSFER_METHOD_GET
                    if ask.method is TransferMethod.GET
                    else pb.TRANSFER_METHOD_PUT,
                    key=ask.key,
                    url=url,
                )
                signed.expires_at.FromDatetime(expires_at)
        except PresignNotSupported as error:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
        except FilestoreError as error:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(error))
        for ask in asks:
            self.presigned.labels(site=site.name, method=str(ask.method)).inc()
        return answer

    async def Connect(  # type: ignore[override]  # noqa: N802 - gRPC method name
        self,
        request_iterator: object,
        context: aio.ServicerContext[pb.WorkerMessage, pb.RunnerMessage],
    ) -> None:
        await self.serve(GrpcStream(context))

    async def serve(self, stream: WorkerStream) -> None:
        """One worker's stream, whichever its transport: Register first, then the worker's
        reports to the engine and the engine's orders to the worker until either side ends."""
        first = await stream.read()
        if first is None:
            return  # the worker closed the stream at once
        if first.WhichOneof("message") != "register":
            await stream.refuse(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be Register"
            )
        channel = StreamChannel(acks_with_orders=first.register.acks_with_orders)
        peer = stream.peer
        command = replace(
            register_from_proto(first.register),
            credential=stream.credential(first.register),
            address=peer,
        )
        try:
            registered = self._engine.register_worker(command, channel)
        except WorkerRefused as exc:
            self.auth_failures.labels(reason=str(exc.reason)).inc()
            log.warning(
                "worker refused: site credential",
                extra={"site": exc.site_name[:200], "peer": peer, "reason": str(exc.reason)},
            )
            await stream.refuse(grpc.StatusCode.UNAUTHENTICATED, exc.detail)
        except SiteTaken as exc:
            log.warning("worker refused: site taken", extra={"peer": peer, "detail": exc.detail})
            await stream.refuse(grpc.StatusCode.ALREADY_EXISTS, exc.detail)
        except DomainError as exc:
            await stream.refuse(grpc.StatusCode.INVALID_ARGUMENT, exc.detail)
        site_id = SiteId(registered.site_id)
        self.connected += 1
        reader = asyncio.create_task(self._read(stream, site_id, channel))
        try:
            while True:
                queued = await channel.queue.get()
                if queued is None:
                    break
                message = channel.stamp(queued)
                if message is not None:
                    await stream.write(message)
        except (asyncio.CancelledError, aio.AioRpcError, aio.UsageError, StreamClosed):
            pass
        finally:
            self.connected -= 1
            channel.close("stream ended")
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._engine.disconnected(site_id, channel)
            log.info("worker stream ended", extra={"site_id": site_id, "reason": channel.reason})

    async def _read(self, stream: WorkerStream, site_id: SiteId, channel: StreamChannel) -> None:
        try:
            while not channel.closed:
                message = await stream.read()
                if message is None or channel.closed:
                    break  # end of the stream, or the stream was cut (replaced, credential)
                report = report_from_proto(message)
                if report is None:
                    continue
                try:
                    self._engine.report(site_id, message.report_seq, report)
                except Exception:
                    log.exception(
                        "report failed",
                        extra={"site_id": site_id, "report_seq": message.report_seq},
                    )
        except (aio.AioRpcError, aio.UsageError, asyncio.CancelledError):
            pass
        except StreamClosed as exc:
            if exc.reason:
                log.warning(
                    "worker stream broken", extra={"site_id": site_id, "reason": exc.reason}
                )
        finally:
            channel.close("worker closed the stream")


class GrpcServer:
    def __init__(
        self,
        engine: Engine,
        address: str,
        tls: TlsFiles | None = None,
        registry: CollectorRegistry | None = None,
        tls_address: str = "",
        presigner: Presigner | None = None,
        socket_path: Path | None = None,
    ) -> None:
        """`tls` alone: `address` serves TLS. With `tls_address` too: `address` is plaintext
        (loopback, the platform's own worker) and `tls_address` serves TLS (remote sites).
        With `socket_path`, Connect is served on that Unix socket too (WorkerSocketServer)."""
        self.address = address
        self.tls = tls
        self.tls_address = tls_address if tls is not None else ""
        self.servicer = WorkerServicer(engine, registry, presigner)
        self.socket = WorkerSocketServer(self.servicer, socket_path) if socket_path else None
        self._server: aio.Server | None = None
        self.port = 0
        self.tls_port = 0

    async def start(self) -> None:
        self._server = aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_WorkerServiceServicer_to_server(self.servicer, self._server)
        if self.tls is not None and self.tls_address:
            self.tls_port = self._server.add_secure_port(self.tls_address, self.tls.credentials())
        if self.tls is not None and not self.tls_address:
            self.port = self._server.add_secure_port(self.address, self.tls.credentials())
        else:
            self.port = self._server.add_insecure_port(self.address)
            if not is_loopback_endpoint(self.address):
                log.warning(
                    "the gRPC port for workers is PLAINTEXT on a non-loopback address "
                    "(RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT): site credentials and steps' inputs "
                    "cross the network in clear",
                    extra={"address": self.address},
                )
        await self._server.start()
        if self.socket is not None:
            await self.socket.start()
        log.info(
            "gRPC server listening",
            extra={
                "address": self.address,
                "port": self.port,
                "tls": self.tls is not None and not self.tls_address,
            },
        )
        if self.tls_address:
            log.info(
                "gRPC server listening",
                extra={"address": self.tls_address, "port": self.tls_port, "tls": True},
            )

    async def stop(self, grace: float = 2.0) -> None:
        if self.socket is not None:
            await self.socket.stop(grace)
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None


class WorkerSocketServer:
    """WorkerService.Connect on a Unix socket (RYAX_RUNNER_WORKER_SOCKET), for the worker on the
    runner's machine: the same messages as on gRPC, framed (ryax_kit.framing), without gRPC's
    threads and HTTP/2 (docs/runner-worker-protocol.md "The local socket"). The worker still
    presents its site's credential (Register.credential); the socket file is the runner user's
    only (0600)."""

    def __init__(self, servicer: WorkerServicer, path: Path) -> None:
        self.servicer = servicer
        self.path = path
        self._server: asyncio.Server | None = None
        self._streams: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()  # left by a runner that did not stop cleanly
        elif self.path.exists():
            raise OSError(f"RYAX_RUNNER_WORKER_SOCKET={self.path}: exists and is not a socket")
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.path))
        self.path.chmod(0o600)
        log.info("worker socket listening", extra={"path": str(self.path)})

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._streams[task] = writer
        try:
            await self.servicer.serve(SocketStream(reader, writer, f"unix:{self.path}"))
        except StreamClosed as exc:
            if exc.reason:
                log.warning("worker socket stream ended", extra={"reason": exc.reason})
        finally:
            del self._streams[task]
            writer.close()

    async def stop(self, grace: float = 2.0) -> None:
        """Stop listening and end every stream (the workers reconnect to the next runner)."""
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for writer in list(self._streams.values()):
            writer.close()  # the stream's reader sees its end: serve() finishes
        if self._streams:
            _, pending = await asyncio.wait(list(self._streams), timeout=grace)
            for task in pending:
                task.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
