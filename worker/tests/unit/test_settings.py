"""Settings from the environment: defaults, every variable read, and errors that stop the process
naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryax_worker.domain.model import NodePool
from ryax_worker.infrastructure.local.sandbox import nobody
from ryax_worker.settings import Settings, parse_labels, parse_node_pools

HOME = {"XDG_CACHE_HOME": "/c", "XDG_DATA_HOME": "/d"}


def test_defaults() -> None:
    settings = Settings.from_env(HOME)
    assert settings.runner_address == "127.0.0.1:8105"
    assert (settings.site_name, settings.worker_id, settings.backend) == ("local", "local", "local")
    assert [pool.name for pool in settings.node_pools] == ["default"]
    assert settings.cache_dir == Path("/c/ryax/worker-local")
    assert settings.filestore.filestore_dir == Path("/d/ryax/filestore")
    assert not settings.use_s3 and settings.filestore.s3_bucket == "ryax"
    assert settings.filestore.s3_region is None
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8107)
    assert (settings.log_format, settings.log_level) == ("text", "info")
    assert settings.heartbeat_seconds == 2.0 and settings.action_max_failures == 5
    assert settings.action_env_passthrough == ()
    # bubblewrap is installed on the test machines (dev/ensure-bubblewrap.sh): sandboxed.
    assert settings.sandbox == "bwrap" and not settings.sandbox_allow_none
    assert (settings.sandbox_uid, settings.sandbox_gid) == nobody()
    assert settings.sandbox_read_only_paths == () and settings.action_max_processes == 1024
    # No filestore setting: files move through presigned URLs the runner signs.
    assert settings.files == "presigned" and settings.file_attempts == 4


def test_every_variable_is_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("a CA")
    settings = Settings.from_env(
        {
            **HOME,
            "RYAX_RUNNER_GRPC_ADDRESS": "runner:9000",
            "RYAX_RUNNER_CA_FILE": str(ca),
            "RYAX_RUNNER_TLS_SERVER_NAME": "runner.example",
            "RYAX_RUNNER_WORKER_SOCKET": "/run/ryax/runner-worker.sock",
            "RYAX_SITE_CREDENTIAL": " ryax_site_abc ",
            "RYAX_SITE_NAME": "hpc",
            "RYAX_WORKER_BACKEND": "LOCAL",
            "RYAX_NODE_POOLS": "big:8:32G:1:12h",
            "RYAX_SITE_LABELS": '{"zone": "eu"}',
            "RYAX_S3_ENDPOINT": "s3:9000",
            "RYAX_S3_ACCESS_KEY": "ak",
            "RYAX_S3_SECRET_KEY": "sk",
            "RYAX_S3_BUCKET": "b",
            "RYAX_S3_SECURE": "yes",
            "RYAX_S3_REGION": "eu-west-1",
            "RYAX_HTTP_PORT": "9107",
            "RYAX_LOG_FORMAT": "json",
            "RYAX_LOG_LEVEL": "DEBUG",
            "RYAX_RUNNER_SILENCE_SECONDS": "0",
            "RYAX_ACTION_MAX_FAILURES": "2",
            "RYAX_ACTION_ENV_PASSTHROUGH": "A, B,,RYAX_PYTHON",
            "RYAX_SANDBOX": "NONE",
            "RYAX_SANDBOX_ALLOW_NONE": "true",
            "RYAX_SANDBOX_UID": "1234",
            "RYAX_SANDBOX_GID": "5678",
            "RYAX_SANDBOX_READ_ONLY_PATHS": "/opt/python,/data",
            "RYAX_ACTION_MAX_PROCESSES": "64",
        }
    )
    assert settings.runner_address == "runner:9000"
    assert (settings.runner_ca_file, settings.runner_tls_server_name) == (ca, "runner.example")
    assert settings.runner_socket == Path("/run/ryax/runner-worker.sock")
    assert settings.site_credential == "ryax_site_abc" and "ryax_site_abc" not in repr(settings)
    assert (settings.site_name, settings.worker_id, settings.backend) == ("hpc", "hpc", "local")
    assert settings.node_pools == (
        NodePool(name="big", cpu=8, memory_bytes=32 * 2**30, gpu=1, max_time_seconds=43200),
    )
    assert settings.site_labels == {"zone": "eu"}
    assert settings.cache_dir == Path("/c/ryax/worker-hpc")
    assert settings.use_s3 and settings.filestore.s3_secure
    assert settings.filestore.s3_region == "eu-west-1" and settings.filestore.s3_bucket == "b"
    assert (settings.http_port, settings.log_format, settings.log_level) == (9107, "json", "debug")
    assert settings.runner_silence_seconds == 0 and settings.action_max_failures == 2
    assert settings.action_env_passthrough == ("A", "B", "RYAX_PYTHON")
    assert (settings.sandbox, settings.sandbox_allow_none) == ("none", True)
    assert (settings.sandbox_uid, settings.sandbox_gid) == (1234, 5678)
    assert settings.sandbox_read_only_paths == (Path("/opt/python"), Path("/data"))
    assert settings.action_max_processes == 64


#: NAME=value -> the start of what the process stops with.
BAD_VALUES = {
    "RYAX_WORKER_BACKEND=kubernetes": "RYAX_WORKER_BACKEND='kubernetes' (planned",
    "RYAX_WORKER_BACKEND=slurm": "RYAX_SLURM_SHARED_DIR: the slurm backend needs a directory",
    "RYAX_SLURM_SBATCH_OPTIONS=account": "RYAX_SLURM_SBATCH_OPTIONS: sbatch options only",
    "RYAX_SLURM_SBATCH_OPTIONS='x": "RYAX_SLURM_SBATCH_OPTIONS: No closing quotation",
    "RYAX_SLURM_POLL_SECONDS=0": "RYAX_SLURM_POLL_SECONDS=0.0 is below the minimum",
    "RYAX_HEARTBEAT_SECONDS=soon": "RYAX_HEARTBEAT_SECONDS='soon' is not a number",
    "RYAX_ACTION_MAX_FAILURES=-1": "RYAX_ACTION_MAX_FAILURES=-1 is below the minimum",
    "RYAX_S3_ENDPOINT=s3:9000": "RYAX_S3_ACCESS_KEY and RYAX_S3_SECRET_KEY",
    "RYAX_S3_SECURE=maybe": "RYAX_S3_SECURE='maybe': expected true or false",
    "RYAX_NODE_POOLS=big:8": "RYAX_NODE_POOLS: 'big:8': expected name:cpu:memory",
    "RYAX_NODE_POOLS=big:x:4G": "RYAX_NODE_POOLS: could not convert",
    "RYAX_NODE_POOLS=big:8:lots": "RYAX_NODE_POOLS: memory: cannot read 'lots'",
    "RYAX_NODE_POOLS=[{": "RYAX_NODE_POOLS: not valid JSON",
    "RYAX_NODE_POOLS=big:0:4G": "RYAX_NODE_POOLS: node_pools: pool 'big'",
    "RYAX_SITE_LABELS=zone": "RYAX_SITE_LABELS: 'zone': expected key=value",
    "RYAX_SITE_LABELS={1": "RYAX_SITE_LABELS: not valid JSON",
    "RYAX_SANDBOX=none": "RYAX_SANDBOX=none runs actions unsandboxed",
    "RYAX_SANDBOX=docker": "RYAX_SANDBOX='docker': expected bwrap or none",
    "RYAX_SANDBOX_UID=0": "RYAX_SANDBOX_UID=0 is below the minimum",
    "RYAX_ACTION_ENV_PASSTHROUGH=HOME,RYAX_S3_SECRET_KEY": "RYAX_ACTION_ENV_PASSTHROUGH: "
    "RYAX_S3_SECRET_KEY: platform settings are never given to actions",
    "RYAX_RUNNER_GRPC_ADDRESS=runner.example:8105": "RYAX_RUNNER_GRPC_ADDRESS=runner.example:8105: "
    "a runner that is not on this machine is reached with TLS: give RYAX_RUNNER_CA_FILE",
    "RYAX_RUNNER_CA_FILE=/nonexistent/ca.pem": "RYAX_RUNNER_CA_FILE=/nonexistent/ca.pem: no such",
    "RYAX_SITE_CREDENTIAL=two words": "RYAX_SITE_CREDENTIAL: a credential is one word",
    "RYAX_SITE_CREDENTIAL_FILE=/nonexistent/c": "RYAX_SITE_CREDENTIAL_FILE=/nonexistent/c: cannot",
    "RYAX_NODE_POOLS=big:8:4G:0:soon": "RYAX_NODE_POOLS: max_time: cannot read 'soon'",
    "RYAX_ACTION_RETENTION_SECONDS=-1": "RYAX_ACTION_RETENTION_SECONDS=-1",
    "RYAX_ACTION_RETENTION_SECONDS=soon": "RYAX_ACTION_RETENTION_SECONDS='soon' is not a number",
    "RYAX_ACTION_FORK_SERVER=maybe": "RYAX_ACTION_FORK_SERVER='maybe': expected true or false",
}


def test_retention_always_warm_and_fork_server() -> None:
    defaults = Settings.from_env(HOME)
    assert defaults.action_retention_seconds == 30.0
    assert defaults.action_always_warm == () and defaults.action_fork_server
    settings = Settings.from_env(
        {
            **HOME,
            "RYAX_ACTION_RETENTION_SECONDS": "0",
            "RYAX_ACTION_ALWAYS_WARM": "act, d1 ,d1/s2",
            "RYAX_ACTION_FORK_SERVER": "false",
        }
    )
    assert settings.action_retention_seconds == 0.0
    assert settings.action_always_warm == ("act", "d1", "d1/s2")
    assert not settings.action_fork_server


@pytest.mark.parametrize("setting", BAD_VALUES)
def test_a_bad_value_stops_the_process_naming_the_variable(setting: str) -> None:
    name, _, value = setting.partition("=")
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env({**HOME, name: value})
    assert str(stopped.value.code).startswith(f"configuration error: {BAD_VALUES[setting]}")


def test_a_bad_s3_endpoint_stops_the_process() -> None:
    env = {**HOME, "RYAX_S3_ACCESS_KEY": "ak", "RYAX_S3_SECRET_KEY": "sk"}
    with pytest.raises(SystemExit) as stopped:
        Settings.from_env({**env, "RYAX_S3_ENDPOINT": "ftp://s3:9000"})
    assert str(stopped.value.code).startswith("configuration error: RYAX_S3_ENDPOINT: invalid S3")


def test_parsers_accept_both_forms() -> None:
    assert parse_node_pools('[{"name": "a", "cpu": 1, "memory": "1Gi"}]') == (
        NodePool(name="a", cpu=1, memory_bytes=2**30),
    )
    assert parse_labels("a=1, b = 2") == {"a": "1", "b": "2"}


def test_without_bubblewrap_the_worker_refuses_to_run_actions_unsandboxed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(SystemExit, match="bubblewrap \\(bwrap\\) is not installed"):
        Settings.from_env(HOME)
    with pytest.raises(SystemExit, match="RYAX_SANDBOX=bwrap: bwrap is not installed"):
        Settings.from_env({**HOME, "RYAX_SANDBOX": "bwrap"})
    allowed = {**HOME, "RYAX_SANDBOX": "none", "RYAX_SANDBOX_ALLOW_NONE": "true"}
    assert Settings.from_env(allowed).sandbox == "none"


def test_slurm_settings() -> None:
    settings = Settings.from_env(
        {
            **HOME,
            "RYAX_WORKER_BACKEND": "slurm",
            "RYAX_SLURM_SHARED_DIR": "/scratch/ryax",
            "RYAX_SLURM_POLL_SECONDS": "0.5",
            "RYAX_SLURM_SBATCH_OPTIONS": "--account=proj42 --comment='ryax jobs'",
            "RYAX_SLURM_PARTITIONS": "debug, gpu",
        }
    )
    assert settings.backend == "slurm" and settings.slurm_shared_dir == Path("/scratch/ryax")
    assert settings.slurm_poll_seconds == 0.5
    assert settings.slurm_sbatch_options == ("--account=proj42", "--comment=ryax jobs")
    assert settings.slurm_partitions == ("debug", "gpu")
    local = Settings.from_env(HOME)
    assert local.slurm_shared_dir is None and local.slurm_sbatch_options == ()


def test_the_credential_may_come_from_a_file_and_plaintext_to_a_remote_runner_is_opt_in(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "credential"
    secret.write_text("ryax_site_from_file\n")
    settings = Settings.from_env(
        {
            **HOME,
            "RYAX_SITE_CREDENTIAL_FILE": str(secret),
            "RYAX_RUNNER_GRPC_ADDRESS": "10.1.2.3:8105",
            "RYAX_RUNNER_GRPC_ALLOW_PLAINTEXT": "true",
        }
    )
    assert settings.site_credential == "ryax_site_from_file"
    assert settings.runner_allow_plaintext and settings.runner_ca_file is None
    with pytest.raises(SystemExit, match="give one of them"):
        Settings.from_env(
            {**HOME, "RYAX_SITE_CREDENTIAL_FILE": str(secret), "RYAX_SITE_CREDENTIAL": "x"}
        )
    for loopback in ("localhost:8105", "[::1]:8105", "127.0.0.1:1"):
        assert (
            Settings.from_env({**HOME, "RYAX_RUNNER_GRPC_ADDRESS": loopback}).runner_ca_file is None
        )


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "presigned"),
        ({"RYAX_FILESTORE_DIR": "/shared/files"}, "direct"),
        (
            {"RYAX_S3_ENDPOINT": "s3:8333", "RYAX_S3_ACCESS_KEY": "a", "RYAX_S3_SECRET_KEY": "s"},
            "direct",
        ),
        (
            {
                "RYAX_S3_ENDPOINT": "s3:8333",
                "RYAX_S3_ACCESS_KEY": "a",
                "RYAX_S3_SECRET_KEY": "s",
                "RYAX_WORKER_FILES": "Presigned",
            },
            "presigned",
        ),
        ({"RYAX_WORKER_FILES": "direct"}, "direct"),
    ],
)
def test_files_mode_defaults_to_direct_only_with_filestore_settings(
    env: dict[str, str], mode: str
) -> None:
    settings = Settings.from_env(HOME | env)
    assert settings.files == mode
    # A remote site (presigned) holds its files by default; one beside the filestore copies.
    assert settings.site_files == ("hold" if mode == "presigned" else "copy")


def test_site_files_may_be_chosen_either_way() -> None:
    assert Settings.from_env(HOME | {"RYAX_SITE_FILES": "COPY"}).site_files == "copy"
    direct = {"RYAX_FILESTORE_DIR": "/shared/files", "RYAX_SITE_FILES": "hold"}
    assert Settings.from_env(HOME | direct).site_files == "hold"
    with pytest.raises(SystemExit, match="RYAX_SITE_FILES"):
        Settings.from_env(HOME | {"RYAX_SITE_FILES": "keep"})


def test_a_bad_files_mode_is_named() -> None:
    with pytest.raises(SystemExit, match="RYAX_WORKER_FILES='s3'"):
        Settings.from_env(HOME | {"RYAX_WORKER_FILES": "s3"})
    with pytest.raises(SystemExit, match="RYAX_FILE_ATTEMPTS"):
        Settings.from_env(HOME | {"RYAX_FILE_ATTEMPTS": "0"})
