"""Rows set aside: what the recorder could not write, kept in `parked_records` with the reason.

A write that keeps failing (not for a transient cause) must never stop the recording of every
other change: the recorder finds the rows that fail and parks them here, one record per object
(a run with its executions, a deployment, a site, a log line, an outbox message, a claim, a
callback). The payload is the rows as JSON text in which anything unstorable is escaped
(`\\u0000`, lone surrogates, NaN are kept as JSON escapes or tokens in a text column), so
nothing is lost and an operator can retry once the cause is fixed (`python -m
ryax_runner.parked`).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ...domain.values import clean_text
from .tables import parked_records

#: Longest reason kept (the database's message, first line).
MAX_REASON = 500


@dataclass(frozen=True, kw_only=True)
class ParkedRow:
    kind: str
    key: str
    payload: str
    reason: str
    at: datetime


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    return {"$repr": repr(value)}


def _hook(doc: dict[str, Any]) -> Any:
    if len(doc) == 1:
        if "$datetime" in doc:
            return datetime.fromisoformat(doc["$datetime"])
        if "$bytes" in doc:
            return base64.b64decode(doc["$bytes"])
    return doc


def encode_payload(rows: dict[str, list[Any]]) -> str:
    """The rows as ASCII JSON: NUL, surrogates and the like stay escapes, NaN a token."""
    return json.dumps(rows, default=_default, ensure_ascii=True, allow_nan=True)


def decode_payload(text: str) -> dict[str, list[Any]]:
    doc: dict[str, list[Any]] = json.loads(text, object_hook=_hook)
    return doc


def describe(exc: BaseException) -> str:
    """One line naming the innermost cause of a failed write (never the SQL nor its rows)."""
    inner = exc
    while inner.__cause__ is not None and inner.__cause__ is not inner:
        inner = inner.__cause__
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    line = f"{type(inner).__name__}: {text}" if text else type(inner).__name__
    return clean_text(line)[:MAX_REASON]


async def park(conn: AsyncConnection, rows: list[ParkedRow]) -> None:
    """Insert the parked records; one already parked (same kind and key) gets the new payload
    and reason and one more attempt."""
    for row in rows:
        stmt = pg_insert(parked_records).values(
            kind=row.kind,
            key=clean_text(row.key)[:1000],
            payload=row.payload,
            reason=clean_text(row.reason)[:MAX_REASON],
            first_failed_at=row.at,
            last_failed_at=row.at,
            attempts=1,
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                constraint="uq_parked_records_kind_key",
                set_={
                    "payload": stmt.excluded.payload,
                    "reason": stmt.excluded.reason,
                    "last_failed_at": stmt.excluded.last_failed_at,
                    "attempts": parked_records.c.attempts + 1,
                },
            )
        )


async def count_parked(engine: AsyncEngine) -> tuple[int, set[tuple[str, str]]]:
    """How many records are parked, and the keys of the parked deployments and sites (a later
    successful write of one of them resolves its record)."""
    async with engine.connect() as conn:
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(parked_records))
        ).scalar_one()
        keys = (
            await conn.execute(
                sa.select(parked_records.c.kind, parked_records.c.key).where(
                    parked_records.c.kind.in_(("deployment", "site"))
                )
            )
        ).all()
    return int(total), {(k, v) for k, v in keys}


async def resolve(engine: AsyncEngine, keys: set[tuple[str, str]]) -> None:
    """Delete the records of objects written since (their parked version is obsolete)."""
    async with engine.begin() as conn:
        for kind, key in keys:
            await conn.execute(
                sa.delete(parked_records).where(
                    parked_records.c.kind == kind, parked_records.c.key == key
                )
            )


def now() -> datetime:
    return datetime.now(UTC)
