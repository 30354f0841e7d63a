"""Settings, read from the environment. Every variable is documented here with its default."""

from __future__ import annotations

import os
from dataclasses import dataclass


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
    #: key is used). Changing it makes the stored secrets unreadable. No default.
    secret_key: str
    #: RYAX_HTTP_HOST / RYAX_HTTP_PORT: where the HTTP API listens.
    http_host: str = "127.0.0.1"
    http_port: int = 8103
    #: RYAX_LOG_FORMAT: "json" or "text"; RYAX_LOG_LEVEL: debug, info, warning, error.
    log_format: str = "text"
    log_level: str = "info"
    #: RYAX_AUTHZ_CACHE_SECONDS: how long an authorization answer is reused.
    authz_cache_seconds: float = 10.0
    #: RYAX_OUTBOX_RETENTION_SECONDS: published outbox rows (deploy requests carry secret values)
    #: are deleted after this long.
    outbox_retention_seconds: int = 300

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
            raise SystemExit("configuration error: RYAX_SECRET_KEY must be at least 32 characters")
        return cls(
            database_url=required("RYAX_DATABASE_URL"),
            amqp_url=required("RYAX_AMQP_URL"),
            authorization_url=e.get("RYAX_AUTHORIZATION_URL", "http://127.0.0.1:8101"),
            secret_key=secret_key,
            http_host=e.get("RYAX_HTTP_HOST", "127.0.0.1"),
            http_port=int(e.get("RYAX_HTTP_PORT", "8103")),
            log_format=e.get("RYAX_LOG_FORMAT", "text"),
            log_level=e.get("RYAX_LOG_LEVEL", "info"),
            authz_cache_seconds=float(e.get("RYAX_AUTHZ_CACHE_SECONDS", "10")),
            outbox_retention_seconds=int(e.get("RYAX_OUTBOX_RETENTION_SECONDS", "300")),
        )
