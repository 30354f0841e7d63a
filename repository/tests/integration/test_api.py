"""The HTTP API on the real PostgreSQL, authorization asked to a fake authorization service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

pytestmark = pytest.mark.integration
BASE = "/repository/v1/projects/project-a"
Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def origin(tmp_path: Path, helpers: Any) -> Any:
    repo = helpers.GitRepo(tmp_path / "origin")
    repo.add_action("actions/echo", helpers.action_files("echo", logo=helpers.png(32, 32)))
    repo.add_action("actions/ticker", helpers.action_files("ticker", kind="Trigger"))
    repo.write("actions/broken/ryax_metadata.yaml", "apiVersion: 1\nkind: Nope\n")
    repo.commit()
    return repo


async def test_operational_endpoints(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    for path in ("/healthz", "/repository/healthz"):
        assert (await client.get(path)).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    # No RYAX_AMQP_URL here: no broker to wait for.
    assert await ready.json() == {
        "ready": True,
        "checks": {"database": True, "broker": True, "filestore": True},
    }
    metrics = await client.get("/metrics")
    assert "ryax_http_requests_total" in await metrics.text()
    spec = await (await client.get("/repository/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert "post" in paths["/repository/v1/projects/{project}/repositories/{repository_id}/scan"]
    upload = paths["/repository/v1/projects/{project}/uploads"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {p["name"] for p in upload["parameters"]} == {"project", "force", "build", "name"}
    force = next(p for p in upload["parameters"] if p["name"] == "force")
    assert force["schema"] == {"type": "boolean", "default": False}
    actions = paths["/repository/v1/projects/{project}/actions"]["get"]
    [state] = [p for p in actions["parameters"] if p["in"] == "query"]
    assert state["name"] == "state" and "build_failed" in state["schema"]["enum"]
    docs = await client.get("/repository/docs")
    assert docs.status == 200 and "/repository/openapi.json" in await docs.text()


async def test_repository_lifecycle(
    make_client: Callable[..., Any], as_user: Headers, origin: Any
) -> None:
    client = await make_client()
    alice = as_user("alice")

    assert (await client.get(f"{BASE}/repositories")).status == 401
    assert (
        await client.get(f"{BASE}/repositories", headers={"Authorization": "Bearer nope"})
    ).status == 401
    created = await client.post(
        f"{BASE}/repositories",
        headers=as_user("victor"),
        json={"name": "x", "url": str(origin.path)},
    )
    assert created.status == 403  # viewers read, developers write

    created = await client.post(
        f"{BASE}/repositories", headers=alice, json={"name": "actions", "url": str(origin.path)}
    )
    assert created.status == 201, await created.text()
    repo = await created.json()
    assert repo["auth"] == "none" and repo["branch"] is None and repo["last_scan"] is None
    again = await client.post(
        f"{BASE}/repositories", headers=alice, json={"name": "actions", "url": str(origin.path)}
    )
    assert again.status == 409
    bad = await client.post(
        f"{BASE}/repositories", headers=alice, json={"name": "y", "url": "http://example.com/x.git"}
    )
    assert bad.status == 400 and (await bad.json())["detail"].startswith("url: plain http")
    extra = await client.post(
        f"{BASE}/repositories",
        headers=alice,
        json={"name": "y", "url": str(origin.path), "token": "x"},
    )
    assert extra.status == 400 and "token" in (await extra.json())["detail"]

    scan = await client.post(f"{BASE}/repositories/{repo['id']}/scan", headers=alice)
    assert scan.status == 200, await scan.text()
    report = await scan.json()
    assert report["counts"]["found"] == 3 and report["counts"]["new"] == 2
    assert report["counts"]["invalid"] == 1 and report["errors"]
    assert all(e["file"] == "actions/broken/ryax_metadata.yaml" for e in report["errors"])
    assert {e["field"] for e in report["errors"]} >= {"apiVersion", "kind", "spec"}
    fetched = await (await client.get(f"{BASE}/scans/{report['id']}", headers=alice)).json()
    assert fetched["counts"] == report["counts"]

    listed = await (await client.get(f"{BASE}/repositories", headers=as_user("victor"))).json()
    [one] = listed["repositories"]
    assert one["last_scan"]["commit"] == origin.git("rev-parse", "HEAD").strip()
    assert one["last_scan"]["branch"] == "main"

    actions = await (await client.get(f"{BASE}/actions", headers=alice)).json()
    assert sorted((a["action_id"] or "?", a["state"]) for a in actions["actions"]) == [
        ("?", "invalid"),
        ("echo", "valid"),
        ("ticker", "valid"),
    ]
    only_valid = await (await client.get(f"{BASE}/actions?state=valid", headers=alice)).json()
    assert len(only_valid["actions"]) == 2
    echo = await (await client.get(f"{BASE}/actions/echo/1.0", headers=alice)).json()
    assert echo["has_logo"] and echo["inputs"][0]["name"] == "text"
    assert echo["origin"]["path"] == "actions/echo" and echo["source_key"].startswith("sources/")
    assert (await client.get(f"{BASE}/actions/echo/9.9", headers=alice)).status == 404

    build = await client.post(f"{BASE}/actions/echo/1.0/build", headers=alice)
    assert build.status == 202, await build.text()
    requested = await build.json()
    assert requested["state"] == "requested" and requested["action_id"] == "echo"
    assert (await client.post(f"{BASE}/actions/echo/1.0/build", headers=alice)).status == 409
    assert (
        await client.post(f"{BASE}/actions/echo/1.0/build", headers=as_user("victor"))
    ).status == 403
    got = await (await client.get(f"{BASE}/builds/{requested['id']}", headers=alice)).json()
    assert got["state"] == "requested" and got["log"] == ""
    builds = await (await client.get(f"{BASE}/actions/echo/1.0/builds", headers=alice)).json()
    assert [b["id"] for b in builds["builds"]] == [requested["id"]]
    listed_echo = next(
        a
        for a in (await (await client.get(f"{BASE}/actions", headers=alice)).json())["actions"]
        if a["action_id"] == "echo"
    )
    assert listed_echo["state"] == "building"
    assert listed_echo["last_build"]["id"] == requested["id"]
    broken = await client.post(f"{BASE}/actions/nope/1.0/build", headers=alice)
    assert broken.status == 404
    bad_flag = await client.post(
        f"{BASE}/repositories/{repo['id']}/scan?force=maybe", headers=alice
    )
    assert bad_flag.status == 400

    deleted = await client.delete(f"{BASE}/repositories/{repo['id']}", headers=alice)
    assert deleted.status == 204
    assert (await client.get(f"{BASE}/repositories/{repo['id']}", headers=alice)).status == 404
    kept = await (await client.get(f"{BASE}/actions", headers=alice)).json()
    assert sorted(a["action_id"] for a in kept["actions"]) == ["echo", "ticker"]


async def test_build_request_is_in_the_outbox(
    make_client: Callable[..., Any], as_user: Headers, origin: Any, db_url: str
) -> None:
    client = await make_client()
    alice = as_user("alice")
    repo = await (
        await client.post(
            f"{BASE}/repositories", headers=alice, json={"name": "a", "url": str(origin.path)}
        )
    ).json()
    await client.post(f"{BASE}/repositories/{repo['id']}/scan?build=true", headers=alice)
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(sa.text("SELECT routing_key, exchange FROM outbox ORDER BY id"))
        ).all()
    await engine.dispose()
    assert [tuple(r) for r in rows] == [("ActionBuildRequested", "ryax.repository")] * 2


async def test_credentials_are_never_returned_nor_logged(
    make_client: Callable[..., Any], as_user: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    alice = as_user("alice")
    secret = "ghp_VerySecretToken123456"
    caplog.set_level(logging.DEBUG)
    created = await client.post(
        f"{BASE}/repositories",
        headers=alice,
        json={
            "name": "private",
            "url": "https://127.0.0.1:9/org/private.git",
            "username": "bot",
            "password": secret,
            "branch": "main",
        },
    )
    assert created.status == 201
    text = await created.text()
    assert secret not in text and '"auth":"password"' in text
    listed = await (await client.get(f"{BASE}/repositories", headers=alice)).text()
    assert secret not in listed and "bot" not in listed
    repo = await created.json()
    scan = await client.post(f"{BASE}/repositories/{repo['id']}/scan", headers=alice)
    assert scan.status == 422
    problem = await scan.json()
    assert problem["error"] == "scan_failed" and secret not in problem["detail"]
    assert secret not in caplog.text
    key_repo = await client.post(
        f"{BASE}/repositories",
        headers=alice,
        json={
            "name": "with-key",
            "url": "git@127.0.0.1:org/x.git",
            "ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEYDATA\n"
            "-----END OPENSSH PRIVATE KEY-----",
        },
    )
    assert key_repo.status == 201
    assert "SECRETKEYDATA" not in await key_repo.text()
    assert (await key_repo.json())["auth"] == "ssh_key"
