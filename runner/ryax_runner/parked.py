"""Records the runner could not write, set aside in `parked_records`: list and retry them.

    RYAX_DATABASE_URL=postgresql+asyncpg://.../ryax_runner python -m ryax_runner.parked list
    ... python -m ryax_runner.parked show ID        # the record with its payload
    ... python -m ryax_runner.parked retry ID       # write its rows again

`retry` writes the parked rows as they were kept (a run: as it ended, FAILED "could not be
recorded", with every value it had); once written, the record is deleted. Still refused: the
record stays, with one more attempt and the new reason (exit status 1). See docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.database import create_engine

from .infrastructure.database.parking import decode_payload, describe, now
from .infrastructure.database.recorder import Batch, BatchWriter
from .infrastructure.database.tables import parked_records


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "reason": row.reason,
        "attempts": row.attempts,
        "first_failed_at": row.first_failed_at.isoformat(),
        "last_failed_at": row.last_failed_at.isoformat(),
    }


async def list_parked(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        found = await conn.execute(sa.select(parked_records).order_by(parked_records.c.id))
        return [_summary(row) for row in found.all()]


async def retry(engine: AsyncEngine, record_id: int) -> tuple[bool, str]:
    """Write a parked record's rows again: (True, "") and the record deleted, or (False,
    reason) and the record kept with one more attempt."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(sa.select(parked_records).where(parked_records.c.id == record_id))
        ).first()
    if row is None:
        return False, f"no parked record {record_id}"
    try:
        batch = Batch.from_payload(decode_payload(row.payload))
        await BatchWriter().write(engine, batch)
    except Exception as exc:  # noqa: BLE001 - the reason is kept and shown
        reason = describe(exc)
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(parked_records)
                .where(parked_records.c.id == record_id)
                .values(attempts=parked_records.c.attempts + 1, reason=reason, last_failed_at=now())
            )
        return False, reason
    async with engine.begin() as conn:
        await conn.execute(sa.delete(parked_records).where(parked_records.c.id == record_id))
    return True, ""


async def main(argv: list[str], database_url: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ryax_runner.parked", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the parked records, oldest first")
    listing.add_argument("--json", action="store_true", help="as a JSON array")
    commands.add_parser("show", help="one record with its payload").add_argument("id", type=int)
    commands.add_parser("retry", help="write a record's rows again").add_argument("id", type=int)
    args = parser.parse_args(argv)
    url = database_url or os.environ.get("RYAX_DATABASE_URL", "")
    if not url:
        _out("configuration error: RYAX_DATABASE_URL is not set")
        return 2
    engine = create_engine(url, pool_size=1)
    try:
        if args.command == "list":
            records = await list_parked(engine)
            if args.json:
                _out(json.dumps(records, indent=2))
            elif not records:
                _out("no parked record")
            for r in [] if args.json else records:
                _out(
                    f"{r['id']}\t{r['kind']}\t{r['key']}\tattempts={r['attempts']}\t"
                    f"since {r['first_failed_at']}\t{r['reason']}"
                )
            return 0
        if args.command == "show":
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(parked_records).where(parked_records.c.id == args.id)
                    )
                ).first()
            if row is None:
                _out(f"no parked record {args.id}")
                return 1
            _out(json.dumps({**_summary(row), "payload": json.loads(row.payload)}, indent=2))
            return 0
        ok, reason = await retry(engine, args.id)
        _out(f"record {args.id} written and removed" if ok else f"still refused: {reason}")
        return 0 if ok else 1
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
