"""Where a repository may be fetched from: URL forms and the addresses that are refused.

Accepted: `https://host/path`, `ssh://[user@]host[:port]/path`, scp-like `user@host:path`,
and - only when local sources are allowed - an absolute path or a `file:///path` URL. A URL
never carries a password (credentials are given apart and stored encrypted). Hosts that
resolve to private, loopback, link-local (cloud metadata) or other non-public addresses are
refused unless local sources are allowed: a repository URL must not become a way to reach the
platform's own network. That rule is the platform's (`ryax_kit.net`), applied by the
infrastructure (`infrastructure/network.py`); here are the URL forms only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from .errors import InvalidInput

MAX_URL_LENGTH = 2048
ALLOW_LOCAL_SETTING = "RYAX_REPOSITORY_ALLOW_LOCAL=true"
_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/\s:]+)@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<path>[^/].*|/.+)$"
)
_TRANSPORT_HELPER = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")  # git's <helper>::<address>
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")
ACCEPTED_FORMS = (
    "https://host/path, ssh://[user@]host[:port]/path, user@host:path"
    " (and, when local sources are allowed, /absolute/path or file:///absolute/path)"
)


class UrlKind(StrEnum):
    HTTPS = "https"
    SSH = "ssh"
    LOCAL = "local"


@dataclass(frozen=True, kw_only=True)
class GitUrl:
    """A parsed, accepted repository location. `host` is None for local paths."""

    raw: str
    kind: UrlKind
    host: str | None = None
    port: int | None = None
    path: str = ""

    @property
    def is_local(self) -> bool:
        return self.kind is UrlKind.LOCAL

    @property
    def default_port(self) -> int:
        return self.port or (443 if self.kind is UrlKind.HTTPS else 22)


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput("url", detail)


def parse_git_url(url: str) -> GitUrl:
    """Classify a repository URL; refuse unknown schemes, embedded passwords and odd forms."""
    raw = url.strip()
    if not raw:
        raise _invalid("is empty; expected " + ACCEPTED_FORMS)
    if len(raw) > MAX_URL_LENGTH:
        raise _invalid(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise _invalid("must not contain spaces or control characters")
    if raw.startswith("-"):
        raise _invalid("must not start with '-'")
    lowered = raw.lower()
    if lowered.startswith("file://"):
        parts = urlsplit(raw)
        if parts.netloc not in ("", "localhost"):
            raise _invalid("a file:// URL must name a local path: file:///absolute/path")
        return _local(unquote(parts.path), raw)
    if raw.startswith("/"):
        return _local(raw, raw)
    if lowered.startswith("http://"):
        raise _invalid(
            "plain http is refused (code and credentials would travel unencrypted): use https://"
        )
    if lowered.startswith(("https://", "ssh://")):
        return _network_url(raw)
    helper = _TRANSPORT_HELPER.match(raw)
    if "://" in raw or helper:
        scheme = helper.group(1) if helper else raw.split(":", 1)[0]
        raise _invalid(f"the scheme {scheme!r} is not accepted; expected " + ACCEPTED_FORMS)
    match = _SCP_LIKE.match(raw)
    if match:
        host = match.group("host").strip("[]")
        _check_host(host)
        return GitUrl(raw=raw, kind=UrlKind.SSH, host=host.lower(), path=match.group("path"))
    if raw.startswith(".") or "/" in raw:
        raise _invalid(
            "a relative path is refused: give an absolute path (/path/to/repository) or a URL"
        )
    raise _invalid("is not a repository URL; expected " + ACCEPTED_FORMS)


def _local(path: str, raw: str) -> GitUrl:
    pure = PurePosixPath(path)
    if not pure.is_absolute():
        raise _invalid("a local path must be absolute")
    if ".." in pure.parts:
        raise _invalid("a local path must not contain '..'")
    return GitUrl(raw=raw, kind=UrlKind.LOCAL, path=str(pure))


def _network_url(raw: str) -> GitUrl:
    parts = urlsplit(raw)
    kind = UrlKind.HTTPS if parts.scheme.lower() == "https" else UrlKind.SSH
    if parts.password is not None:
        raise _invalid(
            "must not contain a password: give username and password (or an SSH key) in their "
            "own fields, they are stored encrypted"
        )
    if kind is UrlKind.HTTPS and parts.username is not None:
        raise _invalid("must not contain a user name: give it in the username field")
    host = parts.hostname
    if not host:
        raise _invalid("names no host")
    _check_host(host)
    try:
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"has an invalid port: {exc}") from exc
    if not parts.path or parts.path == "/":
        raise _invalid("names no repository path after the host")
    return GitUrl(raw=raw, kind=kind, host=host.lower(), port=port, path=parts.path)


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOST.match(host):
        raise _invalid(f"host {host!r} is not a valid host name")


def local_refused_message() -> str:
    return (
        "local paths and file:// URLs are refused on this platform "
        f"(an administrator can allow them with {ALLOW_LOCAL_SETTING})"
    )
