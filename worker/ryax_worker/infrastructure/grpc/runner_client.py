"""The worker's side of WorkerService.Connect: dial, register, pump reports and orders, and
reconnect with backoff when the stream breaks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import grpc
from grpc import aio

from ryax_kit.core import Clock

from ...application.reports import ReportQueue
from ...application.worker import Worker
from ...domain.model import Backoff, Heartbeat
from ..proto import worker_service_pb2 as wpb
from ..proto import worker_service_pb2_grpc as wpb_grpc
from . import mappers

log = logging.getLogger(__name__)
#: Keepalive pings find a dead path (e.g. a NAT that forgot us) even when no report is due;
#: the runner accepts a ping every 5 s.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]


class StreamBroken(Exception):
    """The stream ended or the runner broke the protocol: reconnect."""


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
    ) -> None:
        self._address = address
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
                    log.warning(
                        "runner stream broken",
                        extra={"address": self._address, "reason": _describe(error)},
                    )
            finally:
                self.registered.clear()
                self._call = None
            if self._stopping.is_set():
                return
            delay = self._backoff.next_delay() * random.uniform(0.8, 1.2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _session(self) -> None:
        async with aio.insecure_channel(self._address, options=CHANNEL_OPTIONS) as channel:
            stub = wpb_grpc.WorkerServiceStub(channel)
            call = stub.Connect()
            self._call = call
            registration = self._worker.registration()
            await call.write(mappers.register_to_proto(registration))
            first = await asyncio.wait_for(call.read(), timeout=self._register_timeout)
            if not isinstance(first, wpb.RunnerMessage) or first.WhichOneof("message") != (
                "registered"
            ):
                raise StreamBroken("the runner did not answer Register with Registered")
            registered = first.registered
            self._reports.resume(registered.last_report_seq)
            self.site_id = registered.site_id
            interval = registered.heartbeat_interval_seconds or self._default_heartbeat
            self.sessions += 1
            self._backoff.reset()
            self._last_heard = asyncio.get_running_loop().time()
            self.registered.set()
            log.info(
                "registered with the runner",
                extra={
                    "address": self._address,
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
            self._reports.report(Heartbeat(seq=self._heartbeat_seq, at=self._clock.now()))
            await asyncio.sleep(interval)
            silent = loop.time() - self._last_heard
            if self._silence_timeout > 0 and silent > self._silence_timeout:
                raise StreamBroken(f"nothing heard from the runner for {silent:.0f} s")


def _describe(error: BaseException) -> str:
    if isinstance(error, aio.AioRpcError):
        code = error.code()
        name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        return f"{name}: {error.details()}"
    if isinstance(error, TimeoutError):
        return "timed out waiting for Registered"
    return f"{type(error).__name__}: {error}"
