from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from runner_testkit.harness import Member, RunningRunner, fake_authz_app, serve, start_runner

ALICE = Member("u-alice", "alice", {"proj-a": "alpha"})
BOB = Member("u-bob", "bob", {"proj-b": "beta"})
ADMIN = Member("u-admin", "admin", {}, is_admin=True)
TOKENS = {"token-alice": ALICE, "token-bob": BOB, "token-admin": ADMIN}


@pytest.fixture
def db_url(fresh_database: str) -> str:
    return fresh_database


@pytest.fixture
def amqp_url(fresh_vhost: str) -> str:
    return fresh_vhost


@pytest.fixture
async def authz_url() -> AsyncIterator[str]:
    runner, url = await serve(fake_authz_app(TOKENS))
    yield url
    await runner.cleanup()


@pytest.fixture
def runner_settings() -> dict[str, Any]:
    """Settings of the `runner` fixture beside the defaults: a module overrides this fixture."""
    return {}


@pytest.fixture
async def runner(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, runner_settings: dict[str, Any]
) -> AsyncIterator[RunningRunner]:
    running = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "filestore",
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=2.0,
        retry_backoff_seconds=0.05,
        **runner_settings,
    )
    yield running
    await running.stop()
