"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ryax_kit.settings import CommonSettings, Env


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: RYAX_DATABASE_URL: the service's own database (created if missing).
    database_url: str
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8101
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTH_SIGNING_KEY_FILE: a PEM Ed25519 private key (PKCS#8, no passphrase) that signs
    #: access tokens; only this service holds it. No default. Make one with
    #: `openssl genpkey -algorithm ed25519 -out signing-key.pem` (mode 0600).
    signing_key_file: Path
    #: RYAX_AUTH_SIGNING_KEY_PREVIOUS_FILES: comma-separated PEM files of the previous keys
    #: (public or private, one or more keys per file) while a key is rotated: tokens they signed
    #: still verify until they expire, and the JWKS lists them. Default: none.
    signing_key_previous_files: tuple[Path, ...] = ()
    #: RYAX_ACCESS_TOKEN_MINUTES: lifetime of an access token from login.
    access_token_minutes: int = 12 * 60
    #: RYAX_ADMIN_USER / RYAX_ADMIN_PASSWORD: first admin, created at first start only.
    admin_user: str | None = None
    admin_password: str | None = None
    #: RYAX_LOGIN_MAX_FAILURES / RYAX_LOGIN_LOCK_SECONDS: lockout after repeated failures.
    login_max_failures: int = 5
    login_lock_seconds: int = 60

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = Env.from_os(env)
        common = CommonSettings.read(e, default_port=8101)
        return cls(
            database_url=e.required("RYAX_DATABASE_URL"),
            http_host=common.http_host,
            http_port=common.http_port,
            log_format=common.log_format,
            log_level=common.log_level,
            signing_key_file=Path(
                e.required(
                    "RYAX_AUTH_SIGNING_KEY_FILE",
                    hint="a PEM Ed25519 private key: openssl genpkey -algorithm ed25519",
                )
            ),
            signing_key_previous_files=tuple(
                Path(p) for p in e.items("RYAX_AUTH_SIGNING_KEY_PREVIOUS_FILES")
            ),
            access_token_minutes=e.integer("RYAX_ACCESS_TOKEN_MINUTES", 12 * 60, minimum=1),
            admin_user=e.raw("RYAX_ADMIN_USER"),
            admin_password=e.raw("RYAX_ADMIN_PASSWORD"),
            login_max_failures=e.integer("RYAX_LOGIN_MAX_FAILURES", 5, minimum=1),
            login_lock_seconds=e.integer("RYAX_LOGIN_LOCK_SECONDS", 60, minimum=0),
        )
