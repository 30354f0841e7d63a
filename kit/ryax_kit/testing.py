"""Test doubles for the kit's ports: a clock and timers that move only when told to."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A settable UTC clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@dataclass(order=True)
class _Timer:
    due: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """Timers on a virtual monotonic time; `advance` runs due callbacks in order (a callback
    may arm new timers, which run too if due within the advance). Moves `clock` along."""

    def __init__(self, clock: FakeClock | None = None, start: float = 1000.0) -> None:
        self.now = start
        self.clock = clock
        self._heap: list[_Timer] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.now + max(0.0, delay), next(self._order), callback)
        heapq.heappush(self._heap, timer)
        return timer

    @property
    def pending(self) -> int:
        return sum(1 for t in self._heap if not t.cancelled)

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._heap and self._heap[0].due <= target:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self._move_to(timer.due)
            timer.callback()
        self._move_to(target)

    def _move_to(self, when: float) -> None:
        if self.clock is not None and when > self.now:
            self.clock.advance(when - self.now)
        self.now = max(self.now, when)
