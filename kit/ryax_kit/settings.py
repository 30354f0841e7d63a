"""Reading settings from the environment, with errors that name the variable and the value.

Each service keeps its own `Settings` dataclass (every variable documented with its default);
this is how it reads them:

    e = Env.from_os()                # or Env({...}) in tests
    port = e.integer("RYAX_HTTP_PORT", 8104, minimum=1, maximum=65535)

A bad value stops the process at start with `configuration error: RYAX_HTTP_PORT='x' is not a
whole number`, never a traceback, never later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .logging import LOG_FORMATS, LOG_LEVELS

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
#: sun_path holds 108 bytes, the last one a NUL.
MAX_SOCKET_PATH_BYTES = 107


class ConfigurationError(SystemExit):
    """A setting is missing or malformed: the process cannot start."""

    def __init__(self, message: str) -> None:
        super().__init__(f"configuration error: {message}")
        self.message = message


class Env:
    """Typed reads of environment variables; an empty value counts as unset."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    @classmethod
    def from_os(cls, env: Mapping[str, str] | None = None) -> Env:
        return cls(os.environ if env is None else env)

    def raw(self, name: str) -> str | None:
        value = self._values.get(name)
        return value if value not in (None, "") else None

    def text(
        self, name: str, default: str = "", *, choices: tuple[str, ...] = (), lower: bool = False
    ) -> str:
        """The value as given (`lower`: lower-cased, for case-free choices)."""
        value = self.raw(name)
        if value is None:
            return default
        if lower:
            value = value.lower()
        if choices and value not in choices:
            raise ConfigurationError(f"{name}={value!r}: expected one of {', '.join(choices)}")
        return value

    def required(self, name: str, *, min_length: int = 0, hint: str = "") -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigurationError(f"{name} is required" + (f" ({hint})" if hint else ""))
        if len(value) < min_length:
            raise ConfigurationError(f"{name} must be at least {min_length} characters")
        return value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not a whole number") from None
        return _bounded(name, number, minimum, maximum)

    def number(
        self,
        name: str,
        default: float,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value.strip())
        except ValueError:
            raise ConfigurationError(f"{name}={value!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigurationError(f"{name}={value!r} is not a finite number")
        return _bounded(name, number, minimum, maximum)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigurationError(f"{name}={value!r}: expected true or false")

    def path(self, name: str, default: Path | None = None) -> Path | None:
        value = self.raw(name)
        return Path(value).expanduser() if value is not None else default

    def socket_path(self, name: str) -> Path | None:
        """An absolute path for a Unix socket, short enough to bind (at most 107 bytes); None
        when not set."""
        path = self.path(name)
        if path is None:
            return None
        if not path.is_absolute():
            raise ConfigurationError(f"{name}={path}: give an absolute path")
        size = len(os.fsencode(path))
        if size > MAX_SOCKET_PATH_BYTES:
            raise ConfigurationError(
                f"{name}={path}: a Unix socket's path is at most {MAX_SOCKET_PATH_BYTES} bytes, "
                f"this one has {size}"
            )
        return path

    def items(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Comma-separated items, blanks dropped."""
        value = self.raw(name)
        if value is None:
            return default
        return tuple(item.strip() for item in value.split(",") if item.strip())


N = TypeVar("N", int, float)


def _bounded(name: str, number: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigurationError(f"{name}={number} is above the maximum {maximum}")
    return number


@dataclass(frozen=True, kw_only=True)
class CommonSettings:
    """What every service reads the same way.

    RYAX_HTTP_HOST / RYAX_HTTP_PORT: where its HTTP server listens (operators' routes at least).
    RYAX_LOG_FORMAT: json or text (default text). RYAX_LOG_LEVEL: debug, info (default),
    warning, error, critical.
    """

    http_host: str
    http_port: int
    log_format: str
    log_level: str

    @classmethod
    def read(cls, e: Env, *, default_port: int) -> CommonSettings:
        return cls(
            http_host=e.text("RYAX_HTTP_HOST", "127.0.0.1"),
            http_port=e.integer("RYAX_HTTP_PORT", default_port, minimum=0, maximum=65535),
            log_format=e.text("RYAX_LOG_FORMAT", "text", choices=LOG_FORMATS),
            log_level=e.text("RYAX_LOG_LEVEL", "info", choices=LOG_LEVELS, lower=True),
        )
