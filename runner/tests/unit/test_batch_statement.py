"""The recorder's batch statement, as text (what the database does with it: the integration
test test_recorder_statement.py): one CTE per table with rows, its parameters one array per
column, numbered in order; the commit mode in the final SELECT; prepared once per shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ryax_runner.infrastructure.database.recorder import Batch, BatchWriter

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def log(seq: int) -> dict[str, Any]:
    return {
        "run_id": "r",
        "execution_id": "e",
        "deployment_id": "d",
        "step_id": "s",
        "seq": seq,
        "stream": "stdout",
        "line": "x",
        "at": NOW,
    }


def run(rid: str) -> dict[str, Any]:
    return {
        "id": rid,
        "project_id": "p",
        "deployment_id": "d",
        "workflow_id": "w",
        "workflow_name": "wf",
        "origin": "http",
        "state": "running",
        "reason": "",
        "created_at": NOW,
        "started_at": NOW,
        "ended_at": None,
        "failed_step_id": "",
        "http_status": 0,
        "results": {"a": None},
    }


def test_each_table_with_rows_is_one_cte_its_columns_one_array_each() -> None:
    writer = BatchWriter()
    batch = Batch(runs={"r1": run("r1"), "r2": run("r2")}, logs=[log(1)], synchronous=False)
    sql, args = writer.statement(batch)
    assert re.findall(r"(\w+)_rows AS \(INSERT INTO (\w+)", sql) == [
        ("runs", "runs"),
        ("logs", "log_lines"),
    ]
    numbers = [int(n) for n in re.findall(r"\$(\d+)::", sql)]
    assert numbers == list(range(1, len(args) + 1)) and len(args) == 14 + 8
    assert args[0] == ["r1", "r2"]  # ids, in the batch's order
    assert args[13] == ['{"a": null}', '{"a": null}']  # JSON text; a JSON null kept
    assert "varchar" not in sql  # base types: a too-long value refused, never cut


def test_the_commit_mode_is_in_the_statement() -> None:
    writer = BatchWriter()
    rows = {"r1": run("r1")}
    asynchronous, _ = writer.statement(Batch(runs=rows, synchronous=False))
    assert asynchronous.endswith("SELECT set_config('synchronous_commit', 'off', true)")
    synchronous, _ = writer.statement(Batch(runs=rows, synchronous=True))
    assert synchronous.endswith("SELECT current_setting('synchronous_commit')")
    # Nothing that surely writes WAL: a record of its own, so the commit waits for the disk.
    flush, args = writer.statement(Batch(synchronous=True, flush_only=True))
    assert "pg_logical_emit_message(true" in flush and args == []
    logs_only, _ = writer.statement(Batch(logs=[log(1)], synchronous=True))
    assert "pg_logical_emit_message(true" in logs_only


def test_a_statement_is_built_once_per_shape() -> None:
    writer = BatchWriter()
    first, _ = writer.statement(Batch(runs={"r1": run("r1")}, synchronous=False))
    again, _ = writer.statement(Batch(runs={"r2": run("r2"), "r3": run("r3")}, synchronous=False))
    assert again is first
