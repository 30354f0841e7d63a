"""Settings: defaults, and a bad value stops the start with a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryax_authorization.settings import Settings

REQUIRED = {
    "RYAX_DATABASE_URL": "postgresql+asyncpg://db/auth",
    "RYAX_AUTH_SIGNING_KEY_FILE": "/run/secrets/signing-key.pem",
}


def test_defaults() -> None:
    s = Settings.from_env(REQUIRED)
    assert (s.http_host, s.http_port, s.log_format, s.log_level) == (
        "127.0.0.1",
        8101,
        "text",
        "info",
    )
    assert (s.access_token_minutes, s.login_max_failures, s.login_lock_seconds) == (720, 5, 60)
    assert s.admin_user is None and s.admin_password is None
    assert s.signing_key_file == Path("/run/secrets/signing-key.pem")
    assert s.signing_key_previous_files == ()


def test_the_shared_secret_key_is_not_needed_any_more() -> None:
    """Only the signing key file: RYAX_SECRET_KEY is neither required nor read."""
    s = Settings.from_env(REQUIRED)
    assert not any("secret" in name for name in vars(s))


def test_previous_signing_keys() -> None:
    s = Settings.from_env(
        REQUIRED | {"RYAX_AUTH_SIGNING_KEY_PREVIOUS_FILES": "/keys/a.pem, /keys/b.pem"}
    )
    assert s.signing_key_previous_files == (Path("/keys/a.pem"), Path("/keys/b.pem"))


def test_values_are_read() -> None:
    s = Settings.from_env(
        REQUIRED
        | {
            "RYAX_HTTP_PORT": "9000",
            "RYAX_ACCESS_TOKEN_MINUTES": "30",
            "RYAX_ADMIN_USER": "admin",
            "RYAX_ADMIN_PASSWORD": "",
            "RYAX_LOGIN_LOCK_SECONDS": "0",
        }
    )
    assert (s.http_port, s.access_token_minutes, s.login_lock_seconds) == (9000, 30, 0)
    assert s.admin_user == "admin" and s.admin_password is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RYAX_DATABASE_URL": ""}, "RYAX_DATABASE_URL is required"),
        ({"RYAX_AUTH_SIGNING_KEY_FILE": ""}, "RYAX_AUTH_SIGNING_KEY_FILE is required"),
        ({"RYAX_HTTP_PORT": "x"}, "RYAX_HTTP_PORT='x' is not a whole number"),
        ({"RYAX_LOGIN_MAX_FAILURES": "0"}, "RYAX_LOGIN_MAX_FAILURES=0 is below the minimum 1"),
        ({"RYAX_LOG_FORMAT": "xml"}, "RYAX_LOG_FORMAT='xml': expected one of json, text"),
    ],
)
def test_bad_values_stop_the_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit, match=f"^configuration error: {message}"):
        Settings.from_env(REQUIRED | env)
