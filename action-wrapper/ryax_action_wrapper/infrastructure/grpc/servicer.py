"""ActionService over gRPC (grpc.aio): thin edge around ActionRuntime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2  # type: ignore[import-untyped]

from ...application.runtime import ActionRuntime
from ...domain.errors import InvalidDeclaration
from ...domain.model import ActionKind, Event, ExecutionResult, InitOutcome, RunStatus
from ..proto import action_service_pb2 as pb
from ..proto import action_service_pb2_grpc as pb_grpc
from . import mappers

if TYPE_CHECKING:
    from .session_socket import SessionSocket

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ActionService"].full_name


class ActionServicer(pb_grpc.ActionServiceServicer):
    def __init__(self, runtime: ActionRuntime, health_servicer: health.aio.HealthServicer) -> None:
        self._runtime = runtime
        self._health = health_servicer
        #: Session on a plain Unix socket as well (set by the server when it listens on one).
        self.session_socket: SessionSocket | None = None

    async def Init(  # noqa: N802 - the gRPC method name
        self, request: pb.InitRequest, context: grpc.aio.ServicerContext
    ) -> pb.InitReply:
        if self._runtime.busy:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "an execution is running; Init refused"
            )
        try:
            config = mappers.config_from_proto(request)
        except InvalidDeclaration as exc:
            outcome = InitOutcome(error=exc.detail)
        else:
            # Importing heavy libraries takes time: keep the server (and health) responsive.
            outcome = await asyncio.to_thread(self._runtime.init, config)
        await self._set_serving(outcome.ok)
        log.info(
            "init",
            extra={
                "action": f"{request.action_id}:{request.action_version}",
                "kind": request.kind,
                "error": outcome.error,
            },
        )
        reply = mappers.init_reply_to_proto(outcome)
        reply.session_socket = self.session_socket is not None and self.session_socket.open
        return reply

    async def Run(  # noqa: N802 - the gRPC method name
        self, request: pb.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunReply]:
        await self._require_ready(context)
        async for reply in self.execute(request):
            yield reply

    async def Session(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[pb.RunRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunReply]:
        """The executions of Run one after the other on one call (processor, publisher)."""
        await self._require_ready(context)
        config = self._runtime.config
        if config is not None and config.kind is ActionKind.TRIGGER:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "a trigger runs in one Run call, not Session"
            )
        async for request in request_iterator:
            async for reply in self.execute(request):
                yield reply

    async def _require_ready(self, context: grpc.aio.ServicerContext) -> None:
        if not self._runtime.ready:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the action is not loaded: call Init first (and check its error)",
            )

    async def execute(self, request: pb.RunRequest) -> AsyncIterator[pb.RunReply]:
        """The replies of one execution (of Run, Session or the session socket), Result last."""
        config = self._runtime.config
        is_trigger = config is not None and config.kind is ActionKind.TRIGGER
        inputs = mappers.values_from_proto(request.inputs)
        async for event in self._runtime.run(request.execution_id, inputs, request.work_dir):
            if isinstance(event, ExecutionResult):
                if is_trigger:
                    # A trigger whose run() ended makes no more runs: health checks see it.
                    await self._set_serving(False)
                _ended(request, event)
            yield mappers.event_to_proto(event)

    def execute_blocking(
        self,
        request: pb.RunRequest,
        send: Callable[[pb.RunReply], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """One execution of a sync handler in the calling thread (not `loop`'s): each reply
        goes to `send` as it comes, the Result last (ActionRuntime.execute_blocking)."""

        def sink(event: Event) -> None:
            if isinstance(event, ExecutionResult):
                _ended(request, event)
            send(mappers.event_to_proto(event))

        inputs = mappers.values_from_proto(request.inputs)
        self._runtime.execute_blocking(request.execution_id, inputs, request.work_dir, sink, loop)

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set(SERVICE_NAME, status)


def _ended(request: pb.RunRequest, result: ExecutionResult) -> None:
    log.info(
        "execution ended",
        extra={
            "execution": request.execution_id,
            "status": str(result.status),
            "error": result.error if result.status is RunStatus.FAILED else "",
        },
    )
