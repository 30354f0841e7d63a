"""The wrapper process: serve ActionService and the standard gRPC health service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from ...application.runtime import ActionRuntime
from ..proto import action_service_pb2_grpc as pb_grpc
from .servicer import SERVICE_NAME, ActionServicer
from .session_socket import SessionSocket, session_socket_path

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRACE_SECONDS = 5.0


async def serve(runtime: ActionRuntime, address: str, port_file: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT. Health: "" is SERVING while the process is up; the
    ActionService name is SERVING once Init succeeded (NOT_SERVING after a trigger ended).
    On a Unix socket, Session is also served on the session socket next to it."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    servicer = ActionServicer(runtime, health_servicer)
    pb_grpc.add_ActionServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0 and not address.startswith("unix:"):
        raise SystemExit(f"cannot listen on {address}")
    path = session_socket_path(address)
    if path is not None:
        servicer.session_socket = SessionSocket(
            runtime, servicer.execute, servicer.execute_blocking, path, MAX_MESSAGE_BYTES
        )
        await servicer.session_socket.start()
    await server.start()
    if port_file:
        _write_port(port_file, port)
    log.info("listening", extra={"address": address, "port": port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await health_servicer.enter_graceful_shutdown()
    # An execution in progress gets the grace period; an idle Session call (open between
    # executions) must not hold the stop back.
    grace = GRACE_SECONDS if runtime.busy else 0
    stopping = [server.stop(grace)]
    if servicer.session_socket is not None:
        stopping.append(servicer.session_socket.stop(grace))
    await asyncio.gather(*stopping)


def _write_port(port_file: str, port: int) -> None:
    """For `--address 127.0.0.1:0`: the caller reads the port the system chose (atomically)."""
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.replace(port_file + ".tmp", port_file)
