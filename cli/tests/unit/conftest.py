from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ryax_cli.cli import app

from .fake_ryax import FakeRyax, seed_action, serve, site_doc

ADMIN = ("admin", "admin-password")
ALICE = ("alice", "alice-password")
ENV_KEYS = ("RYAX_URL", "RYAX_TOKEN", "RYAX_PROJECT", "RYAX_CONFIG", "RYAX_PASSWORD")


@pytest.fixture
def fake() -> Iterator[FakeRyax]:
    server = FakeRyax()
    server.add_user(*ADMIN, admin=True)
    server.add_user(*ALICE)
    server.add_project("demo", {"alice": "owner"})
    for action_id in ("make-report", "word-count", "uppercase"):
        seed_action(server, action_id)
    server.sites.append(site_doc("local"))
    with serve(server):
        yield server


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Ryax:
    """Runs `ryax ...` in-process with an isolated environment and config file."""

    config: Path
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, **env: str | None) -> Outcome:
        full: dict[str, str | None] = dict.fromkeys(ENV_KEYS)
        full.update(self.env)
        full.update(env)
        result = CliRunner().invoke(app, list(args), input=input, env=full, prog_name="ryax")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def login(self, user: tuple[str, str] = ALICE) -> Outcome:
        out = self("login", user[0], "--password-stdin", input=user[1] + "\n")
        assert out.exit_code == 0, out.stderr
        return out


@pytest.fixture
def ryax(tmp_path: Path, fake: FakeRyax) -> Ryax:
    config = tmp_path / "cfg" / "config.toml"
    env = {
        "RYAX_CONFIG": str(config),
        "RYAX_URL": fake.url,
        "RYAX_POLL_INTERVAL": "0",
        "HOME": str(tmp_path),
        "COLUMNS": "200",
    }
    return Ryax(config=config, env=env)


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert "RYAX_TOKEN" not in os.environ
