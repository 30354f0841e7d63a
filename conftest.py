"""Fixtures for every service's tests: real PostgreSQL, RabbitMQ and S3, each test with its own
database, vhost or bucket.

Where they come from (the process environment wins, then .dev/env written by `make deps`):
  RYAX_TEST_PG_DSN        server DSN with a role that may create databases
                          (default postgresql://postgres@127.0.0.1:5432/postgres)
  RYAX_TEST_AMQP_URL      broker URL (default amqp://guest:guest@127.0.0.1:5672/); vhosts are
                          made with rabbitmqctl, else the management API
                          (RYAX_TEST_AMQP_MANAGEMENT_URL, default http://<host>:15672)
  RYAX_TEST_S3_ENDPOINT   an S3 endpoint to use instead of starting SeaweedFS (with
                          RYAX_TEST_S3_ACCESS_KEY and RYAX_TEST_S3_SECRET_KEY)

A component that cannot be reached skips the tests that need it on a developer's machine and
fails them in CI (CI=true). Nothing is imported from asyncpg, minio or aio_pika until a test asks
for one of these fixtures.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

_DEVLIB_PATH = Path(__file__).resolve().parent / "dev" / "devlib.py"


def _load_devlib() -> ModuleType:
    # Loaded by path under its own name: dev/ must never be on sys.path (dev/platform.py).
    name = "ryax_devlib"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _DEVLIB_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


devlib: Any = _load_devlib()


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated so a service run with its own rootdir knows them.
    config.addinivalue_line("markers", "integration: needs real PostgreSQL/RabbitMQ/S3/gRPC")
    config.addinivalue_line("markers", "e2e: drives the whole platform as processes")
    config.addinivalue_line(
        "markers",
        "chaos: injects faults into the whole platform, on a PostgreSQL and RabbitMQ of its own",
    )
    config.addinivalue_line(
        "markers",
        "fuzz: fuzzes a service's OpenAPI with schemathesis (in process, real PostgreSQL/RabbitMQ)",
    )


def _unavailable(error: Exception) -> NoReturn:
    if devlib.in_ci():
        pytest.fail(f"{error} (CI=true: a missing component fails the run)", pytrace=False)
    pytest.skip(str(error))


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_server_dsn() -> str:
    """DSN (postgresql://) of the shared server, as a role that can create databases."""
    dsn: str = devlib.setting("RYAX_TEST_PG_DSN", devlib.DEFAULT_PG_DSN)
    try:
        devlib.check_postgres(dsn)
    except devlib.DependencyUnavailable as error:
        _unavailable(error)
    devlib.drop_stale_databases(dsn)
    return dsn


@pytest.fixture
def make_database(pg_server_dsn: str) -> Iterator[Callable[[], str]]:
    """Factory: each call creates one more database; all are dropped after the test."""
    created: list[str] = []

    def make() -> str:
        database = devlib.create_database(pg_server_dsn)
        created.append(database.name)
        url: str = database  # a FreshDatabase: also has .dsn and .name
        return url

    yield make
    for name in created:
        devlib.drop_database(pg_server_dsn, name)


@pytest.fixture
def fresh_database(pg_server_dsn: str) -> Iterator[str]:
    """A database of the test's own, dropped after it.

    The value is the SQLAlchemy URL (postgresql+asyncpg://...); `.dsn` is the plain
    postgresql:// DSN and `.name` the database name.
    """
    with devlib.temporary_database(pg_server_dsn) as database:
        yield database


# --------------------------------------------------------------------------- RabbitMQ


@pytest.fixture(scope="session")
def amqp_server_url() -> str:
    url: str = devlib.setting("RYAX_TEST_AMQP_URL", devlib.DEFAULT_AMQP_URL)
    try:
        devlib.check_amqp(url)
    except devlib.DependencyUnavailable as error:
        _unavailable(error)
    return url


@pytest.fixture(scope="session")
def amqp_url(amqp_server_url: str) -> str:
    """The broker's URL on its default vhost. Services' conftests may override this name
    (e.g. with `fresh_vhost`); the fixtures here depend on `amqp_server_url` instead."""
    return amqp_server_url


@pytest.fixture(scope="session")
def vhost_admin(amqp_server_url: str) -> Any:
    admin = devlib.VhostAdmin(amqp_server_url, devlib.setting("RYAX_TEST_AMQP_MANAGEMENT_URL", ""))
    try:
        admin.delete_stale()
    except devlib.DependencyUnavailable as error:
        _unavailable(error)
    return admin


@pytest.fixture
def fresh_vhost(vhost_admin: Any) -> Iterator[str]:
    """The AMQP URL of a vhost of the test's own (all permissions for the URL's user),
    deleted after it."""
    try:
        context = devlib.temporary_vhost(vhost_admin)
        url: str = context.__enter__()
    except devlib.DependencyUnavailable as error:
        _unavailable(error)
    try:
        yield url
    finally:
        context.__exit__(None, None, None)


# --------------------------------------------------------------------------- S3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """An S3 endpoint that checks signatures: `.endpoint` (http://host:port), `.address`
    (host:port), `.access_key`, `.secret_key`, `.region`, `.client()` (minio).

    A private SeaweedFS (`weed mini` from the venv) on free loopback ports for the session,
    unless RYAX_TEST_S3_ENDPOINT names one.
    """
    endpoint = devlib.setting("RYAX_TEST_S3_ENDPOINT")
    if endpoint:
        server = devlib.S3Server(
            endpoint.rstrip("/"),
            devlib.setting("RYAX_TEST_S3_ACCESS_KEY"),
            devlib.setting("RYAX_TEST_S3_SECRET_KEY"),
        )
        if not devlib.s3_ready(server):
            _unavailable(devlib.DependencyUnavailable(f"s3: {endpoint} refuses list_buckets"))
        yield server
        return
    try:
        context = devlib.run_seaweedfs()
        server = context.__enter__()
    except devlib.DependencyUnavailable as error:
        _unavailable(error)
    try:
        yield server
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def fresh_bucket(s3_server: Any) -> Iterator[str]:
    """The name of a bucket of the test's own on `s3_server`, emptied and removed after it."""
    with devlib.temporary_bucket(s3_server) as bucket:
        yield bucket


@pytest.fixture
def s3_env(s3_server: Any, fresh_bucket: str) -> dict[str, str]:
    """The RYAX_S3_* variables a service reads (ryax_kit.filestore.FilestoreSettings) to use
    `s3_server` with the test's own bucket (`fresh_bucket`)."""
    return {
        "RYAX_S3_ENDPOINT": s3_server.address,
        "RYAX_S3_ACCESS_KEY": s3_server.access_key,
        "RYAX_S3_SECRET_KEY": s3_server.secret_key,
        "RYAX_S3_BUCKET": fresh_bucket,
        "RYAX_S3_REGION": s3_server.region,
    }
