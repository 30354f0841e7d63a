"""A write that keeps failing is set aside, never retried forever (against the real
PostgreSQL): in a batch of many objects, one whose row the database refuses is parked with its
reason, everything else is committed, its run ends FAILED "could not be recorded" (recorded in
a simpler form), waiters are released, and the recorder goes on recording."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from runner_testkit.workflows import endpoint_and_one_step
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_runner import parked as parked_cli
from ryax_runner.application.messages import LogLine
from ryax_runner.domain.deployment import Deployment, DeploymentId
from ryax_runner.domain.run import Run, RunId, RunState
from ryax_runner.infrastructure.database import MIGRATIONS
from ryax_runner.infrastructure.database import recorder as recorder_module
from ryax_runner.infrastructure.database.parking import decode_payload
from ryax_runner.infrastructure.database.recorder import SqlRecorder
from ryax_runner.infrastructure.database.serialization import SecretBox
from ryax_runner.infrastructure.database.tables import executions, log_lines, parked_records, runs
from ryax_runner.infrastructure.messaging.mappers import state_changed_to_proto

pytestmark = pytest.mark.integration
NOW = datetime(2026, 1, 1, tzinfo=UTC)


definition = endpoint_and_one_step


DEPLOYMENT = Deployment.request(
    id=DeploymentId("d1"),
    project_id="p",
    workflow_id="w",
    workflow_name="wf",
    snapshot_id="s",
    definition=definition(),
    requested_by="alice",
    now=NOW,
)


def new_run() -> Run:
    run, _ = Run.start(
        id=RunId(str(uuid.uuid4())),
        project_id="p",
        deployment_id=DEPLOYMENT.id,
        workflow_id="w",
        workflow_name="wf",
        definition=DEPLOYMENT.definition,
        trigger_outputs={"x": "hi"},
        origin="http",
        now=NOW,
    )
    return run


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncEngine]:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def recorder(db: AsyncEngine) -> AsyncIterator[SqlRecorder]:
    rec = SqlRecorder(db, SecretBox("k" * 32), state_changed_to_proto)
    ended: list[tuple[str, str]] = []

    def abandon(run: Run, reason: str) -> None:  # what the engine does (Engine.abandon_run)
        ended.append((run.id, reason))
        run.abandon(f"could not be recorded: {reason}", NOW)
        rec.run(run)

    rec.set_unrecordable_listener(abandon)
    rec.ended = ended  # type: ignore[attr-defined]
    rec.start()
    yield rec
    await rec.stop()


def poison_execution_rows(monkeypatch: pytest.MonkeyPatch, poisoned: set[str]) -> None:
    """The row builder puts a NUL in a text column of the executions of the `poisoned` runs."""
    real = recorder_module.execution_row

    def row(e: Any, *args: Any) -> dict[str, Any]:
        built = real(e, *args)
        if e.run_id in poisoned:
            built["error"] = "bad\x00byte"
        return built

    monkeypatch.setattr(recorder_module, "execution_row", row)


async def rows(db: AsyncEngine, query: Any) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(query)).all())


async def test_one_poison_row_among_many_is_parked_and_the_rest_committed(
    db: AsyncEngine, recorder: SqlRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [new_run() for _ in range(40)]
    poison = many[17]
    poison_execution_rows(monkeypatch, {poison.id})
    recorder.deployment(DEPLOYMENT)
    for run in many:
        recorder.run(run)
    for i in range(30):
        recorder.log(
            LogLine(
                execution_id=f"e{i}",
                seq=1,
                stream="stdout",
                line=f"line {i}",
                at=NOW,
                deployment_id="d1",
                step_id="a",
                run_id=many[0].id,
            )
        )
    await asyncio.wait_for(recorder.durable(), 10)  # released once the rest is committed

    recorded = {r.id: r.state for r in await rows(db, sa.select(runs.c.id, runs.c.state))}
    assert recorded.pop(poison.id, "failed") == "failed"  # its simpler state may be in already
    assert set(recorded) == {r.id for r in many} - {poison.id}
    assert set(recorded.values()) == {"pending"}
    assert len(await rows(db, sa.select(log_lines.c.id))) == 30
    [parked] = await rows(db, sa.select(parked_records))
    assert (parked.kind, parked.key, parked.attempts) == ("run", poison.id, 1)
    assert "CharacterNotInRepertoire" in parked.reason or "0x00" in parked.reason
    payload = decode_payload(parked.payload)
    assert payload["runs"][0]["id"] == poison.id
    assert any(e["error"] == "bad\x00byte" for e in payload["executions"])  # kept, escaped
    assert "\\u0000" in parked.payload
    assert recorder.ended == [(poison.id, parked.reason)]  # type: ignore[attr-defined]

    # The run ended FAILED "could not be recorded", and that simpler state is recorded.
    await asyncio.wait_for(recorder.durable(), 10)
    [(state, reason)] = await rows(
        db, sa.select(runs.c.state, runs.c.reason).where(runs.c.id == poison.id)
    )
    assert state == "failed" and reason.startswith("could not be recorded: ")
    shown = await rows(
        db,
        sa.select(executions.c.error, executions.c.outputs).where(executions.c.run_id == poison.id),
    )
    assert shown and all("\x00" not in error for error, _ in shown)
    assert recorder.parked_count == 1

    # The recorder keeps recording new changes.
    later = new_run()
    recorder.run(later)
    await asyncio.wait_for(recorder.durable(), 10)
    assert await rows(db, sa.select(runs.c.id).where(runs.c.id == later.id)) == [(later.id,)]


async def test_a_refused_log_line_is_parked_alone(db: AsyncEngine, recorder: SqlRecorder) -> None:
    run = new_run()
    recorder.run(run)
    bad = LogLine(
        execution_id="e-bad",
        seq=1,
        stream="stdout",
        line="x" * 10,
        at=NOW,
        deployment_id="d1",
        step_id="a" * 300,  # longer than the column: refused
        run_id=run.id,
    )
    good = LogLine(
        execution_id="e-good", seq=1, stream="stdout", line="fine", at=NOW, run_id=run.id
    )
    recorder.log(bad)
    recorder.log(good)
    await asyncio.wait_for(recorder.durable(), 10)
    assert await rows(db, sa.select(log_lines.c.execution_id)) == [("e-good",)]
    [parked] = await rows(db, sa.select(parked_records.c.kind, parked_records.c.reason))
    assert parked.kind == "log" and "StringDataRightTruncation" in parked.reason
    assert recorder.ended == []  # type: ignore[attr-defined]
    assert await rows(db, sa.select(runs.c.state).where(runs.c.id == run.id)) == [("pending",)]


async def test_the_database_down_is_waited_for_not_parked(
    db: AsyncEngine, recorder: SqlRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recorder._write
    calls = {"n": 0}

    async def flaky(batch: Any) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionRefusedError("database down")
        await real(batch)

    monkeypatch.setattr(recorder, "_write", flaky)
    run = new_run()
    recorder.run(run)
    await asyncio.wait_for(recorder.durable(), 10)
    assert calls["n"] == 3
    assert await rows(db, sa.select(runs.c.id)) == [(run.id,)]
    assert await rows(db, sa.select(parked_records.c.id)) == []


async def test_an_operator_lists_and_retries_a_parked_record(
    db: AsyncEngine, db_url: str, recorder: SqlRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = LogLine(
        execution_id="e-long", seq=1, stream="stdout", line="kept", at=NOW, step_id="s" * 300
    )
    recorder.log(bad)
    await asyncio.wait_for(recorder.durable(), 10)
    [(record_id,)] = await rows(db, sa.select(parked_records.c.id))

    assert await parked_cli.main(["list", "--json"], database_url=db_url) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["kind"], listed["attempts"]) == (record_id, "log", 1)

    # Still refused: the record stays, with one more attempt.
    assert await parked_cli.main(["retry", str(record_id)], database_url=db_url) == 1
    [(attempts,)] = await rows(db, sa.select(parked_records.c.attempts))
    assert attempts == 2
    # The cause is fixed (here: the column is widened): the retry writes it and forgets it.
    async with db.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE log_lines ALTER COLUMN step_id TYPE text"))
    assert await parked_cli.main(["retry", str(record_id)], database_url=db_url) == 0
    assert await rows(db, sa.select(parked_records.c.id)) == []
    assert await rows(db, sa.select(log_lines.c.line)) == [("kept",)]


async def test_a_retried_run_record_writes_the_run_as_it_ended(
    db: AsyncEngine, db_url: str, recorder: SqlRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = new_run()
    poison_execution_rows(monkeypatch, {run.id})
    recorder.run(run)
    await asyncio.wait_for(recorder.durable(), 10)
    await asyncio.wait_for(recorder.durable(), 10)
    [(record_id,)] = await rows(db, sa.select(parked_records.c.id))
    assert run.state is RunState.FAILED
    assert await parked_cli.main(["retry", str(record_id)], database_url=db_url) == 1
    assert len(await rows(db, sa.select(parked_records.c.id))) == 1


async def test_the_database_going_down_while_rows_are_sorted_out_loses_nothing(
    db: AsyncEngine, recorder: SqlRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = [new_run() for _ in range(8)]
    poison_execution_rows(monkeypatch, {many[3].id})
    real = recorder._write
    calls = {"n": 0}

    async def down_once_while_bisecting(batch: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the whole batch failed, one half written: then the database
            raise ConnectionRefusedError("database down")
        await real(batch)

    monkeypatch.setattr(recorder, "_write", down_once_while_bisecting)
    for run in many:
        recorder.run(run)
    await asyncio.wait_for(recorder.durable(), 10)
    await asyncio.wait_for(recorder.durable(), 10)
    states = dict(await rows(db, sa.select(runs.c.id, runs.c.state)))
    assert set(states) == {r.id for r in many}
    assert states.pop(many[3].id) == "failed"
    assert set(states.values()) == {"pending"}
    assert [r.key for r in await rows(db, sa.select(parked_records.c.key))] == [many[3].id]
