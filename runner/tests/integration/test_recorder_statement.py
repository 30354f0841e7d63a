"""The recorder's batch statement against the real PostgreSQL (`BatchWriter`): a batch of runs,
executions, deployments, sites and log lines is one statement, its own transaction (all of it
or nothing), committed in the batch's mode (synchronous_commit off, or waiting for the disk,
a flush of earlier asynchronous commits included); the rows read back as they were written
(JSON documents, JSON null and SQL NULL, upserts of every column), log lines already recorded
skipped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from runner_testkit.workflows import endpoint_and_one_step
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_kit.messaging import is_transient
from ryax_runner.domain.deployment import Deployment, DeploymentId
from ryax_runner.domain.run import Run, RunId
from ryax_runner.domain.site import NodePool, Site
from ryax_runner.infrastructure.database import MIGRATIONS
from ryax_runner.infrastructure.database.recorder import Batch, BatchWriter
from ryax_runner.infrastructure.database.serialization import (
    SecretBox,
    deployment_row,
    execution_row,
    run_row,
    site_row,
)
from ryax_runner.infrastructure.database.tables import (
    deployments,
    executions,
    log_lines,
    processed_messages,
    runs,
    sites,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOX = SecretBox("k" * 32)
DEFINITION = endpoint_and_one_step()


class Sent:
    """The statements sent on the engine's connections (the driver's query log)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seen: list[str] = []
        self._followed: set[int] = set()
        sa.event.listen(engine.sync_engine.pool, "checkout", self._follow)

    def _follow(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        raw = dbapi_connection.driver_connection
        if id(raw) not in self._followed:
            self._followed.add(id(raw))
            raw.add_query_logger(lambda logged: self.seen.append(logged.query))

    def take(self) -> list[str]:
        seen, self.seen = self.seen, []
        return seen

    def last(self) -> str:
        """The last statement sent (before it, on a new connection, the driver's look-up of
        the array types, once), none of it a transaction block's."""
        seen = self.take()
        assert not [s for s in seen if s.split()[0].upper() in ("BEGIN", "COMMIT", "SET")]
        return seen[-1]


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncEngine]:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    # The recorder's own kind of engine (not pinged at checkout): one connection at a time.
    engine = create_engine(db_url, pool_size=1, pre_ping=False)
    yield engine
    await engine.dispose()


def new_run(trigger_outputs: dict[str, Any] | None = None) -> Run:
    run, _ = Run.start(
        id=RunId(str(uuid.uuid4())),
        project_id="p",
        deployment_id="d1",
        workflow_id="w",
        workflow_name="wf",
        definition=DEFINITION,
        trigger_outputs=trigger_outputs if trigger_outputs is not None else {"x": "hi"},
        origin="http",
        now=NOW,
    )
    return run


def run_batch(*many: Run, synchronous: bool = True) -> Batch:
    """What the recorder writes for these runs: each run's row and its executions' rows."""
    batch = Batch(synchronous=synchronous)
    for run in many:
        batch.runs[run.id] = run_row(run, BOX)
        for e in run.executions.values():
            batch.executions[e.id] = execution_row(e, BOX)
    return batch


def log_row(execution_id: str, seq: int, line: str, run_id: str = "r") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "execution_id": execution_id,
        "deployment_id": "d1",
        "step_id": "a",
        "seq": seq,
        "stream": "stdout",
        "line": line,
        "at": NOW,
    }


async def table_rows(db: AsyncEngine, table: sa.Table) -> dict[str, dict[str, Any]]:
    async with db.connect() as conn:
        found = (await conn.execute(sa.select(table))).mappings().all()
    return {row["id"]: dict(row) for row in found}


async def flush_lsn_covers(db: AsyncEngine, lsn: str) -> bool:
    async with db.connect() as conn:
        return bool(
            (
                await conn.execute(
                    sa.text(
                        "SELECT pg_current_wal_flush_lsn() >= CAST(CAST(:lsn AS text) AS pg_lsn)"
                    ),
                    {"lsn": lsn},
                )
            ).scalar_one()
        )


async def wal_insert_lsn(db: AsyncEngine) -> str:
    async with db.connect() as conn:
        return str(
            (
                await conn.execute(sa.text("SELECT CAST(pg_current_wal_insert_lsn() AS text)"))
            ).scalar()
        )


