"""Actions written the published Ryax way (examples/ryax-compat) through the HTTP API: the scan's
located warnings, the Python packages in the action's detail, the logo served with its real
type. Real PostgreSQL and git; a fake authorization service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
BASE = "/repository/v1/projects/project-a"
COMPAT = Path(__file__).resolve().parents[3] / "examples" / "ryax-compat"
Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def origin(tmp_path: Path, helpers: Any) -> Any:
    if not COMPAT.is_dir():
        pytest.skip("examples/ryax-compat is not present")
    repo = helpers.GitRepo(tmp_path / "origin")
    for folder in ("nix-python-deps", "mismatched-logo"):
        files = {p.name: p.read_bytes() for p in (COMPAT / folder).iterdir() if p.is_file()}
        repo.add_action(f"actions/{folder}", files)
    repo.add_action("actions/echo", helpers.action_files("echo", logo=helpers.png(8, 8)))
    repo.add_action("actions/plain", helpers.action_files("plain"))
    repo.commit()
    return repo


async def test_published_ryax_patterns_are_accepted_with_located_warnings(
    make_client: Callable[..., Any], as_user: Headers, origin: Any
) -> None:
    client = await make_client()
    alice = as_user("alice")
    repo = await (
        await client.post(
            f"{BASE}/repositories", headers=alice, json={"name": "compat", "url": str(origin.path)}
        )
    ).json()
    scan = await client.post(f"{BASE}/repositories/{repo['id']}/scan", headers=alice)
    assert scan.status == 200, await scan.text()
    report = await scan.json()
    assert report["counts"]["new"] == 4 and report["counts"]["invalid"] == 0
    assert report["errors"] == []
    warnings = {(w["file"], w["field"]): w for w in report["warnings"]}
    assert set(warnings) == {
        ("actions/nix-python-deps/ryax_metadata.yaml", "spec.dependencies[2]"),
        ("actions/mismatched-logo/ryax_metadata.yaml", "spec.logo"),
    }
    ffmpeg = warnings["actions/nix-python-deps/ryax_metadata.yaml", "spec.dependencies[2]"]
    assert ffmpeg["line"] == 16
    assert "Nix package ffmpeg is not installed by this platform" in ffmpeg["message"]
    logo = warnings["actions/mismatched-logo/ryax_metadata.yaml", "spec.logo"]
    assert "the file is named .jpg but holds a PNG image" in logo["message"]

    deps = await (await client.get(f"{BASE}/actions/nix-python-deps/1.0", headers=alice)).json()
    assert deps["state"] == "valid"
    assert deps["dependencies"] == [
        "pythonPackages.tabulate",
        "python3Packages.dateutil",
        "ffmpeg",
    ]
    assert deps["python_packages"] == [
        {"dependency": "pythonPackages.tabulate", "requirement": "tabulate"},
        {"dependency": "python3Packages.dateutil", "requirement": "python-dateutil"},
    ]
    assert [w["field"] for w in deps["warnings"]] == ["spec.dependencies[2]"]
    assert not deps["has_logo"] and deps["logo_media_type"] is None

    # The logo: stored and served with the type of what the file holds, not of its name.
    mismatched = await (
        await client.get(f"{BASE}/actions/mismatched-logo/1.0", headers=alice)
    ).json()
    assert mismatched["has_logo"] and mismatched["logo_media_type"] == "image/png"
    served = await client.get(f"{BASE}/actions/mismatched-logo/1.0/logo", headers=alice)
    assert served.status == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert await served.read() == (COMPAT / "mismatched-logo" / "logo.jpg").read_bytes()
    echo = await client.get(f"{BASE}/actions/echo/1.0/logo", headers=as_user("victor"))
    assert echo.status == 200 and echo.headers["Content-Type"] == "image/png"

    none = await client.get(f"{BASE}/actions/plain/1.0/logo", headers=alice)
    assert none.status == 404 and (await none.json())["error"] == "not_found"
    assert (await client.get(f"{BASE}/actions/nope/1.0/logo", headers=alice)).status == 404
    assert (await client.get(f"{BASE}/actions/echo/1.0/logo")).status == 401
