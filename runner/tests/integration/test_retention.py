"""Run retention against real PostgreSQL and SeaweedFS: a run older than its project's retention
disappears with its executions, log lines and files; a newer one, a running one, another
project's kept forever stay; a broken record does not stop the cleaner. And the project's
retention through the runner's HTTP API, the cleaner wired in the running runner."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from runner_testkit.harness import start_runner
from runner_testkit.records import StoredRun, insert_runs, make_run

from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_kit.filestore import FilestoreSettings, S3Filestore
from ryax_kit.settings import Env
from ryax_kit.testing import FakeClock
from ryax_runner.application.retention import RetentionCleaner, RetentionSettings
from ryax_runner.infrastructure.database import MIGRATIONS
from ryax_runner.infrastructure.database.retention import SqlRunArchive
from ryax_runner.infrastructure.database.tables import (
    deployments,
    executions,
    log_lines,
    run_callbacks,
    runs,
)

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer token-alice"}
NOW = datetime.now(UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


async def counts(engine: Any, run_id: str) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        return (
            await conn.scalar(sa.select(sa.func.count()).where(runs.c.id == run_id)),
            await conn.scalar(sa.select(sa.func.count()).where(executions.c.run_id == run_id)),
            await conn.scalar(sa.select(sa.func.count()).where(log_lines.c.run_id == run_id)),
        )


def object_names(store: S3Filestore) -> set[str]:
    client = store._client
    return {o.object_name or "" for o in client.list_objects(store.bucket, recursive=True)}


async def put_files(store: S3Filestore, stored: list[StoredRun]) -> None:
    for s in stored:
        for key in s.files:
            await store.write_bytes(key, b"some bytes of " + key.encode())


async def test_old_runs_go_with_their_logs_and_files_the_others_stay(
    fresh_database: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    engine = create_engine(fresh_database)
    store = FilestoreSettings.read(Env(s3_env), default_dir=tmp_path).filestore()
    assert isinstance(store, S3Filestore)
    await store.ensure_ready()
    archive = SqlRunArchive(engine)
    await archive.set_project_retention("forever", 0, "tests")
    static = "studio/workflows/wf-1/static.bin"  # read by the old run, not its own
    old = make_run(
        project_id="alpha",
        created_at=ago(40),
        trigger_file=True,
        read_only_file=static,
        log_lines_per_step=25,
    )
    old_failed = make_run(project_id="alpha", created_at=ago(31), state="failed")
    new = make_run(project_id="alpha", created_at=ago(29))
    running = make_run(project_id="alpha", created_at=ago(400), state="running")
    pending = make_run(project_id="alpha", created_at=ago(400), state="pending", steps=0)
    kept_forever = make_run(project_id="forever", created_at=ago(900))
    # A broken record: an id no key can hold, outputs no version writes, a callback row.
    broken = make_run(project_id="alpha", created_at=ago(60), run_id="broken id/..")
    broken.executions[0]["outputs"] = {
        "a": {"$file": "not a file ref"},
        "b": {"$file": {"key": "triggers/../../etc/passwd"}},
        "c": [1, {"$file": {"key": 12}}],
    }
    everything = [old, old_failed, new, running, pending, kept_forever, broken]
    async with engine.begin() as conn:
        await insert_runs(conn, everything)
        await conn.execute(
            sa.insert(run_callbacks),
            {
                "run_id": broken.id,
                "project": "alpha",
                "url": "https://example.org/cb",
                "state": "abandoned",
                "attempts": 8,
                "created_at": ago(60),
                "next_attempt_at": ago(60),
                "last_error": "refused",
                "delivered_at": None,
            },
        )
    await put_files(store, [s for s in everything if s is not broken])
    # A second object under one of the old run's own outputs (a fan-out list, say).
    await store.write_bytes(f"runs/{old.id}/x/list/0/part.bin", b"x")
    before = object_names(store)
    assert static in before and any(k.startswith("triggers/") for k in before)

    cleaner = RetentionCleaner(
        archive=archive,
        files=store,
        clock=FakeClock(NOW),
        settings=RetentionSettings(default_days=30, log_lines_per_batch=7, pause_seconds=0),
    )
    assert await cleaner.tick() is False

    for gone in (old, old_failed, broken):
        assert await counts(engine, gone.id) == (0, 0, 0), gone.id
    for kept in (new, running, pending, kept_forever):
        assert await counts(engine, kept.id) == (
            1,
            len(kept.executions),
            len(kept.log_lines),
        ), kept.id
    after = object_names(store)
    assert not any(k.startswith((f"runs/{old.id}/", f"runs/{old_failed.id}/")) for k in after)
    assert not (set(old.files) - {static}) & after
    assert static in after  # read by the run, not its own
    for kept in (new, running, kept_forever):
        assert set(kept.files) <= after
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(run_callbacks)) == 0
    stats = cleaner.stats
    assert stats.runs_deleted == 3
    assert stats.objects_deleted == len(before) - len(after)
    assert stats.log_lines_deleted == len(old.log_lines) + len(old_failed.log_lines) + len(
        broken.log_lines
    )
    assert stats.failures == 0

    # Nothing more to do: the next pass deletes nothing.
    assert await cleaner.tick() is False
    assert cleaner.stats.runs_deleted == 3
    await engine.dispose()


def deployment_row(deployment_id: str, project_id: str) -> dict[str, Any]:
    return {
        "id": deployment_id,
        "project_id": project_id,
        "workflow_id": "wf-1",
        "workflow_name": "demo",
        "snapshot_id": "snap-1",
        "requested_by": "alice",
        "definition": {},
        "state": "deployed",
        "reason": "",
        "state_seq": 1,
        "steps": [],
        "created_at": ago(100),
        "updated_at": ago(100),
    }


def process_line(deployment_id: str, seq: int, at: datetime) -> dict[str, Any]:
    return {
        "run_id": "",
        "execution_id": "",
        "deployment_id": deployment_id,
        "step_id": "trigger",
        "seq": seq,
        "stream": "stderr",
        "line": f"trigger process line {seq}",
        "at": at,
    }


async def test_old_lines_of_the_deployments_own_processes_go(
    fresh_database: str, tmp_path: Any
) -> None:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    engine = create_engine(fresh_database)
    await SqlRunArchive(engine).set_project_retention("forever", 0, "tests")
    run = make_run(project_id="alpha", created_at=ago(5), deployment_id="d-alpha")
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(deployments),
            [deployment_row("d-alpha", "alpha"), deployment_row("d-forever", "forever")],
        )
        lines = [process_line("d-alpha", i, ago(40 - i / 100)) for i in range(12)]
        lines += [process_line("d-alpha", 100, ago(3)), process_line("d-forever", 0, ago(400))]
        await conn.execute(sa.insert(log_lines), lines)
        await insert_runs(conn, [run])
    cleaner = RetentionCleaner(
        archive=SqlRunArchive(engine),
        files=FilestoreSettings.read(Env({}), default_dir=tmp_path).filestore(),
        clock=FakeClock(NOW),
        settings=RetentionSettings(log_lines_per_batch=5, pause_seconds=0),
    )
    assert await cleaner.tick() is True  # a full batch: more to do
    assert await cleaner.tick() is True
    assert await cleaner.tick() is False
    async with engine.connect() as conn:
        left = (
            await conn.execute(
                sa.select(log_lines.c.deployment_id, log_lines.c.seq)
                .where(log_lines.c.run_id == "")
                .order_by(log_lines.c.deployment_id, log_lines.c.seq)
            )
        ).all()
        run_lines = await conn.scalar(
            sa.select(sa.func.count()).where(log_lines.c.run_id == run.id)
        )
    assert [tuple(r) for r in left] == [("d-alpha", 100), ("d-forever", 0)]
    assert run_lines == len(run.log_lines)  # a run's lines go with their run only
    assert cleaner.stats.process_log_lines_deleted == 12
    await engine.dispose()


async def test_a_pass_is_bounded_and_the_next_one_carries_on(
    fresh_database: str, s3_env: dict[str, str], tmp_path: Any
) -> None:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    engine = create_engine(fresh_database)
    store = FilestoreSettings.read(Env(s3_env), default_dir=tmp_path).filestore()
    await store.ensure_ready()
    stored = [make_run(project_id=f"p{i % 3}", created_at=ago(50 + i)) for i in range(25)]
    async with engine.begin() as conn:
        await insert_runs(conn, stored)
    await put_files(store, stored)  # type: ignore[arg-type]
    cleaner = RetentionCleaner(
        archive=SqlRunArchive(engine),
        files=store,
        clock=FakeClock(NOW),
        settings=RetentionSettings(runs_per_tick=10, pause_seconds=0),
    )
    assert await cleaner.tick() is True
    assert cleaner.stats.runs_deleted == 10
    assert await cleaner.tick() is True
    assert await cleaner.tick() is False
    async with engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(runs)) == 0
        assert await conn.scalar(sa.select(sa.func.count()).select_from(log_lines)) == 0
    assert object_names(store) == set()  # type: ignore[arg-type]
    await engine.dispose()


async def test_project_retention_api_and_the_runner_cleaner(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Any
) -> None:
    """The runner's own cleaner (a pass every 0.2 s here), driven by the project's retention
    set through the API."""
    runner = await start_runner(
        db_url, amqp_url, tmp_path / "filestore", authz_url, retention_interval_seconds=0.2
    )
    base = f"{runner.url}/runner/v1/projects/alpha/retention"
    # A run of 8 days ago and one of 6 days ago, recorded in the runner's database, with their
    # files in its filestore: kept by the default (30 days).
    engine = create_engine(db_url)
    old = make_run(project_id="proj-a", created_at=ago(8))
    new = make_run(project_id="proj-a", created_at=ago(6))
    async with engine.begin() as conn:
        await insert_runs(conn, [old, new])
    files = runner.container.filestore()
    for key in old.files + new.files:
        await files.write_bytes(key, b"data")
    try:
        async with aiohttp.ClientSession(headers=AUTH) as s:
            async with s.get(base) as r:
                assert r.status == 200
                assert await r.json() == {
                    "run_retention_days": 30,
                    "source": "default",
                    "default_days": 30,
                }
            for bad in (
                {"run_retention_days": -1},
                {"run_retention_days": 36_501},
                {"run_retention_days": "7"},
                {"run_retention_days": 1.5},
                {},
                {"days": 3},
            ):
                async with s.put(base, json=bad) as r:
                    assert r.status == 400, bad
                    assert "run_retention_days" in (await r.json())["detail"] or "days" in bad
            async with s.get(base, headers={"Authorization": "Bearer token-bob"}) as r:
                assert r.status == 403  # bob is not a member of alpha
            async with s.put(
                base, json={"run_retention_days": 1}, headers={"Authorization": "Bearer token-bob"}
            ) as r:
                assert r.status == 403
            await asyncio.sleep(0.5)  # a few passes: the default keeps both
            for run in (old, new):
                async with s.get(f"{runner.url}/runner/v1/projects/alpha/runs/{run.id}") as r:
                    assert r.status == 200

            async with s.put(base, json={"run_retention_days": 7}) as r:
                assert r.status == 200
                assert (await r.json())["source"] == "project"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:  # the background cleaner's next pass
                async with s.get(f"{runner.url}/runner/v1/projects/alpha/runs/{old.id}") as r:
                    if r.status == 404:
                        break
                assert loop.time() < deadline, "the old run was not deleted by the cleaner"
                await asyncio.sleep(0.1)
            async with s.get(f"{runner.url}/runner/v1/projects/alpha/runs/{new.id}") as r:
                assert r.status == 200
            async with s.put(base, json={"run_retention_days": None}) as r:
                assert (await r.json())["source"] == "default"
            async with s.get(f"{runner.url}/metrics") as r:
                text = await r.text()
        assert not await files.exists(old.files[0])
        assert await files.exists(new.files[0])
        assert "ryax_runner_retention_runs_deleted_total 1.0" in text
        assert "ryax_runner_retention_failures_total 0.0" in text
    finally:
        await engine.dispose()
        await runner.stop()
