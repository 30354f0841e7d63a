"""A member of project A against every project-scoped endpoint of project B: 403 or 404, never
B's data. The endpoint list comes from the API's own route registry, so a new endpoint is
covered without editing this test."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ryax_repository.infrastructure.api.routes import api

pytestmark = pytest.mark.integration
Headers = Callable[[str], dict[str, str]]
B_ID = "00000000-0000-4000-8000-00000000000b"


def a_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in files.items():
            zf.writestr(f"up/{name}", content)
    return buffer.getvalue()


@pytest.fixture
async def project_b(
    make_client: Callable[..., Any], as_user: Headers, tmp_path: Path, helpers: Any
) -> tuple[Any, dict[str, str], list[str]]:
    """The service, with project B holding a repository, a scan, actions, a build, an upload."""
    client = await make_client()
    bob = as_user("bob")
    origin = helpers.GitRepo(tmp_path / "b-origin")
    origin.add_action("echo", helpers.action_files("echo"))
    origin.commit()
    base = "/repository/v1/projects/project-b"
    repo = await (
        await client.post(
            f"{base}/repositories",
            headers=bob,
            json={"name": "b-secret-repo", "url": str(origin.path)},
        )
    ).json()
    scan = await (
        await client.post(f"{base}/repositories/{repo['id']}/scan?build=true", headers=bob)
    ).json()
    upload = await (
        await client.post(
            f"{base}/uploads?name=b-upload.zip",
            headers=bob,
            data=a_zip(helpers.action_files("bonly")),
        )
    ).json()
    ids = {
        "repository_id": repo["id"],
        "scan_id": scan["id"],
        "action_id": "echo",
        "version": "1.0",
        "build_id": scan["build_ids"][0],
    }
    secrets = [
        repo["id"],
        "b-secret-repo",
        scan["id"],
        upload["id"],
        scan["build_ids"][0],
        scan["actions"][0]["sha256"],
        "bonly",
    ]
    return client, ids, secrets


def fill(path: str, project: str, ids: dict[str, str]) -> str:
    path = path.replace("{project}", project)
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def body_for(method: str, path: str, helpers: Any) -> dict[str, Any]:
    if path.endswith("/uploads"):
        return {"data": a_zip(helpers.action_files("intruder"))}
    if method == "post" and path.endswith("/repositories"):
        return {"json": {"name": "intruder", "url": "/tmp"}}
    return {}


def test_every_route_is_project_scoped() -> None:
    assert api.docs
    for doc in api.docs:
        assert doc.path.startswith("/repository/v1/projects/{project}/"), doc.path


async def test_a_member_of_a_sees_nothing_of_b(
    project_b: tuple[Any, dict[str, str], list[str]], as_user: Headers, helpers: Any
) -> None:
    client, ids, secrets = project_b
    alice = as_user("alice")
    checked = 0
    for doc in api.docs:
        for project in ("project-b", B_ID):
            url = fill(doc.path, project, ids)
            response = await client.request(
                doc.method.upper(), url, headers=alice, **body_for(doc.method, doc.path, helpers)
            )
            text = await response.text()
            assert response.status == 403, (doc.method, url, response.status, text)
            assert not any(s in text for s in secrets), (doc.method, url, text)
            checked += 1
        # B's resource ids under A's own project: not found (or empty lists), never B's data.
        if doc.method == "post" and doc.path.endswith(("/repositories", "/uploads")):
            continue  # creations in A, not lookups of B
        url = fill(doc.path, "project-a", ids)
        response = await client.request(doc.method.upper(), url, headers=alice)
        text = await response.text()
        has_id = bool(re.search(r"\{(?!project\})\w+\}", doc.path))
        assert response.status == (404 if has_id else 200), (doc.method, url, text)
        # The caller's own path may be echoed back in a 404; nothing else of B may appear.
        assert not any(s in text and s not in url for s in secrets), (doc.method, url, text)
    assert checked == 2 * len(api.docs)

    # And B still has everything: nothing was changed by A's attempts.
    bob = as_user("bob")
    base = "/repository/v1/projects/project-b"
    repos = await (await client.get(f"{base}/repositories", headers=bob)).json()
    assert [r["name"] for r in repos["repositories"]] == ["b-secret-repo"]
    build = await (await client.get(f"{base}/builds/{ids['build_id']}", headers=bob)).json()
    assert build["state"] == "requested"
