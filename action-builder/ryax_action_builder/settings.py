"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import CommonSettings, ConfigurationError, Env

from .infrastructure.sandbox import nobody

#: The builder has no default filestore directory (RYAX_FILESTORE_DIR is required without an
#: S3 endpoint); this only fills the unused field when an endpoint is set.
_UNUSED_DIR = Path(tempfile.gettempdir()) / "ryax-filestore"


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_AMQP_URL: the broker (orders from ryax.repository, answers to ryax.action-builder).
    amqp_url: str
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: health, readiness and metrics only.
    http_host: str = "127.0.0.1"
    http_port: int = 8106
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_S3_ENDPOINT (host:port, or http(s)://host:port), RYAX_S3_ACCESS_KEY,
    #: RYAX_S3_SECRET_KEY, RYAX_S3_BUCKET (default ryax), RYAX_S3_SECURE (default false),
    #: RYAX_S3_REGION (default none), RYAX_S3_PUBLIC_ENDPOINT. Without an endpoint the
    #: local-directory filestore RYAX_FILESTORE_DIR is used, and then it is required.
    #: See ryax_kit.filestore.FilestoreSettings.
    filestore: FilestoreSettings
    #: RYAX_BUILDER_CACHE_DIR: pip's cache and the wrapper's dependency layer, kept between
    #: builds and restarts (default ~/.cache/ryax-action-builder).
    cache_dir: Path = field(
        default_factory=lambda: Path("~/.cache/ryax-action-builder").expanduser()
    )
    #: RYAX_BUILDER_WORK_DIR: scratch space for builds (default: the system's temp directory).
    work_dir: Path | None = None
    #: RYAX_BUILDER_PYTHON: the interpreter whose pip builds the artefacts; the artefacts run
    #: on the same Python version (default: the builder's own interpreter).
    python: str = sys.executable
    #: RYAX_BUILDER_PIP_TIMEOUT_SECONDS: a pip install taking longer fails the build.
    pip_timeout_seconds: float = 900.0
    #: RYAX_BUILDER_SHUTDOWN_GRACE_SECONDS: on SIGTERM, how long the build in hand may finish
    #: before it is abandoned (unacknowledged: the order is redelivered).
    shutdown_grace_seconds: float = 60.0
    #: RYAX_BUILDER_MAX_SOURCE_BYTES: largest unpacked source archive accepted.
    max_source_bytes: int = 256 * 1024 * 1024
    #: RYAX_SANDBOX: "bwrap" runs pip (and the setup.py or build backends it runs) in a
    #: bubblewrap sandbox, as an unprivileged user, with the build's folders writable and the
    #: rest of the machine hidden (default, when bwrap is installed); "none" runs pip as the
    #: builder's user, refused unless RYAX_SANDBOX_ALLOW_NONE=true. Either way pip's
    #: environment is a clean one (no RYAX_* setting, no credential).
    sandbox: str = "bwrap"
    #: RYAX_SANDBOX_ALLOW_NONE: "true" accepts RYAX_SANDBOX=none (machines without bubblewrap).
    sandbox_allow_none: bool = False
    #: RYAX_SANDBOX_UID / RYAX_SANDBOX_GID: the unprivileged user and group pip runs as when the
    #: builder is root (default nobody/nogroup; 0 is refused).
    sandbox_uid: int = 65534
    sandbox_gid: int = 65534

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = Env.from_os(env)
        common = CommonSettings.read(e, default_port=8106)
        filestore = FilestoreSettings.read(e, default_dir=_UNUSED_DIR)
        if filestore.s3_endpoint is None and e.path("RYAX_FILESTORE_DIR") is None:
            raise ConfigurationError(
                "set RYAX_S3_ENDPOINT (S3 filestore) or RYAX_FILESTORE_DIR "
                "(local-directory filestore)"
            )
        return cls(
            amqp_url=e.required("RYAX_AMQP_URL"),
            http_host=common.http_host,
            http_port=common.http_port,
            log_format=common.log_format,
            log_level=common.log_level,
            filestore=filestore,
            cache_dir=e.path("RYAX_BUILDER_CACHE_DIR")
            or Path("~/.cache/ryax-action-builder").expanduser(),
            work_dir=e.path("RYAX_BUILDER_WORK_DIR"),
            python=e.text("RYAX_BUILDER_PYTHON", sys.executable),
            pip_timeout_seconds=e.number("RYAX_BUILDER_PIP_TIMEOUT_SECONDS", 900.0, minimum=1),
            shutdown_grace_seconds=e.number("RYAX_BUILDER_SHUTDOWN_GRACE_SECONDS", 60.0, minimum=0),
            max_source_bytes=e.integer(
                "RYAX_BUILDER_MAX_SOURCE_BYTES", 256 * 1024 * 1024, minimum=1
            ),
            sandbox=read_sandbox(e),
            sandbox_allow_none=e.flag("RYAX_SANDBOX_ALLOW_NONE"),
            sandbox_uid=e.integer("RYAX_SANDBOX_UID", nobody()[0], minimum=1),
            sandbox_gid=e.integer("RYAX_SANDBOX_GID", nobody()[1], minimum=1),
        )


def read_sandbox(e: Env) -> str:
    """RYAX_SANDBOX, checked: bwrap must be installed, none must be allowed."""
    installed = shutil.which("bwrap") is not None
    sandbox = e.text("RYAX_SANDBOX", "bwrap" if installed else "", lower=True)
    if not sandbox:
        raise ConfigurationError(
            "RYAX_SANDBOX: bubblewrap (bwrap) is not installed: install it (apt-get install "
            "bubblewrap), or set RYAX_SANDBOX=none and RYAX_SANDBOX_ALLOW_NONE=true to run pip "
            "unsandboxed"
        )
    if sandbox not in ("bwrap", "none"):
        raise ConfigurationError(f"RYAX_SANDBOX={sandbox!r}: expected bwrap or none")
    if sandbox == "bwrap" and not installed:
        raise ConfigurationError("RYAX_SANDBOX=bwrap: bwrap is not installed (bubblewrap)")
    if sandbox == "none" and not e.flag("RYAX_SANDBOX_ALLOW_NONE"):
        raise ConfigurationError(
            "RYAX_SANDBOX=none runs pip, and the code of every package it installs, as this "
            "builder's user: refused unless RYAX_SANDBOX_ALLOW_NONE=true"
        )
    return sandbox
