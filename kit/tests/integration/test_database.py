"""Database helpers against the real PostgreSQL: database creation, migrations one process at a
time, the unit-of-work base (rollback on exit, outbox in the same transaction, conflicts)."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.database import (
    MigrationFailed,
    SqlAlchemyUnitOfWorkBase,
    create_engine,
    ensure_database,
    migrate,
    ping,
)
from ryax_kit.messaging import OutgoingMessage, outbox_table, processed_messages_table

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
outbox = outbox_table(metadata)
processed = processed_messages_table(metadata)
things = sa.Table(
    "things",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
)


class Clash(Exception):
    pass


class UnitOfWork(SqlAlchemyUnitOfWorkBase):
    outbox_table = outbox
    processed_table = processed

    def open_repositories(self, session: AsyncSession) -> None:
        self.added: list[str] = []

    async def save(self) -> Sequence[OutgoingMessage]:
        for name in self.added:
            await self.session.execute(sa.insert(things).values(name=name))
        return [
            OutgoingMessage(
                event_id=f"added-{n}", exchange="x", routing_key="Thing.Added", type="T", body=b""
            )
            for n in self.added
        ]

    def conflict(self, exc: IntegrityError) -> Exception:
        return Clash("this thing exists already")


async def test_ensure_database_creates_it_once(pg_server_dsn: str) -> None:
    from sqlalchemy.engine import make_url

    name = f"ryax_kit_ensure_{uuid.uuid4().hex[:8]}"
    url = make_url(pg_server_dsn).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    server = await asyncpg.connect(pg_server_dsn)
    try:
        await asyncio.gather(ensure_database(rendered), ensure_database(rendered))
        assert await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        engine = create_engine(rendered)
        assert await ping(engine)
        await engine.dispose()
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def test_ensure_database_waits_for_a_server_that_is_not_up_yet(pg_server_dsn: str) -> None:
    """A service started while PostgreSQL is down (or recovering) waits for it instead of
    exiting: here the server's port answers only a moment after the call."""
    from sqlalchemy.engine import make_url

    real = make_url(pg_server_dsn)
    port = free_port()
    name = f"ryax_kit_wait_{uuid.uuid4().hex[:8]}"
    url = real.set(drivername="postgresql+asyncpg", database=name, port=port)

    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(real.host, real.port or 5432)
        await asyncio.gather(_relay(client_r, server_w), _relay(server_r, client_w))

    loop = asyncio.get_running_loop()
    started = loop.time()
    waiting = asyncio.create_task(
        ensure_database(url.render_as_string(hide_password=False), retry_seconds=0.05)
    )
    await asyncio.sleep(0.6)
    assert not waiting.done()  # refused so far: still waiting, not failed
    proxy = await asyncio.start_server(forward, "127.0.0.1", port)
    server = await asyncpg.connect(pg_server_dsn)
    try:
        await asyncio.wait_for(waiting, 10)
        assert loop.time() - started >= 0.6
        assert await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        proxy.close()
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


async def test_ensure_database_gives_up_after_its_wait() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionRefusedError):
        await ensure_database(
            f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none",
            wait_seconds=0.4,
            retry_seconds=0.05,
        )
    assert 0.4 <= loop.time() - started < 5


async def test_ping_is_false_when_the_database_is_unreachable() -> None:
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    assert await ping(engine) is False
    await engine.dispose()


def _migrations(root: Path) -> Path:
    folder = root / "migrations"
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(
        "import sqlalchemy as sa\n"
        "from ryax_kit.database.migrations import run_env\n"
        "run_env(sa.MetaData())\n"
    )
    (folder / "script.py.mako").write_text("")
    (folder / "versions" / "0001_slow.py").write_text(
        textwrap.dedent(
            """
            import time
            from alembic import op
            import sqlalchemy as sa
            revision = "0001"
            down_revision = None
            def upgrade() -> None:
                op.create_table("slow", sa.Column("id", sa.Integer, primary_key=True))
                time.sleep(0.5)
            def downgrade() -> None:
                op.drop_table("slow")
            """
        )
    )
    return folder


async def test_two_processes_migrating_at_once_take_turns(
    fresh_database: str, tmp_path: Path
) -> None:
    folder = _migrations(tmp_path)
    # Two service processes (Alembic's context is per process). Without the lock, the second
    # would fail creating the table the first created.
    script = (
        "import asyncio, sys; from pathlib import Path; from ryax_kit.database import migrate; "
        "asyncio.run(migrate(sys.argv[1], Path(sys.argv[2])))"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            fresh_database,
            str(folder),
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
    engine = create_engine(fresh_database)
    async with engine.connect() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    await engine.dispose()
    assert [row[0] for row in version] == ["0001"]


async def test_migrations_in_a_child_process_apply_and_a_failure_says_why(
    fresh_database: str, tmp_path: Path
) -> None:
    folder = _migrations(tmp_path)
    (folder / "versions" / "0002_broken.py").write_text(
        textwrap.dedent(
            """
            from alembic import op
            revision = "0002"
            down_revision = "0001"
            def upgrade() -> None:
                op.execute("ALTER TABLE no_such_table ADD COLUMN x int")
            def downgrade() -> None:
                pass
            """
        )
    )
    # The calling process does not import Alembic for it (the child does).
    loaded = "alembic.command" in sys.modules
    await migrate(fresh_database, folder, "0001", child=True)
    assert ("alembic.command" in sys.modules) == loaded
    engine = create_engine(fresh_database)
    async with engine.connect() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert [row[0] for row in version] == ["0001"]
    with pytest.raises(MigrationFailed, match=r"(?s)to head failed \(exit 1\).*no_such_table"):
        await migrate(fresh_database, folder, child=True)
    async with engine.connect() as conn:
        version = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    await engine.dispose()
    # The failed migration's transaction was rolled back: still at 0001.
    assert [row[0] for row in version] == ["0001"]


@pytest.fixture
async def sessions(fresh_database: str) -> async_sessionmaker[AsyncSession]:
    engine = create_engine(fresh_database)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return async_sessionmaker(engine, expire_on_commit=False)


async def test_commit_writes_the_outbox_in_the_same_transaction_and_wakes_the_relay(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    woken: list[int] = []
    async with UnitOfWork(sessions, after_commit=lambda: woken.append(1)) as uow:
        uow.added.append("a")
        await uow.commit()
    async with sessions() as session:
        events = (await session.execute(sa.select(outbox.c.event_id))).scalars().all()
    assert events == ["added-a"]
    assert woken == [1]


async def test_leaving_without_commit_rolls_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(sessions) as uow:
        await uow.session.execute(sa.insert(things).values(name="ghost"))
    async with sessions() as session:
        count = (await session.execute(sa.select(sa.func.count()).select_from(things))).scalar()
    assert count == 0


async def test_a_violated_constraint_is_the_service_conflict_and_nothing_is_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with UnitOfWork(sessions) as uow:
        uow.added.append("b")
        await uow.commit()
    with pytest.raises(Clash):
        async with UnitOfWork(sessions) as uow:
            uow.added.append("b")
            await uow.commit()
    async with sessions() as session:
        events = (await session.execute(sa.select(outbox.c.event_id))).scalars().all()
    assert events == ["added-b"]


async def test_claim_message_is_true_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with UnitOfWork(sessions) as uow:
        assert await uow.claim_message("m1")
        await uow.commit()
    async with UnitOfWork(sessions) as uow:
        assert not await uow.claim_message("m1")


async def test_the_session_outside_the_block_is_an_error(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        _ = UnitOfWork(sessions).session
