"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ryax_kit.crypto import KeyRing
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import CommonSettings, ConfigurationError, Env


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_DATABASE_URL: the service's own database (created if missing), e.g.
    #: postgresql+asyncpg://postgres@127.0.0.1:5432/ryax_studio. No default.
    database_url: str
    #: RYAX_AMQP_URL: RabbitMQ (consumes ryax.repository and ryax.runner, publishes on
    #: ryax.studio). No default.
    amqp_url: str
    #: RYAX_AUTHORIZATION_URL: the authorization service (the contract /authorization/v1/authorize).
    authorization_url: str = "http://127.0.0.1:8101"
    #: RYAX_SECRET_KEY: the key project secrets are encrypted with (>= 32 characters; a derived
    #: key is used). Changing it makes the stored secrets unreadable unless the old one is kept
    #: in RYAX_SECRET_KEY_PREVIOUS. No default.
    secret_key: str
    #: RYAX_SECRET_KEY_PREVIOUS: former values of RYAX_SECRET_KEY, comma-separated (newest
    #: first), still accepted to read secrets stored before a key rotation. Default: none.
    secret_key_previous: tuple[str, ...] = ()
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8103
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTHZ_CACHE_SECONDS: how long an authorization answer is reused.
    authz_cache_seconds: float = 10.0
    #: RYAX_OUTBOX_RETENTION_SECONDS: published outbox rows are deleted after this long.
    outbox_retention_seconds: int = 300
    #: RYAX_INTERNAL_TOKEN: the service credential the runner presents on the internal route
    #: (/studio/internal/v1/deployments/{id}/values: the values of a deployment's secrets and
    #: password-type inputs), shared by the studio and the runner only; >= 32 characters.
    #: Default: none (the internal route answers 503, so deploying a workflow that uses a secret
    #: or a password waits for it).
    internal_token: str = field(default="", repr=False)
    #: RYAX_STUDIO_MIN_TIMER_INTERVAL: the smallest interval (seconds) of the built-in "Emit
    #: Every" trigger (emitgw) a workflow may set; a smaller one is a validation problem.
    min_timer_interval_seconds: int = 1
    #: RYAX_S3_ENDPOINT, RYAX_S3_ACCESS_KEY, RYAX_S3_SECRET_KEY, RYAX_S3_BUCKET, RYAX_S3_SECURE,
    #: RYAX_S3_REGION: the filestore static files go to (the runner's and workers'); when
    #: RYAX_S3_ENDPOINT is unset, the local directory RYAX_FILESTORE_DIR (default
    #: <tmp>/ryax-filestore). See ryax_kit.filestore.FilestoreSettings. Default: the directory.
    filestore: FilestoreSettings | None = None
    #: RYAX_STUDIO_MAX_FILE_BYTES: the largest static file, or directory (as its tar), an input
    #: may hold; an upload over it is refused (413). Default 256 MiB.
    max_file_bytes: int = 256 * 1024 * 1024
    #: RYAX_STUDIO_MAX_ARCHIVE_BYTES: the largest workflow zip, as sent and once extracted
    #: (413 past it). Default 1 GiB.
    max_archive_bytes: int = 1024 * 1024 * 1024

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = Env.from_os(env)
        secret_key, *previous = KeyRing.read_secrets(e)
        common = CommonSettings.read(e, default_port=8103)
        return cls(
            database_url=e.required("RYAX_DATABASE_URL"),
            amqp_url=e.required("RYAX_AMQP_URL"),
            authorization_url=e.text("RYAX_AUTHORIZATION_URL", "http://127.0.0.1:8101"),
            secret_key=secret_key,
            secret_key_previous=tuple(previous),
            http_host=common.http_host,
            http_port=common.http_port,
            log_format=common.log_format,
            log_level=common.log_level,
            authz_cache_seconds=e.number("RYAX_AUTHZ_CACHE_SECONDS", 10.0, minimum=0),
            outbox_retention_seconds=e.integer("RYAX_OUTBOX_RETENTION_SECONDS", 300, minimum=0),
            internal_token=read_internal_token(e),
            min_timer_interval_seconds=e.integer("RYAX_STUDIO_MIN_TIMER_INTERVAL", 1, minimum=1),
            filestore=FilestoreSettings.read(
                e, default_dir=Path(tempfile.gettempdir()) / "ryax-filestore"
            ),
            max_file_bytes=e.integer("RYAX_STUDIO_MAX_FILE_BYTES", 256 * 1024 * 1024, minimum=1),
            max_archive_bytes=e.integer(
                "RYAX_STUDIO_MAX_ARCHIVE_BYTES", 1024 * 1024 * 1024, minimum=1024
            ),
        )


def read_internal_token(e: Env) -> str:
    token = e.text("RYAX_INTERNAL_TOKEN")
    if token and len(token) < 32:
        raise ConfigurationError("RYAX_INTERNAL_TOKEN must be at least 32 characters")
    return token
