"""The filestore the settings choose (local directory, S3 on SeaweedFS) holding source archives,
and the migrations from empty. The filestore adapters themselves are tested in
kit/tests/integration/test_filestore.py."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_kit.database import alembic_config, ensure_database, migrate
from ryax_kit.filestore import FilestoreSettings, LocalDirFilestore, S3Filestore, check_key
from ryax_kit.settings import Env
from ryax_repository.domain.model import source_key
from ryax_repository.infrastructure.database import MIGRATIONS
from ryax_repository.settings import Settings

pytestmark = pytest.mark.integration
TABLES = {"repositories", "action_sources", "builds", "scans", "outbox", "processed_messages"}
RETRY_COLUMNS = {"attempts", "last_error", "next_attempt_at"}
ARCHIVE = b"\x1f\x8b archive bytes"


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings(
        database_url="postgresql+asyncpg://unused/unused",
        amqp_url=None,
        secret_key="s" * 32,
        filestore=FilestoreSettings.read(Env(env), default_dir=tmp_path / "store"),
    )


async def store_a_source(store: Any, tmp_path: Path) -> str:
    await store.ensure_ready()
    key = check_key(source_key(hashlib.sha256(ARCHIVE).hexdigest()))
    source = tmp_path / "archive.tar.gz"
    source.write_bytes(ARCHIVE)
    assert not await store.exists(key)
    await store.upload(key, source, "application/gzip")
    assert await store.exists(key) and await store.read_bytes(key) == ARCHIVE
    return key


async def test_local_filestore_by_default(tmp_path: Path) -> None:
    store = settings(tmp_path).filestore.filestore()
    assert isinstance(store, LocalDirFilestore)
    key = await store_a_source(store, tmp_path)
    assert (tmp_path / "store" / key).read_bytes() == ARCHIVE


async def test_s3_filestore_when_an_endpoint_is_set(
    s3_server: Any, fresh_bucket: str, tmp_path: Path
) -> None:
    store = settings(
        tmp_path,
        RYAX_S3_ENDPOINT=s3_server.address,
        RYAX_S3_ACCESS_KEY=s3_server.access_key,
        RYAX_S3_SECRET_KEY=s3_server.secret_key,
        RYAX_S3_BUCKET=fresh_bucket,
    ).filestore.filestore()
    assert isinstance(store, S3Filestore) and await store.ping()
    key = await store_a_source(store, tmp_path)
    info = s3_server.client().stat_object(fresh_bucket, key)
    assert info.content_type == "application/gzip"


async def test_migrations_up_from_empty_down_and_up_again(db_url: str) -> None:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    engine = create_async_engine(db_url)

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        return names - {"alembic_version"}

    async def outbox_columns() -> set[str]:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {column["name"] for column in sa.inspect(c).get_columns("outbox")}
            )

    config = alembic_config(db_url, MIGRATIONS)
    try:
        assert await tables() == TABLES
        assert await outbox_columns() >= RETRY_COLUMNS
        await asyncio.to_thread(command.downgrade, config, "0001")
        assert not RETRY_COLUMNS & await outbox_columns()
        await asyncio.to_thread(command.downgrade, config, "base")
        assert await tables() == set()
        await migrate(db_url, MIGRATIONS)
        assert await tables() == TABLES and await outbox_columns() >= RETRY_COLUMNS
        await migrate(db_url, MIGRATIONS)  # a restart re-applies nothing
    finally:
        await engine.dispose()
