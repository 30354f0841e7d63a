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


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            **HOME,
            "RYAX_RUNNER_GRPC_ADDRESS": "runner:9000",
            "RYAX_SITE_NAME": "hpc",
            "RYAX_WORKER_BACKEND": "LOCAL",
            "RYAX_NODE_POOLS": "big:8:32G:1",
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
    assert (settings.site_name, settings.worker_id, settings.backend) == ("hpc", "hpc", "local")
    assert settings.node_pools == (NodePool(name="big", cpu=8, memory_bytes=32 * 10**9, gpu=1),)
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
    "RYAX_WORKER_BACKEND=slurm": "RYAX_WORKER_BACKEND='slurm' (planned",
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
}


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
