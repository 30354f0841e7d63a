"""The deployment policy of a site's action processes (as Ryax's): a deployed step whose process
ran nothing for the retention time has its process stopped; the step stays deployed (READY)
and its next execution starts the process again, on demand. Triggers and always-warm steps
never stop for being idle.

`Retention` keeps the books (which step is busy, since when each is idle, which sleeps) with an
injected clock; the backend asks it which steps are due and puts them to sleep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ryax_kit.core.clock import Clock

from ..domain.model import DeployStep, StepRef


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    #: Idle time after which a step's process stops (RYAX_ACTION_RETENTION_SECONDS); 0 = never.
    retention_seconds: float = 30.0
    #: Action ids, deployment ids or `<deployment id>/<step id>` kept warm
    #: (RYAX_ACTION_ALWAYS_WARM).
    always_warm: frozenset[str] = frozenset()

    def keeps_warm(self, spec: DeployStep) -> bool:
        """True when this step's process never stops for being idle."""
        if spec.is_trigger or spec.always_warm or self.retention_seconds <= 0:
            return True
        ref = spec.ref
        names = {spec.action_id, ref.deployment_id, f"{ref.deployment_id}/{ref.step_id}"}
        return bool(names & self.always_warm)


@dataclass
class _Books:
    warm: bool
    idle_since: datetime
    busy: int = 0
    asleep: bool = False


@dataclass
class Retention:
    """Idle time of each deployed step of a backend."""

    policy: RetentionPolicy
    clock: Clock
    _steps: dict[StepRef, _Books] = field(default_factory=dict)

    def track(self, spec: DeployStep) -> None:
        """A step deployed (its process just started: idle from now)."""
        self._steps[spec.ref] = _Books(
            warm=self.policy.keeps_warm(spec), idle_since=self.clock.now()
        )

    def forget(self, ref: StepRef) -> None:
        self._steps.pop(ref, None)

    def begin(self, ref: StepRef) -> None:
        """An execution of the step starts (it is busy until `end`); it wakes a sleeping
        step (the backend starts its process again)."""
        books = self._steps.get(ref)
        if books is not None:
            books.busy += 1
            books.asleep = False

    def end(self, ref: StepRef) -> None:
        books = self._steps.get(ref)
        if books is not None:
            books.busy = max(books.busy - 1, 0)
            books.idle_since = self.clock.now()

    def slept(self, ref: StepRef) -> None:
        """The step's process was stopped; not asleep if an execution came meanwhile (it
        starts the process again)."""
        books = self._steps.get(ref)
        if books is not None and books.busy == 0:
            books.asleep = True

    def woke(self, ref: StepRef) -> None:
        books = self._steps.get(ref)
        if books is not None:
            books.asleep = False
            books.idle_since = self.clock.now()

    def asleep(self, ref: StepRef) -> bool:
        books = self._steps.get(ref)
        return books is not None and books.asleep

    def due(self) -> list[StepRef]:
        """Steps whose process has been idle for the retention time (and may sleep)."""
        now = self.clock.now()
        limit = timedelta(seconds=self.policy.retention_seconds)
        return [
            ref
            for ref, books in self._steps.items()
            if not books.warm
            and not books.asleep
            and books.busy == 0
            and now - books.idle_since >= limit
        ]

    def next_due_in(self) -> float | None:
        """Seconds until the next step becomes due (0 if one is); None when none can."""
        now = self.clock.now()
        limit = timedelta(seconds=self.policy.retention_seconds)
        waits = [
            (books.idle_since + limit - now).total_seconds()
            for books in self._steps.values()
            if not books.warm and not books.asleep and books.busy == 0
        ]
        return max(min(waits), 0.0) if waits else None
