"""Write-behind recorder: group commits of everything the engine changed.

The engine marks changed objects; one background task commits them in a single transaction
(upserts by primary key, executemany), as soon as the previous commit is done, so under load a
transaction carries many changes (group commit) and when idle a change is committed within a
few milliseconds. Objects are serialized when the batch is taken (a consistent snapshot: the
event loop does not run engine code during serialization). A failed commit is retried with the
same batch merged into the next one; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.messaging import OutgoingMessage, add_to_outbox

from ...application.messages import LogLine
from ...application.ports import CommitListener
from ...domain.deployment import Deployment, DeploymentStateChanged
from ...domain.run import Run
from ...domain.site import Site, SiteId
from .serialization import SecretBox, deployment_row, execution_row, run_row, site_row
from .tables import deployments, executions, log_lines, outbox, processed_messages, runs, sites

log = logging.getLogger(__name__)
EventEncoder = Callable[[DeploymentStateChanged], OutgoingMessage]


class RawUpsert:
    """`INSERT ... ON CONFLICT (id) DO UPDATE` run with asyncpg's executemany (prepared once,
    pipelined): the hot tables are written without SQLAlchemy's per-row processing."""

    def __init__(self, table: sa.Table) -> None:
        self.columns = [c.name for c in table.columns]
        self.json = {c.name for c in table.columns if isinstance(c.type, (JSONB, sa.JSON))}
        names = ", ".join(self.columns)
        params = ", ".join(f"${i + 1}" for i in range(len(self.columns)))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c != "id")
        self.sql = (
            f"INSERT INTO {table.name} ({names}) VALUES ({params}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}"
        )

    def records(self, rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
        dumps, as_json = json.dumps, self.json
        return [
            tuple(
                dumps(row[c]) if c in as_json and row[c] is not None else row[c]
                for c in self.columns
            )
            for row in rows
        ]


@dataclass
class Batch:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, later: Batch) -> Batch:
        """`later` wins for rows present in both."""
        self.runs.update(later.runs)
        self.executions.update(later.executions)
        self.deployments.update(later.deployments)
        self.sites.update(later.sites)
        self.logs += later.logs
        self.outbox += later.outbox
        self.claims += later.claims
        return self

    @property
    def empty(self) -> bool:
        return not (
            self.runs
            or self.executions
            or self.deployments
            or self.sites
            or self.logs
            or self.outbox
            or self.claims
        )


class SqlRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        encode_event: EventEncoder,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._box = box
        self._encode = encode_event
        self._on_outbox = on_outbox
        self._runs: dict[str, Run] = {}
        self._deployments: dict[str, Deployment] = {}
        self._sites: dict[str, Site] = {}
        self._logs: list[LogLine] = []
        self._claims: list[str] = []
        self._generation = 0
        self._committed = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: `when_durable` callbacks with the generation they wait for (non-decreasing).
        self._callbacks: deque[tuple[int, Callable[[], None]]] = deque()
        self._listeners: list[CommitListener] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.commits = 0
        self.last_commit_seconds = 0.0
        self._upserts = {t.name: RawUpsert(t) for t in (runs, executions, deployments, sites)}
        self._insert_logs = pg_insert(log_lines).on_conflict_do_nothing(
            index_elements=[log_lines.c.execution_id, log_lines.c.seq],
            index_where=sa.text("execution_id <> ''"),
        )
        self._insert_claims = pg_insert(processed_messages).on_conflict_do_nothing()

    def set_outbox_listener(self, on_outbox: Callable[[], None]) -> None:
        self._on_outbox = on_outbox

    # -- marking (synchronous, cheap) ----------------------------------------------------------

    def _bump(self) -> None:
        self._generation += 1
        self._wake.set()

    def run(self, run: Run) -> None:
        self._runs[run.id] = run
        self._bump()

    def deployment(self, deployment: Deployment) -> None:
        self._deployments[deployment.id] = deployment
        self._bump()

    def site(self, site: Site) -> None:
        self._sites[site.id] = site
        self._bump()

    def log(self, line: LogLine) -> None:
        self._logs.append(line)
        self._bump()

    def claim(self, message_id: str) -> None:
        self._claims.append(message_id)
        self._bump()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    async def durable(self) -> None:
        target = self._generation
        if self._committed >= target:
            return
        if self._task is None:
            await self.flush_now()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await future

    def when_durable(self, callback: Callable[[], None]) -> None:
        target = self._generation
        if self._committed >= target and not self._callbacks:
            callback()
        else:
            self._callbacks.append((target, callback))

    # -- committing ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="runner-recorder")

    async def stop(self) -> None:
        """Commit what is pending, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                log.error("recorder could not commit its last batch before stopping")
            self._task = None

    def _take(self) -> Batch:
        batch = Batch()
        for run in self._runs.values():
            batch.runs[run.id] = run_row(run)
            for eid in run.touched:
                execution = run.executions.get(eid)
                if execution is not None:
                    batch.executions[eid] = execution_row(execution)
            run.touched.clear()
        for d in self._deployments.values():
            batch.deployments[d.id] = deployment_row(d, self._box)
            batch.outbox += [self._encode(event) for event in d.events]
            d.events.clear()
        for s in self._sites.values():
            batch.sites[s.id] = site_row(s)
        now = time.time()
        for line in self._logs:
            batch.logs.append(
                {
                    "run_id": line.run_id,
                    "execution_id": line.execution_id,
                    "deployment_id": line.deployment_id,
                    "step_id": line.step_id,
                    "seq": line.seq,
                    "stream": line.stream,
                    "line": line.line,
                    "at": line.at,
                }
            )
        handled = datetime.fromtimestamp(now, UTC)
        batch.claims = [{"message_id": m, "handled_at": handled} for m in self._claims]
        self._runs, self._deployments, self._sites = {}, {}, {}
        self._logs, self._claims = [], []
        return batch

    async def _write(self, batch: Batch) -> None:
        async with self._engine.begin() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            for name, rows in (
                ("runs", batch.runs),
                ("executions", batch.executions),
                ("deployments", batch.deployments),
                ("sites", batch.sites),
            ):
                if rows:
                    upsert = self._upserts[name]
                    await raw.executemany(upsert.sql, upsert.records(rows.values()))
            if batch.logs:
                await conn.execute(self._insert_logs, batch.logs)
            if batch.outbox:
                # The kit's own insert (its retry columns take their defaults), in this
                # transaction.
                for message in batch.outbox:
                    await add_to_outbox(conn, outbox, message)
            if batch.claims:
                await conn.execute(self._insert_claims, batch.claims)

    async def flush_now(self) -> None:
        """Commit what is pending now (used when the background task is not running)."""
        generation = self._generation
        batch = self._take()
        if not batch.empty:
            await self._write(batch)
        self._done(generation, batch)

    def _done(self, generation: int, batch: Batch) -> None:
        self._committed = max(self._committed, generation)
        self.commits += 1
        callbacks = self._callbacks
        while callbacks and callbacks[0][0] <= self._committed:
            try:
                callbacks.popleft()[1]()
            except Exception:
                log.exception("durable callback failed")
        remaining = []
        for target, future in self._waiters:
            if target <= self._committed:
                if not future.done():
                    future.set_result(None)
            else:
                remaining.append((target, future))
        self._waiters = remaining
        seqs = {SiteId(sid): row["last_report_seq"] for sid, row in batch.sites.items()}
        if seqs:
            for listener in self._listeners:
                try:
                    listener(seqs)
                except Exception:
                    log.exception("commit listener failed")
        if batch.outbox and self._on_outbox is not None:
            self._on_outbox()

    async def _loop(self) -> None:
        pending: Batch | None = None
        failures = 0
        while True:
            if pending is None and self._generation == self._committed:
                if self._stopping:
                    return
                await self._wake.wait()
            self._wake.clear()
            generation = self._generation
            batch = self._take()
            if pending is not None:
                batch = pending.merge(batch)
            if batch.empty:
                self._done(generation, batch)
                continue
            started = time.perf_counter()
            try:
                await self._write(batch)
            except Exception:
                failures += 1
                pending = batch
                log.exception("recording failed, will retry", extra={"failures": failures})
                if self._stopping and failures > 5:
                    return
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))
                continue
            failures, pending = 0, None
            self.last_commit_seconds = time.perf_counter() - started
            self._done(generation, batch)
