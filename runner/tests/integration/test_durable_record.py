"""The recorder against the real PostgreSQL: `when_durable` calls back only once what was marked
before is committed, in order; lost attempts and the link between attempts survive a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from runner_testkit.workflows import endpoint_and_one_step
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_runner.domain.deployment import Deployment, DeploymentId
from ryax_runner.domain.run import ExecutionState, Run, RunId, RunState
from ryax_runner.infrastructure.database import MIGRATIONS
from ryax_runner.infrastructure.database.recorder import SqlRecorder
from ryax_runner.infrastructure.database.serialization import SecretBox
from ryax_runner.infrastructure.database.store import SqlStateStore
from ryax_runner.infrastructure.database.tables import executions, runs
from ryax_runner.infrastructure.messaging.mappers import state_changed_to_proto

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 1, tzinfo=UTC)
RUN_ID = RunId("6f1c1a3e-0000-4000-8000-000000000001")


definition = endpoint_and_one_step


async def migrated(db_url: str) -> AsyncEngine:
    """An engine on the runner's database, migrated."""
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    return create_engine(db_url)


def recorder_on(engine: AsyncEngine, **options: Any) -> SqlRecorder:
    return SqlRecorder(engine, SecretBox("k" * 32), state_changed_to_proto, **options)


@pytest.fixture
async def parts(db_url: str) -> AsyncIterator[tuple[SqlRecorder, SqlStateStore, AsyncEngine]]:
    engine = await migrated(db_url)
    box = SecretBox("k" * 32)
    recorder = SqlRecorder(engine, box, state_changed_to_proto)
    recorder.start()
    yield recorder, SqlStateStore(engine, box), engine
    await recorder.stop()
    await engine.dispose()


def started_run(run_id: RunId = RUN_ID) -> tuple[Deployment, Run]:
    d = Deployment.request(
        id=DeploymentId("d1"),
        project_id="p",
        workflow_id="w",
        workflow_name="wf",
        snapshot_id="s",
        definition=definition(),
        requested_by="alice",
        now=NOW,
    )
    run, _ = Run.start(
        id=run_id,
        project_id="p",
        deployment_id=d.id,
        workflow_id="w",
        workflow_name="wf",
        definition=d.definition,
        trigger_outputs={"x": "hi"},
        origin="http",
        now=NOW,
    )
    return d, run


async def test_when_durable_calls_back_after_the_commit_in_order(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, _, engine = parts
    calls: list[str] = []
    recorder.when_durable(lambda: calls.append("nothing pending"))
    assert calls == ["nothing pending"]  # at once

    d, run = started_run()
    recorder.deployment(d)
    recorder.run(run)
    committed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    recorder.when_durable(lambda: calls.append("first"))
    recorder.when_durable(lambda: committed.set_result(recorder.commits))
    recorder.when_durable(lambda: calls.append("second"))
    assert calls == ["nothing pending"]  # marked, not committed yet: held
    await committed
    assert calls == ["nothing pending", "first", "second"]
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(runs.c.id).where(runs.c.id == run.id))).all()
    assert found == [(run.id,)]  # what was marked before the callback was committed


async def test_lost_attempts_and_their_successors_survive_a_restart(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, store, engine = parts
    d, run = started_run()
    [first] = [e for e in run.executions.values() if e.step_id == "a"]
    run.mark_dispatched(first, site_id="site-1", order_seq=3, now=NOW)
    [second] = run.lose(
        first.id, "worker lost: site s1 no longer knows the execution", now=NOW, infra_budget=3
    ).ready
    recorder.deployment(d)
    recorder.run(run)
    await recorder.durable()

    loaded = await store.load()
    [(restored, recorded)] = loaded.runs
    by_id = {e.id: e for e in recorded}
    lost = by_id[first.id]
    assert lost.state is ExecutionState.LOST and "no longer knows" in lost.error
    assert (lost.infra_retries, lost.retry_of) == (0, None)
    again = by_id[second.id]
    assert (again.attempt, again.infra_retries, again.retry_of) == (2, 1, first.id)
    assert again.state is ExecutionState.WAITING

    update = Run.restore(restored, recorded, NOW)
    assert update.ready == [] and restored.state is RunState.RUNNING
    assert restored.executions[second.id].retry_of == first.id
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(executions.c.attempt, executions.c.state, executions.c.infra_retries)
                .where(executions.c.step_id == "a")
                .order_by(executions.c.attempt)
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, "lost", 0), (2, "waiting", 1)]


