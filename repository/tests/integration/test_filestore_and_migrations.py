"""The filestore adapters (local directory, S3 on SeaweedFS) and the migrations from empty."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_repository.infrastructure.database.engine import alembic_config, ensure_database, migrate
from ryax_repository.infrastructure.filestore import LocalFilestore, S3Filestore

pytestmark = pytest.mark.integration
TABLES = {"repositories", "action_sources", "builds", "scans", "outbox", "processed_messages"}


async def exercise(store: Any, tmp_path: Path) -> None:
    await store.ensure_ready()
    await store.ensure_ready()  # idempotent
    source = tmp_path / "archive.tar.gz"
    source.write_bytes(b"\x1f\x8b archive bytes")
    key = "sources/" + "ab" * 32 + ".tar.gz"
    assert not await store.exists(key)
    await store.put_file(key, source)
    assert await store.exists(key)
    assert await store.get_bytes(key) == b"\x1f\x8b archive bytes"
    for bad in ("../escape", "/abs", "sources/../x", "a//b"):
        with pytest.raises(ValueError):
            await store.exists(bad)


async def test_local_filestore(tmp_path: Path) -> None:
    store = LocalFilestore(tmp_path / "store")
    await exercise(store, tmp_path)
    assert (tmp_path / "store" / "sources").is_dir()
    assert [p.name for p in (tmp_path / "store" / "sources").iterdir()] == ["ab" * 32 + ".tar.gz"]


async def test_s3_filestore(s3_server: Any, fresh_bucket: str, tmp_path: Path) -> None:
    store = S3Filestore(s3_server.address, s3_server.access_key, s3_server.secret_key, fresh_bucket)
    await exercise(store, tmp_path)


async def test_s3_filestore_creates_its_bucket(s3_server: Any, tmp_path: Path) -> None:
    bucket = f"ryax-repo-test-{tmp_path.name[-8:].lower().replace('_', '-')}"
    store = S3Filestore(s3_server.address, s3_server.access_key, s3_server.secret_key, bucket)
    try:
        await exercise(store, tmp_path)
    finally:
        client = s3_server.client()
        for item in client.list_objects(bucket, recursive=True):
            client.remove_object(bucket, item.object_name)
        client.remove_bucket(bucket)


async def test_migrations_up_from_empty_down_and_up_again(db_url: str) -> None:
    await ensure_database(db_url)
    await migrate(db_url)
    engine = create_async_engine(db_url)

    async def tables() -> set[str]:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        return names - {"alembic_version"}

    try:
        assert await tables() == TABLES
        await asyncio.to_thread(command.downgrade, alembic_config(db_url), "base")
        assert await tables() == set()
        await migrate(db_url)
        assert await tables() == TABLES
        await migrate(db_url)  # a restart re-applies nothing
    finally:
        await engine.dispose()
