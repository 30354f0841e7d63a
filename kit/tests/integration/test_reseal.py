"""Re-sealing stored values on the real PostgreSQL: after it, values open with the new secret
alone, so the previous one can be retired."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.crypto import KeyRing, Unsealable
from ryax_kit.database import create_engine
from ryax_kit.reseal import (
    SealedColumn,
    bytes_values,
    json_values,
    main,
    reseal_column,
    text_values,
)

pytestmark = pytest.mark.integration

OLD = "old-secret-0123456789-0123456789-abcdef"
NEW = "new-secret-0123456789-0123456789-abcdef"
OTHER = "some-other-services-secret-0123456789-xyz"

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("project", sa.String(20), primary_key=True),
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("text_value", sa.Text, nullable=True),
    sa.Column("blob", sa.LargeBinary, nullable=True),
    sa.Column("doc", JSONB, nullable=True),
)


def context(row: Any) -> str:
    return f"{row.project}\x00{row.name}"


def columns(ring: KeyRing) -> list[SealedColumn]:
    return [
        SealedColumn(things, "text_value", text_values(ring.sealer("t/text"), context)),
        SealedColumn(
            things, "blob", bytes_values(ring.sealer("t/blob"), lambda r: context(r).encode())
        ),
        SealedColumn(things, "doc", json_values(ring.sealer("t/doc"))),
    ]


def row(ring: KeyRing, project: str, name: str) -> dict[str, Any]:
    ctx = f"{project}\x00{name}"
    doc = ring.sealer("t/doc")
    return {
        "project": project,
        "name": name,
        "text_value": ring.sealer("t/text").seal_text(f"text {name}", ctx),
        "blob": ring.sealer("t/blob").seal(f"blob {name}".encode(), ctx.encode()),
        "doc": {
            "steps": [
                {"inputs": {"a": {"secret": "pw", "sealed": doc.seal_text(f"doc {name}")}}},
                {"inputs": {"b": {"static": 1}}},
            ]
        },
    }


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url, pool_size=2)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def insert(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.insert(things), rows)


async def read_all(engine: AsyncEngine, ring: KeyRing) -> dict[str, tuple[str, str, str]]:
    async with engine.connect() as conn:
        found = (await conn.execute(sa.select(things).order_by(things.c.name))).all()
    out = {}
    for r in found:
        ctx = f"{r.project}\x00{r.name}"
        out[r.name] = (
            ring.sealer("t/text").open_text(r.text_value, ctx),
            ring.sealer("t/blob").open(r.blob, ctx.encode()).decode(),
            ring.sealer("t/doc").open_text(r.doc["steps"][0]["inputs"]["a"]["sealed"]),
        )
    return out


async def test_reseal_then_values_open_with_only_the_new_secret(engine: AsyncEngine) -> None:
    old, rotated, new_only = KeyRing([OLD]), KeyRing([NEW, OLD]), KeyRing([NEW])
    await insert(engine, [row(old, "p1", f"n{i:02}") for i in range(7)])
    await insert(engine, [row(rotated, "p2", "fresh")])  # already sealed with the new key
    with pytest.raises(Unsealable):
        await read_all(engine, new_only)

    checked = [await reseal_column(engine, c, check=True, page_size=3) for c in columns(rotated)]
    assert [(r.checked, r.resealed) for r in checked] == [(8, 7)] * 3
    with pytest.raises(Unsealable):  # --check changed nothing
        await read_all(engine, new_only)

    reports = [await reseal_column(engine, c, page_size=3) for c in columns(rotated)]
    assert [(r.checked, r.resealed, r.unreadable) for r in reports] == [(8, 7, [])] * 3
    values = await read_all(engine, new_only)
    assert values["n03"] == ("text n03", "blob n03", "doc n03")
    assert len(values) == 8

    again = [await reseal_column(engine, c) for c in columns(rotated)]
    assert [r.resealed for r in again] == [0, 0, 0]


async def test_unreadable_values_are_reported_by_key_and_left_alone(engine: AsyncEngine) -> None:
    await insert(engine, [row(KeyRing([OLD]), "p1", "a"), row(KeyRing([OTHER]), "p1", "b")])
    report = await reseal_column(engine, columns(KeyRing([NEW, OLD]))[0])
    assert (report.resealed, report.unreadable) == (1, ["p1/b"])
    assert "p1/b" in report.summary() and "text b" not in report.summary()


async def test_a_value_the_service_rewrote_meanwhile_is_kept(
    engine: AsyncEngine, db_url: str
) -> None:
    rotated = KeyRing([NEW, OLD])
    await insert(engine, [row(KeyRing([OLD]), "p1", "a")])
    newer = rotated.sealer("t/text").seal_text("newer", "p1\x00a")
    inner = text_values(rotated.sealer("t/text"), context)

    async def service_write() -> None:
        other = create_engine(db_url, pool_size=1)
        async with other.begin() as conn:
            await conn.execute(sa.update(things).values(text_value=newer))
        await other.dispose()

    def racing(r: Any, value: Any) -> Any:
        """The service writes between the read and the write of the re-seal."""
        again = inner(r, value)
        writer = threading.Thread(target=lambda: asyncio.run(service_write()))
        writer.start()
        writer.join()
        return again

    report = await reseal_column(engine, SealedColumn(things, "text_value", racing))
    assert (report.resealed, report.changed_meanwhile) == (0, 1)
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(things.c.text_value))).scalar_one()
    assert KeyRing([NEW]).sealer("t/text").open_text(stored, "p1\x00a") == "newer"


async def test_the_command(
    engine: AsyncEngine, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await insert(engine, [row(KeyRing([OLD]), "p1", "a")])
    env = {"RYAX_DATABASE_URL": db_url, "RYAX_SECRET_KEY": NEW, "RYAX_SECRET_KEY_PREVIOUS": OLD}

    def run(*argv: str, environment: dict[str, str] = env) -> int:
        return await_in_thread(
            lambda: main(list(argv), prog="reseal", columns=columns, env=environment)
        )

    assert run("--check") == 1
    assert "text_value: 1 values, 1 sealed with a previous secret" in capsys.readouterr().out
    assert run() == 0
    out = capsys.readouterr().out
    assert "1 sealed again" in out and "can be emptied" in out
    assert run("--check") == 0
    # The previous secret retired: everything still opens.
    assert run("--check", environment={**env, "RYAX_SECRET_KEY_PREVIOUS": ""}) == 0
    assert OLD not in capsys.readouterr().out
    assert run("--check", environment={**env, "RYAX_SECRET_KEY": OTHER}) == 1
    assert "no configured secret opens (rows p1/a)" in capsys.readouterr().out


def await_in_thread(call: Callable[[], int]) -> int:
    """`main` runs its own event loop (asyncio.run): not inside the test's."""
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(call()))
    worker.start()
    worker.join()
    return result[0]
