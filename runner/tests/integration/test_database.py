"""Migrations from zero match the tables the code uses; operational endpoints answer."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from runner_testkit.harness import RunningRunner
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_kit.database import alembic_config, ensure_database, migrate
from ryax_runner.infrastructure.database import MIGRATIONS
from ryax_runner.infrastructure.database.tables import metadata

pytestmark = pytest.mark.integration


async def differences(db_url: str) -> list[object]:
    engine = create_async_engine(db_url)

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with engine.connect() as conn:
        found = await conn.run_sync(diff)
    await engine.dispose()
    return found


async def test_migrations_from_zero_match_the_tables(db_url: str) -> None:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    await migrate(db_url, MIGRATIONS)  # idempotent
    assert await differences(db_url) == []


async def test_the_outbox_retry_columns_come_and_go_with_revision_0002(db_url: str) -> None:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS, "0001")
    assert await differences(db_url) != []  # an outbox without its retry columns
    await migrate(db_url, MIGRATIONS)
    assert await differences(db_url) == []
    await asyncio.to_thread(command.downgrade, alembic_config(db_url, MIGRATIONS), "0001")
    await migrate(db_url, MIGRATIONS)
    assert await differences(db_url) == []


async def test_health_readiness_metrics(runner: RunningRunner) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/runner/healthz", "/readyz", "/runner/openapi.json"):
            async with s.get(runner.url + path) as r:
                assert r.status == 200, path
        async with s.get(runner.url + "/runner/readyz") as r:
            checks = (await r.json())["checks"]
        assert checks == {
            "leader": True,
            "started": True,
            "draining": True,
            "broker": True,
            "database": True,
        }
        runner.container.engine().draining = True
        async with s.get(runner.url + "/readyz") as r:
            assert r.status == 503 and (await r.json())["checks"]["draining"] is False
        runner.container.engine().draining = False
        async with s.get(runner.url + "/metrics") as r:
            text = await r.text()
        assert "ryax_runner_runs_started_total" in text
        assert "ryax_runner_parked_records 0.0" in text
        assert "ryax_runner_lazy_runs 0.0" in text and "ryax_runner_commits_total" in text
        async with s.get(runner.url + "/runner/v1/projects/alpha/runs") as r:
            assert r.status == 401
