"""What every API group shares: the transport, path building, waiting and name resolution."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

from .._http import Transport
from ..errors import NotFoundError, RyaxError

T = TypeVar("T")


@dataclass
class Waiting:
    """How waits poll: tests swap `sleep` and `clock` to run instantly."""

    interval: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


class Group:
    def __init__(self, http: Transport, waiting: Waiting) -> None:
        self._http = http
        self._waiting = waiting


def seg(value: str) -> str:
    """One URL path segment (ids, names) with everything else escaped."""
    if not value:
        raise RyaxError("an empty name or id was given")
    return quote(str(value), safe="")


def project_path(service: str, project: str, *rest: str) -> str:
    tail = "".join(f"/{part}" for part in rest)
    return f"/{service}/v1/projects/{seg(project)}{tail}"


def resolve(
    items: Iterable[T],
    ref: str,
    *,
    kind: str,
    project: str,
    keys: Callable[[T], tuple[str, ...]],
) -> T:
    """The item whose id is `ref`, else the one whose name is `ref` (names must be unique)."""
    candidates = list(items)
    for item in candidates:
        if keys(item)[0] == ref:
            return item
    named = [item for item in candidates if ref in keys(item)[1:]]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(keys(item)[0] for item in named)
        raise RyaxError(f"{kind} name {ref!r} is ambiguous in project {project}: use an id ({ids})")
    raise NotFoundError(404, "not_found", f"{kind} {ref!r} in project {project}")
