"""Fakes of the runner's application ports, for unit tests: in memory, and time that moves only
when a test says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ryax_kit import testing
from ryax_kit.testing import FakeClock
from ryax_runner.application.messages import Outgoing
from ryax_runner.application.ports import CommitListener, LoadedState, TimerHandle
from ryax_runner.domain.deployment import Deployment
from ryax_runner.domain.run import Run
from ryax_runner.domain.site import Site, SiteId, site_id_for

#: Credentials the tests had issued, by the digest the site keeps (a restored site too).
_ISSUED: dict[str, str] = {}


def site_credential(engine: Any, name: str, kind: str = "local") -> str:
    """The credential of the site `name` of `engine`: created the first time (as an admin would),
    issued again if the test never saw it (a site restored without one)."""
    site = engine.sites.get(site_id_for(name))
    if site is None:
        site, credential = engine.create_site(name, kind, "tests")
    elif site.credential is not None and site.credential.digest in _ISSUED:
        return _ISSUED[site.credential.digest]
    else:
        site, credential = engine.rotate_site_credential(name, "tests")
    _ISSUED[site.credential.digest] = credential
    return str(credential)


__all__ = [
    "FakeChannel",
    "FakeClock",
    "FakeRecorder",
    "FakeStore",
    "FakeTimers",
    "site_credential",
]


class FakeTimers(testing.FakeTimers):
    """The kit's fake timers, from time 0 (due times read as seconds since the start), telling
    the due times of the timers still armed."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__(clock, start=0.0)
        self._armed: list[Any] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        def run() -> None:
            self._armed.remove(handle)
            callback()

        handle = super().call_later(delay, run)
        self._armed.append(handle)
        return handle

    def due_times(self) -> list[float]:
        """Due times of the timers neither run nor cancelled, soonest first."""
        return sorted(h.due for h in self._armed if not h.cancelled)


class FakeRecorder:
    """Records in memory. `when_durable` calls back at once; with `hold=True` it calls back
    only at the next `commit()` (orders then wait for the test to commit)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.held: list[Callable[[], None]] = []
        self.runs: dict[str, Run] = {}
        #: Runs whose last mark was lazy (`run(lazy=True)`).
        self.lazy: set[str] = set()
        self.deployments: dict[str, Deployment] = {}
        self.sites: dict[str, Site] = {}
        self.events: list[object] = []
        self.claims: list[str] = []
        self.logs: list[object] = []
        self.listeners: list[CommitListener] = []
        self.pending_sites: dict[SiteId, int] = {}

    def run(self, run: Run, *, lazy: bool = False) -> None:
        self.runs[run.id] = run
        if lazy:
            self.lazy.add(run.id)
        else:
            self.lazy.discard(run.id)

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

    def when_durable(self, callback: Callable[[], None]) -> None:
        if self.hold:
            self.held.append(callback)
        else:
            callback()

    def commit(self) -> None:
        callbacks, self.held = self.held, []
        for callback in callbacks:
            callback()
        seqs, self.pending_sites = self.pending_sites, {}
        for listener in self.listeners:
            listener(seqs)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self.listeners.append(listener)


class FakeStore:
    def __init__(self) -> None:
        self.claimed: set[str] = set()
        #: What `load` gives the engine at start (a restart's record).
        self.loaded = LoadedState()

    async def load(self) -> LoadedState:
        return self.loaded

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
