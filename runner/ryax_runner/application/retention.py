"""Run retention, in the background: the runs that ended longer ago than their project's
retention (domain/retention.py) are deleted with their executions, log lines and files; so are
the log lines of the deployments' own processes (a trigger's, of no run) older than it.

Bounded work per tick: at most `runs_per_tick` runs, `runs_per_transaction` at a time, their log
lines deleted `log_lines_per_batch` at a time, each batch its own short transaction, a pause
between batches, so that the runs being recorded meanwhile never wait long for a lock, the disk
or the event loop. A full tick is followed by the
next one soon (`busy_pause_seconds`), an incomplete one by the usual interval.

The order makes a crash harmless: the files first, then the log lines, then (one transaction)
the executions, the callback and the run row itself, deleted only if the run still ended before
the cutoff. Until its row is gone a run is found again by the next pass, which finishes the job
(deleting what is already gone is a no-op); nothing of a run that must be kept is touched.

A run the engine still holds in memory (not ended, or ending) is never deleted. A run that
cannot be cleaned (its files refused by the filestore, its rows by the database) is logged,
counted, and left aside for `retry_failed_after_seconds` while the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from ryax_kit.core.keys import InvalidKey, check_key

from ..domain.retention import DEFAULT_RETENTION_DAYS, RetentionPolicy, run_file_prefix
from .ports import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExpiredRun:
    id: str
    project_id: str
    ended_at: datetime
    #: Files the run owns outside `runs/<id>/` (those its trigger wrote for it).
    other_files: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class DeletedRows:
    runs: int = 0
    executions: int = 0
    log_lines: int = 0


class RunArchive(Protocol):
    """The stored runs, as retention sees them (infrastructure/database/retention.py)."""

    async def retention_overrides(self) -> dict[str, int]:
        """The projects' own retentions (days), by project id."""
        ...

    async def projects_with_ended_runs(self) -> list[str]:
        """The projects having ended runs or deployments."""
        ...

    async def delete_process_log_lines(self, project_id: str, before: datetime, limit: int) -> int:
        """Delete at most `limit` lines of the project's deployments' own processes (a
        trigger's: lines of no run) written before `before` (one transaction); how many."""
        ...

    async def expired_runs(
        self, project_id: str, before: datetime, limit: int, exclude: Collection[str]
    ) -> list[ExpiredRun]:
        """Up to `limit` runs of the project that ended before `before`, oldest first."""
        ...

    async def delete_log_lines(self, run_ids: Sequence[str], limit: int) -> int:
        """Delete at most `limit` log lines of these runs (one transaction); how many."""
        ...

    async def delete_runs(self, run_ids: Sequence[str], before: datetime) -> DeletedRows:
        """One transaction: the rows of those runs that still ended before `before` (their
        executions, log lines left, callback, the run)."""
        ...


