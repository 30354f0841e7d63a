"""The runner's settings: every variable read with its default; a bad value stops the process
with a message naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryax_kit.settings import ConfigurationError
from ryax_runner.container import engine_settings
from ryax_runner.settings import Settings

KEY = "k" * 32
REQUIRED = {"RYAX_DATABASE_URL": "postgresql+asyncpg://db/r", "RYAX_AMQP_URL": "amqp://mq/"}


def test_defaults() -> None:
    s = Settings.from_env({**REQUIRED, "RYAX_SECRET_KEY": KEY})
    assert (s.http_host, s.http_port, s.grpc_address) == ("127.0.0.1", 8104, "127.0.0.1:8105")
    assert (s.heartbeat_interval_seconds, s.heartbeat_timeout_seconds) == (2.0, 6.0)
    assert (s.filestore.s3_endpoint, s.filestore.s3_bucket, s.filestore.s3_secure) == (
        None,
        "ryax",
        False,
    )
    assert s.secret_key_previous == ()
    assert s.max_upload_bytes == 1024**3 and s.sync_timeout_seconds == 60.0
    assert s.filestore.filestore_dir.name == "ryax-filestore"
    assert (s.infra_retries, s.default_step_timeout_seconds) == (3, 3600.0)
    assert (s.timeout_grace_seconds, s.site_wait_timeout_seconds) == (30.0, 300.0)
    assert (s.callback_attempts, s.callback_backoff_seconds) == (8, 2.0)
    assert s.presign_ttl_seconds == 900 and s.filestore.s3_public_endpoint is None
    assert (s.commit_linger_seconds, s.lazy_record_seconds) == (0.002, 0.2)


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            **REQUIRED,
            "RYAX_SECRET_KEY": KEY,
            "RYAX_SECRET_KEY_PREVIOUS": f"{'a' * 32}, {'b' * 40}",
            "RYAX_HTTP_PORT": "9000",
            "RYAX_RUNNER_GRPC_ADDRESS": "0.0.0.0:9001",
            "RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT": "true",
            "RYAX_LOG_FORMAT": "json",
            "RYAX_S3_ENDPOINT": "http://s3:8333",
            "RYAX_S3_SECURE": "yes",
            "RYAX_FILESTORE_DIR": "/srv/files",
            "RYAX_RUNNER_HEARTBEAT_TIMEOUT": "10",
            "RYAX_RUNNER_MAX_UPLOAD_BYTES": "2048",
            "RYAX_RUNNER_PUBLIC_URL": "https://ryax.example/",
            "RYAX_DATABASE_POOL_SIZE": "3",
            "RYAX_RUNNER_INFRA_RETRIES": "0",
            "RYAX_RUNNER_COMMIT_MODE": "Every",
            "RYAX_RUNNER_COMMIT_LINGER_SECONDS": "0.005",
            "RYAX_RUNNER_LAZY_RECORD_SECONDS": "0",
            "RYAX_RUNNER_DEFAULT_STEP_TIMEOUT": "600",
            "RYAX_RUNNER_TIMEOUT_GRACE": "10",
            "RYAX_RUNNER_SITE_WAIT_TIMEOUT": "120",
            "RYAX_RUNNER_CALLBACK_ATTEMPTS": "3",
            "RYAX_RUNNER_CALLBACK_BACKOFF": "0.5",
        }
    )
    assert (s.callback_attempts, s.callback_backoff_seconds) == (3, 0.5)
    assert (s.commit_mode, s.commit_linger_seconds) == ("every", 0.005)
    assert s.lazy_record_seconds == 0
    assert s.secret_key_previous == ("a" * 32, "b" * 40)
    assert (s.http_port, s.grpc_address, s.log_format) == (9000, "0.0.0.0:9001", "json")
    assert (s.grpc_allow_plaintext, s.grpc_tls_cert_file) == (True, None)
    assert (s.filestore.s3_endpoint, s.filestore.s3_secure, s.filestore.filestore_dir) == (
        "http://s3:8333",
        True,
        Path("/srv/files"),
    )
    assert (s.heartbeat_timeout_seconds, s.max_upload_bytes) == (10.0, 2048)
    assert (s.public_url, s.database_pool_size) == ("https://ryax.example", 3)
    engine = engine_settings(s)
    assert (engine.infra_retries, engine.default_step_timeout_seconds) == (0, 600.0)
    assert (engine.timeout_grace_seconds, engine.site_wait_timeout_seconds) == (10.0, 120.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_HEARTBEAT_TIMEOUT": "11"},
            "RYAX_RUNNER_HEARTBEAT_TIMEOUT=11 must be <= 10",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_HEARTBEAT_TIMEOUT": "soon"},
            "RYAX_RUNNER_HEARTBEAT_TIMEOUT='soon' is not a number",
        ),
        ({"RYAX_SECRET_KEY": "short"}, "RYAX_SECRET_KEY must be at least 32 characters"),
        ({}, "RYAX_SECRET_KEY is required"),
        ({"RYAX_SECRET_KEY": KEY, "RYAX_SECRET_KEY_PREVIOUS": "old"}, "RYAX_SECRET_KEY_PREVIOUS"),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_HTTP_PORT": "x"},
            "RYAX_HTTP_PORT='x' is not a whole number",
        ),
        ({"RYAX_SECRET_KEY": KEY, "RYAX_S3_SECURE": "maybe"}, "RYAX_S3_SECURE='maybe'"),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_S3_ENDPOINT": "ftp://s3:9000"},
            "RYAX_S3_ENDPOINT: invalid S3 endpoint",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_DATABASE_POOL_SIZE": "0"},
            "RYAX_DATABASE_POOL_SIZE=0 is below",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_DEFAULT_STEP_TIMEOUT": "0"},
            "RYAX_RUNNER_DEFAULT_STEP_TIMEOUT=0.0 is below",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_INFRA_RETRIES": "-1"},
            "RYAX_RUNNER_INFRA_RETRIES=-1 is below",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_GRPC_ADDRESS": "0.0.0.0:8105"},
            "a plaintext gRPC port may only listen on a loopback address",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_GRPC_ADDRESS": "10.0.0.5:8105"},
            "RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT=true",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_GRPC_TLS_CERT_FILE": "/etc/hosts"},
            "RYAX_RUNNER_GRPC_TLS_CERT_FILE and RYAX_RUNNER_GRPC_TLS_KEY_FILE go together",
        ),
        (
            {
                "RYAX_SECRET_KEY": KEY,
                "RYAX_RUNNER_GRPC_TLS_CERT_FILE": "/nonexistent/cert.pem",
                "RYAX_RUNNER_GRPC_TLS_KEY_FILE": "/nonexistent/key.pem",
            },
            "RYAX_RUNNER_GRPC_TLS_CERT_FILE=/nonexistent/cert.pem: no such file",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_PRESIGN_TTL_SECONDS": "0"},
            "RYAX_RUNNER_PRESIGN_TTL_SECONDS",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_PRESIGN_TTL_SECONDS": str(8 * 24 * 3600)},
            "RYAX_RUNNER_PRESIGN_TTL_SECONDS",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_FILESTORE_PUBLIC_URL": "ftp://files.example"},
            "RYAX_RUNNER_FILESTORE_PUBLIC_URL: invalid S3 endpoint",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_COMMIT_MODE": "sometimes"},
            "RYAX_RUNNER_COMMIT_MODE='sometimes': expected one of acknowledged, every",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_COMMIT_LINGER_SECONDS": "1"},
            "RYAX_RUNNER_COMMIT_LINGER_SECONDS",
        ),
        (
            {"RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_LAZY_RECORD_SECONDS": "-1"},
            "RYAX_RUNNER_LAZY_RECORD_SECONDS",
        ),
    ],
)
def test_a_bad_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({**REQUIRED, **env})
    assert message in str(error.value)
    assert str(error.value.code).startswith("configuration error: ")


@pytest.mark.parametrize(
    "address", ["127.0.0.1:8105", "localhost:8105", "[::1]:8105", "127.0.0.2:1"]
)
def test_a_plaintext_grpc_port_on_loopback_is_accepted(address: str) -> None:
    s = Settings.from_env({**REQUIRED, "RYAX_SECRET_KEY": KEY, "RYAX_RUNNER_GRPC_ADDRESS": address})
    assert s.grpc_address == address and s.grpc_tls_cert_file is None


def test_a_tls_grpc_port_may_listen_anywhere(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert"), key.write_text("key")
    s = Settings.from_env(
        {
            **REQUIRED,
            "RYAX_SECRET_KEY": KEY,
            "RYAX_RUNNER_GRPC_ADDRESS": "0.0.0.0:8105",
            "RYAX_RUNNER_GRPC_TLS_CERT_FILE": str(cert),
            "RYAX_RUNNER_GRPC_TLS_KEY_FILE": str(key),
        }
    )
    assert (s.grpc_tls_cert_file, s.grpc_tls_key_file) == (cert, key)


def test_a_second_tls_port_beside_a_plaintext_loopback_one(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert"), key.write_text("key")
    tls = {"RYAX_RUNNER_GRPC_TLS_CERT_FILE": str(cert), "RYAX_RUNNER_GRPC_TLS_KEY_FILE": str(key)}
    base = {**REQUIRED, "RYAX_SECRET_KEY": KEY}
    s = Settings.from_env({**base, **tls, "RYAX_RUNNER_GRPC_TLS_ADDRESS": "0.0.0.0:8119"})
    assert (s.grpc_address, s.grpc_tls_address) == ("127.0.0.1:8105", "0.0.0.0:8119")
    assert s.worker_socket is None  # by default, workers come by gRPC only
    s = Settings.from_env({**base, "RYAX_RUNNER_WORKER_SOCKET": "/run/ryax/w.sock"})
    assert s.worker_socket == Path("/run/ryax/w.sock")
    for env, message in (
        ({"RYAX_RUNNER_GRPC_TLS_ADDRESS": "0.0.0.0:8119"}, "give its certificate and key"),
        (
            {
                **tls,
                "RYAX_RUNNER_GRPC_TLS_ADDRESS": "0.0.0.0:8119",
                "RYAX_RUNNER_GRPC_ADDRESS": "0.0.0.0:8105",
            },
            "a plaintext gRPC port may only listen on a loopback address",
        ),
        (
            {**tls, "RYAX_RUNNER_GRPC_TLS_ADDRESS": "127.0.0.1:8105"},
            "give the TLS port its own address",
        ),
    ):
        with pytest.raises(ConfigurationError) as error:
            Settings.from_env({**base, **env})
        assert message in str(error.value)


def test_the_builtin_site_is_read_with_its_credential(tmp_path: Path) -> None:
    credential = "c" * 43
    s = Settings.from_env(
        {
            **REQUIRED,
            "RYAX_SECRET_KEY": KEY,
            "RYAX_RUNNER_BUILTIN_SITE": "local",
            "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL": credential,
        }
    )
    assert (s.builtin_site_name, s.builtin_site_kind) == ("local", "local")
    assert s.builtin_site_credential == credential and credential not in repr(s)
    (tmp_path / "credential").write_text(credential + "\n")
    s = Settings.from_env(
        {
            **REQUIRED,
            "RYAX_SECRET_KEY": KEY,
            "RYAX_RUNNER_BUILTIN_SITE": "hpc:slurm",
            "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE": str(tmp_path / "credential"),
        }
    )
    assert (s.builtin_site_name, s.builtin_site_kind, s.builtin_site_credential) == (
        "hpc",
        "slurm",
        credential,
    )
    assert Settings.from_env({**REQUIRED, "RYAX_SECRET_KEY": KEY}).builtin_site_name == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RYAX_RUNNER_BUILTIN_SITE": "local"}, "RYAX_RUNNER_BUILTIN_SITE needs"),
        (
            {"RYAX_RUNNER_BUILTIN_SITE": "local", "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL": "short"},
            "at least 32 characters",
        ),
        (
            {"RYAX_RUNNER_BUILTIN_SITE": "a b", "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL": "c" * 40},
            "RYAX_RUNNER_BUILTIN_SITE=a b: name:",
        ),
        (
            {
                "RYAX_RUNNER_BUILTIN_SITE": "x:docker",
                "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL": "c" * 40,
            },
            "type: one of local, slurm, kubernetes",
        ),
        ({"RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL": "c" * 40}, "no RYAX_RUNNER_BUILTIN_SITE"),
        (
            {
                "RYAX_RUNNER_BUILTIN_SITE": "local",
                "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE": "/nonexistent/credential",
            },
            "RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL_FILE=/nonexistent/credential: cannot be read",
        ),
    ],
)
def test_a_bad_builtin_site_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({**REQUIRED, "RYAX_SECRET_KEY": KEY, **env})
    assert message in str(error.value)


def test_presigned_urls_are_signed_for_the_public_filestore_url() -> None:
    s3 = {
        **REQUIRED,
        "RYAX_SECRET_KEY": KEY,
        "RYAX_S3_ENDPOINT": "seaweedfs:8333",
        "RYAX_S3_ACCESS_KEY": "a",
        "RYAX_S3_SECRET_KEY": "s",
        "RYAX_S3_PUBLIC_ENDPOINT": "https://old.example",
    }
    s = Settings.from_env(
        {
            **s3,
            "RYAX_RUNNER_FILESTORE_PUBLIC_URL": "https://files.example.org:8443",
            "RYAX_RUNNER_PRESIGN_TTL_SECONDS": "60",
        }
    )
    assert s.presign_ttl_seconds == 60
    store = s.filestore.filestore()
    assert store.public_endpoint == "files.example.org:8443"  # type: ignore[union-attr]
    # Unset: the kit's RYAX_S3_PUBLIC_ENDPOINT, else the endpoint itself.
    assert Settings.from_env(s3).filestore.s3_public_endpoint == "https://old.example"
