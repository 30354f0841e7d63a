"""The one place that names concrete adapters. Building it does no I/O."""

from __future__ import annotations

from dependency_injector import containers, providers

from ryax_kit.core import AsyncioTimers, SystemClock
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.messaging import Broker
from ryax_kit.web import Metrics

from .application.use_cases import ActionBuilder, BuildObserver, BuildSettings
from .domain.model import ArchiveLimits
from .infrastructure.archive import TarSourceUnpacker
from .infrastructure.kit_filestore import KitFilestore
from .infrastructure.messaging.publisher import AioPikaEventPublisher
from .infrastructure.metadata import parse_metadata
from .infrastructure.metrics import BuildMetrics
from .infrastructure.pip_build import PipBuildTool
from .infrastructure.sandbox import PipSandbox
from .infrastructure.wrapper_source import WrapperSource
from .settings import Settings

SERVICE = "action-builder"


def observers(metrics: BuildMetrics) -> tuple[BuildObserver, ...]:
    return (metrics.observe,)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    broker = providers.Singleton(Broker, url=settings.provided.amqp_url, service=SERVICE)
    #: S3 when RYAX_S3_ENDPOINT is set, else the local directory (Settings require one).
    filestore = providers.Singleton(FilestoreSettings.filestore, settings.provided.filestore)
    wrapper = providers.Singleton(WrapperSource.locate)
    build_tool = providers.Singleton(
        PipBuildTool,
        python=settings.provided.python,
        cache_dir=settings.provided.cache_dir,
        wrapper=wrapper,
        pip_timeout_seconds=settings.provided.pip_timeout_seconds,
        sandbox=providers.Callable(
            PipSandbox.configured,
            settings.provided.sandbox,
            settings.provided.sandbox_uid,
            settings.provided.sandbox_gid,
        ),
    )
    metrics = providers.Singleton(Metrics, SERVICE)
    build_metrics = providers.Singleton(BuildMetrics, metrics.provided.registry)
    publisher = providers.Singleton(AioPikaEventPublisher, broker)
    build_settings = providers.Singleton(
        BuildSettings,
        work_root=settings.provided.work_dir,
        limits=providers.Factory(ArchiveLimits, max_total_bytes=settings.provided.max_source_bytes),
    )
    builder = providers.Singleton(
        ActionBuilder,
        filestore=providers.Singleton(KitFilestore, filestore),
        unpacker=providers.Singleton(TarSourceUnpacker),
        build_tool=build_tool,
        parse_metadata=providers.Object(parse_metadata),
        publisher=publisher,
        clock=providers.Singleton(SystemClock),
        timers=providers.Singleton(AsyncioTimers),
        settings=build_settings,
        observers=providers.Callable(observers, build_metrics),
    )