class RunFiles(Protocol):
    """What retention uses of the filestore (ryax_kit.filestore.Filestore)."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (ending with '/'); how many."""
        ...

    async def delete(self, key: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class RetentionSettings:
    #: RYAX_RUNNER_RUN_RETENTION_DAYS: projects without their own; 0 keeps runs forever.
    default_days: int = DEFAULT_RETENTION_DAYS
    interval_seconds: float = 60.0
    runs_per_tick: int = 100
    log_lines_per_batch: int = 5000
    #: Runs whose rows one transaction deletes (their files just before).
    runs_per_transaction: int = 20
    #: Between two batches of a tick (log lines, runs).
    pause_seconds: float = 0.02
    #: Before the next tick when the last one had more to do than it could.
    busy_pause_seconds: float = 1.0
    retry_failed_after_seconds: float = 3600.0


@dataclass
class RetentionStats:
    passes: int = 0
    runs_deleted: int = 0
    executions_deleted: int = 0
    log_lines_deleted: int = 0
    #: Lines of deployments' own processes (a trigger's), of no run.
    process_log_lines_deleted: int = 0
    objects_deleted: int = 0
    failures: int = 0
    last_pass_seconds: float = 0.0
    #: Runs set aside after a failure, waiting to be tried again.
    set_aside: int = 0


@dataclass
class _Tick:
    budget: int
    deleted: int = 0
    full: bool = False
    failed: list[str] = field(default_factory=list)


class RetentionCleaner:
    def __init__(
        self,
        *,
        archive: RunArchive,
        files: RunFiles,
        clock: Clock,
        settings: RetentionSettings | None = None,
        is_live: Callable[[str], bool] = lambda _run_id: False,
    ) -> None:
        self._archive = archive
        self._files = files
        self._clock = clock
        self.settings = settings or RetentionSettings()
        self._is_live = is_live
        self.stats = RetentionStats()
        #: Runs that failed to be cleaned: when to try again.
        self._failed: dict[str, datetime] = {}
        #: Where the next tick starts in the list of projects (each gets its turn).
        self._turn = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- one pass --------------------------------------------------------------------------------

    async def tick(self) -> bool:
        """Delete up to `runs_per_tick` expired runs; True if there may be more to delete."""
        started = time.perf_counter()
        now = self._clock.now()
        self._failed = {k: v for k, v in self._failed.items() if v > now}
        policy = RetentionPolicy(
            default_days=self.settings.default_days,
            overrides=await self._archive.retention_overrides(),
        )
        projects = sorted(await self._archive.projects_with_ended_runs())
        if projects:
            start = self._turn % len(projects)
            projects = projects[start:] + projects[:start]
        state = _Tick(budget=self.settings.runs_per_tick)
        for project in projects:
            cutoff = policy.cutoff(project, now)
            if cutoff is None:
                continue
            self._turn += 1
            try:
                await self._clean_project(project, cutoff, state)
            except Exception:  # the other projects go on
                self.stats.failures += 1
                log.exception(f"run retention: the runs of project {project} not cleaned now")
            if state.budget <= 0:
                state.full = True
                break
        retry_at = now + timedelta(seconds=self.settings.retry_failed_after_seconds)
        for run_id in state.failed:
            self._failed[run_id] = retry_at
        self.stats.passes += 1
        self.stats.set_aside = len(self._failed)
        self.stats.last_pass_seconds = time.perf_counter() - started
        if state.deleted or state.failed:
            log.info(
                "run retention pass",
                extra={
                    "runs_deleted": state.deleted,
                    "runs_failed": len(state.failed),
                    "seconds": round(self.stats.last_pass_seconds, 3),
                },
            )
        return state.full

    async def _clean_project(self, project: str, cutoff: datetime, state: _Tick) -> None:
        expired = await self._archive.expired_runs(
            project, cutoff, state.budget, exclude=self._failed.keys()
        )
        state.budget -= len(expired)
        size = max(1, self.settings.runs_per_transaction)
        for first in range(0, len(expired), size):
            await self._clean_runs(expired[first : first + size], cutoff, state)
            await asyncio.sleep(self.settings.pause_seconds)
        # The lines of the project's deployments' own processes: one batch a pass.
        batch = self.settings.log_lines_per_batch
        lines = await self._archive.delete_process_log_lines(project, cutoff, batch)
        self.stats.process_log_lines_deleted += lines
        if lines >= batch:
            state.full = True

    async def _clean_runs(self, expired: list[ExpiredRun], cutoff: datetime, state: _Tick) -> None:
        """A few runs: their files, then their rows in a few short transactions."""
        ready: list[str] = []
        for run in expired:
            if self._is_live(run.id):  # the engine still drives it: never
                continue
            try:
                await self._delete_files(run)
            except Exception as exc:  # noqa: BLE001 - one bad run never stops the others
                self._failed_run(run.id, "its files could not be deleted", exc, state)
                continue
            ready.append(run.id)
        if not ready:
            return
        try:
            await self._delete_rows(ready, cutoff)
        except Exception as exc:  # isolate the run that fails
            log.warning("a batch of expired runs could not be deleted; one by one", exc_info=exc)
            for run_id in ready:
                try:
                    await self._delete_rows([run_id], cutoff)
                except Exception as one:  # noqa: BLE001
                    self._failed_run(run_id, "its rows could not be deleted", one, state)
                    continue
                state.deleted += 1
            return
        state.deleted += len(ready)

    def _failed_run(self, run_id: str, what: str, exc: BaseException, state: _Tick) -> None:
        self.stats.failures += 1
        state.failed.append(run_id)
        log.error(
            f"run retention: run {run_id} kept for now, {what}",
            extra={"run_id": run_id, "reason": f"{type(exc).__name__}: {exc}"},
        )

    async def _delete_files(self, run: ExpiredRun) -> None:
        prefix = run_file_prefix(run.id)
        try:
            check_key(prefix[:-1])
        except InvalidKey:  # an id no key can hold (a broken record): no file of its own
            deleted = 0
        else:
            deleted = await self._files.delete_prefix(prefix)
        for key in sorted(run.other_files):
            await self._files.delete(key)
            deleted += 1
        self.stats.objects_deleted += deleted

    async def _delete_rows(self, run_ids: list[str], cutoff: datetime) -> None:
        batch = self.settings.log_lines_per_batch
        while True:
            lines = await self._archive.delete_log_lines(run_ids, batch)
            self.stats.log_lines_deleted += lines
            await asyncio.sleep(self.settings.pause_seconds)
            if lines < batch:
                break
        rows = await self._archive.delete_runs(run_ids, cutoff)
        self.stats.runs_deleted += rows.runs
        self.stats.executions_deleted += rows.executions
        self.stats.log_lines_deleted += rows.log_lines

    # -- in the background -----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="runner-retention")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                more = await self.tick()
            except Exception:  # the database away, say: the next tick tries again
                log.exception("run retention pass failed; trying again later")
                more = False
            pause = self.settings.busy_pause_seconds if more else self.settings.interval_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)
