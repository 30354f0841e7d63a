"""Engine creation, the service's database created when missing, migrations at start."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """One engine per process; connections are checked before use (the database may restart)."""
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers (readiness); never raises."""
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - readiness answers, it does not raise
        return False
    return True


async def ensure_database(url: str) -> None:
    """Create the service's database when it does not exist yet (one database per service)."""
    parsed = make_url(url)
    name = parsed.database
    if not name:
        raise ValueError("the database URL names no database")
    server = parsed.set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(server.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("created database", extra={"database": name})
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # another process created it at the same time
    finally:
        await conn.close()


def alembic_config(url: str, migrations: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(url: str, migrations: Path, revision: str = "head") -> None:
    """Apply the service's migrations up to `revision` (Alembic runs its own event loop, hence
    the thread). Two processes starting at once take turns (see `migrations.run_env`)."""
    await asyncio.to_thread(command.upgrade, alembic_config(url, migrations), revision)
