"""Build the container, open resources, serve; close everything on SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from ryax_kit.database import ensure_database, migrate, ping
from ryax_kit.logging import configure_logging
from ryax_kit.web import Metrics, create_web_app, run_app

from .container import Container
from .infrastructure.api.routes import ERRORS, USE_CASES, api
from .infrastructure.database.tables import MIGRATIONS
from .settings import Settings

log = logging.getLogger("ryax_authorization")
SERVICE = "authorization"


def create_app(container: Container) -> web.Application:
    settings: Settings = container.settings()

    async def ready() -> Mapping[str, bool]:
        return {"database": await ping(container.engine())}

    app = create_web_app(
        metrics=Metrics(SERVICE),
        ready=ready,
        prefix=api.prefix,
        api=api,
        errors=ERRORS,
    )
    app[USE_CASES] = container.use_cases()

    async def startup(_: web.Application) -> None:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url, MIGRATIONS, child=True)
        if settings.admin_user and settings.admin_password:
            created = await container.use_cases().bootstrap_admin(
                settings.admin_user, settings.admin_password
            )
            if created:
                log.info("created the first admin", extra={"username": settings.admin_user})

    async def cleanup(_: web.Application) -> None:
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
