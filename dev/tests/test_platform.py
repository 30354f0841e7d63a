"""dev/platform.py (`make demo`, `make status`, `make reset`): the demo's state on the shared
PostgreSQL and RabbitMQ belongs to the checkout (databases ryax_<id>_<service>, vhost
ryax_<id>), and a reset drops that checkout's state and nobody else's."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

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
        signing_key_file=Path("/checkout/.dev/auth-signing-key.pem"),
        data_keys={folder: f"{folder}-key-".ljust(43, "k") for folder in platform.SEALING_SERVICES},
        s3_access_key="ak",
        s3_secret_key="sk",
    )


def test_keys_go_only_to_the_service_that_uses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only authorization gets the token-signing key; repository, studio and runner each get
    a root secret of their own; the worker and the builder get no key, nor the admin's
    password."""
    monkeypatch.setattr(platform, "LEGACY_SECRET_KEY", tmp_path / "absent")
    envs = {
        service.folder: platform.service_env(service, secrets()) for service in platform.SERVICES
    }
    assert envs["authorization"]["RYAX_AUTH_SIGNING_KEY_FILE"].endswith("auth-signing-key.pem")
    assert envs["authorization"]["RYAX_ADMIN_PASSWORD"] == "pw"
    data_keys = [envs[folder]["RYAX_SECRET_KEY"] for folder in ("repository", "studio", "runner")]
    assert len(set(data_keys)) == 3
    for folder, env in envs.items():
        if folder != "authorization":
            assert "RYAX_AUTH_SIGNING_KEY_FILE" not in env and "RYAX_ADMIN_PASSWORD" not in env
        if folder in ("authorization", "worker", "action-builder"):
            assert not any(name.startswith("RYAX_SECRET_KEY") for name in env), folder
        values = " ".join(env.values())
        for key in data_keys:
            assert (key in values) == (env.get("RYAX_SECRET_KEY") == key), folder
    assert "RYAX_SECRET_KEY" not in platform.common_env(secrets())


def test_the_former_shared_secret_still_opens_what_it_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = tmp_path / "secret-key"
    legacy.write_text("x" * 43 + "\n")
    monkeypatch.setattr(platform, "LEGACY_SECRET_KEY", legacy)
    for service in platform.SERVICES:
        env = platform.service_env(service, secrets())
        previous = env.get("RYAX_SECRET_KEY_PREVIOUS")
        assert previous == ("x" * 43 if service.folder in platform.SEALING_SERVICES else None)


