"""The authorization HTTP API on the real PostgreSQL, including the cross-project matrix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ryax_authorization.app import create_app
from ryax_authorization.container import Container
from ryax_authorization.settings import Settings

pytestmark = pytest.mark.integration
ADMIN_PASSWORD = "admin password for tests"


def write_signing_key(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


@pytest.fixture
async def client(fresh_database: str, tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(
        database_url=fresh_database,
        signing_key_file=write_signing_key(tmp_path / "signing-key.pem"),
        admin_user="admin",
        admin_password=ADMIN_PASSWORD,
        login_max_failures=3,
        login_lock_seconds=60,
    )
    app = create_app(Container(settings=settings))
    async with TestClient(TestServer(app)) as c:
        yield c


async def login(client: TestClient, user: str, password: str) -> dict[str, str]:  # type: ignore[type-arg]
    resp = await client.post(
        "/authorization/v1/login", json={"username": user, "password": password}
    )
    assert resp.status == 200, await resp.text()
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def test_health_ready_metrics_and_docs(client: TestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"ready": True, "checks": {"database": True}}
    assert (await client.get("/authorization/healthz")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert "ryax_http_requests_total" in metrics
    spec = await (await client.get("/authorization/openapi.json")).json()
    authorize = spec["paths"]["/authorization/v1/authorize"]["get"]
    assert [p["name"] for p in authorize["parameters"]] == ["project", "operation"]
    assert (await client.get("/authorization/docs")).status == 200


async def test_login_errors_never_leak_and_never_500(
    client: TestClient,
    caplog: pytest.LogCaptureFixture,  # type: ignore[type-arg]
) -> None:
    caplog.set_level(logging.DEBUG)
    unknown = await client.post(
        "/authorization/v1/login", json={"username": "ghost", "password": "whatever pw"}
    )
    wrong = await client.post(
        "/authorization/v1/login", json={"username": "admin", "password": "whatever pw"}
    )
    assert unknown.status == wrong.status == 401
    assert await unknown.json() == await wrong.json()
    missing = await client.post("/authorization/v1/login", json={"username": "admin"})
    assert missing.status == 400
    assert "password" in (await missing.json())["detail"]
    garbled = await client.post("/authorization/v1/login", data=b"{not json")
    assert garbled.status == 400
    extra = await client.post(
        "/authorization/v1/login", json={"username": "a", "password": "b", "role": "admin"}
    )
    assert extra.status == 400 and "role" in (await extra.json())["detail"]
    for _ in range(2):  # three failures in a row with login_max_failures=3
        await client.post("/authorization/v1/login", json={"username": "admin", "password": "x"})
    locked = await client.post(
        "/authorization/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert locked.status == 429 and "Retry-After" in locked.headers
    assert "whatever pw" not in caplog.text and ADMIN_PASSWORD not in caplog.text


async def test_tokens_bearer_logout_and_machine_tokens(client: TestClient) -> None:  # type: ignore[type-arg]
    headers = await login(client, "admin", ADMIN_PASSWORD)
    assert (await client.get("/authorization/v1/me", headers=headers)).status == 200
    bare = {"Authorization": headers["Authorization"].removeprefix("Bearer ")}
    assert (await client.get("/authorization/v1/me", headers=bare)).status == 200
    assert (
        await client.get("/authorization/v1/me", headers={"Authorization": "Bearer garbage"})
    ).status == 401
    for missing in ({}, {"Authorization": "Bearer "}):
        anonymous = await client.get("/authorization/v1/me", headers=missing)
        assert anonymous.status == 401 and "WWW-Authenticate" in anonymous.headers
        assert (await anonymous.json())["error"] == "unauthenticated"

    created = await client.post("/authorization/v1/tokens", headers=headers, json={"name": "ci"})
    assert created.status == 201
    machine = await created.json()
    listed = await (await client.get("/authorization/v1/tokens", headers=headers)).json()
    assert "token" not in listed["tokens"][0]
    machine_headers = {"Authorization": f"Bearer {machine['token']}"}
    assert (await client.get("/authorization/v1/me", headers=machine_headers)).status == 200
    assert (
        await client.delete(f"/authorization/v1/tokens/{machine['id']}", headers=headers)
    ).status == 204
    assert (await client.get("/authorization/v1/me", headers=machine_headers)).status == 401

    assert (await client.post("/authorization/v1/logout", headers=headers)).status == 204
    assert (await client.get("/authorization/v1/me", headers=headers)).status == 401


async def test_short_password_is_refused_with_the_reason(client: TestClient) -> None:  # type: ignore[type-arg]
    headers = await login(client, "admin", ADMIN_PASSWORD)
    resp = await client.post(
        "/authorization/v1/users", headers=headers, json={"username": "alice", "password": "short"}
    )
    assert resp.status == 400
    assert "too short" in (await resp.json())["detail"]


async def test_cross_project_matrix(client: TestClient) -> None:  # type: ignore[type-arg]
    """A member of project A gets 403/404 and never data on every endpoint of project B."""
    admin = await login(client, "admin", ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        r = await client.post(
            "/authorization/v1/users",
            headers=admin,
            json={"username": name, "password": f"{name} long password"},
        )
        assert r.status == 201
    users = {
        u["username"]: u["id"]
        for u in (await (await client.get("/authorization/v1/users", headers=admin)).json())[
            "users"
        ]
    }
    a = await (
        await client.post(
            "/authorization/v1/projects",
            headers=admin,
            json={"name": "project-a", "owner_id": users["alice"]},
        )
    ).json()
    b = await (
        await client.post(
            "/authorization/v1/projects",
            headers=admin,
            json={"name": "project-b", "owner_id": users["bob"]},
        )
    ).json()
    alice = await login(client, "alice", "alice long password")
    # An owner that is nobody is the body's fault: 400 naming owner_id (was an undocumented 404).
    nobody = await client.post(
        "/authorization/v1/projects", headers=admin, json={"name": "project-c", "owner_id": "ghost"}
    )
    assert nobody.status == 400
    assert "owner_id: no user has the id or username 'ghost'" in (await nobody.json())["detail"]

    own = await client.get(f"/authorization/v1/projects/{a['id']}", headers=alice)
    assert own.status == 200
    assert (await own.json())["members"] == [
        {"user_id": users["alice"], "username": "alice", "role": "owner"}
    ]
    for project in (b["id"], "project-b"):
        calls = [
            client.get(f"/authorization/v1/projects/{project}", headers=alice),
            client.put(
                f"/authorization/v1/projects/{project}/members/alice",
                headers=alice,
                json={"role": "owner"},
            ),
            client.delete(f"/authorization/v1/projects/{project}/members/bob", headers=alice),
            client.get(
                f"/authorization/v1/authorize?project={project}&operation=read", headers=alice
            ),
        ]
        for call in calls:
            resp = await call
            body = await resp.text()
            assert resp.status in (403, 404), body
            assert users["bob"] not in body and b["id"] not in body
    mine = await (await client.get("/authorization/v1/projects", headers=alice)).json()
    assert [p["name"] for p in mine["projects"]] == ["project-a"]


async def test_project_api_keys_over_http(client: TestClient) -> None:  # type: ignore[type-arg]
    """Created by an owner (shown once, stored hashed), listed without the key, answered by the
    contract for `trigger` in its project only, refused everywhere else, revoked."""
    admin = await login(client, "admin", ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        r = await client.post(
            "/authorization/v1/users",
            headers=admin,
            json={"username": name, "password": f"{name} long password"},
        )
        assert r.status == 201
    for project, owner in (("alpha", "alice"), ("beta", "bob")):
        users = (await (await client.get("/authorization/v1/users", headers=admin)).json())["users"]
        owner_id = next(u["id"] for u in users if u["username"] == owner)
        r = await client.post(
            "/authorization/v1/projects",
            headers=admin,
            json={"name": project, "owner_id": owner_id},
        )
        assert r.status == 201
    alice = await login(client, "alice", "alice long password")
    bob = await login(client, "bob", "bob long password")
    base = "/authorization/v1/projects/alpha/api-keys"

    assert (await client.post(base, headers=bob, json={"name": "ci"})).status == 403
    created = await client.post(base, headers=alice, json={"name": "ci"})
    assert created.status == 201, await created.text()
    new = await created.json()
    key = new["key"]
    assert key.startswith("ryaxpk_") and new["name"] == "ci" and new["revoked"] is False
    twice = await client.post(base, headers=alice, json={"name": "ci"})
    assert twice.status == 409 and (await twice.json())["error"] == "already_exists"
    listed = await (await client.get(base, headers=alice)).json()
    assert [k["name"] for k in listed["api_keys"]] == ["ci"]
    assert key not in await (await client.get(base, headers=alice)).text()
    assert "key" not in listed["api_keys"][0]
    assert (await client.get(base, headers=bob)).status == 403

    as_key = {"Authorization": f"Bearer {key}"}
    ok = await client.get(
        "/authorization/v1/authorize?project=alpha&operation=trigger", headers=as_key
    )
    assert ok.status == 200
    access = await ok.json()
    assert access["api_key_id"] == new["id"] and access["is_admin"] is False
    user = await client.get(
        "/authorization/v1/authorize?project=alpha&operation=trigger", headers=alice
    )
    assert (await user.json())["api_key_id"] is None
    refused = [
        client.get("/authorization/v1/authorize?project=alpha&operation=read", headers=as_key),
        client.get("/authorization/v1/authorize?project=alpha&operation=write", headers=as_key),
        client.get("/authorization/v1/authorize?project=beta&operation=trigger", headers=as_key),
        client.get("/authorization/v1/me", headers=as_key),
        client.get(base, headers=as_key),
        client.post(base, headers=as_key, json={"name": "another"}),
        client.delete(f"{base}/{new['id']}", headers=as_key),
        client.post("/authorization/v1/tokens", headers=as_key, json={"name": "escalate"}),
        client.put(
            "/authorization/v1/projects/alpha/members/bob", headers=as_key, json={"role": "owner"}
        ),
    ]
    for call in refused:
        resp = await call
        assert resp.status == 403, (resp.url, await resp.text())
    listed = await (await client.get(base, headers=alice)).json()
    assert listed["api_keys"][0]["last_used_at"] is not None

    revoked = await client.delete(f"{base}/{new['id']}", headers=alice)
    assert revoked.status == 200 and (await revoked.json())["revoked"] is True
    after = await client.get(
        "/authorization/v1/authorize?project=alpha&operation=trigger", headers=as_key
    )
    assert after.status == 401
    assert (await client.delete(f"{base}/no-such-key", headers=alice)).status == 404
    again = await client.post(base, headers=alice, json={"name": "ci"})  # the name is free again
    assert again.status == 201
