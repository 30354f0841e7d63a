"""The execution the user code is running in, for the `ryax` helper module (progress)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class ExecutionContext(Protocol):
    execution_id: str

    def report_progress(self, fraction: float, message: str) -> None: ...


_current: ContextVar[ExecutionContext | None] = ContextVar("ryax_execution", default=None)
# Threads the user code starts itself do not inherit context variables; executions never overlap
# in one process, so the active one is also kept here for them.
_active: list[ExecutionContext] = []


def current() -> ExecutionContext | None:
    ctx = _current.get()
    if ctx is not None:
        return ctx
    return _active[-1] if _active else None


@contextmanager
def activated(ctx: ExecutionContext) -> Iterator[None]:
    token = _current.set(ctx)
    _active.append(ctx)
    try:
        yield
    finally:
        _active.remove(ctx)
        _current.reset(token)
