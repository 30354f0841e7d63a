"""Build the container, open resources, serve; close everything on SIGTERM."""

from __future__ import annotations

import logging

from aiohttp import web

from ryax_kit.authz import AUTHZ
from ryax_kit.database import ensure_database, migrate, ping
from ryax_kit.logging import configure_logging
from ryax_kit.web import create_web_app, run_app

from .container import SERVICE, Container
from .infrastructure.api.routes import ERRORS, UPLOAD_LIMITS, USE_CASES, UploadLimits, api
from .infrastructure.database import MIGRATIONS
from .infrastructure.messaging.mappers import EXCHANGE
from .settings import Settings

log = logging.getLogger("ryax_repository")

#: The largest body aiohttp reads whole (JSON bodies); uploads are streamed with their own limit.
MAX_BODY_BYTES = 1024 * 1024


def create_app(container: Container) -> web.Application:
    settings: Settings = container.settings()
    broker = container.broker()
    engine = container.engine()
    filestore = container.filestore()

    async def ready() -> dict[str, bool]:
        return {
            "database": await ping(engine),
            "broker": broker is None or broker.is_connected,
            "filestore": await filestore.ping(),
        }

    app = create_web_app(
        metrics=container.metrics(),
        ready=ready,
        prefix=api.prefix,
        api=api,
        errors=ERRORS,
        client_max_size=MAX_BODY_BYTES,
    )
    app[USE_CASES] = container.use_cases()
    app[AUTHZ] = container.authz()
    app[UPLOAD_LIMITS] = UploadLimits(
        scratch_dir=settings.work_dir / "tmp", max_bytes=settings.max_upload_bytes
    )

    async def startup(_: web.Application) -> None:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url, MIGRATIONS, child=True)
        await filestore.ensure_ready()
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        if broker is None:
            log.warning("RYAX_AMQP_URL is not set: events stay in the outbox, no build results")
            return
        await broker.connect()
        await broker.declare_exchange(EXCHANGE)
        container.relay().start()
        await container.consumer().start()

    async def shutdown(_: web.Application) -> None:
        # Stop taking build results first; in-flight handlers finish, unacked ones come back.
        if broker is not None:
            await container.consumer().stop()

    async def cleanup(_: web.Application) -> None:
        if broker is not None:
            await container.relay().stop()
            await broker.close()
        await container.authz().close()
        await engine.dispose()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


def main() -> None:
    settings = Settings.from_env()
    configure_logging(SERVICE, settings.log_format, settings.log_level)
    container = Container(settings=settings)
    app = create_app(container)
    log.info(
        "starting",
        extra={
            "host": settings.http_host,
            "port": settings.http_port,
            "allow_local": settings.allow_local,
        },
    )
    # aiohttp handles SIGTERM/SIGINT: stops accepting, finishes in-flight requests, runs
    # shutdown (consumer stops) and cleanup (relay flushes, connections close).
    run_app(app, host=settings.http_host, port=settings.http_port, shutdown_timeout=30)