async def test_a_batch_of_every_table_is_one_statement(db: AsyncEngine) -> None:
    writer = BatchWriter()
    sent = Sent(db)
    deployment = Deployment.request(
        id=DeploymentId("d1"),
        project_id="p",
        workflow_id="w",
        workflow_name="wf",
        snapshot_id="s",
        definition=DEFINITION,
        requested_by="alice",
        now=NOW,
    )
    site, _ = Site.create(name="edge", kind="kubernetes", now=NOW, by="admin")

    def batch_of(run: Run) -> Batch:
        batch = run_batch(run, synchronous=False)
        batch.deployments[deployment.id] = deployment_row(deployment, BOX)
        batch.sites[site.id] = site_row(site)
        batch.logs = [log_row(run.id, 1, "one", run.id), log_row(run.id, 2, "two", run.id)]
        return batch

    # The first on a connection prepares the statement (and the driver looks up the array
    # types once); every later batch of the same tables is one statement, one round trip.
    await writer.write(db, batch_of(new_run()))
    sent.take()
    run = new_run()
    await writer.write(db, batch_of(run))
    [statement] = sent.take()  # no BEGIN, no COMMIT
    assert statement.startswith("WITH runs_rows AS (INSERT INTO runs")
    assert run.id in await table_rows(db, runs)
    assert set(run.executions) <= set(await table_rows(db, executions))
    assert set(await table_rows(db, deployments)) == {deployment.id}
    assert set(await table_rows(db, sites)) == {site.id}
    assert len(await table_rows(db, log_lines)) == 4


async def test_a_value_the_driver_refuses_is_not_waited_on(db: AsyncEngine) -> None:
    writer = BatchWriter()
    bad = new_run()
    batch = run_batch(bad)
    [row] = [r for r in batch.executions.values() if r["run_id"] == bad.id][:1]
    row["http_status"] = 2**40  # over int4: refused by the driver before it is sent
    with pytest.raises(asyncpg.DataError) as refused:
        await writer.write(db, batch)
    assert not is_transient(refused.value)  # bisected and set aside, not retried for ever
    assert await table_rows(db, runs) == {}


async def test_a_refused_row_leaves_nothing_of_its_batch(db: AsyncEngine) -> None:
    writer = BatchWriter()
    good, bad = new_run(), new_run()
    batch = run_batch(good, bad)
    [row] = [r for r in batch.executions.values() if r["run_id"] == bad.id][:1]
    row["error"] = "bad\x00byte"  # PostgreSQL refuses a NUL in a text column
    batch.logs = [log_row("e1", 1, "line", good.id)]
    with pytest.raises(asyncpg.CharacterNotInRepertoireError) as refused:
        await writer.write(db, batch)
    assert not is_transient(refused.value)  # the recorder bisects it, never waits on it

    assert await table_rows(db, runs) == {}
    assert await table_rows(db, executions) == {}
    assert await table_rows(db, log_lines) == {}
    # The connection is back in the pool out of any transaction: the next batch is written.
    await writer.write(db, run_batch(good))
    assert set(await table_rows(db, runs)) == {good.id}


async def test_a_batch_with_a_claim_is_one_transaction_too(db: AsyncEngine) -> None:
    """Claims, callbacks and outbox messages go through SQLAlchemy; the rows' statement runs
    in the same transaction: a refused row leaves no claim either."""
    writer = BatchWriter()
    bad = new_run()
    batch = run_batch(bad)
    next(iter(batch.executions.values()))["error"] = "bad\x00byte"
    batch.claims = [{"message_id": "m-1", "handled_at": NOW}]
    with pytest.raises(asyncpg.CharacterNotInRepertoireError):
        await writer.write(db, batch)
    async with db.connect() as conn:
        claimed = (await conn.execute(sa.select(processed_messages.c.message_id))).all()
    assert claimed == [] and await table_rows(db, runs) == {}

    good = new_run()
    batch = run_batch(good)
    batch.claims = [{"message_id": "m-1", "handled_at": NOW}]
    await writer.write(db, batch)
    async with db.connect() as conn:
        claimed = (await conn.execute(sa.select(processed_messages.c.message_id))).all()
    assert claimed == [("m-1",)] and set(await table_rows(db, runs)) == {good.id}


async def test_an_asynchronous_batch_sets_the_mode_for_its_own_commit_only(
    db: AsyncEngine,
) -> None:
    writer = BatchWriter()
    sent = Sent(db)
    run = new_run()
    await writer.write(db, run_batch(run, synchronous=False))
    statement = sent.last()
    assert statement.endswith("SELECT set_config('synchronous_commit', 'off', true)")
    assert set(await table_rows(db, runs)) == {run.id}  # committed: visible at once
    async with db.connect() as conn:  # the same connection: its session setting unchanged
        mode = (await conn.execute(sa.text("SHOW synchronous_commit"))).scalar()
    assert mode == "on"


