"""Ports of the runner's application layer; adapters live in infrastructure/."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Time is the kit's port (framework-free): `Clock` for dates, `Timers` for monotonic time and
# delayed callbacks. Named here so the engine takes every port from one module.
from ryax_kit.core import Clock as Clock
from ryax_kit.core import TimerHandle as TimerHandle
from ryax_kit.core import Timers as Timers

from ..domain.deployment import Deployment
from ..domain.run import Execution, Run
from ..domain.site import Site, SiteId
from ..domain.timers import Schedule, TimerState
from .messages import LogLine, Outgoing


class WorkerChannel(Protocol):
    """The open stream to one worker. `send` never blocks (messages are queued in order)."""

    def send(self, message: Outgoing) -> None: ...

    def close(self, reason: str) -> None:
        """End the stream (the worker will reconnect)."""
        ...


#: Called after each commit with the report_seq recorded per site in that transaction.
CommitListener = Callable[[dict[SiteId, int]], None]


class Recorder(Protocol):
    """Write-behind persistence: the engine marks what changed, the recorder commits it in
    batches (one transaction for everything that changed since the last commit) and tells
    listeners once committed. The domain objects stay the source of truth in memory; the
    database is the record from which the engine is rebuilt after a restart."""

    def run(self, run: Run, *, lazy: bool = False) -> None:
        """The run changed. `lazy`: a change nobody outside the runner has seen (a run whose
        caller is not answered yet, a step's progress, a step seen running): it may wait a
        moment (RYAX_RUNNER_LAZY_RECORD_SECONDS) for the run's next plain mark, so as to be
        written with it; `durable()` does not wait for it until then."""
        ...

    def deployment(self, deployment: Deployment) -> None:
        """The deployment row, and its pending events into the outbox."""
        ...

    def site(self, site: Site) -> None: ...

    def log(self, line: LogLine) -> None: ...

    def claim(self, message_id: str) -> None:
        """Remember a consumed message in the same transaction as its effects."""
        ...

    async def durable(self) -> None:
        """Return once everything marked before the call is committed."""
        ...

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Call back once everything marked before this call is committed (at once if it
        is); callbacks run in the order they were given."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None: ...


@dataclass(kw_only=True)
class LoadedState:
    """What the engine is rebuilt from at start."""

    sites: list[Site] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)
    #: Runs not ended, with every execution they recorded.
    runs: list[tuple[Run, list[Execution]]] = field(default_factory=list)


class StateStore(Protocol):
    """Reads the engine needs outside its memory."""

    async def load(self) -> LoadedState: ...

    async def is_claimed(self, message_id: str) -> bool: ...

    async def deployment_exists(self, deployment_id: str) -> bool: ...

    async def last_deployment_for(self, project_id: str, endpoint: str) -> Deployment | None:
        """The most recent deployment (any state) whose workflow name, workflow id or id is
        `endpoint`: to tell "not deployed any more" (409) from "unknown" (404)."""
        ...


class Filestore(Protocol):
    """The files of runs (uploaded inputs, outputs), under keys `runs/<run>/<execution>/...`:
    what the runner uses of the kit's `ryax_kit.filestore.Filestore`, with its signatures."""

    def read(self, key: str) -> AsyncGenerator[bytes, None]:
        """The object in chunks; ObjectNotFound (a FilestoreError) when missing."""
        ...

    async def put_file(self, key: str, source: Path) -> None:
        """Move a local file in: `source` is gone once this returns."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (none: not an error)."""
        ...


class TimerStore(Protocol):
    """The built-in timers' schedules (one per deployment), each write committed at once."""

    async def load(self) -> list[TimerState]: ...

    async def save(self, timer: TimerState) -> None: ...

    async def delete(self, deployment_id: str) -> None: ...

    async def run_recorded(self, run_id: str) -> bool:
        """A run of this id is in the record (a fire made before a restart)."""
        ...


class CronCalendar(Protocol):
    def schedule(self, expression: str, timezone: str) -> Schedule:
        """The due times of a cron expression in a time zone; InvalidInput names what is
        wrong with either."""
        ...
