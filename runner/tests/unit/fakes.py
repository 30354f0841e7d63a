"""Fakes of the runner's application ports, for unit tests: in memory, and time that moves only
when a test says so."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ryax_runner.application.messages import Outgoing
from ryax_runner.application.ports import CommitListener, LoadedState
from ryax_runner.domain.deployment import Deployment
from ryax_runner.domain.run import Run
from ryax_runner.domain.site import Site, SiteId

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeTimerHandle:
    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False
        self.fired = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """Monotonic time that starts at 0 and moves only with `advance`, which runs the callbacks
    that fall due on the way, in due order (then in the order they were set)."""

    def __init__(self) -> None:
        self._now = 0.0
        self._queue: list[tuple[float, int, FakeTimerHandle]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimerHandle:
        handle = FakeTimerHandle(self._now + max(0.0, delay), callback)
        heapq.heappush(self._queue, (handle.due, next(self._order), handle))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time by `seconds`, running every callback due by then, timers set by callbacks
        included."""
        end = self._now + seconds
        while self._queue and self._queue[0][0] <= end:
            due, _, handle = heapq.heappop(self._queue)
            if handle.cancelled:
                continue
            self._now = max(self._now, due)
            handle.fired = True
            handle.callback()
        self._now = end

    @property
    def pending(self) -> list[FakeTimerHandle]:
        """Timers set, not yet run nor cancelled, in due order."""
        return [h for _, _, h in sorted(self._queue) if not h.cancelled]


class FakeClock:
    """Dates from NOW, moving with `timers` when given (else frozen at NOW)."""

    def __init__(self, timers: FakeTimers | None = None, start: datetime = NOW) -> None:
        self._timers = timers
        self._start = start

    def now(self) -> datetime:
        if self._timers is None:
            return self._start
        return self._start + timedelta(seconds=self._timers.monotonic())


class FakeRecorder:
    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.deployments: dict[str, Deployment] = {}
        self.sites: dict[str, Site] = {}
        self.events: list[object] = []
        self.claims: list[str] = []
        self.logs: list[object] = []
        self.listeners: list[CommitListener] = []
        self.pending_sites: dict[SiteId, int] = {}

    def run(self, run: Run) -> None:
        self.runs[run.id] = run

    def deployment(self, deployment: Deployment) -> None:
        self.deployments[deployment.id] = deployment
        self.events += deployment.events
        deployment.events.clear()

    def site(self, site: Site) -> None:
        self.sites[site.id] = site
        self.pending_sites[site.id] = site.last_report_seq

    def log(self, line: object) -> None:
        self.logs.append(line)

    def claim(self, message_id: str) -> None:
        self.claims.append(message_id)

    async def durable(self) -> None:
        self.commit()

    def commit(self) -> None:
        seqs, self.pending_sites = self.pending_sites, {}
        for listener in self.listeners:
            listener(seqs)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self.listeners.append(listener)


class FakeStore:
    def __init__(self) -> None:
        self.claimed: set[str] = set()

    async def load(self) -> LoadedState:
        return LoadedState()

    async def is_claimed(self, message_id: str) -> bool:
        return message_id in self.claimed

    async def deployment_exists(self, deployment_id: str) -> bool:
        return False

    async def last_deployment_for(self, project_id: str, endpoint: str) -> Deployment | None:
        return None


class FakeChannel:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.closed = ""

    def send(self, message: Outgoing) -> None:
        self.sent.append(message)

    def close(self, reason: str) -> None:
        self.closed = reason

    def of(self, kind: type) -> list:
        return [m for m in self.sent if isinstance(m, kind)]
