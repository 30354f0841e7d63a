"""Build the container, open resources, consume build orders; stop cleanly on SIGTERM.

Start-up runs in the background (the wrapper layer may take a few seconds to prepare the first
time, the broker may not be up yet): /healthz answers at once, /readyz once consuming.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from ryax_kit.logging import configure_logging
from ryax_kit.messaging import Consumer, PoisonMessage, Subscription
from ryax_kit.web import create_web_app, run_app

from .container import SERVICE, Container
from .infrastructure.messaging.mappers import (
    EXCHANGE,
    ORDER_TYPE,
    REPOSITORY_EXCHANGE,
    build_order_from_proto,
)
from .settings import Settings

log = logging.getLogger("ryax_action_builder")
QUEUE = "action-builder.builds"
PREFIX = "/action-builder"
STARTUP_RETRY_SECONDS = 3.0


def make_consumer(container: Container) -> Consumer:
    """Orders one at a time. A failed publish of the answer (broker away, no queue bound for
    it yet) propagates: the kit's consumer retries the order; an undecodable order is poison."""
    builder = container.builder()
    metrics = container.build_metrics()

    async def on_order(message_id: str, type_: str, body: bytes) -> None:
        if type_ and type_ != ORDER_TYPE:
            raise PoisonMessage(f"unexpected message type {type_!r}")
        order = build_order_from_proto(body)
        log.info(
            "build order",
            extra={
                "build_id": order.build_id,
                "message_id": message_id,
                "action": f"{order.action_id}:{order.action_version}",
            },
        )
        metrics.building.inc()
        try:
            outcome = await builder.handle(order)
        finally:
            metrics.building.dec()
        log.info(
            "build answered",
            extra={
                "build_id": order.build_id,
                "outcome": type(outcome).__name__,
                "seconds": round(outcome.duration_seconds, 2),
            },
        )

    return Consumer(
        container.broker(),
        QUEUE,
        [Subscription(exchange=REPOSITORY_EXCHANGE, routing_keys=(ORDER_TYPE,))],
        on_order,
        prefetch=1,  # strictly one build at a time per builder
        registry=container.metrics().registry,
    )


def create_app(container: Container) -> web.Application:
    settings: Settings = container.settings()
    broker, filestore, build_tool = (
        container.broker(),
        container.filestore(),
        container.build_tool(),
    )
    consumer = make_consumer(container)
    started = asyncio.Event()

    async def ready() -> dict[str, bool]:
        try:
            filestore_ok = await asyncio.wait_for(filestore.ping(), 5)
        except TimeoutError:
            filestore_ok = False
        # `sandbox`: pip runs in bubblewrap and did at start (`sandbox_none_allowed` instead
        # with RYAX_SANDBOX=none).
        sandbox = (
            {"sandbox": build_tool.ready}
            if build_tool.sandbox.active
            else {"sandbox_none_allowed": settings.sandbox_allow_none}
        )
        return {
            "broker": broker.is_connected,
            "consuming": consumer.consuming,
            "filestore": filestore_ok,
            "build_tool": build_tool.ready,
            **sandbox,
        }

    app = create_web_app(metrics=container.metrics(), ready=ready, prefix=PREFIX)

    async def start() -> None:
        while True:
            try:
                await filestore.ensure_ready()
                await build_tool.start()
                if not broker.is_connected:
                    await broker.connect()
                await broker.declare_exchange(EXCHANGE)
                await consumer.start()
                started.set()
                log.info("consuming build orders", extra={"queue": QUEUE})
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any start-up failure is retried
                log.warning(
                    "start-up failed, retrying", extra={"error": f"{type(exc).__name__}: {exc}"}
                )
                await asyncio.sleep(STARTUP_RETRY_SECONDS)

    async def on_startup(app: web.Application) -> None:
        app[STARTUP] = asyncio.create_task(start())

    async def on_shutdown(app: web.Application) -> None:
        task = app[STARTUP]
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if started.is_set():
            await consumer.stop(settings.shutdown_grace_seconds)

    async def on_cleanup(_: web.Application) -> None:
        await broker.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


STARTUP = web.AppKey("startup", asyncio.Task[None])


def main() -> None:
    settings = Settings.from_env()
    configure_logging(SERVICE, settings.log_format, settings.log_level)
    container = Container(settings=settings)
    app = create_app(container)
    log.info("starting", extra={"host": settings.http_host, "port": settings.http_port})
    # aiohttp handles SIGTERM/SIGINT: on_shutdown lets the build in hand finish (or abandons
    # it unacknowledged after the grace period), then the broker connection closes.
    run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=settings.shutdown_grace_seconds + 15,
    )
