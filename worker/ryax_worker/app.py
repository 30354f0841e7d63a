"""Build the container, open resources, serve health/metrics and the runner stream; on SIGTERM
stop taking orders, finish in-flight executions (bounded), report them, stop the actions and
close the stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace

from aiohttp import web

from ryax_kit.logging import configure_logging
from ryax_kit.web import Metrics, create_web_app, run_app

from .container import Container
from .infrastructure.api.metrics import WorkerCollector
from .infrastructure.presigned import PresignedTransfers
from .infrastructure.slurm.backend import SlurmBackend
from .settings import Settings

log = logging.getLogger("ryax_worker")
SERVICE = "worker"
#: A readiness probe answers within this, whatever the filestore does (an unreachable S3 host
#: can hold the kit's ping for its connect timeout times its retries).
FILESTORE_PING_SECONDS = 3.0


def create_app(container: Container) -> web.Application:
    """Only /healthz, /readyz and /metrics (also under /worker/): the worker has no API, it is
    driven by the runner's gRPC stream."""
    settings: Settings = container.settings()
    metrics = Metrics(SERVICE)
    connection = container.connection()
    worker = container.worker()
    backend = container.backend()
    direct = settings.files == "direct"
    store = container.filestore() if direct else None
    transfers = container.transfers()
    transfer_stats = container.transfer_stats()
    metrics.registry.register(
        WorkerCollector(
            stats=worker.stats,
            connected=lambda: connection.connected,
            sessions=lambda: connection.sessions,
            processes=backend.process_count,
            restarts=backend.restart_count,
            asleep=getattr(backend, "asleep_count", lambda: 0),
            cold_starts=getattr(backend, "cold_start_count", lambda: 0),
            transfers=lambda: transfer_stats,
        )
    )

    async def filestore_answers() -> bool:
        if store is None:
            return True  # presigned: the runner signs, the filestore is reached per transfer
        try:
            return await asyncio.wait_for(store.ping(), FILESTORE_PING_SECONDS)
        except TimeoutError:
            return False

    async def ready() -> Mapping[str, bool]:
        """Registered with the runner, taking orders (not stopping), filestore reachable (in
        "direct" mode), and the action sandbox working (`sandbox`); with RYAX_SANDBOX=none
        (allowed) the check is named `sandbox_none_allowed` instead: actions run unsandboxed."""
        sandbox = (
            {"sandbox": backend.sandbox.active}
            if settings.sandbox != "none"
            else {"sandbox_none_allowed": settings.sandbox_allow_none}
        )
        return {
            "registered": connection.connected,
            "accepting": worker.accepting,
            "filestore": await filestore_answers(),
            **sandbox,
        }

    app = create_web_app(metrics=metrics, ready=ready, prefix="/worker")

    async def startup(_: web.Application) -> None:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        container.site_files().clean_partial()
        if store is not None:
            try:
                await store.ensure_ready()
            except Exception as error:  # noqa: BLE001 - it may come later; executions say so
                log.warning("filestore not reachable at start", extra={"reason": str(error)})
        await backend.start()
        if isinstance(backend, SlurmBackend):
            # A Slurm site's node pools are its partitions, read from the cluster (sinfo).
            worker.site = replace(worker.site, node_pools=backend.node_pools())
        worker.resume_detached()
        connection.start()
        where = settings.filestore
        log.info(
            "worker started",
            extra={
                "site": settings.site_name,
                "worker_id": settings.worker_id,
                "backend": settings.backend,
                "runner": settings.runner_address,
                "runner_tls": settings.runner_ca_file is not None,
                "files": settings.files,
                "filestore": (where.s3_endpoint or str(where.filestore_dir))
                if direct
                else "presigned URLs from the runner",
                "node_pools": [pool.name for pool in worker.site.node_pools],
            },
        )
        if not settings.site_credential:
            log.error(
                "no site credential (RYAX_SITE_CREDENTIAL): the runner will refuse this worker; "
                "an admin creates the site and its credential with `ryax site create`"
            )

    async def shutdown(_: web.Application) -> None:
        log.info("stopping", extra={"grace_seconds": settings.shutdown_grace_seconds})
        await worker.shutdown(settings.shutdown_grace_seconds)
        await connection.close(flush_timeout=5.0)
        if isinstance(transfers, PresignedTransfers):
            await transfers.close()
            await container.presigner().close()
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
    # On uvloop: see GRPC_ENABLE_FORK_SUPPORT in __main__.py.
    run_app(app, host=settings.http_host, port=settings.http_port, shutdown_timeout=5)
