"""Build the container, open resources, serve health/metrics and the runner stream; on SIGTERM
stop taking orders, finish in-flight executions (bounded), report them, stop the actions and
close the stream."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry

from .container import Container
from .infrastructure.api.metrics import WorkerCollector
from .infrastructure.api.web import add_operational_routes
from .infrastructure.logging import configure_logging
from .settings import Settings

log = logging.getLogger("ryax_worker")
SERVICE = "worker"


def create_app(container: Container) -> web.Application:
    settings: Settings = container.settings()
    registry = CollectorRegistry()
    app = web.Application()
    connection = container.connection()
    worker = container.worker()
    backend = container.backend()
    registry.register(
        WorkerCollector(
            stats=worker.stats,
            connected=lambda: connection.connected,
            sessions=lambda: connection.sessions,
            processes=backend.process_count,
            restarts=backend.restart_count,
        )
    )

    async def ready() -> bool:
        return connection.connected and worker.accepting

    add_operational_routes(app, registry, ready)

    async def startup(_: web.Application) -> None:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        store = container.filestore()
        try:
            await store.ensure_bucket()
        except Exception as error:  # noqa: BLE001 - the filestore may come later; executions say so
            log.warning("filestore not reachable at start", extra={"reason": str(error)})
        await backend.start()
        connection.start()
        log.info(
            "worker started",
            extra={
                "site": settings.site_name,
                "worker_id": settings.worker_id,
                "backend": settings.backend,
                "runner": settings.runner_address,
                "filestore": settings.s3_endpoint or str(settings.filestore_dir),
                "node_pools": [pool.name for pool in settings.node_pools],
            },
        )

    async def shutdown(_: web.Application) -> None:
        log.info("stopping", extra={"grace_seconds": settings.shutdown_grace_seconds})
        await worker.shutdown(settings.shutdown_grace_seconds)
        await connection.close(flush_timeout=5.0)
        log.info("stopped")

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app


def main() -> None:
    settings = Settings.from_env()
    configure_logging(SERVICE, settings.log_format, settings.log_level)
    container = Container(settings=settings)
    app = create_app(container)
    log.info("listening", extra={"host": settings.http_host, "port": settings.http_port})
    # aiohttp handles SIGTERM/SIGINT: it runs on_shutdown (our graceful stop), then cleanup.
    web.run_app(
        app, host=settings.http_host, port=settings.http_port, print=None, shutdown_timeout=5
    )
