"""Helpers for action code, provided by the Ryax action wrapper.

    import ryax
    ryax.progress(0.5, "half way")

Outside the wrapper (e.g. a unit test of the handler), calls are no-ops.
"""

from __future__ import annotations

from ryax_action_wrapper.application.context import current

__all__ = ["execution_id", "progress"]


def progress(fraction: float, message: str = "") -> None:
    """Report how far the current execution is, from 0.0 to 1.0, with an optional message."""
    ctx = current()
    if ctx is not None:
        ctx.report_progress(fraction, message)


def execution_id() -> str:
    """The id of the current execution ("" outside an execution)."""
    ctx = current()
    return ctx.execution_id if ctx is not None else ""