def test_the_signing_key_is_generated_once_private_and_ed25519(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = platform.signing_key(tmp_path / "auth-signing-key.pem")
    first = path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(first, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert platform.signing_key(path).read_bytes() == first  # stable


def test_the_jwks_is_routed_through_the_gateway() -> None:
    routes = platform.traefik_routes()
    assert 'rule: "Path(`/authorization`) || PathPrefix(`/authorization/`)"' in routes


def test_security_the_studio_internal_route_is_not_routed_and_its_token_goes_to_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The studio's internal route (a deployment's secret values, for the runner) is never
    routed by the gateway; the service credential goes to the studio and the runner only."""
    routes = platform.traefik_routes()
    assert "!PathPrefix(`/studio/internal`)" in routes
    monkeypatch.setattr(platform, "LEGACY_SECRET_KEY", tmp_path / "absent")
    with_token = dataclasses.replace(secrets(), internal_token="t" * 43)
    for service in platform.SERVICES:
        env = platform.service_env(service, with_token)
        given = env.get("RYAX_INTERNAL_TOKEN")
        assert (given == "t" * 43) == (service.folder in ("studio", "runner")), service.folder
        assert ("t" * 43 in " ".join(env.values())) == (given is not None)
    assert "RYAX_INTERNAL_TOKEN" not in platform.common_env(with_token)


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


def test_security_the_worker_and_the_builder_read_no_platform_key() -> None:
    """Their settings (where a service reads its environment) name no key variable."""
    for package in ("worker/ryax_worker", "action-builder/ryax_action_builder"):
        for source in (REPO_ROOT / package).rglob("settings.py"):
            text = source.read_text()
            for name in ("RYAX_SECRET_KEY", "RYAX_AUTH_SIGNING_KEY"):
                assert name not in text, f"{source.relative_to(REPO_ROOT)} reads {name}"


def test_the_user_api_is_routed_to_the_runner() -> None:
    """/user-api/<project>/<path> (the deployed HTTP API triggers) goes to the runner."""
    routes = yaml.safe_load(platform.traefik_routes())["http"]
    rule = routes["routers"]["runner"]["rule"]
    assert "PathPrefix(`/user-api/`)" in rule and "PathPrefix(`/runner/`)" in rule
    assert "user-api" not in " ".join(
        r["rule"] for name, r in routes["routers"].items() if name != "runner"
    )


def test_the_demo_site_credential_goes_to_the_runner_and_its_worker_only() -> None:
    """The runner creates the demo's site (its built-in site) with the credential its worker
    presents; no other program gets it."""
    credential = "site-credential-".ljust(43, "c")
    s = dataclasses.replace(secrets(), site_credential=credential)
    envs = {service.folder: platform.service_env(service, s) for service in platform.SERVICES}
    runner, worker = envs["runner"], envs["worker"]
    assert runner["RYAX_RUNNER_BUILTIN_SITE"] == f"{platform.DEMO_SITE}:local"
    assert runner["RYAX_RUNNER_BUILTIN_SITE_CREDENTIAL"] == credential
    assert (worker["RYAX_SITE_NAME"], worker["RYAX_SITE_CREDENTIAL"]) == (
        platform.DEMO_SITE,
        credential,
    )
    for folder, env in envs.items():
        assert (credential in " ".join(env.values())) == (folder in ("runner", "worker")), folder


def test_the_filestore_starts_first_and_stops_last() -> None:
    conf = platform.supervisor_config(
        [("s3", "exec weed", REPO_ROOT, 20), ("runner", "exec python", REPO_ROOT, 30)]
    )
    s3, runner = conf.split("[program:s3]")[1].split("[program:runner]")
    assert f"priority = {platform.FIRST_UP_LAST_DOWN}" in s3
    assert "priority = 999" in runner and platform.FIRST_UP_LAST_DOWN < 999


def test_a_new_dev_folder_drops_the_state_its_lost_secrets_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh clone where an earlier one stood finds that clone's databases, made with keys it
    does not have (no admin password to log in with): they are dropped before new secrets."""
    dropped: list[str] = []
    monkeypatch.setattr(platform, "DEV", tmp_path)
    monkeypatch.setattr(platform, "pg_dsn", lambda: "postgresql://unused")
    monkeypatch.setattr(platform, "vhost_admin", lambda: None)
    monkeypatch.setattr(platform, "checkout_databases", lambda dsn, names: ["ryax_x_studio"])
    monkeypatch.setattr(
        platform,
        "drop_checkout_state",
        lambda names, **kw: (dropped.append(names.checkout_id) or ["ryax_x_studio"], True),
    )
    (tmp_path / "secret-key-studio").write_text("kept")
    platform.forget_state_of_lost_secrets()
    assert dropped == []  # its secrets are there: its state is kept
    (tmp_path / "secret-key-studio").unlink()
    platform.forget_state_of_lost_secrets()
    assert dropped == [platform.NAMES.checkout_id]
    monkeypatch.setattr(platform, "checkout_databases", lambda dsn, names: [])
    platform.forget_state_of_lost_secrets()
    assert len(dropped) == 1  # nothing to drop


def test_seaweedfs_runs_with_a_gc_percentage_and_a_soft_memory_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RYAX_S3_GOGC", raising=False)
    monkeypatch.delenv("RYAX_S3_GOMEMLIMIT", raising=False)
    assert platform.s3_go_env() == ["GOGC=25", "GOMEMLIMIT=176MiB"]
    assert platform.s3_go_env("320MiB") == ["GOGC=25", "GOMEMLIMIT=320MiB"]
    monkeypatch.setenv("RYAX_S3_GOMEMLIMIT", "1GiB")
    monkeypatch.setenv("RYAX_S3_GOGC", "off")
    assert platform.s3_go_env() == ["GOMEMLIMIT=1GiB"]
    monkeypatch.setenv("RYAX_S3_GOMEMLIMIT", "off")
    assert platform.s3_go_env() == []
    monkeypatch.setenv("RYAX_S3_GOMEMLIMIT", "320 MB")
    with pytest.raises(SystemExit, match="RYAX_S3_GOMEMLIMIT='320 MB': not a Go memory limit"):
        platform.s3_go_env()


def test_the_gateway_access_log_is_written_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    template = (REPO_ROOT / "dev" / "traefik" / "traefik.yml.in").read_text()

    def static() -> dict[str, Any]:
        text = template.replace("$gateway_port", "8080").replace("$dynamic_config", "/d.yml")
        loaded: dict[str, Any] = yaml.safe_load(
            text.replace("$access_log", platform.gateway_access_log())
        )
        return loaded

    monkeypatch.delenv("RYAX_GATEWAY_ACCESS_LOG", raising=False)
    assert "accessLog" not in static()
    assert static()["global"] == {"checkNewVersion": False, "sendAnonymousUsage": False}
    monkeypatch.setenv("RYAX_GATEWAY_ACCESS_LOG", "on")
    assert static()["accessLog"] == {
        "filePath": str(platform.LOGS / "gateway-access.log"),
        "bufferingSize": 64,
    }
    monkeypatch.setenv("RYAX_GATEWAY_ACCESS_LOG", "yes")
    with pytest.raises(SystemExit, match="RYAX_GATEWAY_ACCESS_LOG='yes': on or off"):
        platform.gateway_access_log()


def test_seaweedfs_keeps_the_filer_store_its_data_was_made_with(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(platform, "S3_DATA", tmp_path / "s3")
    assert not platform.s3_legacy_store()  # a new data folder: one LevelDB database
    devlib = platform.devlib
    devlib.write_filer_store(tmp_path / "config", tmp_path / "s3")
    store = (tmp_path / "config" / "filer.toml").read_text()
    assert f'dir = "{tmp_path / "s3" / "filer_leveldb"}"' in store
    assert "[leveldb]\nenabled = true\n" in store
    command = devlib.weed_command(
        weed="weed",
        data_dir=tmp_path / "s3",
        ports=platform.S3_PORTS,
        s3_config=tmp_path / "s3.json",
        socket_dir=tmp_path,
        config_dir=tmp_path / "config",
    )
    assert command[:3] == ["weed", f"-config_dir={tmp_path / 'config'}", "mini"]
    (tmp_path / "s3" / "filerldb2").mkdir(parents=True)  # made by an older checkout
    assert platform.s3_legacy_store()
