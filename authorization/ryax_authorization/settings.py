"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import os
from dataclasses import dataclass


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
    #: RYAX_SECRET_KEY: signs access tokens (>= 32 characters). No default.
    secret_key: str
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
        e = dict(os.environ if env is None else env)

        def required(name: str) -> str:
            value = e.get(name)
            if not value:
                raise SystemExit(f"configuration error: {name} is required")
            return value

        return cls(
            database_url=required("RYAX_DATABASE_URL"),
            http_host=e.get("RYAX_HTTP_HOST", "127.0.0.1"),
            http_port=int(e.get("RYAX_HTTP_PORT", "8101")),
            log_format=e.get("RYAX_LOG_FORMAT", "text"),
            log_level=e.get("RYAX_LOG_LEVEL", "info"),
            secret_key=required("RYAX_SECRET_KEY"),
            access_token_minutes=int(e.get("RYAX_ACCESS_TOKEN_MINUTES", str(12 * 60))),
            admin_user=e.get("RYAX_ADMIN_USER") or None,
            admin_password=e.get("RYAX_ADMIN_PASSWORD") or None,
            login_max_failures=int(e.get("RYAX_LOGIN_MAX_FAILURES", "5")),
            login_lock_seconds=int(e.get("RYAX_LOGIN_LOCK_SECONDS", "60")),
        )
