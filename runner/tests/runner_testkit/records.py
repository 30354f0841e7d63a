"""Runs as the runner records them (rows of `runs`, `executions`, `log_lines`), made directly:
for tests that need runs of another age than now (retention) and for the bench's 100,000 stored
runs. The shapes follow infrastructure/database/serialization.py (run_row, execution_row) and
the recorder's log line rows; files are `{"$file": {...}}` values under the keys the worker
builds (runs/<run>/<execution>/<output>/<name>, triggers/<deployment>/<step>/<event>/...).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ryax_runner.infrastructure.database.tables import executions, log_lines, runs


def file_value(key: str, name: str, size: int = 1234) -> dict[str, Any]:
    return {
        "$file": {"key": key, "name": name, "size": size, "sha256": "0" * 64, "directory": False}
    }


@dataclass
class StoredRun:
    run: dict[str, Any]
    executions: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[dict[str, Any]] = field(default_factory=list)
    #: The filestore keys its values name (those of its own and any other).
    files: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.run["id"])


def make_run(
    *,
    project_id: str,
    created_at: datetime,
    state: str = "completed",
    run_id: str | None = None,
    deployment_id: str = "dep-1",
    workflow_id: str = "wf-1",
    workflow_name: str = "demo",
    steps: int = 2,
    log_lines_per_step: int = 5,
    with_files: bool = True,
    trigger_file: bool = False,
    read_only_file: str | None = None,
) -> StoredRun:
    """A run of a trigger and `steps` steps in a chain, each step a few log lines and (with
    `with_files`) one file output; `trigger_file`: the trigger wrote a file for it (under
    triggers/...); `read_only_file`: a key the first step reads that is not the run's (a
    workflow's static file)."""
    rid = run_id or str(uuid.uuid4())
    duration = timedelta(milliseconds=40 * (steps + 1))
    ended = state in ("completed", "failed", "cancelled")
    stored = StoredRun(
        run={
            "id": rid,
            "project_id": project_id,
            "deployment_id": deployment_id,
            "workflow_id": workflow_id,
            "workflow_name": workflow_name,
            "origin": "trigger",
            "state": state,
            "reason": "" if state != "failed" else "step s1 failed: ValueError: bad input",
            "created_at": created_at,
            "started_at": created_at,
            "ended_at": created_at + duration if ended else None,
            "failed_step_id": "s1" if state == "failed" else "",
            "http_status": 0,
            "results": {"answer": 42, "text": "done"} if state == "completed" else None,
        }
    )
    at = created_at
    trigger_outputs: dict[str, Any] = {"number": 7, "message": "hello"}
    if trigger_file:
        event = uuid.uuid4().hex
        key = f"triggers/{deployment_id}/trigger/{event}/upload/data.csv"
        trigger_outputs["upload"] = file_value(key, "data.csv")
        stored.files.append(key)
    previous_outputs = trigger_outputs
    for index in range(steps + 1):
        is_trigger = index == 0
        eid = str(uuid.uuid4())
        step_id = "trigger" if is_trigger else f"s{index}"
        inputs: dict[str, Any] = {} if is_trigger else {"number": 7, "message": "hello"}
        if index == 1 and read_only_file is not None:
            inputs["static"] = file_value(read_only_file, "static.bin")
            stored.files.append(read_only_file)
        outputs: dict[str, Any] = (
            previous_outputs if is_trigger else {"number": 7 + index, "message": f"step {index}"}
        )
        if with_files and not is_trigger:
            key = f"runs/{rid}/{eid}/report/report-{index}.txt"
            outputs["report"] = file_value(key, f"report-{index}.txt")
            stored.files.append(key)
        failed_here = state == "failed" and index == steps
        stored.executions.append(
            {
                "id": eid,
                "run_id": rid,
                "step_id": step_id,
                "branch": [],
                "attempt": 1,
                "state": "failed" if failed_here else ("completed" if ended else "running"),
                "is_trigger": is_trigger,
                "created_at": at,
                "inputs": inputs,
                "site_id": "site-1",
                "order_seq": index,
                "not_before": None,
                "dispatched_at": at,
                "started_at": at,
                "ended_at": at + timedelta(milliseconds=30) if ended else None,
                "outputs": None if failed_here else outputs,
                "outputs_list": None,
                "error": "ValueError: bad input" if failed_here else "",
                "traceback": "Traceback ...\nValueError: bad input" if failed_here else "",
                "http_status": 0,
                "log_count": 0 if is_trigger else log_lines_per_step,
                "progress": 1.0,
                "progress_message": "",
                "cpu_seconds": 0.01,
                "max_memory_bytes": 30_000_000,
                "infra_retries": 0,
                "retry_of": None,
            }
        )
        if not is_trigger:
            for seq in range(log_lines_per_step):
                stored.log_lines.append(
                    {
                        "run_id": rid,
                        "execution_id": eid,
                        "deployment_id": deployment_id,
                        "step_id": step_id,
                        "seq": seq,
                        "stream": "stdout",
                        "line": f"step {index}: processing item {seq} of {log_lines_per_step}",
                        "at": at + timedelta(milliseconds=seq),
                    }
                )
        at += timedelta(milliseconds=40)
    return stored


async def insert_runs(conn: AsyncConnection, stored: list[StoredRun]) -> None:
    """Insert the rows (SQLAlchemy executemany: fine for tests; the bench uses `copy_runs`)."""
    if not stored:
        return
    await conn.execute(sa.insert(runs), [s.run for s in stored])
    rows = [e for s in stored for e in s.executions]
    if rows:
        await conn.execute(sa.insert(executions), rows)
    lines = [line for s in stored for line in s.log_lines]
    if lines:
        await conn.execute(sa.insert(log_lines), lines)


async def copy_runs(raw: Any, stored: list[StoredRun]) -> None:
    """COPY the rows in with an asyncpg connection (`raw`): the bench's bulk ingest."""

    def records(table: sa.Table, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple]]:
        names = [c.name for c in table.columns if c.name != "id" or table is not log_lines]
        json_columns = {c.name for c in table.columns if "JSON" in type(c.type).__name__}
        return names, [
            tuple(
                json.dumps(r[n]) if n in json_columns and r[n] is not None else r[n] for n in names
            )
            for r in rows
        ]

    for table, rows in (
        (runs, [s.run for s in stored]),
        (executions, [e for s in stored for e in s.executions]),
        (log_lines, [line for s in stored for line in s.log_lines]),
    ):
        names, values = records(table, rows)
        if values:
            await raw.copy_records_to_table(table.name, records=values, columns=names)
