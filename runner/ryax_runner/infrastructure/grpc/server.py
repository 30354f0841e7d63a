"""The WorkerService gRPC server (grpc.aio): one bidirectional stream per worker.

See docs/runner-worker-protocol.md (and the .proto) for the protocol. The servicer is
thin: it maps messages and hands them to the engine, whose methods do not block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc import aio

from ...application.engine import Engine, SiteTaken
from ...application.messages import Outgoing
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
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
]


class StreamChannel:
    """Outgoing side of one worker stream: an ordered, non-blocking queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.RunnerMessage | None] = asyncio.Queue()
        self.closed = False
        self.reason = ""

    def send(self, message: Outgoing) -> None:
        if not self.closed:
            self.queue.put_nowait(outgoing_to_proto(message))

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed, self.reason = True, reason
            self.queue.put_nowait(None)


class WorkerServicer(pb_grpc.WorkerServiceServicer):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.connected = 0

    async def Connect(  # type: ignore[override]  # noqa: N802 - gRPC method name
        self,
        request_iterator: object,
        context: aio.ServicerContext[pb.WorkerMessage, pb.RunnerMessage],
    ) -> None:
        first = await context.read()
        if not isinstance(first, pb.WorkerMessage):
            return  # the worker closed the stream at once
        if first.WhichOneof("message") != "register":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be Register"
            )
        channel = StreamChannel()
        try:
            registered = self._engine.register_worker(register_from_proto(first.register), channel)
        except SiteTaken as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, exc.detail)
        except DomainError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.detail)
        site_id = SiteId(registered.site_id)
        self.connected += 1
        reader = asyncio.create_task(self._read(context, site_id, channel))
        try:
            while True:
                message = await channel.queue.get()
                if message is None:
                    break
                await context.write(message)
        except (asyncio.CancelledError, aio.AioRpcError, aio.UsageError):
            pass
        finally:
            self.connected -= 1
            channel.close("stream ended")
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._engine.disconnected(site_id, channel)
            log.info("worker stream ended", extra={"site_id": site_id, "reason": channel.reason})

    async def _read(
        self,
        context: aio.ServicerContext[pb.WorkerMessage, pb.RunnerMessage],
        site_id: SiteId,
        channel: StreamChannel,
    ) -> None:
        try:
            while not channel.closed:
                message = await context.read()
                if not isinstance(message, pb.WorkerMessage):
                    break  # end of the stream
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
        finally:
            channel.close("worker closed the stream")


class GrpcServer:
    def __init__(self, engine: Engine, address: str) -> None:
        self.address = address
        self.servicer = WorkerServicer(engine)
        self._server: aio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_WorkerServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port(self.address)
        await self._server.start()
        log.info("gRPC server listening", extra={"address": self.address, "port": self.port})

    async def stop(self, grace: float = 2.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
