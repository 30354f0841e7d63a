"""One holder at a time: a lease on a PostgreSQL session advisory lock.

`Lease(url, name)` takes `pg_try_advisory_lock(key)` (the key derived from the name and the
database's name) on a connection of its own, opened for that and held for the holder's life:
the lock is the session's, so it is released when the holder releases it, exits, or loses that
connection (the database restarted, the backend was terminated). While another process holds
it, `acquire()` tries again every `retry_seconds`, saying who holds it (the holder's
application name: `ryax-<name> <host> pid <pid>`).

Once held, the connection is watched (its termination, and a `SELECT 1` every
`check_seconds`): when it is gone the lock may already be someone else's, so `held` turns
False and the `lost` event is set. What to do then is the holder's decision; the safe one is to
stop acting at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import zlib
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

#: How long between two logs "waiting for the lease" while another process holds it.
WAITING_LOG_SECONDS = 30.0


def lease_key(url: str, name: str) -> int:
    """The advisory lock key of the lease `name` on the database of `url`."""
    database = make_url(url).database or ""
    return zlib.crc32(f"ryax-lease:{name}:{database}".encode())


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Lease:
    def __init__(
        self,
        url: str,
        name: str,
        *,
        retry_seconds: float = 1.0,
        check_seconds: float = 2.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.key = lease_key(url, name)
        self.identity = f"ryax-{name} {socket.gethostname()} pid {os.getpid()}"[:63]
        self._dsn = _dsn(url)
        self._retry = retry_seconds
        self._check = check_seconds
        self._connect_timeout = connect_timeout
        self._conn: asyncpg.Connection | None = None
        self._watch: asyncio.Task[None] | None = None
        self._held = False
        self._releasing = False
        #: Set when the lease was held and its connection was lost.
        self.lost = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._held

    async def _connect(self) -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            server_settings={"application_name": self.identity},
        )
        return conn

    async def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; never waits. Connection errors propagate."""
        if self._held:
            return True
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        got = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key))
        if got:
            self._held, self._releasing = True, False
            self.lost.clear()
            self._conn.add_termination_listener(self._terminated)
            self._watch = asyncio.create_task(self._watch_loop(), name=f"lease-{self.name}")
            log.info("lease taken", extra={"lease": self.name, "holder": self.identity})
        return got

    async def holder(self) -> str:
        """Who holds the lease (its application name and backend pid), or "" if nobody."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        row = await self._conn.fetchrow(
            "SELECT a.application_name, a.pid, a.client_addr::text AS addr FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
            "AND l.granted AND l.classid = 0 AND l.objid = $1::bigint::oid AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            self.key,
        )
        if row is None:
            return ""
        who = row["application_name"] or "an unnamed session"
        return f"{who} (backend {row['pid']}{', ' + row['addr'] if row['addr'] else ''})"

    async def acquire(self) -> None:
        """Wait until the lease is held, trying every `retry_seconds` (the database being
        unreachable is waited for too)."""
        last_log = -WAITING_LOG_SECONDS
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await self.try_acquire():
                    return
                who = await self.holder()
                problem = f"held by {who or 'another process'}"
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                await self._close()
                problem = f"database unreachable ({exc})"
            if loop.time() - last_log >= WAITING_LOG_SECONDS:
                log.warning(
                    f"waiting for the {self.name} lease {problem}",
                    extra={"lease": self.name},
                )
                last_log = loop.time()
            await asyncio.sleep(self._retry)

    def _terminated(self, _: Any) -> None:
        self._lose("its database connection was closed")

    def _lose(self, why: str) -> None:
        if not self._held or self._releasing:
            return
        self._held = False
        log.error(f"lease lost: {why}", extra={"lease": self.name})
        self.lost.set()

    async def _watch_loop(self) -> None:
        while self._held:
            await asyncio.sleep(self._check)
            conn = self._conn
            if conn is None or conn.is_closed():
                self._lose("its database connection is closed")
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self._check * 2 + 1)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self._lose(f"its database connection failed ({exc})")
                with contextlib.suppress(Exception):
                    conn.terminate()
                return

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()

    async def release(self) -> None:
        """Give the lease up (and close its connection); nothing if not held."""
        self._releasing = True
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if self._held and self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._conn.fetchval("SELECT pg_advisory_unlock($1)", self.key)
            log.info("lease released", extra={"lease": self.name})
        self._held = False
        await self._close()
