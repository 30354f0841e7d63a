"""The one place that names concrete adapters. Building it does no I/O."""

from __future__ import annotations

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.authz import AuthorizationClient
from ryax_kit.core import SystemClock
from ryax_kit.database import create_engine
from ryax_kit.messaging import Broker, Consumer, OutboxRelay
from ryax_kit.web import Metrics

from .application.files import FileLimits
from .application.use_cases import (
    ActionStore,
    Deployments,
    ProjectVariables,
    Secrets,
    Workflows,
)
from .infrastructure.database.tables import outbox
from .infrastructure.database.uow import SqlAlchemyUnitOfWork
from .infrastructure.filestore import KitFileStore
from .infrastructure.messaging.handlers import QUEUE, SUBSCRIPTIONS, StudioMessageHandler
from .infrastructure.security import AesGcmSecretCipher
from .infrastructure.yaml_format import RyaxWorkflowYaml
from .settings import Settings

SERVICE = "studio"


def _file_store(settings: Settings) -> KitFileStore | None:
    if settings.filestore is None:
        return None
    return KitFileStore(settings.filestore.filestore())


def _file_limits(settings: Settings) -> FileLimits:
    return FileLimits(
        max_file_bytes=settings.max_file_bytes, max_archive_bytes=settings.max_archive_bytes
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    metrics = providers.Singleton(Metrics, SERVICE)
    engine = providers.Singleton(create_engine, url=settings.provided.database_url)
    session_factory = providers.Singleton(
        async_sessionmaker[AsyncSession], engine, expire_on_commit=False
    )
    broker = providers.Singleton(Broker, url=settings.provided.amqp_url, service=SERVICE)
    relay = providers.Singleton(
        OutboxRelay,
        session_factory=session_factory,
        table=outbox,
        broker=broker,
        registry=metrics.provided.registry,
    )
    clock = providers.Singleton(SystemClock)
    cipher = providers.Singleton(
        AesGcmSecretCipher,
        secret_key=settings.provided.secret_key,
        previous_keys=settings.provided.secret_key_previous,
    )
    uow = providers.Factory(
        SqlAlchemyUnitOfWork,
        session_factory=session_factory,
        cipher=cipher,
        after_commit=relay.provided.wake,
    )
    workflow_format = providers.Singleton(RyaxWorkflowYaml)
    #: Static files of step inputs (None when the settings name no filestore: uploads 503).
    files = providers.Singleton(_file_store, settings)
    file_limits = providers.Singleton(_file_limits, settings)
    authz = providers.Singleton(
        AuthorizationClient,
        base_url=settings.provided.authorization_url,
        ttl_seconds=settings.provided.authz_cache_seconds,
    )

    actions = providers.Singleton(ActionStore, uow_factory=uow.provider, clock=clock)
    secrets = providers.Singleton(Secrets, uow_factory=uow.provider, clock=clock, cipher=cipher)
    variables = providers.Singleton(
        ProjectVariables,
        uow_factory=uow.provider,
        clock=clock,
        cipher=cipher,
        files=files,
        file_limits=file_limits,
    )
    workflows = providers.Singleton(
        Workflows,
        uow_factory=uow.provider,
        clock=clock,
        fmt=workflow_format,
        min_interval_seconds=settings.provided.min_timer_interval_seconds,
        files=files,
        file_limits=file_limits,
    )
    deployments = providers.Singleton(
        Deployments,
        uow_factory=uow.provider,
        clock=clock,
        cipher=cipher,
        min_interval_seconds=settings.provided.min_timer_interval_seconds,
    )

    message_handler = providers.Singleton(
        StudioMessageHandler, actions=actions, deployments=deployments
    )
    consumer = providers.Singleton(
        Consumer,
        broker=broker,
        queue=QUEUE,
        subscriptions=providers.Object(SUBSCRIPTIONS),
        handler=message_handler,
        registry=metrics.provided.registry,
    )
