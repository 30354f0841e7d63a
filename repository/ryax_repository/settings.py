"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ryax_kit.crypto import KeyRing
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.net import OutboundAllow
from ryax_kit.settings import CommonSettings, Env

MiB = 1024 * 1024
_DEFAULT_ROOT = Path(tempfile.gettempdir())


def _size(e: Env, name: str, default: int) -> int:
    """A limit: a whole number of at least 1."""
    return e.integer(name, default, minimum=1)


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_DATABASE_URL: the service's own database (created if missing). No default.
    database_url: str
    #: RYAX_AMQP_URL: RabbitMQ. No default; empty only in tests (events then stay in the outbox).
    amqp_url: str | None
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8102
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error, critical.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTHORIZATION_URL: the authorization service (the /authorize contract).
    authorization_url: str = "http://127.0.0.1:8101"
    #: RYAX_SECRET_KEY: >= 32 characters; the key encrypting stored git credentials is derived
    #: from it (changing it makes stored credentials unreadable unless the old one is kept in
    #: RYAX_SECRET_KEY_PREVIOUS). No default.
    secret_key: str
    #: RYAX_SECRET_KEY_PREVIOUS: comma-separated former values of RYAX_SECRET_KEY (oldest
    #: last), still accepted to read credentials stored before a rotation. Default: none.
    secret_key_previous: tuple[str, ...] = ()
    #: RYAX_S3_ENDPOINT (host:port, or http(s)://host:port whose scheme then decides TLS),
    #: RYAX_S3_ACCESS_KEY, RYAX_S3_SECRET_KEY, RYAX_S3_BUCKET (default ryax), RYAX_S3_SECURE
    #: (default false), RYAX_S3_REGION, RYAX_S3_PUBLIC_ENDPOINT: the S3 filestore. When
    #: RYAX_S3_ENDPOINT is unset, the local directory RYAX_FILESTORE_DIR is the filestore
    #: (default <tmp>/ryax-filestore; shared with the action builder and the workers on a
    #: single machine). See ryax_kit.filestore.FilestoreSettings.
    filestore: FilestoreSettings
    #: RYAX_REPOSITORY_WORK_DIR: clones, scratch space for scans and uploads
    #: (default <tmp>/ryax-repository).
    work_dir: Path = _DEFAULT_ROOT / "ryax-repository"
    #: RYAX_REPOSITORY_ALLOW_LOCAL: accept local paths, file:// URLs and hosts on internal
    #: addresses (loopback, private, link-local). Default false; the demo and tests set true.
    allow_local: bool = False
    #: RYAX_OUTBOUND_ALLOW: internal destinations a repository may be fetched from all the same,
    #: comma-separated CIDRs, addresses and host names (`*.corp.example` for subdomains); see
    #: ryax_kit.net. Default: none (only public addresses).
    outbound_allow: OutboundAllow = field(default_factory=OutboundAllow)
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
        e = Env.from_os(env)
        common = CommonSettings.read(e, default_port=8102)
        secret, *previous = KeyRing.read_secrets(e)
        return cls(
            database_url=e.required("RYAX_DATABASE_URL"),
            amqp_url=e.required("RYAX_AMQP_URL"),
            http_host=common.http_host,
            http_port=common.http_port,
            log_format=common.log_format,
            log_level=common.log_level,
            authorization_url=e.text("RYAX_AUTHORIZATION_URL", "http://127.0.0.1:8101"),
            secret_key=secret,
            secret_key_previous=tuple(previous),
            filestore=FilestoreSettings.read(e, default_dir=_DEFAULT_ROOT / "ryax-filestore"),
            work_dir=e.path("RYAX_REPOSITORY_WORK_DIR") or _DEFAULT_ROOT / "ryax-repository",
            allow_local=e.flag("RYAX_REPOSITORY_ALLOW_LOCAL"),
            outbound_allow=OutboundAllow.read(e),
            git_timeout_seconds=e.number("RYAX_GIT_TIMEOUT_SECONDS", 300.0, minimum=1),
            git_ca_bundle=e.path("RYAX_GIT_CA_BUNDLE"),
            max_repository_bytes=_size(e, "RYAX_REPOSITORY_MAX_REPOSITORY_BYTES", 1024 * MiB),
            max_files=_size(e, "RYAX_REPOSITORY_MAX_FILES", 200_000),
            max_action_bytes=_size(e, "RYAX_REPOSITORY_MAX_ACTION_BYTES", 50 * MiB),
            max_metadata_bytes=_size(e, "RYAX_REPOSITORY_MAX_METADATA_BYTES", MiB),
            max_upload_bytes=_size(e, "RYAX_REPOSITORY_MAX_UPLOAD_BYTES", 100 * MiB),
            max_extracted_bytes=_size(e, "RYAX_REPOSITORY_MAX_EXTRACTED_BYTES", 500 * MiB),
        )

    def __repr__(self) -> str:
        return f"Settings(http={self.http_host}:{self.http_port}, allow_local={self.allow_local})"
