"""Build the container, open resources, serve; close everything on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from aiohttp import web

from ryax_kit.authz import AUTHZ
from ryax_kit.database import ensure_database, migrate, ping
from ryax_kit.logging import configure_logging
from ryax_kit.web import create_web_app, run_app
from ryax_kit.web.limits import add_body_limits

from .container import SERVICE, Container
from .domain.errors import Unavailable
from .infrastructure.api import internal
from .infrastructure.api.routes import (
    ACTIONS,
    DEPLOYMENTS,
    ERRORS,
    FILE_LIMITS,
    JSON_BODY_BYTES,
    SECRETS,
    VARIABLES,
    WORKFLOWS,
    P,
    S,
    W,
    api,
)
from .infrastructure.database.tables import MIGRATIONS
from .infrastructure.messaging.mappers import EXCHANGE
from .infrastructure.yaml_format import MAX_DOCUMENT_BYTES
from .settings import Settings

log = logging.getLogger("ryax_studio")
PURGE_EVERY_SECONDS = 60


def create_app(container: Container, *, messaging: bool = True) -> web.Application:
    """`messaging=False` serves the HTTP API without RabbitMQ (tests of the API alone)."""
    settings: Settings = container.settings()

    async def ready() -> Mapping[str, bool]:
        return {
            "database": await ping(container.engine()),
            "broker": not messaging or container.broker().is_connected,
        }

    app = create_web_app(
        metrics=container.metrics(),
        ready=ready,
        prefix=api.prefix,
        api=api,
        errors=ERRORS,
        client_max_size=MAX_DOCUMENT_BYTES + 64 * 1024,
    )
    # JSON bodies are small; the two routes taking a YAML document take up to its limit.
    add_body_limits(
        app,
        default=JSON_BODY_BYTES,
        routes={
            # a YAML document (1 MiB) or a workflow zip
            ("POST", api.prefix + P + "/workflows/import"): settings.max_archive_bytes,
            ("PUT", api.prefix + W + "/yaml"): MAX_DOCUMENT_BYTES,
            ("POST", api.prefix + S + "/inputs/{input}/file"): settings.max_file_bytes + 64 * 1024,
        },
    )
    # The runner's route (not in the OpenAPI document, never routed by the gateway).
    app.add_routes(internal.routes)
    app[internal.TOKEN] = settings.internal_token
    app[internal.INTERNAL_DEPLOYMENTS] = container.deployments()
    app[ACTIONS] = container.actions()
    app[SECRETS] = container.secrets()
    app[WORKFLOWS] = container.workflows()
    app[DEPLOYMENTS] = container.deployments()
    app[FILE_LIMITS] = container.file_limits()
    app[VARIABLES] = container.variables()
    app[AUTHZ] = container.authz()
    tasks: list[asyncio.Task[None]] = []

    async def purge_outbox() -> None:
        """Published rows do not linger (they hold no secret: deploy requests name them)."""
        relay = container.relay()
        keep = timedelta(seconds=settings.outbox_retention_seconds)
        while True:
            await asyncio.sleep(PURGE_EVERY_SECONDS)
            try:
                await relay.purge_published(datetime.now(UTC) - keep)
            except Exception:
                log.exception("outbox purge failed")

    async def startup(_: web.Application) -> None:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url, MIGRATIONS, child=True)
        files = container.files()
        if files is not None:
            try:
                await files.ensure_ready()
            except Unavailable as exc:  # static files answer 503 until it is reachable
                log.warning("the filestore is not ready", extra={"error": str(exc)})
        if messaging:
            await container.broker().connect()
            await container.broker().declare_exchange(EXCHANGE)
            container.relay().start()
            await container.consumer().start()
            tasks.append(asyncio.create_task(purge_outbox(), name="outbox-purge"))
        log.info("studio started", extra={"messaging": messaging})

    async def cleanup(_: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if messaging:
            await container.consumer().stop()
            await container.relay().stop()
            await container.broker().close()
        await container.authz().close()
        await container.engine().dispose()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app


def main() -> None:
    settings = Settings.from_env()
    configure_logging(SERVICE, settings.log_format, settings.log_level)
    container = Container(settings=settings)
    app = create_app(container)
    log.info("starting", extra={"host": settings.http_host, "port": settings.http_port})
    # aiohttp handles SIGTERM/SIGINT: stops accepting, finishes in-flight requests, runs cleanup.
    run_app(app, host=settings.http_host, port=settings.http_port, shutdown_timeout=30)