async def test_a_synchronous_batch_is_on_disk_when_written(db: AsyncEngine) -> None:
    writer = BatchWriter()
    sent = Sent(db)
    await writer.write(db, run_batch(new_run(), synchronous=False))
    written = await wal_insert_lsn(db)  # past that commit (the database is shared: not ours)
    await writer.write(db, run_batch(new_run(), synchronous=True))
    statement = sent.last()
    assert "set_config" not in statement and "pg_logical_emit_message" not in statement
    # Its commit record, after `written`, is flushed, and so everything before it.
    assert await flush_lsn_covers(db, written)


async def test_a_flush_only_batch_puts_earlier_asynchronous_commits_on_disk(
    db: AsyncEngine,
) -> None:
    """An empty synchronous batch still writes a commit record that waits for the disk: a
    transaction with an xid but no WAL (`SELECT txid_current()`) commits without waiting."""
    writer = BatchWriter()
    sent = Sent(db)
    await writer.write(db, run_batch(new_run(), synchronous=False))
    written = await wal_insert_lsn(db)
    sent.take()
    await writer.write(db, Batch(synchronous=True, flush_only=True))
    [statement] = sent.take()  # nothing to look up
    assert "pg_logical_emit_message(true" in statement
    assert await flush_lsn_covers(db, written)

    # The same for a synchronous batch whose rows may all be skipped (log lines recorded
    # before): it writes nothing else.
    await writer.write(db, Batch(logs=[log_row("e1", 1, "line")], synchronous=False))
    await writer.write(db, run_batch(new_run(), synchronous=False))
    written = await wal_insert_lsn(db)
    await writer.write(db, Batch(logs=[log_row("e1", 1, "line")], synchronous=True))
    assert await flush_lsn_covers(db, written)


async def test_log_lines_already_recorded_are_skipped(db: AsyncEngine) -> None:
    writer = BatchWriter()
    await writer.write(db, Batch(logs=[log_row("e1", 1, "first")]))
    await writer.write(
        db,
        Batch(
            logs=[
                log_row("e1", 1, "again"),  # recorded before: skipped
                log_row("e1", 2, "second"),
                log_row("e1", 2, "second twice"),  # the same line twice in one batch
                log_row("", 7, "a process line"),  # no execution: never deduplicated
                log_row("", 7, "a process line"),
            ]
        ),
    )
    async with db.connect() as conn:
        found = (
            await conn.execute(
                sa.select(log_lines.c.execution_id, log_lines.c.seq, log_lines.c.line).order_by(
                    log_lines.c.id
                )
            )
        ).all()
    assert [tuple(r) for r in found] == [
        ("e1", 1, "first"),
        ("e1", 2, "second"),
        ("", 7, "a process line"),
        ("", 7, "a process line"),
    ]


async def test_rows_read_back_as_written_json_and_nulls_included(db: AsyncEngine) -> None:
    writer = BatchWriter()
    run = new_run({"x": None})
    [trigger] = [e for e in run.executions.values() if e.is_trigger]
    [step] = [e for e in run.executions.values() if not e.is_trigger]
    batch = run_batch(run)
    # JSON null, a nested document, a list of documents; SQL NULL in nullable columns.
    batch.runs[run.id]["results"] = {"answer": None, "nested": {"list": [1, 2.5, "é", None]}}
    batch.executions[step.id].update(
        outputs=None, outputs_list=[{"y": 1}, {"y": None}], site_id=None, retry_of=None
    )
    batch.executions[trigger.id].update(outputs={}, outputs_list=None, progress=0.25)
    site, _ = Site.create(name="edge", kind="kubernetes", now=NOW, by="admin")
    site = replace(
        site,
        node_pools=(NodePool(name="p", cpu=2.0, memory_bytes=2**33, gpu=1),),
        labels={"zone": "a"},
        last_report_seq=2**40,
        credential=None,
        archived_at=None,
    )
    batch.sites[site.id] = site_row(site)
    await writer.write(db, batch)

    assert await table_rows(db, runs) == batch.runs
    assert await table_rows(db, executions) == batch.executions
    assert await table_rows(db, sites) == batch.sites

    # An upsert sets every column: values changed, a column set back to NULL.
    later = NOW + timedelta(seconds=5)
    batch.runs[run.id].update(state="completed", ended_at=later, results=None)
    batch.executions[step.id].update(state="completed", ended_at=later, outputs_list=None)
    batch.sites[site.id].update(credential_issued_at=None, last_seen_at=later, labels={})
    await writer.write(db, Batch(runs=batch.runs, executions=batch.executions, sites=batch.sites))
    assert await table_rows(db, runs) == batch.runs
    assert await table_rows(db, executions) == batch.executions
    assert await table_rows(db, sites) == batch.sites
