"""Build the container, open resources, serve HTTP and gRPC; drain and close on SIGTERM.

Start: HTTP (/healthz answers at once) and database (created, migrated) -> the runner lease
(one runner drives runs at a time: while another holds it this one waits, /readyz 503 with
`leader: false`, and starts nothing else) -> filestore (bucket or directory made) -> recorder
-> engine rebuilt from the record -> broker, outbox relay, studio consumer -> gRPC server
(workers reconnect and are reconciled) -> callbacks -> the timer scheduler (built-in timer
triggers; stopped first at SIGTERM).
Lease lost (its database connection closed: the database restarted, the session was ended):
another runner may already drive the runs, so this one stops at once: it exits (status 75)
without committing anything more, and its supervisor starts it again to wait for the lease.
What it had not committed was not acknowledged to any worker, which sends it again.
SIGTERM: stop consuming and taking new runs (503), give dispatched executions
RYAX_RUNNER_SHUTDOWN_GRACE seconds, close the worker streams (workers reconnect to the next
runner), commit everything, publish the outbox, close. Runs still going on are in the
database and continue when the runner is back and the workers reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping

from aiohttp import web
from prometheus_client import Gauge

from ryax_kit.authz import AUTHZ, AuthorizationClient
from ryax_kit.database import ensure_database, migrate, ping
from ryax_kit.logging import configure_logging
from ryax_kit.web import Metrics, create_web_app, run_app
from ryax_kit.web.limits import add_body_limits

from .application.engine import Engine
from .application.retention import RetentionCleaner
from .application.scheduler import Scheduler
from .container import SERVICE, Container
from .infrastructure.api import endpoints, routes, user_api
from .infrastructure.api import retention as retention_api
from .infrastructure.api import sites as _site_routes  # noqa: F401 - adds its routes to routes.api
from .infrastructure.database import MIGRATIONS
from .infrastructure.database.recorder import SqlRecorder
from .settings import Settings

log = logging.getLogger("ryax_runner")

#: The largest body a route other than the endpoint trigger accepts (none reads one).
NO_BODY_BYTES = 64 * 1024
#: Exit status when the lease is lost (EX_TEMPFAIL: start again), or the start failed.
LEASE_LOST_EXIT = 75
START_FAILED_EXIT = 1
#: Set once the runner holds the lease and every part is started.
STARTED = web.AppKey("started", asyncio.Event)
#: What stops the process at once (reason, exit status); tests give their own.
StopNow = Callable[[str, int], None]


def exit_now(reason: str, status: int) -> None:
    """Stop driving runs at once, without committing anything more (the lease is lost, or
    the runner could not start): the supervisor starts the process again."""
    log.critical(f"{reason}: exiting now (status {status}) so that the supervisor restarts it")
    logging.shutdown()
    sys.stderr.flush()
    os._exit(status)


def _engine_metrics(metrics: Metrics, engine: Engine, recorder: SqlRecorder) -> None:
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
        "ryax_runner_early_orders_total",
        "Execute orders of a new run sent before its first commit (its caller not answered yet)",
        lambda: engine.stats.early_orders,
    )
    gauge(
        "ryax_runner_worker_reports_total",
        "reports received from workers",
        lambda: engine.stats.reports,
    )
    gauge(
        "ryax_runner_parked_records",
        "records the runner could not write, set aside (python -m ryax_runner.parked)",
        lambda: recorder.parked_count,
    )
    gauge(
        "ryax_runner_commits_total",
        "batches the recorder committed (group commit: the changes of many runs in one)",
        lambda: recorder.commits,
    )
    gauge(
        "ryax_runner_lazy_runs",
        "runs whose change waits for their next one (RYAX_RUNNER_LAZY_RECORD_SECONDS)",
        lambda: recorder.lazy_runs,
    )
    gauge(
        "ryax_runner_sites_online",
        "sites online",
        lambda: sum(1 for s in engine.sites.values() if s.state == "online"),
    )


def _timer_metrics(metrics: Metrics, scheduler: Scheduler) -> None:
    for name, doc, read in (
        ("ryax_runner_timers", "built-in timers scheduled", lambda: len(scheduler.timers)),
        ("ryax_runner_timer_fires_total", "runs started by timers", lambda: scheduler.fired),
        (
            "ryax_runner_timer_late_fires_total",
            "runs started late by timers (misfires: the runner was down when due)",
            lambda: scheduler.fired_late,
        ),
    ):
        Gauge(name, doc, registry=metrics.registry).set_function(read)


def _retention_metrics(metrics: Metrics, cleaner: RetentionCleaner) -> None:
    stats = cleaner.stats
    for name, doc, read in (
        (
            "ryax_runner_retention_runs_deleted_total",
            "runs deleted by retention",
            lambda: stats.runs_deleted,
        ),
        (
            "ryax_runner_retention_executions_deleted_total",
            "executions deleted by retention",
            lambda: stats.executions_deleted,
        ),
        (
            "ryax_runner_retention_log_lines_deleted_total",
            "log lines deleted by retention",
            lambda: stats.log_lines_deleted,
        ),
        (
            "ryax_runner_retention_process_log_lines_deleted_total",
            "log lines of deployments' own processes (of no run) deleted by retention",
            lambda: stats.process_log_lines_deleted,
        ),
        (
            "ryax_runner_retention_objects_deleted_total",
            "filestore objects deleted by retention",
            lambda: stats.objects_deleted,
        ),
        (
            "ryax_runner_retention_failures_total",
            "runs retention could not delete yet (kept, tried again later)",
            lambda: stats.failures,
        ),
        ("ryax_runner_retention_passes_total", "retention passes", lambda: stats.passes),
        (
            "ryax_runner_retention_last_pass_seconds",
            "duration of the last retention pass",
            lambda: stats.last_pass_seconds,
        ),
    ):
        Gauge(name, doc, registry=metrics.registry).set_function(read)


def create_app(container: Container, stop_now: StopNow = exit_now) -> web.Application:
    settings: Settings = container.settings()
    metrics: Metrics = container.metrics()
    engine = container.engine()
    recorder = container.recorder()
    lease = container.lease()
    started = asyncio.Event()
    # Until this runner leads and is started, it takes no run (503).
    engine.draining = True

    async def ready() -> Mapping[str, bool]:
        return {
            "leader": lease.held,
            "started": started.is_set(),
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
        # request.read()/post() (a url-encoded endpoint call): at most a JSON body's size.
        client_max_size=settings.max_json_bytes,
    )
    # Only the endpoint trigger takes a body (a multipart one streamed to disk, each file and
    # the whole checked as they come); every other route refuses one over 64 KiB.
    endpoint = ("POST", routes.api.prefix + routes.P + "/endpoints/{endpoint}")
    uploads = (endpoint, *user_api.BODY_ROUTES)  # the user API's calls take a body too
    add_body_limits(
        app,
        default=NO_BODY_BYTES,
        routes={r: max(settings.max_upload_total_bytes, settings.max_json_bytes) for r in uploads},
        hints=dict.fromkeys(uploads, "RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES"),
    )
    user_api.setup(app)
    app[STARTED] = started
    app[routes.ENGINE] = engine
    app[routes.QUERIES] = container.queries()
    app[routes.FILESTORE] = container.filestore()
    app[endpoints.STORE] = container.store()
    app[endpoints.RECORDER] = recorder
    app[endpoints.CALLBACKS] = container.callbacks()
    app[endpoints.ENDPOINT_SETTINGS] = {
        "sync_timeout": settings.sync_timeout_seconds,
        "sync_timeout_max": settings.sync_timeout_max_seconds,
        "max_inline_bytes": settings.max_inline_bytes,
        "max_upload_bytes": settings.max_upload_bytes,
        "max_upload_total_bytes": settings.max_upload_total_bytes,
        "max_json_bytes": settings.max_json_bytes,
        "outbound_allow": settings.outbound_allow,
    }
    app[AUTHZ] = AuthorizationClient(settings.authorization_url)
    _engine_metrics(metrics, engine, recorder)
    _timer_metrics(metrics, container.scheduler())
    _retention_metrics(metrics, container.retention())
    app[retention_api.ARCHIVE] = container.run_archive()
    app[retention_api.DEFAULT_DAYS] = settings.run_retention_days
    #: What was started, in order (stopped in reverse at cleanup).
    running: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def watch_lease() -> None:
        await lease.lost.wait()
        stop_now("runner lease lost (another runner may drive the runs now)", LEASE_LOST_EXIT)

    async def lead() -> None:
        try:
            await start_leading()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the runner could not start")
            stop_now("the runner could not start", START_FAILED_EXIT)

    async def start_leading() -> None:
        await lease.acquire()  # waits while another runner holds it, saying who
        tasks.append(asyncio.create_task(watch_lease(), name="runner-lease-watch"))
        await container.filestore().ensure_ready()
        recorder.set_outbox_listener(container.relay().wake)
        recorder.set_unrecordable_listener(engine.abandon_run)
        recorder.set_load(lambda: len(engine.runs))
        recorder.start()
        running.append("recorder")
        await engine.start()
        running.append("engine")
        if settings.builtin_site_name:  # before the gRPC port opens: its worker is expected
            engine.configure_site(
                settings.builtin_site_name,
                settings.builtin_site_kind,
                settings.builtin_site_credential,
            )
            await engine.durable()
        engine.draining = False
        await container.broker().connect()
        running.append("broker")
        container.relay().start()
        running.append("relay")
        await container.consumer().start()
        running.append("consumer")
        await container.grpc_server().start()
        running.append("grpc")
        container.callbacks().start()
        running.append("callbacks")
        await container.scheduler().start()
        running.append("scheduler")
        container.retention().start()
        running.append("retention")
        started.set()
        log.info("runner started", extra={"grpc": settings.grpc_address})

    async def startup(app: web.Application) -> None:
        await ensure_database(settings.database_url)
        await migrate(settings.database_url, MIGRATIONS, child=True)
        tasks.append(asyncio.create_task(lead(), name="runner-lead"))

    async def shutdown(_: web.Application) -> None:
        log.info("draining")
        engine.draining = True
        if "retention" in running:
            await container.retention().stop()
        if "scheduler" in running:
            await container.scheduler().stop()
        if "consumer" in running:
            await container.consumer().stop(settings.shutdown_grace_seconds)
        if "engine" in running:
            await engine.drain(settings.shutdown_grace_seconds)

    async def cleanup(app: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if "retention" in running:
            await container.retention().stop()
        if "scheduler" in running:
            await container.scheduler().stop()
        if "callbacks" in running:
            await container.callbacks().stop()
        if "grpc" in running:
            await container.grpc_server().stop(grace=1.0)
        if "engine" in running:
            await engine.stop()
        if "recorder" in running:
            await recorder.stop()
        if "relay" in running:
            await container.relay().stop()
        if "broker" in running:
            await container.broker().close()
        await container.studio_values().close()
        await lease.release()  # only once everything is committed: the next runner may lead
        await app[AUTHZ].close()
        await container.db().dispose()
        await container.recorder_db().dispose()
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
    run_app(
        app,
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=settings.shutdown_grace_seconds + 5,
    )
