"""Sizes and durations as people write them, the way published Ryax's `spec.resources` does
(docs/reference/actions.md): `512M`, `4G`, `1.5Gi` (all powers of 1024), `90s`, `15m`, `2h`."""

from __future__ import annotations

import math
import re
from typing import Final

MEMORY_UNITS: Final = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
TIME_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?)?")
_TIME = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])?")


def parse_memory(value: object) -> int:
    """Bytes from `4G`, `512Mi`, `1.5G` or a whole number; ValueError says what is expected."""
    if isinstance(value, bool):
        raise ValueError("expected a size (e.g. 512M or 4G), got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value != int(value) or value < 0:
            raise ValueError(f"a size in bytes is a whole number >= 0, got {value}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a size (e.g. 512M or 4G), got {type(value).__name__}")
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            "expected a number of bytes or a number followed by K, M, G, T (or Ki, Mi, Gi, Ti) "
            f"(e.g. 512M or 4G), got {value!r}"
        )
    return int(float(match.group(1)) * MEMORY_UNITS[match.group(2) or ""])


def parse_duration(value: object) -> float:
    """Seconds from `30`, `90s`, `15m`, `1.5h`, `2d`; ValueError says what is expected."""
    if isinstance(value, bool):
        raise ValueError("expected a duration (e.g. 90s, 15m, 2h), got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a number of seconds >= 0, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration (e.g. 90s, 15m, 2h), got {type(value).__name__}")
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            "expected a number of seconds or a number followed by s, m, h or d "
            f"(e.g. 90s, 15m, 2h), got {value!r}"
        )
    return float(match.group(1)) * TIME_UNITS[match.group(2) or "s"]


def format_memory(n: int) -> str | int:
    """The shortest exact text (`4G`), or the number of bytes."""
    for unit in ("T", "G", "M", "K"):
        size = MEMORY_UNITS[unit]
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return n


def format_duration(seconds: float) -> str | int | float:
    """The shortest exact text (`15m`), or the number of seconds."""
    if seconds and float(seconds).is_integer():
        whole = int(seconds)
        for unit in ("d", "h", "m"):
            if whole % TIME_UNITS[unit] == 0:
                return f"{whole // TIME_UNITS[unit]}{unit}"
        return f"{whole}s"
    return seconds
