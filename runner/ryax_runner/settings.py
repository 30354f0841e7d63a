"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_DATABASE_URL: the service's own database (created if missing). Required.
    database_url: str
    #: RYAX_AMQP_URL: RabbitMQ. Required.
    amqp_url: str
    #: RYAX_SECRET_KEY: encrypts the secrets of deployed workflows at rest (>= 32 chars).
    secret_key: str
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8104
    #: RYAX_RUNNER_GRPC_ADDRESS: where the WorkerService gRPC server listens (host:port).
    grpc_address: str = "127.0.0.1:8105"
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTHORIZATION_URL: the authorization service (the authz contract).
    authorization_url: str = "http://127.0.0.1:8101"
    #: RYAX_S3_ENDPOINT (host:port), RYAX_S3_ACCESS_KEY, RYAX_S3_SECRET_KEY, RYAX_S3_BUCKET,
    #: RYAX_S3_SECURE: the S3 filestore; when RYAX_S3_ENDPOINT is unset the local directory
    #: RYAX_FILESTORE_DIR (default <tmp>/ryax-filestore, shared with the workers) is used.
    s3_endpoint: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "ryax"
    s3_secure: bool = False
    filestore_dir: Path = Path(tempfile.gettempdir()) / "ryax-filestore"
    #: RYAX_RUNNER_HEARTBEAT_INTERVAL: seconds between the heartbeats a worker must send.
    heartbeat_interval_seconds: float = 2.0
    #: RYAX_RUNNER_HEARTBEAT_TIMEOUT: a site silent this long is offline (<= 10 s).
    heartbeat_timeout_seconds: float = 6.0
    #: RYAX_RUNNER_RETRY_BACKOFF: first retry delay of a failed execution (doubles each time).
    retry_backoff_seconds: float = 1.0
    #: RYAX_RUNNER_MAX_INLINE_BYTES: largest inline (non-file) value in a message.
    max_inline_bytes: int = 64 * 1024
    #: RYAX_RUNNER_SYNC_TIMEOUT: default and maximum wait of a synchronous endpoint call.
    sync_timeout_seconds: float = 60.0
    sync_timeout_max_seconds: float = 3600.0
    #: RYAX_RUNNER_MAX_UPLOAD_BYTES: largest request body of an endpoint call (files included).
    max_upload_bytes: int = 1024 * 1024 * 1024
    #: RYAX_RUNNER_SHUTDOWN_GRACE: seconds given to dispatched executions at SIGTERM.
    shutdown_grace_seconds: float = 10.0
    #: RYAX_RUNNER_PUBLIC_URL: base URL of the gateway used in links (file downloads, status);
    #: empty = links relative to the host of the request.
    public_url: str = ""
    #: RYAX_DATABASE_POOL_SIZE: connections of the engine's pool.
    database_pool_size: int = 10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)

        def required(name: str) -> str:
            value = e.get(name)
            if not value:
                raise SystemExit(f"configuration error: {name} is required")
            return value

        secret_key = required("RYAX_SECRET_KEY")
        if len(secret_key) < 32:
            raise SystemExit("configuration error: RYAX_SECRET_KEY must be at least 32 chars")
        timeout = float(e.get("RYAX_RUNNER_HEARTBEAT_TIMEOUT") or "6")
        if timeout > 10:
            raise SystemExit("configuration error: RYAX_RUNNER_HEARTBEAT_TIMEOUT must be <= 10")
        return cls(
            database_url=required("RYAX_DATABASE_URL"),
            amqp_url=required("RYAX_AMQP_URL"),
            secret_key=secret_key,
            http_host=e.get("RYAX_HTTP_HOST") or "127.0.0.1",
            http_port=int(e.get("RYAX_HTTP_PORT") or "8104"),
            grpc_address=e.get("RYAX_RUNNER_GRPC_ADDRESS") or "127.0.0.1:8105",
            log_format=e.get("RYAX_LOG_FORMAT") or "text",
            log_level=e.get("RYAX_LOG_LEVEL") or "info",
            authorization_url=e.get("RYAX_AUTHORIZATION_URL") or "http://127.0.0.1:8101",
            s3_endpoint=e.get("RYAX_S3_ENDPOINT", ""),
            s3_access_key=e.get("RYAX_S3_ACCESS_KEY", ""),
            s3_secret_key=e.get("RYAX_S3_SECRET_KEY", ""),
            s3_bucket=e.get("RYAX_S3_BUCKET") or "ryax",
            s3_secure=_bool(e.get("RYAX_S3_SECURE", "false")),
            filestore_dir=Path(
                e.get("RYAX_FILESTORE_DIR") or Path(tempfile.gettempdir()) / "ryax-filestore"
            ).expanduser(),
            heartbeat_interval_seconds=float(e.get("RYAX_RUNNER_HEARTBEAT_INTERVAL") or "2"),
            heartbeat_timeout_seconds=timeout,
            retry_backoff_seconds=float(e.get("RYAX_RUNNER_RETRY_BACKOFF") or "1"),
            max_inline_bytes=int(e.get("RYAX_RUNNER_MAX_INLINE_BYTES") or str(64 * 1024)),
            sync_timeout_seconds=float(e.get("RYAX_RUNNER_SYNC_TIMEOUT") or "60"),
            max_upload_bytes=int(e.get("RYAX_RUNNER_MAX_UPLOAD_BYTES") or str(1024**3)),
            shutdown_grace_seconds=float(e.get("RYAX_RUNNER_SHUTDOWN_GRACE") or "10"),
            public_url=(e.get("RYAX_RUNNER_PUBLIC_URL") or "").rstrip("/"),
            database_pool_size=int(e.get("RYAX_DATABASE_POOL_SIZE") or "10"),
        )
