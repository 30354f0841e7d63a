"""The lease against the real PostgreSQL: one holder at a time; a second acquirer waits and
takes over once the first releases; the holder's connection terminated fires `lost`."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from ryax_kit.database import Lease, ensure_database
from ryax_kit.database.lease import lease_key

pytestmark = pytest.mark.integration


async def test_a_second_acquirer_waits_and_takes_over_on_release(fresh_database: str) -> None:
    await ensure_database(fresh_database)
    first, second = Lease(fresh_database, "test"), Lease(fresh_database, "test", retry_seconds=0.1)
    await first.acquire()
    assert first.held
    waiting = asyncio.create_task(second.acquire())
    await asyncio.sleep(0.5)
    assert not waiting.done() and not second.held
    assert await second.try_acquire() is False
    assert "ryax-test" in await second.holder()  # says who holds it
    await first.release()
    await asyncio.wait_for(waiting, 5)
    assert second.held and not first.held
    assert not first.lost.is_set()  # a release is not a loss
    await second.release()


async def test_leases_of_other_names_or_databases_do_not_clash(
    fresh_database: str, make_database: object
) -> None:
    other_db = make_database()  # type: ignore[operator]
    await ensure_database(fresh_database)
    a = Lease(fresh_database, "runner")
    b = Lease(fresh_database, "other")
    c = Lease(other_db, "runner")
    assert lease_key(fresh_database, "runner") != lease_key(other_db, "runner")
    for lease in (a, b, c):
        assert await lease.try_acquire()
    for lease in (a, b, c):
        await lease.release()


async def test_terminating_the_holders_connection_fires_lost(fresh_database: str) -> None:
    await ensure_database(fresh_database)
    holder = Lease(fresh_database, "test", check_seconds=0.2)
    successor = Lease(fresh_database, "test", retry_seconds=0.1)
    await holder.acquire()
    dsn = fresh_database.dsn  # type: ignore[attr-defined]
    admin = await asyncpg.connect(dsn)
    try:
        terminated = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            holder.identity,
        )
        assert terminated == 1
    finally:
        await admin.close()
    await asyncio.wait_for(holder.lost.wait(), 5)
    assert not holder.held
    await asyncio.wait_for(successor.acquire(), 5)  # the lock went with the session
    await successor.release()
    await holder.release()
