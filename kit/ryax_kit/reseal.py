"""Seal a service's stored values again with its current root secret, so that a previous one can
be retired (docs/operations.md, "Rotating the encryption key of data at rest").

A service that stores sealed values lists them in a small module that the operator runs with
the service's own environment (RYAX_DATABASE_URL, RYAX_SECRET_KEY, RYAX_SECRET_KEY_PREVIOUS):

    python -m ryax_repository.reseal           # seal again what a previous secret sealed
    python -m ryax_repository.reseal --check   # count it and change nothing (exit 1 if any)

    # ryax_repository/reseal.py
    def columns(ring: KeyRing) -> list[SealedColumn]:
        sealer = ring.sealer(PURPOSE)
        return [SealedColumn(repositories, "credentials", text_values(sealer, lambda r: r.id))]

    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:], prog="python -m ryax_repository.reseal", columns=columns))

Rows are read a page at a time in primary-key order. A value is written back only if its row
still holds the value that was read (compare and set: the column's type must support `=`, as
text, bytea and jsonb do), so a value the running service wrote meanwhile (sealed with the
current key already) is left alone: it is safe while the service runs, once the service runs
with the new secret. A value that no key of the ring opens is reported by its row's primary key,
never its content, and left as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .crypto import KeyRing, Sealer, Unsealable
from .database import create_engine
from .settings import Env

#: (row, stored value) -> the value sealed again with the current key, or None when it already
#: is; raises Unsealable when no key of the ring opens it.
RowReseal = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class SealedColumn:
    table: sa.Table
    column: str
    reseal: RowReseal

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


def text_values(sealer: Sealer, context: Callable[[Any], str] | None = None) -> RowReseal:
    """A text column of `Sealer.seal_text` values; `context(row)`: the context they were
    sealed with (default none)."""

    def reseal(row: Any, value: Any) -> str | None:
        return sealer.reseal_text(value, context(row) if context else "")

    return reseal


def bytes_values(sealer: Sealer, context: Callable[[Any], bytes] | None = None) -> RowReseal:
    """A binary column of `Sealer.seal` values."""

    def reseal(row: Any, value: Any) -> bytes | None:
        return sealer.reseal(bytes(value), context(row) if context else b"")

    return reseal


def json_values(
    sealer: Sealer, key: str = "sealed", context: Callable[[Any], str] | None = None
) -> RowReseal:
    """A JSON document holding `Sealer.seal_text` values under `key`, at any depth."""

    def walk(node: Any, ctx: str) -> tuple[Any, bool]:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            changed = False
            for name, value in node.items():
                if name == key and isinstance(value, str):
                    again = sealer.reseal_text(value, ctx)
                    out[name] = value if again is None else again
                    changed = changed or again is not None
                else:
                    out[name], sub = walk(value, ctx)
                    changed = changed or sub
            return out, changed
        if isinstance(node, list):
            items = [walk(item, ctx) for item in node]
            return [i for i, _ in items], any(c for _, c in items)
        return node, False

    def reseal(row: Any, value: Any) -> Any:
        document, changed = walk(value, context(row) if context else "")
        return document if changed else None

    return reseal


@dataclass
class ResealReport:
    column: str
    checked: int = 0
    #: Sealed again (with --check: still sealed with a previous secret).
    resealed: int = 0
    #: Written by the service between the read and the write: left as the service wrote it.
    changed_meanwhile: int = 0
    #: Primary keys of the rows whose value no key of the ring opens.
    unreadable: list[str] = field(default_factory=list)

    def summary(self, check: bool = False) -> str:
        done = "sealed with a previous secret" if check else "sealed again"
        text = f"{self.column}: {self.checked} values, {self.resealed} {done}"
        if self.changed_meanwhile:
            text += f", {self.changed_meanwhile} changed meanwhile by the service"
        if self.unreadable:
            text += (
                f", {len(self.unreadable)} that no configured secret opens "
                f"(rows {', '.join(self.unreadable[:20])}"
                + (", ..." if len(self.unreadable) > 20 else "")
                + ")"
            )
        return text


async def reseal_column(
    engine: AsyncEngine, sealed: SealedColumn, *, check: bool = False, page_size: int = 200
) -> ResealReport:
    table = sealed.table
    column = table.c[sealed.column]
    keys = list(table.primary_key.columns)
    if not keys:
        raise ValueError(f"{table.name} has no primary key")
    report = ResealReport(sealed.name)
    last: tuple[Any, ...] | None = None
    while True:
        query = sa.select(table).where(column.is_not(None)).order_by(*keys).limit(page_size)
        if last is not None:
            query = query.where(sa.tuple_(*keys) > sa.tuple_(*map(sa.literal, last)))
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return report
        for row in rows:
            mapping = row._mapping
            key = tuple(mapping[k] for k in keys)
            value = mapping[column]
            report.checked += 1
            try:
                again = sealed.reseal(row, value)
            except Unsealable:
                report.unreadable.append("/".join(str(k) for k in key))
                continue
            if again is None:
                continue
            if check:
                report.resealed += 1
                continue
            where = [k == v for k, v in zip(keys, key, strict=True)]
            async with engine.begin() as conn:
                result = await conn.execute(
                    sa.update(table).where(*where, column == value).values({column.name: again})
                )
            if result.rowcount == 1:
                report.resealed += 1
            else:
                report.changed_meanwhile += 1
        last = tuple(rows[-1]._mapping[k] for k in keys)


async def reseal_all(
    database_url: str, columns: Sequence[SealedColumn], *, check: bool = False
) -> list[ResealReport]:
    engine = create_engine(database_url, pool_size=2)
    try:
        return [await reseal_column(engine, c, check=check) for c in columns]
    finally:
        await engine.dispose()


def main(
    argv: Sequence[str],
    *,
    prog: str,
    columns: Callable[[KeyRing], Sequence[SealedColumn]],
    env: Mapping[str, str] | None = None,
) -> int:
    """The command a service's `reseal` module runs. Exit status: 0 done (with --check: nothing
    is sealed with a previous secret any more), 1 otherwise or when a value cannot be opened."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Seal the stored values again with the current RYAX_SECRET_KEY, so that the secrets "
            "in RYAX_SECRET_KEY_PREVIOUS can be retired. Run it with the service's environment, "
            "after the service was restarted with the new secret."
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="count the values still sealed with a previous secret; change nothing",
    )
    args = parser.parse_args(list(argv))
    e = Env.from_os(env)
    database_url = e.required("RYAX_DATABASE_URL")
    ring = KeyRing(KeyRing.read_secrets(e))
    reports = asyncio.run(reseal_all(database_url, columns(ring), check=args.check))
    for report in reports:
        sys.stdout.write(report.summary(args.check) + "\n")
    unreadable = any(r.unreadable for r in reports)
    pending = args.check and any(r.resealed for r in reports)
    if not unreadable and not pending:
        sys.stdout.write(
            "nothing is sealed with a previous secret: RYAX_SECRET_KEY_PREVIOUS can be emptied\n"
        )
        return 0
    return 1
