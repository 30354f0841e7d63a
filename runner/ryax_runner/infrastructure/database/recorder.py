"""Write-behind recorder: group commits of everything the engine changed.

The engine marks changed objects; one background task commits them in a single transaction
(upserts by primary key; most batches one statement, `BatchWriter.statement`), as soon as the
previous commit is done, so under load a transaction carries many changes (group commit) and
when idle a change is committed within a few milliseconds. Objects are serialized when the
batch is taken (a consistent snapshot: the event loop does not run engine code during
serialization).

A failed commit:
- for a transient cause (the database down or restarting, a timeout, a serialization conflict:
  `ryax_kit.messaging.is_transient`), the same batch is retried, merged into the next one, with
  a growing pause, for as long as it takes; nothing is dropped.
- for any other cause (a row the database refuses: a NUL in a text column, a value too long, a
  constraint), the batch is split to find the rows that fail (bisecting by object: a run with
  its executions, a deployment, a site, a log line, an outbox message, a claim, a callback):
  everything else is committed, and each failing object is set aside in `parked_records` with
  the reason (`parking.py`), logged at error. A run set aside ends FAILED "could not be
  recorded: <reason>" (the engine is told, `set_unrecordable_listener`) and that simpler state
  is recorded (its values left out: the parked payload keeps them). Waiters are released once
  the rest is committed. A serialization that raises sets its object aside the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.messaging import OutgoingMessage, add_to_outbox, is_transient

from ...application.messages import LogLine
from ...application.ports import CommitListener
from ...domain.deployment import Deployment, DeploymentStateChanged
from ...domain.run import Execution, Run
from ...domain.site import Site, SiteId
from ...domain.values import clean_text
from .parking import ParkedRow, count_parked, describe, encode_payload, park, resolve
from .serialization import SecretBox, deployment_row, execution_row, run_row, site_row
from .tables import (
    deployments,
    executions,
    log_lines,
    outbox,
    processed_messages,
    run_callbacks,
    runs,
    sites,
)

log = logging.getLogger(__name__)
EventEncoder = Callable[[DeploymentStateChanged], OutgoingMessage]
#: Told when a run's write was set aside, with the reason: the run must end.
UnrecordableListener = Callable[[Run, str], None]
#: How often the count of parked records is read again (the gauge), and set-aside records
#: that could not be written yet are tried again.
PARKED_REFRESH_SECONDS = 30.0


def _element_type(column: sa.Column[Any]) -> str:
    """The PostgreSQL type of a column's array parameter: the base type, never a length-limited
    one (a cast to `varchar(64)[]` would cut a value too long, where the insert must refuse it:
    the row is then set aside with the reason)."""
    kind = column.type
    if isinstance(kind, (JSONB, sa.JSON)):
        return "jsonb"
    if isinstance(kind, sa.DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    if isinstance(kind, sa.BigInteger):
        return "int8"
    if isinstance(kind, sa.Integer):
        return "int4"
    if isinstance(kind, sa.Float):
        return "float8"
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.String):
        return "text"
    raise TypeError(f"no array type for column {column.name} ({kind})")


class RawInsert:
    """One table's part of a batch's statement: `INSERT ... SELECT * FROM unnest($a::t[], ...)`
    and its conflict clause, each column one array parameter (the driver's own codecs, as for
    a row's parameters): the rows of a table in one statement, without SQLAlchemy's per-row
    processing."""

    def __init__(
        self, table: sa.Table, conflict: str, columns: Sequence[str] | None = None
    ) -> None:
        chosen = [table.c[c] for c in columns] if columns else list(table.columns)
        self.table = table.name
        self.columns = [c.name for c in chosen]
        self.types = [_element_type(c) for c in chosen]
        self.json = {c.name for c in chosen if isinstance(c.type, (JSONB, sa.JSON))}
        self.conflict = conflict

    def sql(self, first: int) -> str:
        """The insert, its parameters numbered from `first`."""
        arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(self.types))
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"SELECT * FROM unnest({arrays}) {self.conflict}"
        )

    def arrays(self, rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
        """One array per column (JSON columns as JSON text, None a NULL)."""
        dumps = json.dumps
        return [
            [None if row[c] is None else dumps(row[c]) for row in rows]
            if c in self.json
            else [row[c] for row in rows]
            for c in self.columns
        ]


def _upsert(table: sa.Table) -> RawInsert:
    """`ON CONFLICT (id) DO UPDATE` every column."""
    updates = ", ".join(f"{c.name} = EXCLUDED.{c.name}" for c in table.columns if c.name != "id")
    return RawInsert(table, f"ON CONFLICT (id) DO UPDATE SET {updates}")


#: The log lines of a batch (their id is the table's identity): a line already recorded, by
#: its execution and number, is skipped.
_LOG_COLUMNS = ("run_id", "execution_id", "deployment_id", "step_id", "seq", "stream", "line", "at")
#: The parts of a batch's statement, in this order; the upserted ones always write (a row
#: updated even to the same values is written again), the log lines may all be skipped.
_UPSERTED = ("runs", "executions", "deployments", "sites")
_PARTS = (*_UPSERTED, "logs")
#: What a batch's statement returns, naming its commit mode: the asynchronous commit set for
#: this transaction only (`set_config(..., true)` is `SET LOCAL`: read at the commit, which ends
#: the statement's implicit transaction), the synchronous one the server's own setting.
_ASYNC = "SELECT set_config('synchronous_commit', 'off', true)"
_SYNC = "SELECT current_setting('synchronous_commit')"
#: A WAL record in the transaction: PostgreSQL writes a commit record, and waits for the disk,
#: only for a transaction that wrote WAL (an xid alone, `txid_current()`, gets neither). A
#: synchronous commit that may write nothing else (a flush of earlier asynchronous commits, or
#: log lines all recorded before) carries this one, so that it waits for the disk, and WAL
#: being flushed in order, every earlier commit is on disk with it.
_FLUSH = "pg_logical_emit_message(true, 'ryax-runner', 'flush')"


@dataclass
class Batch:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[OutgoingMessage] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    #: The runs serialized in this batch, by id (to end one whose write is set aside).
    objects: dict[str, Run] = field(default_factory=dict)
    #: Runs written in their simpler form (values left out) in this batch.
    stripped: set[str] = field(default_factory=set)
    #: Objects whose serialization raised: (kind, key, reason).
    broken: list[tuple[str, str, str]] = field(default_factory=list)
    #: The commit waits for the disk (PostgreSQL's synchronous_commit): something outside
    #: the runner is told of it. False only for a step's own transitions.
    synchronous: bool = True
    #: Written even with no row: a synchronous commit that puts earlier asynchronous ones on
    #: disk (what a `durable()` caller waits for).
    flush_only: bool = False

    def merge(self, later: Batch) -> Batch:
        """`later` wins for rows present in both."""
        self.runs.update(later.runs)
        self.executions.update(later.executions)
        self.deployments.update(later.deployments)
        self.sites.update(later.sites)
        self.logs += later.logs
        self.outbox += later.outbox
        self.claims += later.claims
        self.callbacks += later.callbacks
        self.objects.update(later.objects)
        self.stripped |= later.stripped
        self.broken += later.broken
        self.synchronous = self.synchronous or later.synchronous
        self.flush_only = self.flush_only or later.flush_only
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
            or self.callbacks
            or self.broken
        )

    def units(self) -> list[Unit]:
        """One unit per object: a run with its executions, a deployment, a site, a log line,
        an outbox message, a claim, a callback."""
        units: list[Unit] = []
        per_run: dict[str, Batch] = {}
        for rid, row in self.runs.items():
            per_run[rid] = Batch(runs={rid: row}, objects=_pick(self.objects, rid))
        for eid, row in self.executions.items():
            rid = row["run_id"]
            if rid not in per_run:
                per_run[rid] = Batch(objects=_pick(self.objects, rid))
            per_run[rid].executions[eid] = row
        for rid, part in per_run.items():
            if rid in self.stripped:
                part.stripped.add(rid)
            units.append(Unit("run", rid, part))
        units += [
            Unit("deployment", k, Batch(deployments={k: r})) for k, r in self.deployments.items()
        ]
        units += [Unit("site", k, Batch(sites={k: r})) for k, r in self.sites.items()]
        for line in self.logs:
            where = line["execution_id"] or f"{line['deployment_id']}/{line['step_id']}"
            key = f"{where}#{line['seq']}@{line['at'].isoformat()}"
            units.append(Unit("log", key, Batch(logs=[line])))
        units += [Unit("outbox", m.event_id, Batch(outbox=[m])) for m in self.outbox]
        units += [Unit("claim", c["message_id"], Batch(claims=[c])) for c in self.claims]
        units += [Unit("callback", c["run_id"], Batch(callbacks=[c])) for c in self.callbacks]
        return units

    def payload(self) -> dict[str, list[Any]]:
        """The rows, as parked."""
        doc: dict[str, list[Any]] = {}
        for name in ("runs", "executions", "deployments", "sites"):
            rows = getattr(self, name)
            if rows:
                doc[name] = list(rows.values())
        for name in ("logs", "claims", "callbacks"):
            if getattr(self, name):
                doc[name] = list(getattr(self, name))
        if self.outbox:
            doc["outbox"] = [
                {
                    "event_id": m.event_id,
                    "exchange": m.exchange,
                    "routing_key": m.routing_key,
                    "type": m.type,
                    "body": m.body,
                    "headers": m.headers,
                }
                for m in self.outbox
            ]
        return doc

    @classmethod
    def from_payload(cls, doc: dict[str, list[Any]]) -> Batch:
        """A batch writing the parked rows again."""
        batch = cls()
        for name in ("runs", "executions", "deployments", "sites"):
            getattr(batch, name).update({row["id"]: row for row in doc.get(name, [])})
        batch.logs = list(doc.get("logs", []))
        batch.claims = list(doc.get("claims", []))
        batch.callbacks = list(doc.get("callbacks", []))
        batch.outbox = [OutgoingMessage(**m) for m in doc.get("outbox", [])]
        return batch


def _pick(objects: dict[str, Run], rid: str) -> dict[str, Run]:
    return {rid: objects[rid]} if rid in objects else {}


@dataclass
class Unit:
    kind: str
    key: str
    batch: Batch


def combine(units: list[Unit]) -> Batch:
    batch = Batch()
    for unit in units:
        batch.merge(unit.batch)
    return batch


class Interrupted(Exception):
    """A transient failure while the failing rows were looked for: `remaining` (not committed
    yet) is retried like any batch."""

    def __init__(self, remaining: Batch) -> None:
        super().__init__("interrupted")
        self.remaining = remaining


def _strip_run(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "results": None, "reason": clean_text(row["reason"])[:2000]}


def _strip_execution(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "inputs": {},
        "outputs": None,
        "outputs_list": None,
        "error": clean_text(row["error"])[:2000],
        "traceback": "",
        "progress_message": clean_text(row["progress_message"])[:500],
    }


class BatchWriter:
    """Writes a batch in one transaction (also used to retry parked rows)."""

    def __init__(self) -> None:
        self._parts = {t.name: _upsert(t) for t in (runs, executions, deployments, sites)}
        self._parts["logs"] = RawInsert(
            log_lines,
            "ON CONFLICT (execution_id, seq) WHERE execution_id <> '' DO NOTHING",
            _LOG_COLUMNS,
        )
        self._statements: dict[tuple[tuple[str, ...], bool], str] = {}
        self._insert_claims = pg_insert(processed_messages).on_conflict_do_nothing()
        self._insert_callbacks = pg_insert(run_callbacks).on_conflict_do_nothing()

    async def write(self, engine: AsyncEngine, batch: Batch) -> None:
        if batch.outbox or batch.claims or batch.callbacks:
            await self._write_with_sqlalchemy(engine, batch)
        else:
            await self._write_raw(engine, batch)

    def statement(self, batch: Batch) -> tuple[str, list[Any]]:
        """The batch's rows and log lines in one statement, its commit mode with them: one
        data-modifying CTE per table that has rows (`WITH runs_rows AS (INSERT ...), ...`), the
        final `SELECT` setting the commit mode (see `_ASYNC`, `_SYNC`, `_FLUSH`). Its text
        depends only on which tables have rows and the mode: prepared once per connection."""
        # Each table's rows are unique by id (the batch's dicts are keyed by it): one statement
        # may not upsert a row twice ("command cannot affect row a second time").
        rows: dict[str, Sequence[dict[str, Any]]] = {
            "runs": list(batch.runs.values()),
            "executions": list(batch.executions.values()),
            "deployments": list(batch.deployments.values()),
            "sites": list(batch.sites.values()),
            "logs": batch.logs,
        }
        present = tuple(name for name in _PARTS if rows[name])
        key = (present, batch.synchronous)
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = self._build(present, batch.synchronous)
        args: list[Any] = []
        for name in present:
            args += self._parts[name].arrays(rows[name])
        return sql, args

    def _build(self, present: tuple[str, ...], synchronous: bool) -> str:
        ctes, first = [], 1
        for name in present:
            part = self._parts[name]
            ctes.append(f"{name}_rows AS ({part.sql(first)})")
            first += len(part.columns)
        final = _ASYNC
        if synchronous:
            final = _SYNC if any(n in _UPSERTED for n in present) else f"{_SYNC}, {_FLUSH}"
        return f"WITH {', '.join(ctes)} {final}" if ctes else final

    async def _write_raw(self, engine: AsyncEngine, batch: Batch) -> None:
        """The hot path (runs, executions, deployments, sites, log lines): one statement on the
        driver's connection, outside any transaction block: its own implicit transaction, all
        of it or nothing, committed in the mode it sets. One round trip (its preparation once
        per connection), where a transaction block took four or five (`BEGIN` with the mode,
        an executemany per table, `COMMIT`), most of a commit's time on the runner's side."""
        sql, args = self.statement(batch)
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            try:
                await raw.execute(sql, *args)
            except asyncio.CancelledError:
                # Stopped mid-call: the connection's protocol state is unknown.
                await conn.invalidate()
                raise
            except Exception:
                # The pool must not hand out a connection inside a transaction, or a dead one.
                if not await _rolled_back(raw):
                    await conn.invalidate()
                raise

    async def _write_with_sqlalchemy(self, engine: AsyncEngine, batch: Batch) -> None:
        """Batches with messages (outbox, claims) or callbacks: the kit's outbox insert runs
        on SQLAlchemy's connection, in the same transaction."""
        async with engine.begin() as conn:
            # SQLAlchemy's statements first: the driver begins the transaction at the first
            # one (there is one: what sent the batch here), so that the statement of the rows,
            # sent on the driver's connection itself, runs in it too (not committed on its
            # own). It sets the commit mode, `SET LOCAL` in this transaction.
            if batch.outbox:
                # The kit's own insert (its retry columns take their defaults), in this
                # transaction.
                for message in batch.outbox:
                    await add_to_outbox(conn, outbox, message)
            if batch.claims:
                await conn.execute(self._insert_claims, batch.claims)
            if batch.callbacks:
                await conn.execute(self._insert_callbacks, batch.callbacks)
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            sql, args = self.statement(batch)
            await raw.execute(sql, *args)


async def _rolled_back(raw: Any) -> bool:
    """After a failed statement: out of the transaction, the connection reusable (False: it is
    gone or does not answer, drop it)."""
    if raw.is_closed():
        return False
    try:
        if raw.is_in_transaction():
            await raw.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - any failure here means: do not reuse it
        return False
    return True


class SqlRecorder:
    def __init__(
        self,
        engine: AsyncEngine,
        box: SecretBox,
        encode_event: EventEncoder,
        on_outbox: Callable[[], None] | None = None,
        *,
        commit_mode: str = "acknowledged",
        linger_seconds: float = 0.0,
        lazy_seconds: float = 0.0,
    ) -> None:
        self._engine = engine
        #: With two runs or more in progress, how long the oldest change waits for others before
        #: its batch is taken (RYAX_RUNNER_COMMIT_LINGER_SECONDS): group commit.
        self._linger = linger_seconds
        #: How many runs are in progress (the engine's): the linger's measure of load.
        self._runs_in_progress: Callable[[], int] = lambda: 0
        #: "every": each commit waits for the disk; "acknowledged": only those something
        #: outside the runner is told of (RYAX_RUNNER_COMMIT_MODE).
        self._every_commit_synchronous = commit_mode == "every"
        #: A `durable()` caller waits: the next batch waits for the disk.
        self._disk_wanted = False
        #: An asynchronous commit may not be on disk yet.
        self._unflushed = False
        self._box = box
        self._encode = encode_event
        self._on_outbox = on_outbox
        self._on_unrecordable: UnrecordableListener | None = None
        self._runs: dict[str, Run] = {}
        #: Runs marked lazily (`run(lazy=True)`) and when each is due (monotonic clock), oldest
        #: first: marked for good once due, or at their next plain mark
        #: (RYAX_RUNNER_LAZY_RECORD_SECONDS).
        self._lazy_seconds = lazy_seconds
        self._lazy: dict[str, tuple[float, Run]] = {}
        self._lazy_timer: asyncio.TimerHandle | None = None
        self._deployments: dict[str, Deployment] = {}
        self._sites: dict[str, Site] = {}
        self._logs: list[LogLine] = []
        self._claims: list[str] = []
        self._callbacks: list[dict[str, Any]] = []
        self._generation = 0
        self._committed = 0
        #: When the oldest change not taken into a batch yet was marked (monotonic clock).
        self._oldest_mark: float | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: `when_durable` callbacks with the generation they wait for (non-decreasing).
        self._callbacks_due: deque[tuple[int, Callable[[], None]]] = deque()
        self._listeners: list[CommitListener] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.commits = 0
        self.last_commit_seconds = 0.0
        self._writer = BatchWriter()
        #: Runs set aside: written in their simpler form (values left out) from now on.
        self._simplify: set[str] = set()
        #: Set-aside records not written to `parked_records` yet (the database refused them
        #: too, or went away): tried again.
        self._to_park: list[ParkedRow] = []
        #: Parked deployments and sites (kind, key): a later successful write resolves them.
        self._parked_keys: set[tuple[str, str]] = set()
        self._to_resolve: set[tuple[str, str]] = set()
        #: Records in `parked_records` (the gauge ryax_runner_parked_records).
        self.parked_count = 0

    def set_outbox_listener(self, on_outbox: Callable[[], None]) -> None:
        self._on_outbox = on_outbox

    def set_load(self, runs_in_progress: Callable[[], int]) -> None:
        """How many runs are in progress: with two or more, commits linger (group commit)."""
        self._runs_in_progress = runs_in_progress

    def set_unrecordable_listener(self, listener: UnrecordableListener) -> None:
        """Told when a run's write is set aside (the engine ends the run)."""
        self._on_unrecordable = listener

    # -- marking (synchronous, cheap) ----------------------------------------------------------

    def _bump(self) -> None:
        self._generation += 1
        if self._oldest_mark is None:
            self._oldest_mark = time.monotonic()
        self._wake.set()

    def run(self, run: Run, *, lazy: bool = False) -> None:
        if lazy and self._lazy_seconds > 0 and not self._stopping:
            if run.id not in self._runs and run.id not in self._lazy:
                self._lazy[run.id] = (time.monotonic() + self._lazy_seconds, run)
                if self._lazy_timer is None:
                    self._arm_lazy()
            return
        self._lazy.pop(run.id, None)
        self._runs[run.id] = run
        self._bump()

    @property
    def lazy_runs(self) -> int:
        """Runs marked lazily and not marked for good yet."""
        return len(self._lazy)

    def _arm_lazy(self) -> None:
        due = next(iter(self._lazy.values()))[0]
        delay = max(0.0, due - time.monotonic())
        self._lazy_timer = asyncio.get_running_loop().call_later(delay, self._lazy_due)

    def _lazy_due(self) -> None:
        """Mark for good the lazily marked runs whose time is up."""
        self._lazy_timer = None
        self._mark_lazy(time.monotonic())
        if self._lazy:
            self._arm_lazy()

    def _mark_lazy(self, until: float) -> None:
        """Mark for good the lazily marked runs due by `until` (the oldest first)."""
        marked = False
        while self._lazy:
            run_id, (due, run) = next(iter(self._lazy.items()))
            if due > until:
                break
            del self._lazy[run_id]
            self._runs[run_id] = run
            marked = True
        if marked:
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

    def callback(self, run_id: str, project: str, url: str, now: datetime) -> None:
        """Record the callback an endpoint call asked for, with its run (same batch)."""
        self._callbacks.append(
            {
                "run_id": run_id,
                "project": project,
                "url": url,
                "state": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "last_error": "",
                "delivered_at": None,
            }
        )
        self._bump()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    async def durable(self) -> None:
        """Wait until everything marked so far is committed and on disk (what a client is
        told of: a run accepted or answered). A run marked lazily is not marked yet: mark it
        plainly first if it must be (`Engine.durable(run)`)."""
        if self._unflushed or self._committed < self._generation:
            # A batch of its own past the one in flight, which may be written without waiting
            # for the disk: the next one waits for it (and so for every commit before it).
            self._disk_wanted = True
            self._bump()
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
        if self._committed >= target and not self._callbacks_due:
            callback()
        else:
            self._callbacks_due.append((target, callback))

    # -- committing ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="runner-recorder")

    async def stop(self) -> None:
        """Commit what is pending (lazily marked runs too), then stop."""
        self._stopping = True
        self._mark_lazy(float("inf"))
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
            self._lazy_timer = None
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                log.error("recorder could not commit its last batch before stopping")
            self._task = None

    def _execution_row(self, run: Run, execution: Execution) -> dict[str, Any]:
        """Password-type outputs sealed (the step's, the trigger's fields)."""
        sensitive = run.definition.sensitive_outputs(execution.step_id)
        return execution_row(execution, self._box, sensitive)

    def _serialize_run(self, run: Run, batch: Batch) -> None:
        strip = run.id in self._simplify
        row = run_row(run, self._box)
        rows: dict[str, dict[str, Any]] = {}
        for eid in run.touched:
            execution = run.executions.get(eid)
            if execution is not None:
                rows[eid] = self._execution_row(run, execution)
        if strip:
            row = _strip_run(row)
            rows = {eid: _strip_execution(r) for eid, r in rows.items()}
            batch.stripped.add(run.id)
        batch.runs[run.id] = row
        batch.executions.update(rows)
        batch.objects[run.id] = run

    def _take(self) -> Batch:
        batch = Batch()
        for run in self._runs.values():
            try:
                self._serialize_run(run, batch)
            except Exception as exc:  # noqa: BLE001 - set aside below, never a wedged recorder
                batch.objects[run.id] = run
                if run.id in self._simplify:
                    batch.stripped.add(run.id)  # even its simpler form: given up
                batch.broken.append(("run", run.id, f"cannot be serialized: {describe(exc)}"))
            run.touched.clear()
        for d in self._deployments.values():
            try:
                batch.deployments[d.id] = deployment_row(d, self._box)
                batch.outbox += [self._encode(event) for event in d.events]
            except Exception as exc:  # noqa: BLE001 - set aside below
                batch.broken.append(("deployment", d.id, f"cannot be serialized: {describe(exc)}"))
            d.events.clear()
        for s in self._sites.values():
            try:
                batch.sites[s.id] = site_row(s)
            except Exception as exc:  # noqa: BLE001 - set aside below
                batch.broken.append(("site", s.id, f"cannot be serialized: {describe(exc)}"))
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
        batch.callbacks = self._callbacks
        self._runs, self._deployments, self._sites = {}, {}, {}
        self._logs, self._claims, self._callbacks = [], [], []
        return batch

    async def _write(self, batch: Batch) -> None:
        await self._writer.write(self._engine, batch)
        self._unflushed = not batch.synchronous

    def _take_marked(self) -> Batch:
        """`_take`, and whether the commit must wait for the disk."""
        batch = self._take()
        self._oldest_mark = None
        batch.synchronous = (
            self._every_commit_synchronous
            or self._disk_wanted
            or self._stopping
            or bool(batch.outbox or batch.claims or batch.callbacks)
        )
        batch.flush_only = batch.synchronous and self._unflushed
        self._disk_wanted = False
        return batch

    async def flush_now(self) -> None:
        """Commit what is pending now (used when the background task is not running)."""
        generation = self._generation
        batch = self._take_marked()
        if not batch.empty or batch.flush_only:
            await self._write(batch)
        self._done(generation, batch)

    def _done(self, generation: int, batch: Batch) -> None:
        self._committed = max(self._committed, generation)
        self.commits += 1
        self._simplify -= batch.stripped
        if self._parked_keys:
            written = {("deployment", k) for k in batch.deployments}
            written |= {("site", k) for k in batch.sites}
            resolved = written & self._parked_keys
            self._parked_keys -= resolved
            self._to_resolve |= resolved
        callbacks = self._callbacks_due
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

    async def _commit(self, batch: Batch) -> tuple[Batch, list[tuple[Unit, str]]]:
        """Write the batch; when it fails for a cause that is not transient, write everything
        but the objects that fail. Returns what was committed and what must be set aside."""
        broken = [(Unit(kind, key, Batch()), reason) for kind, key, reason in batch.broken]
        for unit, _ in broken:
            if unit.kind == "run" and unit.key in batch.objects:
                unit.batch.objects[unit.key] = batch.objects[unit.key]
                if unit.key in batch.stripped:
                    unit.batch.stripped.add(unit.key)
        batch.broken = []
        if batch.empty and not batch.flush_only:
            return batch, broken
        try:
            await self._write(batch)
        except Exception as exc:
            if is_transient(exc):
                batch.broken = [(u.kind, u.key, r) for u, r in broken]
                raise
            log.warning(
                "a batch could not be recorded; looking for the rows that fail",
                extra={"reason": describe(exc)},
            )
        else:
            return batch, broken
        try:
            committed, parked = await self._isolate(batch.units())
        except Interrupted as exc:
            exc.remaining.broken += [(u.kind, u.key, r) for u, r in broken]
            exc.remaining.objects.update(batch.objects)
            raise
        return combine(committed), broken + parked

    async def _isolate(self, units: list[Unit]) -> tuple[list[Unit], list[tuple[Unit, str]]]:
        """Bisect: write halves in their own transactions until each failing object is alone."""
        committed: list[Unit] = []
        parked: list[tuple[Unit, str]] = []
        groups = [units]
        while groups:
            group = groups.pop()
            try:
                await self._write(combine(group))
            except Exception as exc:
                if is_transient(exc):
                    remaining = [u for g in groups for u in g] + group
                    raise Interrupted(combine(remaining)) from exc
                if len(group) == 1:
                    parked.append((group[0], describe(exc)))
                else:
                    middle = len(group) // 2
                    groups += [group[middle:], group[:middle]]
                continue
            committed += group
        return committed, parked

    def _set_aside(self, unit: Unit, reason: str) -> None:
        """Log the object, end it if it is a run, keep its record to park."""
        log.error(
            "record set aside: it cannot be written",
            extra={"kind": unit.kind, "key": unit.key, "reason": reason},
        )
        payload = unit.batch.payload()
        run = unit.batch.objects.get(unit.key) if unit.kind == "run" else None
        if run is not None:
            again = unit.key in unit.batch.stripped
            self._simplify.discard(unit.key)
            if not again:
                self._simplify.add(run.id)
                if self._on_unrecordable is not None:
                    try:
                        self._on_unrecordable(run, reason)
                    except Exception:
                        log.exception("ending a run that could not be recorded failed")
                try:  # the run as it ended: the payload a retry writes
                    payload = {
                        "runs": [run_row(run, self._box)],
                        "executions": [
                            self._execution_row(run, e) for e in run.executions.values()
                        ],
                    }
                except Exception:  # the captured rows then
                    log.exception("run could not be serialized for parking")
        if unit.kind in ("deployment", "site"):
            self._parked_keys.add((unit.kind, unit.key))
        self._to_park.append(
            ParkedRow(
                kind=unit.kind,
                key=unit.key,
                payload=encode_payload(payload),
                reason=reason,
                at=datetime.now(UTC),
            )
        )

    async def _flush_parked(self) -> None:
        """Write the set-aside records (and resolve the obsolete ones); kept to try again when
        the database refuses."""
        if self._to_park:
            rows = self._to_park
            try:
                async with self._engine.begin() as conn:
                    await park(conn, rows)
            except Exception:
                log.exception("set-aside records could not be written yet, will retry")
                return
            self._to_park = self._to_park[len(rows) :]
            await self._refresh_parked()
        if self._to_resolve:
            keys, self._to_resolve = self._to_resolve, set()
            try:
                await resolve(self._engine, keys)
            except Exception:
                self._to_resolve |= keys
                log.exception("resolved parked records could not be deleted yet")
                return
            await self._refresh_parked()

    async def _refresh_parked(self) -> None:
        try:
            self.parked_count, keys = await count_parked(self._engine)
        except Exception:  # a gauge; read again later
            log.debug("parked records not counted", exc_info=True)
            return
        self._parked_keys = keys

    async def _loop(self) -> None:
        pending: Batch | None = None
        failures = 0
        await self._refresh_parked()
        while True:
            if pending is None and self._generation == self._committed:
                if self._stopping:
                    await self._flush_parked()
                    return
                if self._to_park or self._to_resolve:
                    await self._flush_parked()
                try:
                    await asyncio.wait_for(self._wake.wait(), PARKED_REFRESH_SECONDS)
                except TimeoutError:
                    await self._refresh_parked()
                    continue
            if self._linger and self._runs_in_progress() > 1 and not self._stopping:
                # Other runs are in progress: their next changes, a moment away, go in this
                # commit too (one run alone is never held). Measured under load: half the
                # commits, a quarter less CPU in the runner and PostgreSQL, lower latency.
                # The linger counts from the oldest change waiting: one marked while the
                # previous commit was in flight has waited already, and others had that time
                # to join it.
                oldest = self._oldest_mark
                waited = 0.0 if oldest is None else time.monotonic() - oldest
                if waited < self._linger:
                    await asyncio.sleep(self._linger - waited)
            self._wake.clear()
            generation = self._generation
            batch = self._take_marked()
            if pending is not None:
                batch = pending.merge(batch)
            if batch.empty and not batch.flush_only:
                self._done(generation, batch)
                continue
            started = time.perf_counter()
            try:
                committed, parked = await self._commit(batch)
            except Exception as exc:  # noqa: BLE001 - transient: the batch waits and is retried
                failures += 1
                pending = exc.remaining if isinstance(exc, Interrupted) else batch
                log.warning(
                    "recording failed (transient), will retry",
                    extra={"failures": failures, "reason": describe(exc)},
                )
                if self._stopping and failures > 5:
                    return
                await asyncio.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))
                continue
            failures, pending = 0, None
            self.last_commit_seconds = time.perf_counter() - started
            for unit, reason in parked:
                self._set_aside(unit, reason)
            if parked:
                await self._flush_parked()  # on failure kept, tried again: never a wait
            self._done(generation, committed)
