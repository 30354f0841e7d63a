"""dev/platform.py (`make demo`, `make status`, `make reset`): the demo's state on the shared
PostgreSQL and RabbitMQ belongs to the checkout (databases ryax_<id>_<service>, vhost
ryax_<id>), and a reset drops that checkout's state and nobody else's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
devlib: Any = sys.modules["ryax_devlib"]  # loaded by the root conftest.py


def _load_platform() -> Any:
    """Loaded by path under its own name: dev/ must never be on sys.path (it would shadow the
    standard library's `platform`)."""
    name = "ryax_dev_platform"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "dev" / "platform.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


platform: Any = _load_platform()


def secrets() -> Any:
    return platform.Secrets(
        admin_user="admin",
        admin_password="pw",
        secret_key="k" * 43,
        s3_access_key="ak",
        s3_secret_key="sk",
    )


def test_checkout_id_is_short_stable_and_one_per_path(tmp_path: Path) -> None:
    one, two = tmp_path / "clone-one", tmp_path / "clone-two"
    first = platform.checkout_id(one)
    assert len(first) == 8 and all(c in "0123456789abcdef" for c in first)
    assert platform.checkout_id(one) == first  # stable
    assert platform.checkout_id(tmp_path / "clone-two" / ".." / "clone-one") == first
    assert platform.checkout_id(two) != first  # two clones, two ids
    assert platform.NAMES.checkout_id == platform.checkout_id(REPO_ROOT)


def test_state_names() -> None:
    names = platform.StateNames("1a2b3c4d")
    assert names.vhost == "ryax_1a2b3c4d"
    assert names.database("runner") == "ryax_1a2b3c4d_runner"
    assert names.database("action-builder") == "ryax_1a2b3c4d_action_builder"
    assert names.owns_database("ryax_1a2b3c4d_runner")
    assert not names.owns_database("ryax_runner")  # the names every checkout once shared
    assert not names.owns_database("ryax_9f9f9f9f_runner")
    assert not names.owns_database("ryax_1a2b3c4d")
    assert not names.owns_database("ryax_test_1796454188_b6b72245")


def test_every_service_gets_this_checkouts_database_and_vhost() -> None:
    names = platform.NAMES
    databases = set()
    for service in platform.SERVICES:
        env = platform.service_env(service, secrets())
        database = env["RYAX_DATABASE_URL"].rsplit("/", 1)[1]
        assert database == names.database(service.folder)
        databases.add(database)
        assert env["RYAX_AMQP_URL"].rsplit("/", 1)[1] == names.vhost
    assert len(databases) == len(platform.SERVICES)
    assert platform.common_env(secrets())["RYAX_AMQP_URL"].endswith("/" + names.vhost)
    line = platform.state_line()
    assert f"Database: {names.prefix}_* on " in line and f"vhost {names.vhost}" in line


def test_a_caller_can_bring_its_own_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """RYAX_DEV_PG_DSN and RYAX_DEV_AMQP_URL (the chaos suite's private servers): the services
    get them, and the shared broker is not asked for a vhost."""
    monkeypatch.setenv("RYAX_DEV_PG_DSN", "postgresql://postgres:pw@127.0.0.1:25432/postgres")
    monkeypatch.setenv("RYAX_DEV_AMQP_URL", "amqp://guest:guest@127.0.0.1:25672/")

    def no_vhost() -> None:
        pytest.fail("the shared broker was asked for a vhost")

    monkeypatch.setattr(platform, "vhost_admin", no_vhost)
    for service in platform.SERVICES:
        env = platform.service_env(service, secrets())
        database = platform.NAMES.database(service.folder)
        assert env["RYAX_DATABASE_URL"] == (
            f"postgresql+asyncpg://postgres:pw@127.0.0.1:25432/{database}"
        )
        assert env["RYAX_AMQP_URL"] == "amqp://guest:guest@127.0.0.1:25672/"
    platform.ensure_vhost()
    line = platform.state_line()
    assert "on 127.0.0.1:25432" in line and "broker amqp://guest:***@127.0.0.1:25672/" in line


@pytest.mark.integration
def test_reset_drops_only_this_checkouts_state(
    pg_server_dsn: str, vhost_admin: Any, tmp_path: Path
) -> None:
    ours = platform.StateNames.of(tmp_path / "clone-one")
    other = platform.StateNames.of(tmp_path / "clone-two")
    our_databases = [ours.database("runner"), ours.database("action-builder")]
    other_databases = [other.database("runner")]
    data = tmp_path / "clone-one" / ".dev" / "data"
    (data / "s3").mkdir(parents=True)
    (data / "s3" / "object").write_bytes(b"x")
    try:
        for name in our_databases + other_databases:
            devlib.create_database(pg_server_dsn, name)
        vhost_admin.add(ours.vhost)
        vhost_admin.add(other.vhost)
        vhost_admin.add(ours.vhost)  # idempotent, as `make demo` does it every time

        dropped, had_vhost = platform.drop_checkout_state(
            ours, server_dsn=pg_server_dsn, vhosts=vhost_admin, data=data
        )

        assert sorted(dropped) == sorted(our_databases) and had_vhost
        for name in our_databases:
            assert not devlib.database_exists(pg_server_dsn, name)
        assert not vhost_admin.exists(ours.vhost)
        assert not data.exists()
        # The other checkout's state is untouched.
        assert devlib.database_exists(pg_server_dsn, other.database("runner"))
        assert vhost_admin.exists(other.vhost)
        # Again: nothing left to drop, no error.
        assert platform.drop_checkout_state(
            ours, server_dsn=pg_server_dsn, vhosts=vhost_admin, data=data
        ) == ([], False)
    finally:
        for name in our_databases + other_databases:
            devlib.drop_database(pg_server_dsn, name)
        for vhost in (ours.vhost, other.vhost):
            if vhost_admin.exists(vhost):
                vhost_admin.delete(vhost)
