"""Time as a port: code that reads the time or waits takes a `Clock` / `Timers`, so tests drive
it (`ryax_kit.testing.FakeClock`, `FakeTimers`) instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, tz-aware (UTC)."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Timers(Protocol):
    """Monotonic time and delayed callbacks (the event loop's in production)."""

    def monotonic(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class AsyncioTimers:
    """The running event loop's monotonic time and `call_later`."""

    def monotonic(self) -> float:
        return time.monotonic()  # what the event loop's own clock reads

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)
