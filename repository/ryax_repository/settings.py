"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
_DEFAULT_ROOT = Path(tempfile.gettempdir())


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_DATABASE_URL: the service's own database (created if missing). No default.
    database_url: str
    #: RYAX_AMQP_URL: RabbitMQ. No default; empty only in tests (events then stay in the outbox).
    amqp_url: str | None
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8102
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTHORIZATION_URL: the authorization service (the /authorize contract).
    authorization_url: str = "http://127.0.0.1:8101"
    #: RYAX_SECRET_KEY: >= 32 characters; the key encrypting stored git credentials is derived
    #: from it (changing it makes stored credentials unreadable). No default.
    secret_key: str
    #: RYAX_S3_ENDPOINT (host:port), RYAX_S3_ACCESS_KEY, RYAX_S3_SECRET_KEY, RYAX_S3_BUCKET
    #: (default ryax), RYAX_S3_SECURE (default false): the S3 filestore. When RYAX_S3_ENDPOINT
    #: is unset, the local directory RYAX_FILESTORE_DIR is the filestore.
    s3_endpoint: str | None = None
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "ryax"
    s3_secure: bool = False
    #: RYAX_FILESTORE_DIR: the local filestore (default <tmp>/ryax-filestore); shared with the
    #: action builder and the workers on a single machine.
    filestore_dir: Path = _DEFAULT_ROOT / "ryax-filestore"
    #: RYAX_REPOSITORY_WORK_DIR: clones, scratch space for scans and uploads
    #: (default <tmp>/ryax-repository).
    work_dir: Path = _DEFAULT_ROOT / "ryax-repository"
    #: RYAX_REPOSITORY_ALLOW_LOCAL: accept local paths, file:// URLs and hosts on internal
    #: addresses (loopback, private, link-local). Default false; the demo and tests set true.
    allow_local: bool = False
    #: RYAX_GIT_TIMEOUT_SECONDS: the longest a clone/fetch may take (default 300).
    git_timeout_seconds: float = 300.0
    #: RYAX_GIT_CA_BUNDLE: a PEM file of CA certificates for https git hosts with a private CA
    #: (default: the system's CAs).
    git_ca_bundle: Path | None = None
    #: RYAX_REPOSITORY_MAX_REPOSITORY_BYTES: largest fetched repository (default 1 GiB).
    max_repository_bytes: int = 1024 * MiB
    #: RYAX_REPOSITORY_MAX_FILES: most files scanned in one source (default 200000).
    max_files: int = 200_000
    #: RYAX_REPOSITORY_MAX_ACTION_BYTES: largest action folder (default 50 MiB).
    max_action_bytes: int = 50 * MiB
    #: RYAX_REPOSITORY_MAX_METADATA_BYTES: largest ryax_metadata.yaml (default 1 MiB).
    max_metadata_bytes: int = MiB
    #: RYAX_REPOSITORY_MAX_UPLOAD_BYTES: largest uploaded archive (default 100 MiB).
    max_upload_bytes: int = 100 * MiB
    #: RYAX_REPOSITORY_MAX_EXTRACTED_BYTES: most bytes an upload may expand to (default 500 MiB).
    max_extracted_bytes: int = 500 * MiB

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)

        def required(name: str) -> str:
            value = e.get(name)
            if not value:
                raise SystemExit(f"configuration error: {name} is required")
            return value

        def number(name: str, default: int) -> int:
            raw = e.get(name, "")
            try:
                return int(raw) if raw else default
            except ValueError:
                raise SystemExit(f"configuration error: {name} must be a whole number") from None

        secret = required("RYAX_SECRET_KEY")
        if len(secret) < 32:
            raise SystemExit("configuration error: RYAX_SECRET_KEY must be at least 32 characters")
        return cls(
            database_url=required("RYAX_DATABASE_URL"),
            amqp_url=required("RYAX_AMQP_URL"),
            http_host=e.get("RYAX_HTTP_HOST", "127.0.0.1"),
            http_port=number("RYAX_HTTP_PORT", 8102),
            log_format=e.get("RYAX_LOG_FORMAT", "text"),
            log_level=e.get("RYAX_LOG_LEVEL", "info"),
            authorization_url=e.get("RYAX_AUTHORIZATION_URL", "http://127.0.0.1:8101"),
            secret_key=secret,
            s3_endpoint=e.get("RYAX_S3_ENDPOINT") or None,
            s3_access_key=e.get("RYAX_S3_ACCESS_KEY", ""),
            s3_secret_key=e.get("RYAX_S3_SECRET_KEY", ""),
            s3_bucket=e.get("RYAX_S3_BUCKET", "ryax"),
            s3_secure=_flag(e.get("RYAX_S3_SECURE")),
            filestore_dir=Path(e.get("RYAX_FILESTORE_DIR") or _DEFAULT_ROOT / "ryax-filestore"),
            work_dir=Path(e.get("RYAX_REPOSITORY_WORK_DIR") or _DEFAULT_ROOT / "ryax-repository"),
            allow_local=_flag(e.get("RYAX_REPOSITORY_ALLOW_LOCAL")),
            git_timeout_seconds=float(e.get("RYAX_GIT_TIMEOUT_SECONDS") or 300),
            git_ca_bundle=Path(e["RYAX_GIT_CA_BUNDLE"]) if e.get("RYAX_GIT_CA_BUNDLE") else None,
            max_repository_bytes=number("RYAX_REPOSITORY_MAX_REPOSITORY_BYTES", 1024 * MiB),
            max_files=number("RYAX_REPOSITORY_MAX_FILES", 200_000),
            max_action_bytes=number("RYAX_REPOSITORY_MAX_ACTION_BYTES", 50 * MiB),
            max_metadata_bytes=number("RYAX_REPOSITORY_MAX_METADATA_BYTES", MiB),
            max_upload_bytes=number("RYAX_REPOSITORY_MAX_UPLOAD_BYTES", 100 * MiB),
            max_extracted_bytes=number("RYAX_REPOSITORY_MAX_EXTRACTED_BYTES", 500 * MiB),
        )

    def __repr__(self) -> str:
        return f"Settings(http={self.http_host}:{self.http_port}, allow_local={self.allow_local})"
