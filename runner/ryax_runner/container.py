"""The one place that names concrete adapters. Building it does no I/O."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.core import AsyncioTimers, SystemClock
from ryax_kit.database import Lease, create_engine
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.messaging import Broker, OutboxRelay
from ryax_kit.web import Metrics

from .application.engine import Engine, EngineSettings
from .application.retention import RetentionCleaner, RetentionSettings
from .application.scheduler import Scheduler, SchedulerSettings
from .domain.run import RunId
from .infrastructure.api.callbacks import CallbackSender
from .infrastructure.database.queries import SqlRunnerQueries
from .infrastructure.database.recorder import SqlRecorder
from .infrastructure.database.retention import SqlRunArchive
from .infrastructure.database.serialization import SecretBox
from .infrastructure.database.store import SqlStateStore
from .infrastructure.database.tables import outbox
from .infrastructure.database.timers import SqlTimerStore
from .infrastructure.grpc.server import GrpcServer, Presigner, TlsFiles
from .infrastructure.messaging.handlers import studio_consumer
from .infrastructure.messaging.mappers import state_changed_to_proto
from .infrastructure.messaging.studio_values import StudioValues
from .infrastructure.scheduling.cron import CronsimCalendar
from .settings import Settings

SERVICE = "runner"


def engine_settings(settings: Settings) -> EngineSettings:
    return EngineSettings(
        heartbeat_interval_seconds=settings.heartbeat_interval_seconds,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        retry_backoff_seconds=settings.retry_backoff_seconds,
        max_inline_bytes=settings.max_inline_bytes,
        infra_retries=settings.infra_retries,
        default_step_timeout_seconds=settings.default_step_timeout_seconds,
        timeout_grace_seconds=settings.timeout_grace_seconds,
        site_wait_timeout_seconds=settings.site_wait_timeout_seconds,
        publish_wait_seconds=settings.publish_wait_seconds,
        max_fanout=settings.max_fanout,
        max_run_executions=settings.max_run_executions,
    )


def presign_ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.presign_ttl_seconds)


def held_by(engine: Engine) -> Callable[[str], bool]:
    """Whether the engine holds the run in memory (driving it, or ending it): never deleted."""
    return lambda run_id: RunId(run_id) in engine.runs


def grpc_tls(settings: Settings) -> TlsFiles | None:
    if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
        return None
    return TlsFiles(cert_file=settings.grpc_tls_cert_file, key_file=settings.grpc_tls_key_file)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    metrics = providers.Singleton(Metrics, SERVICE)
    db = providers.Singleton(
        create_engine,
        url=settings.provided.database_url,
        pool_size=settings.provided.database_pool_size,
    )
    session_factory = providers.Singleton(
        async_sessionmaker[AsyncSession], db, expire_on_commit=False
    )
    box = providers.Singleton(
        SecretBox, settings.provided.secret_key, settings.provided.secret_key_previous
    )
    broker = providers.Singleton(Broker, settings.provided.amqp_url, SERVICE)
    relay = providers.Singleton(
        OutboxRelay, session_factory, outbox, broker, registry=metrics.provided.registry
    )
    #: The recorder's own connections, not pinged at each checkout: it commits many small
    #: batches, and a failed one (a dead connection included, which it drops) is written again.
    recorder_db = providers.Singleton(
        create_engine, url=settings.provided.database_url, pool_size=2, pre_ping=False
    )
    recorder = providers.Singleton(
        SqlRecorder,
        recorder_db,
        box,
        state_changed_to_proto,
        commit_mode=settings.provided.commit_mode,
        linger_seconds=settings.provided.commit_linger_seconds,
        lazy_seconds=settings.provided.lazy_record_seconds,
    )
    store = providers.Singleton(SqlStateStore, db, box)
    clock = providers.Singleton(SystemClock)
    timers = providers.Singleton(AsyncioTimers)
    engine = providers.Singleton(
        Engine,
        recorder=recorder,
        store=store,
        clock=clock,
        timers=timers,
        settings=providers.Factory(engine_settings, settings),
    )
    queries = providers.Singleton(SqlRunnerQueries, db)
    #: S3 when RYAX_S3_ENDPOINT is set, else the local directory RYAX_FILESTORE_DIR.
    filestore = providers.Singleton(FilestoreSettings.filestore, settings.provided.filestore)
    grpc_server = providers.Singleton(
        GrpcServer,
        engine,
        settings.provided.grpc_address,
        tls=providers.Callable(grpc_tls, settings),
        registry=metrics.provided.registry,
        tls_address=settings.provided.grpc_tls_address,
        socket_path=settings.provided.worker_socket,
        presigner=providers.Factory(
            Presigner,
            store=filestore,
            ttl=providers.Callable(presign_ttl, settings),
        ),
    )
    studio_values = providers.Singleton(
        StudioValues, settings.provided.studio_url, settings.provided.internal_token
    )
    consumer = providers.Singleton(
        studio_consumer, broker, engine, studio_values, registry=metrics.provided.registry
    )
    #: One runner drives runs at a time: the others wait for this lease (app.py).
    lease = providers.Singleton(Lease, settings.provided.database_url, "runner")
    callbacks = providers.Singleton(
        CallbackSender,
        db,
        attempts=settings.provided.callback_attempts,
        backoff_seconds=settings.provided.callback_backoff_seconds,
        allow=settings.provided.outbound_allow,
    )
    #: The built-in timer triggers, scheduled in the runner (application/scheduler.py).
    scheduler = providers.Singleton(
        Scheduler,
        engine=engine,
        store=providers.Singleton(SqlTimerStore, db),
        calendar=providers.Singleton(CronsimCalendar),
        clock=clock,
        timers=timers,
        settings=providers.Factory(
            SchedulerSettings,
            tick_seconds=settings.provided.timer_tick_seconds,
            min_interval_seconds=settings.provided.min_timer_interval_seconds,
        ),
    )
    #: Run retention: ended runs older than their project's retention deleted in the
    #: background, with their log lines and files (application/retention.py).
    run_archive = providers.Singleton(SqlRunArchive, db)
    retention = providers.Singleton(
        RetentionCleaner,
        archive=run_archive,
        files=filestore,
        clock=clock,
        settings=providers.Factory(
            RetentionSettings,
            default_days=settings.provided.run_retention_days,
            interval_seconds=settings.provided.retention_interval_seconds,
            runs_per_tick=settings.provided.retention_runs_per_tick,
        ),
        is_live=providers.Callable(held_by, engine),
    )
