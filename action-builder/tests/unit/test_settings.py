"""Settings.from_env: defaults, every variable read, bad values stop with a clear message."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from ryax_action_builder.settings import Settings
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import Env

BASE = {"RYAX_AMQP_URL": "amqp://guest:guest@127.0.0.1/", "RYAX_FILESTORE_DIR": "/srv/files"}


def test_defaults_are_the_documented_ones() -> None:
    assert Settings.from_env(BASE) == Settings(
        amqp_url="amqp://guest:guest@127.0.0.1/",
        filestore=FilestoreSettings.read(Env({}), default_dir=Path("/srv/files")),
    )
    assert Settings.from_env(BASE).python == sys.executable


def test_every_variable() -> None:
    assert Settings.from_env(
        {
            "RYAX_AMQP_URL": "amqp://b/",
            "RYAX_HTTP_HOST": "0.0.0.0",
            "RYAX_HTTP_PORT": "9000",
            "RYAX_LOG_FORMAT": "json",
            "RYAX_LOG_LEVEL": "DEBUG",
            "RYAX_S3_ENDPOINT": "https://s3.example.org:9000",
            "RYAX_S3_ACCESS_KEY": "a",
            "RYAX_S3_SECRET_KEY": "s",
            "RYAX_S3_BUCKET": "b",
            "RYAX_S3_SECURE": "yes",
            "RYAX_S3_REGION": "eu-west-1",
            "RYAX_BUILDER_CACHE_DIR": "/c",
            "RYAX_BUILDER_WORK_DIR": "/w",
            "RYAX_BUILDER_PYTHON": "/usr/bin/python3.11",
            "RYAX_BUILDER_PIP_TIMEOUT_SECONDS": "60",
            "RYAX_BUILDER_SHUTDOWN_GRACE_SECONDS": "5",
            "RYAX_BUILDER_MAX_SOURCE_BYTES": "1024",
        }
    ) == Settings(
        amqp_url="amqp://b/",
        http_host="0.0.0.0",
        http_port=9000,
        log_format="json",
        log_level="debug",
        filestore=FilestoreSettings(
            s3_endpoint="https://s3.example.org:9000",  # the filestore takes TLS from the scheme
            s3_access_key="a",
            s3_secret_key="s",
            s3_bucket="b",
            s3_secure=True,
            s3_region="eu-west-1",
            s3_public_endpoint=None,
            filestore_dir=Path(tempfile.gettempdir()) / "ryax-filestore",  # unused with S3
        ),
        cache_dir=Path("/c"),
        work_dir=Path("/w"),
        python="/usr/bin/python3.11",
        pip_timeout_seconds=60,
        shutdown_grace_seconds=5,
        max_source_bytes=1024,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RYAX_AMQP_URL": ""}, "configuration error: RYAX_AMQP_URL is required"),
        ({"RYAX_FILESTORE_DIR": ""}, "set RYAX_S3_ENDPOINT (S3 filestore) or RYAX_FILESTORE_DIR"),
        ({"RYAX_HTTP_PORT": "x"}, "RYAX_HTTP_PORT='x' is not a whole number"),
        ({"RYAX_LOG_FORMAT": "xml"}, "RYAX_LOG_FORMAT='xml': expected one of json, text"),
        ({"RYAX_S3_SECURE": "maybe"}, "RYAX_S3_SECURE='maybe': expected true or false"),
        ({"RYAX_S3_ENDPOINT": "ftp://h:1"}, "RYAX_S3_ENDPOINT: invalid S3 endpoint 'ftp://h:1'"),
        ({"RYAX_BUILDER_PIP_TIMEOUT_SECONDS": "soon"}, "'soon' is not a number"),
        ({"RYAX_BUILDER_MAX_SOURCE_BYTES": "0"}, "RYAX_BUILDER_MAX_SOURCE_BYTES=0 is below"),
    ],
)
def test_bad_values_stop_the_process(env: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env({**BASE, **env})
    assert str(stopped.value).startswith("configuration error: ")
    assert message in str(stopped.value)
