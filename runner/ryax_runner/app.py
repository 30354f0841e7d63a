"""Build the container, open resources, serve HTTP and gRPC; drain and close on SIGTERM.

Start: database (created, migrated), filestore (bucket or directory made) -> recorder -> engine
rebuilt from the record -> broker, outbox relay, studio consumer -> gRPC server (workers
reconnect and are reconciled) -> HTTP.
SIGTERM: stop consuming and taking new runs (503), give dispatched executions
RYAX_RUNNER_SHUTDOWN_GRACE seconds, close the worker streams (workers reconnect to the next
runner), commit everything, publish the outbox, close. Runs still going on are in the
database and continue when the runner is back and the workers reconnected.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import aiohttp
from aiohttp import web
from prometheus_client import Gauge

from ryax_kit.authz import AUTHZ, AuthorizationClient
from ryax_kit.database import ensure_database, migrate, ping
from ryax_kit.logging import configure_logging
from ryax_kit.web import Metrics, create_web_app

from .application.engine import Engine
from .container import SERVICE, Container
from .infrastructure.api import endpoints, routes
from .infrastructure.database import MIGRATIONS
from .settings import Settings

log = logging.getLogger("ryax_runner")


def _engine_metrics(metrics: Metrics, engine: Engine) -> None:
    def gauge(name: str, doc: str, read: object) -> None:
        Gauge(name, doc, registry=metrics.registry).set_function(read)  # type: ignore[arg-type]

    gauge("ryax_runner_active_runs", "runs in memory (not ended)", lambda: len(engine.runs))
    gauge("ryax_runner_runs_started_total", "runs started", lambda: engine.stats.runs_started)
    gauge(
        "ryax_runner_runs_completed_total",
        "runs completed",
        lambda: engine.stats.runs_ended.get("completed", 0),
    )
    gauge(
        "ryax_runner_runs_failed_total",
        "runs failed",
        lambda: engine.stats.runs_ended.get("failed", 0),
    )
    gauge(
        "ryax_runner_runs_cancelled_total",
        "runs cancelled",
        lambda: engine.stats.runs_ended.get("cancelled", 0),
    )
    gauge(
        "ryax_runner_executions_dispatched_total",
        "executions dispatched",
        lambda: engine.stats.executions_dispatched,
    )
    gauge(
        "ryax_runner_worker_reports_total",
        "reports received from workers",
        lambda: engine.stats.reports,
    )
    gauge(
        "ryax_runner_sites_online",
        "sites online",
        lambda: sum(1 for s in engine.sites.values() if s.state == "online"),
    )


def create_app(container: Container) -> web.Application:
    settings: Settings = container.settings()
    metrics: Metrics = container.metrics()
    engine = container.engine()
    started = {"ok": False}

    async def ready() -> Mapping[str, bool]:
        return {
            "started": started["ok"],
            "draining": not engine.draining,  # passes while the runner takes new runs
            "broker": container.broker().is_connected,
            "database": await ping(container.db()),
        }

    app = create_web_app(
        metrics=metrics,
        ready=ready,
        prefix=routes.api.prefix,
        api=routes.api,
        errors=routes.ERRORS,
        client_max_size=settings.max_upload_bytes,
    )
    app[routes.ENGINE] = engine
    app[routes.QUERIES] = container.queries()
    app[routes.FILESTORE] = container.filestore()
    app[endpoints.STORE] = container.store()
    app[endpoints.ENDPOINT_SETTINGS] = {
        "sync_timeout": settings.sync_timeout_seconds,
        "sync_timeout_max": settings.sync_timeout_max_seconds,
        "max_inline_bytes": settings.max_inline_bytes,
        "max_upload_bytes": settings.max_upload_bytes,
    }
    app[AUTHZ] = AuthorizationClient(settings.authorization_url)
    _engine_metrics(metrics, engine)

    async def startup(app: web.Application) -> None:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url, MIGRATIONS)
        await container.filestore().ensure_ready()
        recorder = container.recorder()
        recorder.set_outbox_listener(container.relay().wake)
        recorder.start()
        await engine.start()
        await container.broker().connect()
        container.relay().start()
        await container.consumer().start()
        await container.grpc_server().start()
        app[endpoints.HTTP_CLIENT] = aiohttp.ClientSession()
        started["ok"] = True
        log.info("runner started", extra={"grpc": settings.grpc_address})

    async def shutdown(_: web.Application) -> None:
        log.info("draining")
        await container.consumer().stop(settings.shutdown_grace_seconds)
        await engine.drain(settings.shutdown_grace_seconds)

    async def cleanup(app: web.Application) -> None:
        await container.grpc_server().stop(grace=1.0)
        await engine.stop()
        await container.recorder().stop()
        await container.relay().stop()
        await container.broker().close()
        if endpoints.HTTP_CLIENT in app:
            await app[endpoints.HTTP_CLIENT].close()
        await app[AUTHZ].close()
        await container.db().dispose()
        log.info("runner stopped")

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


def main() -> None:
    settings = Settings.from_env()
    configure_logging(SERVICE, settings.log_format, settings.log_level)
    container = Container(settings=settings)
    app = create_app(container)
    log.info("starting", extra={"host": settings.http_host, "port": settings.http_port})
    web.run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        print=None,
        shutdown_timeout=settings.shutdown_grace_seconds + 5,
    )
