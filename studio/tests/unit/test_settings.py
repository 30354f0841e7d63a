"""Settings from the environment: defaults, and a clear error for a bad value."""

from __future__ import annotations

import pytest

from ryax_studio.settings import Settings

KEY = "k" * 32
REQUIRED = {
    "RYAX_DATABASE_URL": "postgresql+asyncpg://db/ryax_studio",
    "RYAX_AMQP_URL": "amqp://broker/",
    "RYAX_SECRET_KEY": KEY,
}


def test_defaults() -> None:
    s = Settings.from_env(REQUIRED)
    assert (s.http_host, s.http_port, s.log_format, s.log_level) == (
        "127.0.0.1",
        8103,
        "text",
        "info",
    )
    assert s.authorization_url == "http://127.0.0.1:8101"
    assert (s.authz_cache_seconds, s.outbox_retention_seconds) == (10.0, 300)
    assert s.secret_key_previous == ()


def test_previous_secret_keys_for_a_rotation() -> None:
    s = Settings.from_env({**REQUIRED, "RYAX_SECRET_KEY_PREVIOUS": f"{'a' * 32}, {'b' * 40}"})
    assert s.secret_key_previous == ("a" * 32, "b" * 40)
    with pytest.raises(SystemExit, match="RYAX_SECRET_KEY_PREVIOUS: secret #2 must be at least 32"):
        Settings.from_env({**REQUIRED, "RYAX_SECRET_KEY_PREVIOUS": f"{'a' * 32},short"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RYAX_SECRET_KEY", "short", "RYAX_SECRET_KEY must be at least 32 characters"),
        ("RYAX_HTTP_PORT", "x", "RYAX_HTTP_PORT='x' is not a whole number"),
        ("RYAX_OUTBOX_RETENTION_SECONDS", "-1", "RYAX_OUTBOX_RETENTION_SECONDS=-1 is below"),
        ("RYAX_AUTHZ_CACHE_SECONDS", "soon", "RYAX_AUTHZ_CACHE_SECONDS='soon' is not a number"),
        ("RYAX_LOG_FORMAT", "xml", "RYAX_LOG_FORMAT='xml': expected one of json, text"),
    ],
)
def test_a_bad_value_stops_with_a_configuration_error(name: str, value: str, message: str) -> None:
    with pytest.raises(SystemExit, match="configuration error: ") as error:
        Settings.from_env({**REQUIRED, name: value})
    assert message in str(error.value)


def test_a_missing_variable_is_named() -> None:
    env = dict(REQUIRED)
    del env["RYAX_AMQP_URL"]
    with pytest.raises(SystemExit, match="RYAX_AMQP_URL is required"):
        Settings.from_env(env)