class Statements:
    """The statements the engine sends, for the commit mode: SQLAlchemy's cursor events, and
    the driver's query log for what the recorder sends on the driver's connection itself."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seen: list[str] = []
        sa.event.listen(engine.sync_engine, "before_cursor_execute", self._record)
        sa.event.listen(engine.sync_engine.pool, "checkout", self._follow)
        self._followed: set[int] = set()

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.seen.append(statement)

    def _follow(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = dbapi_connection.driver_connection
        if id(raw) not in self._followed:
            self._followed.add(id(raw))
            raw.add_query_logger(lambda logged: self.seen.append(logged.query))

    def take(self) -> list[str]:
        """SYNC or ASYNC for each commit of the recorder, in order (the statement of a batch
        names its commit mode, `recorder._SYNC` or `recorder._ASYNC`)."""
        seen, self.seen = self.seen, []
        return [ASYNC if ASYNC in s else SYNC for s in seen if "synchronous_commit" in s]


SYNC = "SELECT current_setting('synchronous_commit')"
ASYNC = "SELECT set_config('synchronous_commit', 'off', true)"


async def test_step_transitions_do_not_wait_for_the_disk_what_a_client_is_told_does(
    parts,  # type: ignore[no-untyped-def]
) -> None:
    recorder, _, engine = parts
    statements = Statements(engine)
    d, run = started_run()
    recorder.deployment(d)  # a deployment's events go out: on disk first
    await recorder.durable()
    assert statements.take()[-1] == SYNC

    # A step's transition (the next order waits on it): committed without waiting for the disk.
    [first] = [e for e in run.executions.values() if e.step_id == "a"]
    run.mark_dispatched(first, site_id="site-1", order_seq=3, now=NOW)
    recorder.run(run)
    released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    recorder.when_durable(lambda: released.set_result(None))
    await released
    assert statements.take() == [ASYNC]
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(runs.c.id).where(runs.c.id == run.id))).all()
    assert found == [(run.id,)]  # committed: visible to every reader

    # A client is answered: what was committed without the disk is put on disk first, even
    # when nothing new is marked (a commit of its own that the disk is waited for).
    await recorder.durable()
    assert statements.take() == [SYNC]
    await recorder.durable()  # already on disk: nothing written
    assert statements.take() == []

    # A consumed message's claim: the broker is acknowledged after this commit.
    recorder.claim("message-1")
    await recorder.durable()
    assert statements.take() == [SYNC]


async def test_commit_mode_every_waits_for_the_disk_at_each_commit(db_url: str) -> None:
    engine = await migrated(db_url)
    recorder = recorder_on(engine, commit_mode="every")
    recorder.start()
    try:
        statements = Statements(engine)
        d, run = started_run()
        recorder.deployment(d)
        recorder.run(run)
        released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        recorder.when_durable(lambda: released.set_result(None))
        await released
        assert statements.take() == [SYNC]
        await recorder.durable()
        assert statements.take() == []
    finally:
        await recorder.stop()
        await engine.dispose()


async def test_commits_linger_while_runs_are_in_progress_never_for_one(db_url: str) -> None:
    engine = await migrated(db_url)
    recorder = recorder_on(engine, linger_seconds=0.2)
    in_progress = [1]
    recorder.set_load(lambda: in_progress[0])
    recorder.start()
    try:
        d, run = started_run()
        recorder.deployment(d)
        recorder.run(run)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await recorder.durable()
        assert loop.time() - began < 0.15  # one run: committed at once
        assert recorder.commits == 1

        in_progress[0] = 2  # a second run in progress: the next commit waits for its changes
        recorder.run(run)
        began = loop.time()
        done = asyncio.ensure_future(recorder.durable())
        await asyncio.sleep(0.05)
        recorder.deployment(d)  # a change 50 ms later: the same commit
        await done
        assert loop.time() - began >= 0.2
        assert recorder.commits == 2
    finally:
        await recorder.stop()
        await engine.dispose()


async def test_a_change_that_waited_for_the_commit_in_flight_lingers_no_more(db_url: str) -> None:
    # The linger counts from the oldest change waiting: a change marked while the previous
    # commit was in flight (held here by a row lock) has waited longer than the linger by the
    # time that commit ends, and goes in the next commit at once.
    engine = await migrated(db_url)
    linger = 0.5  # wide: lingering again (0.5 s) and not (a few ms) stay apart under load
    recorder = recorder_on(engine, linger_seconds=linger)
    in_progress = [1]
    recorder.set_load(lambda: in_progress[0])
    recorder.start()
    loop = asyncio.get_running_loop()
    try:
        d, run = started_run()
        recorder.deployment(d)
        recorder.run(run)
        await recorder.durable()
        in_progress[0] = 2
        async with engine.connect() as blocker:
            await blocker.execute(sa.select(runs.c.id).where(runs.c.id == run.id).with_for_update())
            recorder.run(run)  # lingers, then its commit waits for the lock
            await asyncio.sleep(linger + 0.05)
            recorder.deployment(d)  # marked while that commit is in flight
            later = asyncio.ensure_future(recorder.durable())
            await asyncio.sleep(linger + 0.2)
            assert not later.done()
            commits = recorder.commits
            released = loop.time()
            await blocker.rollback()
        await later
        assert loop.time() - released < linger  # the next commit did not linger again
        assert recorder.commits == commits + 2
    finally:
        await recorder.stop()
        await engine.dispose()


async def _recorded_state(engine: AsyncEngine, run_id: str) -> str | None:
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(runs.c.state).where(runs.c.id == run_id))
        ).scalar_one_or_none()


async def test_a_lazy_mark_waits_for_the_run_s_next_plain_mark_and_is_written_with_it(
    db_url: str,
) -> None:
    engine = await migrated(db_url)
    recorder = recorder_on(engine, lazy_seconds=30)
    recorder.start()
    try:
        statements = Statements(engine)
        d, run = started_run()
        recorder.deployment(d)
        await recorder.durable()
        statements.take()
        recorder.run(run, lazy=True)  # a run its caller does not know of yet
        await recorder.durable()  # nothing marked for good: nothing written
        assert statements.take() == [] and recorder.lazy_runs == 1
        assert await _recorded_state(engine, run.id) is None

        [first] = [e for e in run.executions.values() if e.step_id == "a"]
        run.mark_dispatched(first, site_id="site-1", order_seq=3, now=NOW)
        recorder.run(run, lazy=True)  # still lazy: still nothing
        await recorder.durable()
        assert statements.take() == []
        run.mark_running(first, NOW)
        recorder.run(run)  # its next plain mark: one write, with every change so far
        await recorder.durable()
        assert len(statements.take()) == 1 and recorder.lazy_runs == 0
        assert await _recorded_state(engine, run.id) == "running"
        async with engine.connect() as conn:
            state = (
                await conn.execute(sa.select(executions.c.state).where(executions.c.id == first.id))
            ).scalar_one()
        assert state == "running"
    finally:
        await recorder.stop()
        await engine.dispose()


async def test_a_lazy_mark_is_written_once_due_and_at_stop(db_url: str) -> None:
    engine = await migrated(db_url)
    lazy = 0.3
    recorder = recorder_on(engine, lazy_seconds=lazy)
    recorder.start()
    loop = asyncio.get_running_loop()
    try:
        d, run = started_run()
        recorder.deployment(d)
        await recorder.durable()
        began = loop.time()
        recorder.run(run, lazy=True)
        while await _recorded_state(engine, run.id) is None:
            assert loop.time() - began < lazy + 5, "a lazily marked run was never written"
            await asyncio.sleep(0.02)
        assert loop.time() - began >= lazy  # not before its time
        assert recorder.lazy_runs == 0
    finally:
        await recorder.stop()

    # A runner that stops writes what it marked lazily, however long it had to wait.
    recorder = recorder_on(engine, lazy_seconds=60)
    recorder.start()
    _, other = started_run(RunId("6f1c1a3e-0000-4000-8000-000000000002"))
    recorder.run(other, lazy=True)
    await recorder.stop()
    assert await _recorded_state(engine, other.id) == str(other.state)
    await engine.dispose()
