"""The `runs100k` benchmark (Ryax only): 100,000 stored runs.

1. one-step runs (`bench-chain-1`, synchronous endpoint calls) one after the other: the latency
   before anything else happens;
2. 100,000 realistic runs written straight into the runner's database (a trigger and 2 steps
   each: 3 executions with inputs, outputs and a file output, 10 log lines; 20 workflows;
   created over the last 20 days), COPY in transactions of 1,000 runs, as a busy history would
   have left them, while one-step runs go on: their latency during the ingest; then one-step
   runs again, one after the other, with the 100,000 runs stored;
3. through the gateway and the runner's HTTP API: the run list's first page, the first page
   filtered by workflow, the pages after it (cursor), and run details: p50 and p99 of each;
4. retention: the project's retention set to 10 days (`PUT .../retention`), so the runner's
   background cleaner deletes about half of them, with their log lines and files; one-step runs
   go on meanwhile: from the first deletion seen (the cleaner looks every 60 s) for
   RETENTION_WATCH_SECONDS, their latency during deletion, and the number of runs deleted in that
   time gives the rate; the retention is then given back;
5. the rows of the ingested runs left are deleted (they are marked by their deployment id).

The runner's database: RYAX_BENCH_RUNNER_DATABASE_URL, else RYAX_DATABASE_URL of the runner's
environment file that `make demo` writes (.dev/run/env/runner.env).
"""

from __future__ import annotations

import asyncio
import random
import shlex
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUNNER_ENV = REPO / ".dev" / "run" / "env" / "runner.env"
#: Marks the ingested runs (their deployment id), to delete them at the end.
HISTORY_DEPLOYMENT = "bench-history"
TOTAL_RUNS = 100_000
BATCH = 1_000
WORKFLOWS = 20
SPREAD_DAYS = 20
RETENTION_DAYS = 10
RETENTION_WATCH_SECONDS = 30.0
#: The first deletion must come within this (the cleaner looks every 60 s,
#: RYAX_RUNNER_RETENTION_INTERVAL).
RETENTION_START_SECONDS = 90.0
SAMPLES = 200
BASELINE_RUNS = 100

sys.path.insert(0, str(REPO / "runner" / "tests"))


def runner_database_url() -> str:
    import os

    url = os.environ.get("RYAX_BENCH_RUNNER_DATABASE_URL", "")
    if url:
        return url
    if RUNNER_ENV.is_file():
        for line in RUNNER_ENV.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "RYAX_DATABASE_URL":
                return shlex.split(value)[0]
    raise harness.BenchFailure(
        f"runs100k: the runner's database is unknown: set RYAX_BENCH_RUNNER_DATABASE_URL, or "
        f"start the platform with `make demo` (it writes {RUNNER_ENV})"
    )


def history_workflow(index: int) -> str:
    return f"bench-history-wf-{index:02}"


async def ingest(url: str, project_id: str, total: int, progress: Callable[[int], None]) -> float:
    """COPY `total` runs in; seconds it took."""
    from runner_testkit.records import copy_runs, make_run

    from ryax_kit.database import create_engine

    engine = create_engine(url)
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        for first in range(0, total, BATCH):
            batch = []
            for i in range(first, min(first + BATCH, total)):
                age = timedelta(seconds=SPREAD_DAYS * 86400 * (1 - i / total) + 600)
                batch.append(
                    make_run(
                        project_id=project_id,
                        created_at=now - age,
                        state="failed" if i % 17 == 0 else "completed",
                        deployment_id=HISTORY_DEPLOYMENT,
                        workflow_id=history_workflow(i % WORKFLOWS),
                        workflow_name=history_workflow(i % WORKFLOWS),
                    )
                )
            async with engine.begin() as conn:
                raw = (await conn.get_raw_connection()).driver_connection
                await copy_runs(raw, batch)
            progress(first + len(batch))
        # A history made over 20 days would have been vacuumed meanwhile (autovacuum): do it
        # now, so that the figures after it do not measure a vacuum of 1M fresh rows.
        import sqlalchemy as sa

        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("runs", "executions", "log_lines"):
                await conn.execute(sa.text(f"VACUUM (ANALYZE) {table}"))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def history_ids(url: str, newer_than_days: float, count: int) -> list[str]:
    import sqlalchemy as sa

    from ryax_kit.database import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT id FROM runs WHERE deployment_id = :d AND created_at > :t "
                    "ORDER BY random() LIMIT :n"
                ),
                {
                    "d": HISTORY_DEPLOYMENT,
                    "t": datetime.now(UTC) - timedelta(days=newer_than_days),
                    "n": count,
                },
            )
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def history_count(url: str) -> int:
    import sqlalchemy as sa

    from ryax_kit.database import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                sa.text("SELECT count(*) FROM runs WHERE deployment_id = :d"),
                {"d": HISTORY_DEPLOYMENT},
            )
            return int(found or 0)
    finally:
        await engine.dispose()


