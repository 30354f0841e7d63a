"""Config precedence: option > environment > file > default; the file is private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ryax_cli import config


def test_default_location_follows_xdg_then_home(tmp_path: Path) -> None:
    assert config.config_path({"HOME": str(tmp_path)}) == tmp_path / ".config/ryax/config.toml"
    xdg = {"HOME": "/x", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config.config_path(xdg) == tmp_path / "xdg/ryax/config.toml"
    explicit = {**xdg, "RYAX_CONFIG": str(tmp_path / "c.toml")}
    assert config.config_path(explicit) == tmp_path / "c.toml"


def test_defaults_without_anything(tmp_path: Path) -> None:
    s = config.load({"RYAX_CONFIG": str(tmp_path / "none.toml")})
    assert (s.url, s.token, s.project) == ("http://127.0.0.1:8080", None, None)
    assert s.sources == {"url": "default"}


def test_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    config.write_file(path, {"url": "http://file:1", "token": "file-tok", "project": "fp"})
    env = {"RYAX_CONFIG": str(path)}
    s = config.load(env)
    assert (s.url, s.token, s.project) == ("http://file:1", "file-tok", "fp")

    env |= {"RYAX_TOKEN": "env-tok", "RYAX_PROJECT": "ep"}
    s = config.load(env)
    assert (s.token, s.project) == ("env-tok", "ep")

    s = config.load(env, token="opt-tok", project="op", url="http://file:1/")
    assert (s.url, s.token, s.project) == ("http://file:1", "opt-tok", "op")
    assert s.sources == {"url": "option", "token": "option", "project": "option"}


def test_file_token_only_for_its_server(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    config.write_file(path, {"url": "http://a:1", "token": "tok-a"})
    s = config.load({"RYAX_CONFIG": str(path), "RYAX_URL": "http://b:2"})
    assert s.token is None and s.ignored_token_url == "http://a:1"
    # An explicit token is always used.
    s = config.load({"RYAX_CONFIG": str(path), "RYAX_URL": "b:2", "RYAX_TOKEN": "t"})
    assert s.url == "http://b:2" and s.token == "t"


def test_written_file_is_mode_600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "c.toml"
    tricky = 'a"b\\c\nd'
    config.write_file(path, {"url": "http://x", "token": tricky, "project": None})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.read_file(path) == {"url": "http://x", "token": tricky}


def test_save_keeps_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    config.write_file(path, {"url": "http://x", "token": "t"})
    s = config.load({"RYAX_CONFIG": str(path)})
    s.save(project="p")
    assert config.read_file(path) == {"url": "http://x", "token": "t", "project": "p"}
    s.save(token=None)
    assert config.read_file(path) == {"url": "http://x", "project": "p"}


def test_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("url = \n")
    with pytest.raises(config.ConfigError, match=r"c.toml is not valid TOML"):
        config.load({"RYAX_CONFIG": str(path)})
