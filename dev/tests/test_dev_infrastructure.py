"""The development infrastructure itself: the root conftest.py fixtures against the real
PostgreSQL, RabbitMQ and SeaweedFS, and the helpers make and dev/platform.py rely on."""

from __future__ import annotations

import importlib.util
import io
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
from minio.error import S3Error

pytestmark = pytest.mark.integration

devlib: Any = sys.modules["ryax_devlib"]  # loaded by the root conftest.py
REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_fresh_database_is_a_usable_empty_database(fresh_database: Any) -> None:
    assert fresh_database.startswith("postgresql+asyncpg://")
    assert fresh_database.dsn.startswith("postgresql://")
    assert fresh_database.endswith("/" + fresh_database.name)
    conn = await asyncpg.connect(fresh_database.dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == fresh_database.name
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        await conn.execute("INSERT INTO t VALUES (1, 'one')")
        assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "one"
    finally:
        await conn.close()


def test_temporary_database_is_dropped_even_with_open_connections(pg_server_dsn: str) -> None:
    async def hold_connection(dsn: str) -> Any:
        return await asyncpg.connect(dsn)

    with devlib.temporary_database(pg_server_dsn) as database:
        assert devlib.database_exists(pg_server_dsn, database.name)
        # A connection left open by a test (in another loop) must not block the drop.
        leaked = devlib.run_coroutine(lambda: hold_connection(database.dsn))
        assert leaked is not None
    assert not devlib.database_exists(pg_server_dsn, database.name)


def test_make_database_gives_distinct_databases(make_database: Any) -> None:
    first, second = make_database(), make_database()
    assert first.name != second.name


async def test_fresh_vhost_is_usable_and_isolated(fresh_vhost: str, amqp_url: str) -> None:
    assert fresh_vhost != amqp_url
    assert fresh_vhost.rsplit("/", 1)[1].startswith("ryax_test_")
    connection = await aio_pika.connect(fresh_vhost, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("probe", auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"hello"), routing_key="probe")
        message = await queue.get(timeout=10, fail=True)
        assert message is not None
        await message.ack()
        assert message.body == b"hello"


def test_temporary_vhost_is_deleted(vhost_admin: Any) -> None:
    with devlib.temporary_vhost(vhost_admin) as url:
        name = url.rsplit("/", 1)[1]
        assert vhost_admin.exists(name)
    assert not vhost_admin.exists(name)


def test_s3_refuses_a_wrong_secret(s3_server: Any) -> None:
    bad = s3_server.client(secret_key=s3_server.secret_key + "x")
    with pytest.raises(S3Error) as refused:
        bad.make_bucket("ryax-refused")
    assert refused.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
    assert not s3_server.client().bucket_exists("ryax-refused")


def test_s3_put_and_get_with_the_right_secret(s3_server: Any, fresh_bucket: str) -> None:
    client = s3_server.client()
    payload = b"ryax" * 1000
    client.put_object(fresh_bucket, "dir/object.bin", io.BytesIO(payload), len(payload))
    response = client.get_object(fresh_bucket, "dir/object.bin")
    try:
        assert response.read() == payload
    finally:
        response.close()
        response.release_conn()
    with pytest.raises(S3Error):
        s3_server.client(secret_key="wrong").get_object(fresh_bucket, "dir/object.bin")


def test_temporary_bucket_is_removed_with_its_objects(s3_server: Any) -> None:
    client = s3_server.client()
    with devlib.temporary_bucket(s3_server) as bucket:
        client.put_object(bucket, "a/b", io.BytesIO(b"x"), 1)
        assert client.bucket_exists(bucket)
    assert not client.bucket_exists(bucket)


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = devlib.free_ports(5)
    assert len(set(ports)) == 5
    assert all(devlib.port_is_free(port) for port in ports)


def test_settings_prefer_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RYAX_TEST_PG_DSN", "postgresql://from-env@127.0.0.1/x")
    assert devlib.setting("RYAX_TEST_PG_DSN", "default") == "postgresql://from-env@127.0.0.1/x"
    monkeypatch.delenv("RYAX_TEST_PG_DSN")
    monkeypatch.setattr(devlib, "DEV_ENV_FILE", Path("/nonexistent/env"))
    assert devlib.setting("RYAX_TEST_PG_DSN", "default") == "default"


def _load_gen_importlinter() -> Any:
    spec = importlib.util.spec_from_file_location(
        "ryax_gen_importlinter", REPO_ROOT / "dev" / "gen_importlinter.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importlinter_contracts_name_only_existing_modules(tmp_path: Path) -> None:
    gen = _load_gen_importlinter()
    for relative in (
        "runner/pyproject.toml",
        "runner/ryax_runner/__init__.py",
        "runner/ryax_runner/domain/__init__.py",
        "runner/ryax_runner/application/__init__.py",
        "runner/ryax_runner/container.py",
        "studio/ryax_studio/__init__.py",  # no pyproject.toml: not installed, not checked
        "worker/pyproject.toml",  # no package yet
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).touch()
    config = gen.render(tmp_path)
    assert "ryax_studio" not in config and "ryax_worker" not in config
    assert "services-share-no-code" not in config  # one package: nothing to be independent of
    assert "[importlinter:contract:ryax_runner-pure-domain]" in config
    layers = config.split("[importlinter:contract:ryax_runner-layers]")[1]
    assert layers.split("layers =")[1].split() == ["container", "application", "domain"]

    (tmp_path / "worker/ryax_worker").mkdir()
    (tmp_path / "worker/ryax_worker/__init__.py").touch()
    assert "services-share-no-code" in gen.render(tmp_path)


def test_only_old_test_resources_are_stale() -> None:
    name = devlib.unique_name()
    assert not devlib.is_stale(name)
    later = time.time() + devlib.STALE_AFTER_SECONDS + 60
    assert devlib.is_stale(name, now=later)
    assert not devlib.is_stale("ryax_authorization", now=later)
    assert not devlib.is_stale("ryax_test_notatimestamp", now=later)