async def delete_history(url: str) -> int:
    """Delete what is left of the ingested runs, 5,000 at a time."""
    import sqlalchemy as sa

    from ryax_kit.database import create_engine

    engine = create_engine(url)
    deleted = 0
    try:
        while True:
            async with engine.begin() as conn:
                ids = [
                    r[0]
                    for r in await conn.execute(
                        sa.text("SELECT id FROM runs WHERE deployment_id = :d LIMIT 5000"),
                        {"d": HISTORY_DEPLOYMENT},
                    )
                ]
                if not ids:
                    return deleted
                for table in ("log_lines", "executions"):
                    await conn.execute(
                        sa.text(f"DELETE FROM {table} WHERE run_id = ANY(:ids)"), {"ids": ids}
                    )
                await conn.execute(sa.text("DELETE FROM runs WHERE id = ANY(:ids)"), {"ids": ids})
                deleted += len(ids)
    finally:
        await engine.dispose()


def timed_gets(http: Any, paths: list[str]) -> list[float]:
    samples = []
    for path in paths:
        started = time.perf_counter()
        response = http.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise harness.BenchFailure(
                f"GET {path} answered {response.status_code}: {response.text[:300]}"
            )
        samples.append(elapsed)
    return samples


def runs_while(platform: Any, name: str, busy: Callable[[], bool]) -> list[float]:
    """One-step runs one after the other while `busy()`: their latencies (s)."""
    samples = []
    with platform.run_client() as http:
        while busy():
            started = time.perf_counter()
            platform.trigger(http, name)
            samples.append(time.perf_counter() - started)
    return samples


def runs_while_timed(
    platform: Any, name: str, busy: Callable[[], bool]
) -> list[tuple[float, float]]:
    """As `runs_while`, each latency with the time it started at (s since the call)."""
    samples = []
    origin = time.perf_counter()
    with platform.run_client() as http:
        while busy():
            started = time.perf_counter()
            platform.trigger(http, name)
            samples.append((started - origin, time.perf_counter() - started))
    return samples


