"""dev/demo_scenario.py against the fake gateway: every step through the real `ryax` command
(subprocesses), twice (it must be idempotent), and a failing step named in the message."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .conftest import ADMIN
from .fake_ryax import FakeRyax, seed_action

REPO = Path(__file__).resolve().parents[3]
SCENARIO = REPO / "dev" / "demo_scenario.py"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def load_scenario(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"demo_scenario_{id(root)}", SCENARIO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeRyax) -> Path:
    root = tmp_path / "repo"
    del fake.projects["demo"]  # the scenario creates it
    shutil.copytree(REPO / "examples", root / "examples")
    workflow = yaml.safe_load((root / "examples/workflows/demo.yaml").read_text())
    for function in workflow["spec"]["functions"]:
        if function["from"] != "httpapijson":
            seed_action(fake, function["from"], str(function["version"]))
    monkeypatch.setenv("RYAX_REPO_ROOT", str(root))
    monkeypatch.setenv("RYAX_URL", fake.url)
    monkeypatch.setenv("RYAX_ADMIN_USER", ADMIN[0])
    monkeypatch.setenv("RYAX_ADMIN_PASSWORD", ADMIN[1])
    monkeypatch.setenv("RYAX_POLL_INTERVAL", "0")
    monkeypatch.setenv("HOME", str(tmp_path))
    # The scenario runs `ryax` next to the interpreter: the venv's console script.
    assert (Path(sys.executable).parent / "ryax").exists()
    return root


def test_demo_runs_and_is_idempotent(
    demo_root: Path, fake: FakeRyax, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_scenario(demo_root)
    assert module.main() == 0, capsys.readouterr().err
    first = capsys.readouterr().out
    assert "demo: OK" in first
    assert '"THE CAT AND THE HAT"' in first  # the fake endpoint's summary
    assert f"{fake.url}/studio/docs" in first and "ryax run logs -f" in first
    assert fake.projects["demo"]["members"] == {"demo": "owner"}
    repo = next(iter(fake.repositories.values()))
    assert repo["url"] == str(demo_root / ".dev/demo-actions-repo")
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=repo["url"], capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    assert (demo_root / ".dev/demo-password").stat().st_mode & 0o777 == 0o600

    module = load_scenario(demo_root)
    assert module.main() == 0, capsys.readouterr().err
    second = capsys.readouterr().out
    assert "user demo exists: reused" in second
    assert "project demo exists: reused" in second
    assert "repository demo-actions exists" in second
    assert "exists and is deployed: reused" in second
    assert len(fake.repositories) == 1 and len(fake.workflows) == 1
    assert len(fake.runs) == 2
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=repo["url"], capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1  # nothing changed: no new commit


def test_a_failing_step_is_named(
    demo_root: Path, fake: FakeRyax, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.failing_actions.add("word-count")
    module = load_scenario(demo_root)
    assert module.main() == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("demo: step 'build every action' failed: ")


def test_wrong_admin_password_is_named(
    demo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RYAX_ADMIN_PASSWORD", "wrong")
    assert load_scenario(demo_root).main() == 1
    assert capsys.readouterr().err.strip() == (
        "demo: step 'log in as the administrator admin' failed: "
        "authentication failed: invalid credentials"
    )
