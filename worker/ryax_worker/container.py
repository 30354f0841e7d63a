"""The one place that names concrete adapters. Building it does no I/O."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

from dependency_injector import containers, providers

from ryax_kit.core import SystemClock
from ryax_kit.filestore import FilestoreSettings

from .application.deployments import Deployments
from .application.executions import Executions
from .application.held import HeldFiles
from .application.ports import FileStore
from .application.reports import ReportQueue
from .application.retention import RetentionPolicy
from .application.staging import FileStaging
from .application.worker import Worker
from .domain.model import Backoff, RestartPolicy, SiteInfo
from .infrastructure.grpc.presign_client import RunnerPresigner
from .infrastructure.grpc.runner_client import RunnerConnection
from .infrastructure.local.artefacts import ArtefactCache
from .infrastructure.local.backend import LocalBackend
from .infrastructure.local.forkserver import ForkServers
from .infrastructure.local.process import ProcessOptions
from .infrastructure.local.sandbox import SandboxConfig, find_bwrap
from .infrastructure.local.site_files import SiteFileCache
from .infrastructure.placement import FilestorePlacement
from .infrastructure.presigned import PresignedTransfers
from .infrastructure.slurm.backend import SlurmBackend, SlurmOptions
from .infrastructure.slurm.cluster import SlurmCluster
from .infrastructure.transfers import FilestoreTransfers, TransferStats
from .settings import Settings


def worker_version() -> str:
    try:
        return metadata.version("ryax-worker")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def make_site(settings: Settings) -> SiteInfo:
    return SiteInfo(
        worker_id=settings.worker_id,
        site_name=settings.site_name,
        backend_kind=settings.backend,
        node_pools=settings.node_pools,
        labels=dict(settings.site_labels),
        version=worker_version(),
    )


def make_process_options(settings: Settings) -> ProcessOptions:
    fork_servers = (
        ForkServers(
            home=settings.cache_dir / "fork-servers",
            start_timeout_seconds=settings.action_start_timeout_seconds,
        )
        if settings.action_fork_server and settings.backend == "local"
        else None
    )
    return ProcessOptions(
        fork_servers=fork_servers,
        start_timeout_seconds=settings.action_start_timeout_seconds,
        stop_grace_seconds=settings.action_stop_grace_seconds,
        wrapper_log_level=settings.action_log_level,
        extra_env={
            name: os.environ[name] for name in settings.action_env_passthrough if name in os.environ
        },
        sandbox=SandboxConfig(
            mode=settings.sandbox,
            bwrap=find_bwrap() or "bwrap",
            uid=settings.sandbox_uid,
            gid=settings.sandbox_gid,
            max_processes=settings.action_max_processes,
            read_only_paths=settings.sandbox_read_only_paths,
        ),
    )


def make_slurm_backend(settings: Settings, store: FileStore) -> SlurmBackend:
    shared = settings.slurm_shared_dir
    assert shared is not None  # required by Settings for the slurm backend
    process = make_process_options(settings)
    return SlurmBackend(
        cluster=SlurmCluster(),
        artefacts=ArtefactCache(store, shared),
        options=SlurmOptions(
            shared_dir=shared,
            site_name=settings.site_name,
            poll_seconds=settings.slurm_poll_seconds,
            sbatch_options=settings.slurm_sbatch_options,
            partitions=settings.slurm_partitions,
            sandbox=process.sandbox,
            wrapper_log_level=settings.action_log_level,
            extra_env=process.extra_env,
        ),
    )


def staging_root(settings: Settings) -> Path:
    """Where executions' inputs and work directories go: the shared directory for Slurm."""
    if settings.backend == "slurm" and settings.slurm_shared_dir is not None:
        return settings.slurm_shared_dir / "executions"
    return settings.cache_dir / "executions"


def site_files_root(settings: Settings) -> Path:
    return settings.cache_dir / "site-files"


def make_backend(settings: Settings, store: FileStore) -> LocalBackend | SlurmBackend:
    if settings.backend == "slurm":
        return make_slurm_backend(settings, store)
    cache: Path = settings.cache_dir
    return LocalBackend(
        artefacts=ArtefactCache(store, cache),
        instances_dir=cache / "instances",
        executions_dir=cache / "executions",
        options=make_process_options(settings),
        policy=RestartPolicy(max_consecutive_failures=settings.action_max_failures),
        retention=RetentionPolicy(
            retention_seconds=settings.action_retention_seconds,
            always_warm=frozenset(settings.action_always_warm),
        ),
    )


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    #: The kit's filestore (readiness, bucket creation); use cases see it through `transfers`.
    #: Only in "direct" mode (RYAX_WORKER_FILES).
    filestore = providers.Singleton(FilestoreSettings.filestore, settings.provided.filestore)
    transfer_stats = providers.Singleton(TransferStats)
    presigner = providers.Singleton(
        RunnerPresigner,
        address=settings.provided.runner_address,
        site_name=settings.provided.site_name,
        credential=settings.provided.site_credential,
        ca_file=settings.provided.runner_ca_file,
        server_name=settings.provided.runner_tls_server_name,
    )
    transfers = providers.Selector(
        settings.provided.files,
        direct=providers.Singleton(FilestoreTransfers, filestore, transfer_stats),
        presigned=providers.Singleton(
            PresignedTransfers,
            presigner,
            stats=transfer_stats,
            attempts=settings.provided.file_attempts,
        ),
    )
    placement = providers.Singleton(FilestorePlacement)
    reports = providers.Singleton(ReportQueue)
    site_files = providers.Singleton(
        SiteFileCache,
        root=providers.Callable(site_files_root, settings),
        max_bytes=settings.provided.site_files_max_bytes,
        stats=transfer_stats,
    )
    held = providers.Singleton(
        HeldFiles,
        store=site_files,
        filestore=transfers,
        reports=reports,
        enabled=providers.Callable(lambda s: s.site_files == "hold", settings),
    )
    staging = providers.Singleton(
        FileStaging,
        store=transfers,
        root=providers.Callable(staging_root, settings),
        site_files=site_files,
        held=held,
    )
    backend = providers.Singleton(make_backend, settings, transfers)
    deployments = providers.Singleton(
        Deployments,
        backend=backend,
        reports=reports,
        staging=staging,
        placement=placement,
        clock=clock,
    )
    executions = providers.Singleton(
        Executions,
        backend=backend,
        deployments=deployments,
        reports=reports,
        staging=staging,
        placement=placement,
        clock=clock,
        site_name=settings.provided.site_name,
    )
    worker = providers.Singleton(
        Worker,
        site=providers.Callable(make_site, settings),
        backend=backend,
        reports=reports,
        deployments=deployments,
        executions=executions,
        held=held,
    )
    connection = providers.Singleton(
        RunnerConnection,
        address=settings.provided.runner_address,
        worker=worker,
        reports=reports,
        clock=clock,
        heartbeat_seconds=settings.provided.heartbeat_seconds,
        silence_timeout_seconds=settings.provided.runner_silence_seconds,
        backoff=providers.Factory(
            Backoff, initial=0.2, maximum=settings.provided.reconnect_max_seconds
        ),
        credential=settings.provided.site_credential,
        ca_file=settings.provided.runner_ca_file,
        server_name=settings.provided.runner_tls_server_name,
        socket_path=settings.provided.runner_socket,
    )