def bench_runs100k(platform: Any, args: Any, ensure_one_step: Callable[[], str]) -> dict[str, Any]:
    url = runner_database_url()
    name = ensure_one_step()
    project = next(p for p in platform.client.projects.list() if p.name == platform.project)
    total = int(getattr(args, "history_runs", TOTAL_RUNS) or TOTAL_RUNS)
    result: dict[str, Any] = {"runs": total, "workflows": WORKFLOWS, "spread_days": SPREAD_DAYS}
    # A previous bench stopped half-way left its rows: start clean.
    left = asyncio.run(delete_history(url))
    if left:
        harness.say("ryax", f"runs100k: {left} runs of an earlier bench deleted first")

    try:
        harness.say("ryax", f"runs100k: {BASELINE_RUNS} one-step runs before")
        with platform.run_client() as http:
            result["before_s"] = harness.time_runs(
                lambda: platform.trigger(http, name), BASELINE_RUNS, args.warmup
            )

        harness.say("ryax", f"runs100k: ingesting {total} runs while one-step runs go on")
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def progress(n: int) -> None:
            if n % 20_000 == 0:
                harness.say("ryax", f"runs100k: {n} runs ingested")

        def ingest_thread() -> None:
            try:
                outcome["seconds"] = asyncio.run(ingest(url, project.id, total, progress))
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=ingest_thread, name="runs100k-ingest")
        thread.start()
        result["during_ingest_s"] = runs_while(platform, name, lambda: not done.is_set())
        thread.join()
        if "error" in outcome:
            raise harness.BenchFailure(f"runs100k: the ingest failed: {outcome['error']!r}")
        result["ingest_s"] = outcome["seconds"]

        harness.say("ryax", f"runs100k: {BASELINE_RUNS} one-step runs with them stored")
        with platform.run_client() as http:
            result["after_s"] = harness.time_runs(
                lambda: platform.trigger(http, name), BASELINE_RUNS, 0
            )

        base = f"/runner/v1/projects/{urllib.parse.quote(platform.project)}/runs"
        ids = asyncio.run(history_ids(url, RETENTION_DAYS - 1, SAMPLES))
        rng = random.Random(7)
        with platform.http() as http:
            harness.say("ryax", "runs100k: run list and run detail through the runner's HTTP API")
            timed_gets(http, [base] * 5)  # warm-up
            result["list_first_page_s"] = timed_gets(http, [base] * SAMPLES)
            by_workflow = [
                f"{base}?workflow_id={history_workflow(rng.randrange(WORKFLOWS))}"
                for _ in range(SAMPLES)
            ]
            result["list_by_workflow_s"] = timed_gets(http, by_workflow)
            paged: list[float] = []
            for index in range(SAMPLES // 20):
                query = f"workflow_id={history_workflow(index)}&" if index % 2 else ""
                cursor = None
                for _ in range(21):  # page 1, then pages 2 to 21 (cursor)
                    path = f"{base}?{query}limit=50" + (f"&cursor={cursor}" if cursor else "")
                    started = time.perf_counter()
                    response = http.get(path)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise harness.BenchFailure(f"GET {path} answered {response.status_code}")
                    if cursor is not None:  # a next page (the first pages are above)
                        paged.append(elapsed)
                    cursor = response.json()["next_cursor"]
                    if cursor is None:
                        break
            result["list_paged_s"] = paged
            result["detail_s"] = timed_gets(http, [f"{base}/{rid}" for rid in ids])

            harness.say(
                "ryax",
                f"runs100k: retention {RETENTION_DAYS} days: the runner's cleaner deletes "
                f"the older half while one-step runs go on "
                f"({RETENTION_WATCH_SECONDS:.0f} s once it began)",
            )
            retention = f"/runner/v1/projects/{urllib.parse.quote(platform.project)}/retention"
            counts: list[tuple[float, int]] = [(0.0, asyncio.run(history_count(url)))]
            put = http.put(retention, json={"run_retention_days": RETENTION_DAYS})
            if put.status_code != 200:
                raise harness.BenchFailure(
                    f"PUT {retention} answered {put.status_code}: {put.text}"
                )
            started = time.perf_counter()
            watching = threading.Event()

            def count_thread() -> None:  # the runs left, every second
                while not watching.wait(1.0):
                    counts.append((time.perf_counter() - started, asyncio.run(history_count(url))))

            def watch_on(now: float) -> bool:
                first = next((t for t, n in list(counts) if n < counts[0][1]), None)
                if first is None:
                    return now < RETENTION_START_SECONDS
                return now < first + RETENTION_WATCH_SECONDS

            counter = threading.Thread(target=count_thread, name="runs100k-count")
            counter.start()
            try:
                # The runs of during_retention_s are those started once deletion had begun.
                timed = runs_while_timed(
                    platform, name, lambda: watch_on(time.perf_counter() - started)
                )
            finally:
                watching.set()
                counter.join()
                http.put(retention, json={"run_retention_days": None})
            first_drop = next((t for t, n in counts if n < counts[0][1]), None)
            deleted = counts[0][1] - counts[-1][1]
            result["during_retention_s"] = [
                latency
                for at, latency in timed
                if first_drop is not None and at >= first_drop - 1.0
            ]
            deleting_for = counts[-1][0] - (first_drop - 1.0) if first_drop is not None else 0.0
            result["retention"] = {
                "deleted": deleted,
                "watched_s": counts[-1][0],
                "deleting_s": deleting_for,
                "runs_per_second": deleted / deleting_for if deleting_for > 0 else 0.0,
            }
    finally:
        harness.say("ryax", "runs100k: deleting the ingested runs left")
        result["cleanup_deleted"] = asyncio.run(delete_history(url))
    return result
