"""Settings from the environment: defaults, and bad values stopping the start with the name."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryax_repository.settings import MiB, Settings

SECRET = "a-platform-secret-key-of-32-chars-or-more"
BASE = {
    "RYAX_DATABASE_URL": "postgresql+asyncpg://u@h/repository",
    "RYAX_AMQP_URL": "amqp://guest:guest@127.0.0.1/",
    "RYAX_SECRET_KEY": SECRET,
}


def refused(**env: str) -> str:
    with pytest.raises(SystemExit) as caught:
        Settings.from_env({**BASE, **env})
    return str(caught.value)


def test_defaults() -> None:
    s = Settings.from_env(dict(BASE))
    assert (s.http_host, s.http_port, s.log_format, s.log_level) == (
        "127.0.0.1",
        8102,
        "text",
        "info",
    )
    assert s.secret_key_previous == () and s.filestore.s3_endpoint is None
    assert not s.filestore.s3_secure and s.filestore.filestore_dir.name == "ryax-filestore"
    assert (s.max_metadata_bytes, s.max_upload_bytes) == (MiB, 100 * MiB)
    assert s.git_timeout_seconds == 300.0 and s.git_ca_bundle is None and not s.allow_local


def test_values_are_read() -> None:
    s = Settings.from_env(
        {
            **BASE,
            "RYAX_SECRET_KEY_PREVIOUS": f"{'o' * 32}, {'p' * 40}",
            "RYAX_S3_ENDPOINT": "127.0.0.1:8333",
            "RYAX_S3_SECURE": "yes",
            "RYAX_REPOSITORY_ALLOW_LOCAL": "true",
            "RYAX_GIT_CA_BUNDLE": "/etc/ca.pem",
            "RYAX_REPOSITORY_MAX_FILES": "10",
            "RYAX_LOG_LEVEL": "DEBUG",
        }
    )
    assert s.secret_key_previous == ("o" * 32, "p" * 40)
    assert s.filestore.s3_endpoint == "127.0.0.1:8333" and s.filestore.s3_secure
    assert s.allow_local
    assert s.git_ca_bundle == Path("/etc/ca.pem") and s.max_files == 10
    assert s.log_level == "debug"
    assert SECRET not in repr(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RYAX_SECRET_KEY": ""}, "configuration error: RYAX_SECRET_KEY is required"),
        (
            {"RYAX_SECRET_KEY": "short"},
            "configuration error: RYAX_SECRET_KEY must be at least 32 characters",
        ),
        (
            {"RYAX_SECRET_KEY_PREVIOUS": "short"},
            "configuration error: RYAX_SECRET_KEY_PREVIOUS: secret #1 must be at least 32 "
            "characters",
        ),
        ({"RYAX_DATABASE_URL": ""}, "configuration error: RYAX_DATABASE_URL is required"),
        (
            {"RYAX_HTTP_PORT": "x"},
            "configuration error: RYAX_HTTP_PORT='x' is not a whole number",
        ),
        (
            {"RYAX_REPOSITORY_MAX_UPLOAD_BYTES": "lots"},
            "configuration error: RYAX_REPOSITORY_MAX_UPLOAD_BYTES='lots' is not a whole number",
        ),
        (
            {"RYAX_GIT_TIMEOUT_SECONDS": "soon"},
            "configuration error: RYAX_GIT_TIMEOUT_SECONDS='soon' is not a number",
        ),
        (
            {"RYAX_S3_ENDPOINT": "ftp://s3:9000"},
            "configuration error: RYAX_S3_ENDPOINT: invalid S3 endpoint 'ftp://s3:9000': "
            "expected http(s)://host:port",
        ),
        (
            {"RYAX_S3_SECURE": "maybe"},
            "configuration error: RYAX_S3_SECURE='maybe': expected true or false",
        ),
        (
            {"RYAX_LOG_FORMAT": "xml"},
            "configuration error: RYAX_LOG_FORMAT='xml': expected one of json, text",
        ),
    ],
)
def test_bad_values_stop_the_start_naming_the_variable(env: dict[str, str], message: str) -> None:
    assert refused(**env) == message
