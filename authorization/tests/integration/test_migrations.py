"""Migrations bring an empty database to head, and running them again changes nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_authorization.infrastructure.database.tables import MIGRATIONS, metadata
from ryax_kit.database import ensure_database, migrate

pytestmark = pytest.mark.integration


async def test_migrate_from_empty_database_matches_the_tables(fresh_database: str) -> None:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    await migrate(fresh_database, MIGRATIONS)
    engine = create_async_engine(fresh_database)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        columns = await conn.run_sync(
            lambda c: {
                t: {col["name"] for col in sa.inspect(c).get_columns(t)} for t in metadata.tables
            }
        )
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    await engine.dispose()
    assert set(metadata.tables) <= tables
    assert version == "0003"
    for name, table in metadata.tables.items():
        assert columns[name] == {c.name for c in table.columns}, name
