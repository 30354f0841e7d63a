"""Sizes and durations as the studio reads them in a workflow's `resources` (`512M`, `4G`,
`1.5Gi`: powers of 1024; `90s`, `15m`, `2h`, `1d`), so `--memory` and `--time` take the same
texts and say the same when one is wrong."""

from __future__ import annotations

import re

MEMORY_UNITS = {
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
TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?)?")
_TIME = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])?")


def parse_memory(text: str) -> int:
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "expected a number of bytes or a number followed by K, M, G, T (or Ki, Mi, Gi, Ti) "
            f"(e.g. 512M or 4G), got {text!r}"
        )
    return int(float(match.group(1)) * MEMORY_UNITS[match.group(2) or ""])


def parse_duration(text: str) -> float:
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "expected a number of seconds or a number followed by s, m, h or d "
            f"(e.g. 90s, 15m, 2h), got {text!r}"
        )
    return float(match.group(1)) * TIME_UNITS[match.group(2) or "s"]


def format_memory(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        size = MEMORY_UNITS[unit]
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def format_duration(seconds: float) -> str:
    if seconds and float(seconds).is_integer():
        whole = int(seconds)
        for unit in ("d", "h", "m"):
            if whole % TIME_UNITS[unit] == 0:
                return f"{whole // TIME_UNITS[unit]}{unit}"
        return f"{whole}s"
    return f"{seconds:g}s"
