"""Migrations from zero match the tables the code uses; operational endpoints answer."""

from __future__ import annotations

import aiohttp
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from runner_testkit.harness import RunningRunner
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_runner.infrastructure.database.engine import ensure_database, migrate
from ryax_runner.infrastructure.database.tables import metadata

pytestmark = pytest.mark.integration


async def test_migrations_from_zero_match_the_tables(db_url: str) -> None:
    await ensure_database(db_url)
    await migrate(db_url)
    await migrate(db_url)  # idempotent
    engine = create_async_engine(db_url)

    def diff(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    await engine.dispose()
    assert differences == []


async def test_health_readiness_metrics(runner: RunningRunner) -> None:
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/runner/healthz", "/readyz", "/runner/openapi.json"):
            async with s.get(runner.url + path) as r:
                assert r.status == 200, path
        async with s.get(runner.url + "/metrics") as r:
            text = await r.text()
        assert "ryax_runner_runs_started_total" in text
        async with s.get(runner.url + "/runner/v1/projects/alpha/runs") as r:
            assert r.status == 401
