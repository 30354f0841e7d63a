"""Run retention's policy and cleaner (application/retention.py) with in-memory fakes and a
clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from ryax_kit.testing import FakeClock
from ryax_runner.application.retention import (
    DeletedRows,
    ExpiredRun,
    RetentionCleaner,
    RetentionSettings,
)
from ryax_runner.domain.errors import InvalidInput
from ryax_runner.domain.retention import RetentionPolicy, check_retention_days

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ENDED = ("completed", "failed", "cancelled")


@dataclass
class StoredRun:
    id: str
    project: str
    state: str
    ended_at: datetime | None
    log_lines: int = 3
    executions: int = 2
    other_files: frozenset[str] = frozenset()


@dataclass
class FakeArchive:
    runs: dict[str, StoredRun] = field(default_factory=dict)
    overrides: dict[str, int] = field(default_factory=dict)
    #: delete_runs raises for these run ids (a row the database refuses).
    refuse: set[str] = field(default_factory=set)
    #: delete_runs raises once, whatever the runs (a crash mid-way).
    crash_next_delete: bool = False
    log_batches: list[int] = field(default_factory=list)
    run_batches: list[int] = field(default_factory=list)
    #: Lines of the deployments' own processes, by project: when each was written.
    process_lines: dict[str, list[datetime]] = field(default_factory=dict)

    def add(
        self, run_id: str, project: str, state: str, ended_days_ago: float | None, **kw: object
    ) -> None:
        ended = None if ended_days_ago is None else NOW - timedelta(days=ended_days_ago)
        self.runs[run_id] = StoredRun(run_id, project, state, ended, **kw)  # type: ignore[arg-type]

    async def retention_overrides(self) -> dict[str, int]:
        return dict(self.overrides)

    async def projects_with_ended_runs(self) -> list[str]:
        ended = {r.project for r in self.runs.values() if r.state in ENDED}
        return sorted(ended | set(self.process_lines))

    async def expired_runs(
        self, project_id: str, before: datetime, limit: int, exclude: Collection[str]
    ) -> list[ExpiredRun]:
        found = sorted(
            (
                r
                for r in self.runs.values()
                if r.project == project_id
                and r.state in ENDED
                and r.ended_at is not None
                and r.ended_at < before
                and r.id not in exclude
            ),
            key=lambda r: r.ended_at or NOW,
        )[:limit]
        return [
            ExpiredRun(
                id=r.id, project_id=r.project, ended_at=r.ended_at or NOW, other_files=r.other_files
            )
            for r in found
        ]

    async def delete_process_log_lines(self, project_id: str, before: datetime, limit: int) -> int:
        lines = self.process_lines.get(project_id, [])
        old = [at for at in lines if at < before][:limit]
        for at in old:
            lines.remove(at)
        return len(old)

    async def delete_log_lines(self, run_ids: Sequence[str], limit: int) -> int:
        deleted = 0
        for rid in run_ids:
            run = self.runs.get(rid)
            if run is None:
                continue
            take = min(run.log_lines, limit - deleted)
            run.log_lines -= take
            deleted += take
        self.log_batches.append(deleted)
        return deleted

    async def delete_runs(self, run_ids: Sequence[str], before: datetime) -> DeletedRows:
        if self.crash_next_delete:
            self.crash_next_delete = False
            raise asyncio.CancelledError  # the process stopped here
        if self.refuse & set(run_ids):
            raise ValueError("refused")
        self.run_batches.append(len(run_ids))
        rows = DeletedRows()
        for rid in run_ids:
            run = self.runs.get(rid)
            if run and run.state in ENDED and run.ended_at and run.ended_at < before:
                del self.runs[rid]
                rows = DeletedRows(
                    runs=rows.runs + 1,
                    executions=rows.executions + run.executions,
                    log_lines=rows.log_lines + run.log_lines,
                )
        return rows


@dataclass
class FakeFiles:
    objects: set[str] = field(default_factory=set)
    broken_prefixes: set[str] = field(default_factory=set)

    async def delete_prefix(self, prefix: str) -> int:
        if prefix in self.broken_prefixes:
            raise OSError("filestore refused")
        gone = {k for k in self.objects if k.startswith(prefix)}
        self.objects -= gone
        return len(gone)

    async def delete(self, key: str) -> None:
        self.objects.discard(key)


def cleaner(
    archive: FakeArchive,
    files: FakeFiles | None = None,
    clock: FakeClock | None = None,
    live: set[str] | None = None,
    **settings: object,
) -> RetentionCleaner:
    settings.setdefault("pause_seconds", 0)
    return RetentionCleaner(
        archive=archive,
        files=files or FakeFiles(),
        clock=clock or FakeClock(NOW),
        settings=RetentionSettings(**settings),  # type: ignore[arg-type]
        is_live=lambda rid: rid in (live or set()),
    )


# -- the policy ------------------------------------------------------------------------------------


def test_policy_default_override_and_forever() -> None:
    policy = RetentionPolicy(default_days=30, overrides={"keep": 0, "short": 7})
    assert policy.cutoff("any", NOW) == NOW - timedelta(days=30)
    assert policy.cutoff("short", NOW) == NOW - timedelta(days=7)
    assert policy.cutoff("keep", NOW) is None
    assert RetentionPolicy(default_days=0).cutoff("any", NOW) is None


@pytest.mark.parametrize("bad", [-1, 36_501, 1.5, "30", True, None])
def test_retention_days_are_checked(bad: object) -> None:
    with pytest.raises(InvalidInput, match="run_retention_days"):
        check_retention_days(bad)


# -- the cleaner -----------------------------------------------------------------------------------


async def test_old_runs_go_with_logs_and_files_new_and_running_ones_stay() -> None:
    archive = FakeArchive()
    archive.add("old", "p", "completed", 31, other_files=frozenset({"triggers/d/s/e/o/f"}))
    archive.add("old-failed", "p", "failed", 45)
    archive.add("new", "p", "completed", 29)
    archive.add("running", "p", "running", None)
    archive.add("pending", "p", "pending", None)
    files = FakeFiles(
        {
            "runs/old/e1/out/a.txt",
            "runs/old/e2/x",
            "triggers/d/s/e/o/f",
            "runs/new/e/out/b",
            "runs/oldish/x",
        }
    )
    c = cleaner(archive, files)
    assert await c.tick() is False
    assert set(archive.runs) == {"new", "running", "pending"}
    assert files.objects == {"runs/new/e/out/b", "runs/oldish/x"}  # a prefix is a whole segment
    assert c.stats.runs_deleted == 2
    assert c.stats.objects_deleted == 3
    assert c.stats.log_lines_deleted == 6
    assert c.stats.executions_deleted == 4


async def test_a_running_run_is_never_deleted_however_old() -> None:
    archive = FakeArchive()
    archive.add("running", "p", "running", None)
    clock = FakeClock(NOW + timedelta(days=10_000))
    await cleaner(archive, clock=clock).tick()
    assert "running" in archive.runs


async def test_a_run_the_engine_holds_is_kept() -> None:
    archive = FakeArchive()
    archive.add("ending", "p", "completed", 40)
    archive.add("gone", "p", "completed", 40)
    await cleaner(archive, live={"ending"}).tick()
    assert set(archive.runs) == {"ending"}


async def test_project_retention_overrides_the_default() -> None:
    archive = FakeArchive(overrides={"forever": 0, "week": 7})
    archive.add("f", "forever", "completed", 400)
    archive.add("w-old", "week", "completed", 8)
    archive.add("w-new", "week", "completed", 6)
    archive.add("d-old", "other", "completed", 31)
    archive.add("d-new", "other", "completed", 8)
    await cleaner(archive, default_days=30).tick()
    assert set(archive.runs) == {"f", "w-new", "d-new"}


async def test_default_zero_keeps_everything() -> None:
    archive = FakeArchive()
    archive.add("ancient", "p", "completed", 5000)
    await cleaner(archive, default_days=0).tick()
    assert set(archive.runs) == {"ancient"}


async def test_work_per_tick_is_bounded_and_the_rest_follows() -> None:
    archive = FakeArchive()
    for i in range(250):
        archive.add(f"r{i:03}", "p", "completed", 40 + i / 1000, log_lines=30)
    c = cleaner(archive, runs_per_tick=100, log_lines_per_batch=1000, runs_per_transaction=20)
    assert await c.tick() is True
    assert len(archive.runs) == 150
    assert archive.run_batches == [20] * 5  # rows deleted a few runs per transaction
    # the oldest first
    assert "r249" not in archive.runs and "r000" in archive.runs
    # log lines in bounded batches
    assert max(archive.log_batches) <= 1000
    assert await c.tick() is True
    assert await c.tick() is False
    assert archive.runs == {}
    assert c.stats.log_lines_deleted == 250 * 30


async def test_every_project_gets_its_turn() -> None:
    archive = FakeArchive()
    for p in ("a", "b", "c"):
        for i in range(5):
            archive.add(f"{p}{i}", p, "completed", 40)
    c = cleaner(archive, runs_per_tick=5)
    await c.tick()
    await c.tick()
    await c.tick()
    assert archive.runs == {}


async def test_a_run_whose_files_are_refused_is_set_aside_and_the_others_go_on() -> None:
    archive = FakeArchive()
    archive.add("bad", "p", "completed", 50)
    archive.add("good", "p", "completed", 40)
    files = FakeFiles({"runs/bad/e/x", "runs/good/e/x"}, broken_prefixes={"runs/bad/"})
    clock = FakeClock(NOW)
    c = cleaner(archive, files, clock, retry_failed_after_seconds=600)
    await c.tick()
    assert set(archive.runs) == {"bad"}
    assert files.objects == {"runs/bad/e/x"}
    assert c.stats.failures == 1 and c.stats.set_aside == 1
    # set aside: not tried again at once
    files.broken_prefixes.clear()
    await c.tick()
    assert set(archive.runs) == {"bad"}
    clock.current += timedelta(seconds=601)
    await c.tick()
    assert archive.runs == {} and files.objects == set()
    assert c.stats.set_aside == 0


async def test_a_row_the_database_refuses_does_not_stop_the_batch() -> None:
    archive = FakeArchive(refuse={"bad"})
    for rid in ("a", "bad", "b"):
        archive.add(rid, "p", "completed", 40)
    c = cleaner(archive)
    await c.tick()
    assert set(archive.runs) == {"bad"}
    assert c.stats.failures == 1 and c.stats.runs_deleted == 2


async def test_a_crash_mid_way_is_finished_by_the_next_pass() -> None:
    archive = FakeArchive(crash_next_delete=True)
    archive.add("r", "p", "completed", 40, log_lines=12)
    files = FakeFiles({"runs/r/e/x"})
    c = cleaner(archive, files, log_lines_per_batch=5, retry_failed_after_seconds=0)
    with pytest.raises(asyncio.CancelledError):
        await c.tick()
    # files and log lines gone, the run row kept: found again next time
    assert files.objects == set() and "r" in archive.runs and archive.runs["r"].log_lines == 0
    await c.tick()
    assert archive.runs == {}


async def test_the_background_loop_survives_a_failing_pass() -> None:
    class Flaky(FakeArchive):
        calls = 0

        async def retention_overrides(self) -> dict[str, int]:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ConnectionError("database down")
            return {}

    archive = Flaky()
    archive.add("r", "p", "completed", 40)
    c = cleaner(archive, interval_seconds=0.01)
    c.start()
    for _ in range(200):
        if not archive.runs:
            break
        await asyncio.sleep(0.01)
    await c.stop()
    assert archive.runs == {}


async def test_old_lines_of_the_deployments_processes_go_in_bounded_batches() -> None:
    archive = FakeArchive(overrides={"forever": 0})
    archive.process_lines = {
        "p": [NOW - timedelta(days=40)] * 7 + [NOW - timedelta(days=2)],
        "forever": [NOW - timedelta(days=400)],
    }
    c = cleaner(archive, log_lines_per_batch=5)
    assert await c.tick() is True  # a full batch: more may follow
    assert await c.tick() is False
    assert archive.process_lines == {
        "p": [NOW - timedelta(days=2)],
        "forever": [NOW - timedelta(days=400)],
    }
    assert c.stats.process_log_lines_deleted == 7
