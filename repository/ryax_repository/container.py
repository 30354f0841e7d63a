"""The one place that names concrete adapters. Building it does no I/O."""

from __future__ import annotations

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.authz import AuthorizationClient
from ryax_kit.core import SystemClock
from ryax_kit.crypto import KeyRing
from ryax_kit.database import create_engine
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.messaging import Broker, Consumer, OutboxRelay
from ryax_kit.web import Metrics

from .application.use_cases import RepositoryUseCases
from .infrastructure.archives import SafeArchiveExtractor
from .infrastructure.database.tables import outbox
from .infrastructure.database.uow import SqlAlchemyUnitOfWork
from .infrastructure.git import GitCli
from .infrastructure.messaging.handlers import SUBSCRIPTIONS, make_handler
from .infrastructure.messaging.mappers import CONSUMER_QUEUE
from .infrastructure.network import OutboundAddressGuard
from .infrastructure.security import SealedCredentialCipher
from .infrastructure.sources import FolderScanner, ScanLimits
from .settings import Settings

SERVICE = "repository"


def make_broker(settings: Settings) -> Broker | None:
    return Broker(settings.amqp_url, SERVICE) if settings.amqp_url else None


def make_key_ring(settings: Settings) -> KeyRing:
    """RYAX_SECRET_KEY seals; it and RYAX_SECRET_KEY_PREVIOUS open."""
    return KeyRing([settings.secret_key, *settings.secret_key_previous])


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    metrics = providers.Singleton(Metrics, SERVICE)
    engine = providers.Singleton(create_engine, url=settings.provided.database_url)
    session_factory = providers.Singleton(
        async_sessionmaker[AsyncSession], engine, expire_on_commit=False
    )
    broker = providers.Singleton(make_broker, settings)
    relay = providers.Singleton(
        OutboxRelay, session_factory, outbox, broker, registry=metrics.provided.registry
    )
    uow = providers.Factory(
        SqlAlchemyUnitOfWork, session_factory=session_factory, after_commit=relay.provided.wake
    )
    clock = providers.Singleton(SystemClock)
    cipher = providers.Singleton(
        SealedCredentialCipher, providers.Singleton(make_key_ring, settings)
    )
    guard = providers.Singleton(OutboundAddressGuard, settings.provided.outbound_allow)
    git = providers.Singleton(
        GitCli,
        settings.provided.work_dir,
        timeout_seconds=settings.provided.git_timeout_seconds,
        max_repository_bytes=settings.provided.max_repository_bytes,
        ca_bundle=settings.provided.git_ca_bundle,
    )
    scanner = providers.Singleton(
        FolderScanner,
        providers.Factory(
            ScanLimits,
            max_metadata_bytes=settings.provided.max_metadata_bytes,
            max_action_bytes=settings.provided.max_action_bytes,
            max_files=settings.provided.max_files,
        ),
    )
    extractor = providers.Singleton(
        SafeArchiveExtractor, max_bytes=settings.provided.max_extracted_bytes
    )
    #: S3 when RYAX_S3_ENDPOINT is set, else the local directory RYAX_FILESTORE_DIR.
    filestore = providers.Singleton(FilestoreSettings.filestore, settings.provided.filestore)
    use_cases = providers.Singleton(
        RepositoryUseCases,
        uow_factory=uow.provider,
        clock=clock,
        cipher=cipher,
        guard=guard,
        git=git,
        scanner=scanner,
        extractor=extractor,
        filestore=filestore,
        work_dir=settings.provided.work_dir,
        allow_local=settings.provided.allow_local,
    )
    consumer = providers.Singleton(
        Consumer,
        broker,
        CONSUMER_QUEUE,
        SUBSCRIPTIONS,
        providers.Factory(make_handler, use_cases),
        registry=metrics.provided.registry,
    )
    authz = providers.Singleton(AuthorizationClient, settings.provided.authorization_url)
