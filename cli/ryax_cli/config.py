"""Where the CLI finds its server, token and current project.

Precedence, highest first: command-line options (--url, --token, --project), the environment
(RYAX_URL, RYAX_TOKEN, RYAX_PROJECT), the config file, the defaults. The file is
$RYAX_CONFIG, else $XDG_CONFIG_HOME/ryax/config.toml, else ~/.config/ryax/config.toml; `ryax
login` and `ryax project use` write it (mode 600, its folder 700). A token read from the file is
sent only to the URL it was issued by, so pointing RYAX_URL elsewhere never leaks it.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._http import DEFAULT_URL
from .errors import RyaxError

KEYS = ("url", "token", "project")


class ConfigError(RyaxError):
    """The config file cannot be read or written."""


def config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get("RYAX_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base).expanduser() / "ryax" / "config.toml"


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url and "://" not in url:
        url = "http://" + url
    return url


def read_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from exc
    return {k: str(v) for k, v in data.items() if k in KEYS and isinstance(v, str) and v}


def write_file(path: Path, values: Mapping[str, str | None]) -> None:
    """Replace the file atomically with `values` (None or empty drops a key); mode 600."""
    lines = ["# Written by `ryax login` / `ryax project use`. Keep it private: it holds a token."]
    for key in KEYS:
        value = values.get(key)
        if value:
            lines.append(f"{key} = {_toml_string(value)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write the config file {path}: {exc.strerror}") from exc


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


@dataclass
class Settings:
    url: str
    token: str | None
    project: str | None
    path: Path
    file: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    ignored_token_url: str | None = None

    def save(self, **changes: str | None) -> None:
        """Write `changes` over what the file holds now (other keys are kept)."""
        current = read_file(self.path)
        merged: dict[str, str | None] = {**current, **changes}
        write_file(self.path, merged)
        self.file = {k: v for k, v in merged.items() if v}


def load(
    env: Mapping[str, str] | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    project: str | None = None,
    config: Path | None = None,
) -> Settings:
    e = os.environ if env is None else env
    path = config.expanduser() if config else config_path(e)
    file = read_file(path)
    sources: dict[str, str] = {}

    def pick(key: str, flag: str | None, env_name: str) -> str | None:
        if flag:
            sources[key] = "option"
            return flag
        if e.get(env_name):
            sources[key] = f"env {env_name}"
            return e[env_name]
        if file.get(key):
            sources[key] = f"file {path}"
            return file[key]
        return None

    effective_url = normalize_url(pick("url", url, "RYAX_URL") or DEFAULT_URL)
    sources.setdefault("url", "default")
    effective_token = pick("token", token, "RYAX_TOKEN")
    ignored = None
    if sources.get("token", "").startswith("file") and file.get("url"):
        issuer = normalize_url(file["url"])
        if issuer != effective_url:
            effective_token, ignored = None, issuer
            sources.pop("token")
    return Settings(
        url=effective_url,
        token=effective_token,
        project=pick("project", project, "RYAX_PROJECT"),
        path=path,
        file=file,
        sources=sources,
        ignored_token_url=ignored,
    )
