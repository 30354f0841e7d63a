"""Engine creation, the service's database created when missing, migrations at start."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)


def create_engine(url: str, pool_size: int = 10, *, pre_ping: bool = True) -> AsyncEngine:
    """One engine per process; connections are checked before use (the database may restart).
    `pre_ping=False` for a user that handles a dead connection itself (a ping is two or three
    round trips at each checkout)."""
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=pre_ping
    )


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers (readiness); never raises."""
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - readiness answers, it does not raise
        return False
    return True


#: How long a starting service waits for PostgreSQL to accept connections (it may be starting,
#: or recovering after a crash) before it gives up with the last error.
DATABASE_WAIT_SECONDS = 60.0
#: Errors that mean "not yet": refused, reset, or the server starting up or shutting down.
_NOT_YET: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
)


async def _connect_when_up(dsn: str, wait_seconds: float, retry_seconds: float) -> Any:
    """asyncpg.connect, tried again while the server is not up yet, for `wait_seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    waiting = False
    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except _NOT_YET as error:
            if loop.time() >= deadline:
                raise
            if not waiting:
                waiting = True
                log.warning(
                    "waiting for the database",
                    extra={"reason": f"{type(error).__name__}: {error}", "for_s": wait_seconds},
                )
            await asyncio.sleep(retry_seconds)
            continue
        if waiting:
            log.info("the database answers")
        return conn


async def ensure_database(
    url: str, *, wait_seconds: float = DATABASE_WAIT_SECONDS, retry_seconds: float = 0.25
) -> None:
    """Create the service's database when it does not exist yet (one database per service),
    once the server accepts connections: a service started while PostgreSQL is down, starting
    or recovering waits for it (up to `wait_seconds`) instead of exiting at once."""
    parsed = make_url(url)
    name = parsed.database
    if not name:
        raise ValueError("the database URL names no database")
    server = parsed.set(drivername="postgresql", database="postgres")
    dsn = server.render_as_string(hide_password=False)
    conn = await _connect_when_up(dsn, wait_seconds, retry_seconds)
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
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, migrations: Path, revision: str = "head") -> None:
    """Apply the migrations up to `revision`, in this thread (Alembic runs its own loop)."""
    from alembic import command

    command.upgrade(alembic_config(url, migrations), revision)


#: The variable that hands the database URL to the child of `migrate(child=True)`: never on
#: its command line, which every user of the machine can read.
URL_VARIABLE = "RYAX_MIGRATE_DATABASE_URL"
#: The most of a failed child's output an error carries.
_TAIL_CHARS = 2000


class MigrationFailed(RuntimeError):
    """The migrations could not be applied (the child's last output says why)."""


async def migrate(
    url: str, migrations: Path, revision: str = "head", *, child: bool = False
) -> None:
    """Apply the service's migrations up to `revision`. Two processes starting at once take
    turns (see `migrations.run_env`).

    `child=True` (what the services do at start) runs them in a child process
    (`python -m ryax_kit.database.upgrade`): Alembic, Mako and the migration scripts are
    imported there and their memory goes with it, instead of staying in the service for its
    whole life (about 15 MiB of each service's resident memory). Its output is logged here;
    a failure raises `MigrationFailed` with its last lines. Otherwise in a thread."""
    if not child:
        await asyncio.to_thread(upgrade, url, migrations, revision)
        return
    env = dict(os.environ)
    env[URL_VARIABLE] = url
    # The child imports the service's tables (env.py) as this process does.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ryax_kit.database.upgrade",
        str(migrations),
        revision,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await proc.communicate()
    except asyncio.CancelledError:
        # Stopped while migrating: the child's transaction rolls back with it.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    text = output.decode("utf-8", errors="replace").strip()
    if proc.returncode != 0:
        raise MigrationFailed(
            f"database migrations ({migrations}) to {revision} failed "
            f"(exit {proc.returncode}): {text[-_TAIL_CHARS:] or 'no output'}"
        )
    for line in text.splitlines():
        log.info("migration", extra={"output": line})
