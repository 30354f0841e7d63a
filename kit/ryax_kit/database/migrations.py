"""The Alembic environment of every service. A service's `migrations/env.py` is:

from ryax_kit.database.migrations import run_env
from ryax_<service>.infrastructure.database.tables import metadata

run_env(metadata)
"""

from __future__ import annotations

import asyncio
import zlib

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _lock_id(url: str) -> int:
    """The advisory lock key of one database: two processes never migrate it at once."""
    database = sa.engine.make_url(url).database or ""
    return zlib.crc32(f"ryax-migrations:{database}".encode())


def run_env(metadata: sa.MetaData) -> None:
    """Run the pending migrations online, over an async engine, one process at a time."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: sqlalchemy.url is not set")

    def run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            # Held until this transaction ends; the version is read only once it is held.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_id(url)})
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(main())
