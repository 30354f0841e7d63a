"""The one place that names concrete adapters. Building it does no I/O."""

from __future__ import annotations

from dependency_injector import containers, providers

from .application.use_cases import ActionBuilder, BuildObserver, BuildSettings
from .domain.model import ArchiveLimits
from .infrastructure.api.web import Metrics
from .infrastructure.archive import TarSourceUnpacker
from .infrastructure.clock import SystemClock
from .infrastructure.filestore import LocalDirFilestore, S3Filestore
from .infrastructure.messaging.broker import Broker
from .infrastructure.messaging.publisher import AioPikaEventPublisher
from .infrastructure.metadata import parse_metadata
from .infrastructure.pip_build import PipBuildTool
from .infrastructure.wrapper_source import WrapperSource
from .settings import Settings

SERVICE = "action-builder"


def make_filestore(settings: Settings) -> S3Filestore | LocalDirFilestore:
    if settings.s3_endpoint:
        return S3Filestore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    assert settings.filestore_dir is not None
    return LocalDirFilestore(settings.filestore_dir)


def observers(metrics: Metrics) -> tuple[BuildObserver, ...]:
    return (metrics.observe,)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    broker = providers.Singleton(Broker, url=settings.provided.amqp_url, service=SERVICE)
    filestore = providers.Singleton(make_filestore, settings)
    wrapper = providers.Singleton(WrapperSource.locate)
    build_tool = providers.Singleton(
        PipBuildTool,
        python=settings.provided.python,
        cache_dir=settings.provided.cache_dir,
        wrapper=wrapper,
        pip_timeout_seconds=settings.provided.pip_timeout_seconds,
    )
    metrics = providers.Singleton(Metrics, SERVICE)
    publisher = providers.Singleton(AioPikaEventPublisher, broker)
    build_settings = providers.Singleton(
        BuildSettings,
        work_root=settings.provided.work_dir,
        limits=providers.Factory(ArchiveLimits, max_total_bytes=settings.provided.max_source_bytes),
    )
    builder = providers.Singleton(
        ActionBuilder,
        filestore=filestore,
        unpacker=providers.Singleton(TarSourceUnpacker),
        build_tool=build_tool,
        parse_metadata=providers.Object(parse_metadata),
        publisher=publisher,
        clock=providers.Singleton(SystemClock),
        settings=build_settings,
        observers=providers.Callable(observers, metrics),
    )
