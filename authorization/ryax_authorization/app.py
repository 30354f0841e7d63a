"""Build the container, open resources, serve; close everything on SIGTERM."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from aiohttp import web

from .container import Container
from .infrastructure.api.routes import USE_CASES, api
from .infrastructure.api.web import Metrics, add_operational_routes, make_middlewares
from .infrastructure.database.engine import ensure_database, migrate
from .infrastructure.logging import configure_logging
from .settings import Settings

log = logging.getLogger("ryax_authorization")
SERVICE = "authorization"


def create_app(container: Container) -> web.Application:
    settings: Settings = container.settings()
    metrics = Metrics(SERVICE)
    app = web.Application(middlewares=make_middlewares(metrics), client_max_size=1024 * 1024)
    app[USE_CASES] = container.use_cases()
    app.add_routes(api.routes)

    async def ready() -> bool:
        try:
            async with container.engine().connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness answers false, it never raises
            return False

    add_operational_routes(app, api, metrics, ready)

    async def startup(_: web.Application) -> None:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url)
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
    web.run_app(
        app, host=settings.http_host, port=settings.http_port, print=None, shutdown_timeout=30
    )
