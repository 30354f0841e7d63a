"""Durable callbacks of the HTTP endpoint trigger.

A call with `callback_url` records the callback with its run (`run_callbacks`, written by the
recorder in the run's first batch). Once the run's end is recorded, the final result is POSTed
to the URL as JSON (`run_id, state, reason, results, http_status, failed_step_id`): at most
`attempts` times, the pauses growing from `backoff_seconds` (doubling, at most 5 minutes), each
attempt counted in the database before it is made and logged. An answer below 500 is a
delivery (recorded: never sent again); a 5xx, a refused connection or a timeout is tried again;
after the last attempt the callback is abandoned (logged at error). The work list is the
database, so a callback whose run ended while no delivery happened (the runner was down, the
receiver too) is delivered after a restart.

Outbound rule (`ryax_kit.net`, as at the call): before each attempt the URL is checked again
(its host resolved, every address public unless RYAX_OUTBOUND_ALLOW allows it); a refused one is
abandoned at once, saying why. The connection itself goes only to checked addresses (the
session's resolver checks again: DNS rebinding), and redirects are not followed (a 3xx answer
is a delivery, recorded with its status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ryax_kit.net import (
    OutboundAllow,
    OutboundRefused,
    Resolver,
    check_outbound_url,
    guarded_connector,
)

from ...domain.values import clean_text
from ..database.tables import run_callbacks, runs
from .routes import present

log = logging.getLogger(__name__)

ENDED = ("completed", "failed", "cancelled")
#: Longest pause between two attempts.
MAX_BACKOFF_SECONDS = 300.0
#: How often the database is looked at when nothing woke the sender.
POLL_SECONDS = 5.0
#: Callbacks POSTed at once.
CONCURRENCY = 10


def payload_of(run: Any, project: str) -> dict[str, Any]:
    """The callback's body from the run's recorded row (the same body as before it was
    durable)."""
    prefix = f"/runner/v1/projects/{urllib.parse.quote(project)}/runs/{run.id}/files/"
    results = present(run.results or {}, lambda k: prefix + urllib.parse.quote(k))
    return {
        "run_id": run.id,
        "state": run.state,
        "reason": run.reason or None,
        "results": results if run.state == "completed" else None,
        "http_status": run.http_status or None,
        "failed_step_id": run.failed_step_id or None,
    }


class CallbackSender:
    def __init__(
        self,
        db: AsyncEngine,
        *,
        attempts: int = 8,
        backoff_seconds: float = 2.0,
        timeout_seconds: float = 10.0,
        allow: OutboundAllow | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._db = db
        self._allow = allow or OutboundAllow()
        #: The resolver URLs are checked with before each attempt (None: the system's).
        self.resolver = resolver
        self.attempts = attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        #: Seconds until the soonest retry scheduled in this pass (at most POLL_SECONDS).
        self._next_due = POLL_SECONDS
        self.delivered = 0

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        return float(min(MAX_BACKOFF_SECONDS, self._backoff * 2 ** (attempt - 1)))

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(connector=guarded_connector(self._allow))
        self._task = asyncio.create_task(self._loop(), name="runner-callbacks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            self._next_due = POLL_SECONDS
            try:
                await self.deliver_due()
            except Exception:
                log.exception("callbacks: looking for due callbacks failed, will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, self._next_due))

    async def deliver_due(self) -> int:
        """POST every callback due (its run ended, its next attempt time reached)."""
        now = datetime.now(UTC)
        query = (
            sa.select(
                run_callbacks.c.run_id,
                run_callbacks.c.project,
                run_callbacks.c.url,
                run_callbacks.c.attempts,
                runs.c.id,
                runs.c.state,
                runs.c.reason,
                runs.c.results,
                runs.c.http_status,
                runs.c.failed_step_id,
            )
            .join(runs, runs.c.id == run_callbacks.c.run_id)
            .where(
                run_callbacks.c.state == "pending",
                run_callbacks.c.next_attempt_at <= now,
                runs.c.state.in_(ENDED),
            )
            .order_by(run_callbacks.c.next_attempt_at)
            .limit(100)
        )
        async with self._db.connect() as conn:
            due = (await conn.execute(query)).all()
        if not due:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(row: Any) -> None:
            async with gate:
                await self._deliver(row)

        await asyncio.gather(*(one(row) for row in due))
        if len(due) == 100:
            self._wake.set()
        return len(due)

    async def _deliver(self, row: Any) -> None:
        attempt = row.attempts + 1
        now = datetime.now(UTC)
        # The attempt is counted before it is made: a crash during the POST uses it up.
        async with self._db.begin() as conn:
            claimed = await conn.execute(
                sa.update(run_callbacks)
                .where(
                    run_callbacks.c.run_id == row.run_id,
                    run_callbacks.c.state == "pending",
                    run_callbacks.c.attempts == row.attempts,
                )
                .values(
                    attempts=attempt,
                    next_attempt_at=now + timedelta(seconds=self.delay(attempt)),
                )
            )
        if claimed.rowcount != 1:
            return  # taken meanwhile
        body = payload_of(row, row.project)
        extra = {"run_id": row.run_id, "attempt": attempt, "of": self.attempts}
        status, error = 0, ""
        assert self._session is not None
        try:
            await check_outbound_url(row.url, self._allow, resolver=self.resolver)
        except OutboundRefused as exc:
            error = clean_text(f"refused: {exc}")[:500]
            await self._set(row.run_id, state="abandoned", last_error=error)
            log.error("callback refused, abandoned", extra={**extra, "error": error})
            return
        try:
            async with self._session.post(
                row.url,
                json=body,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            error = clean_text(f"{type(exc).__name__}: {exc}")[:500]
        if status and status < 500:
            await self._set(
                row.run_id,
                state="delivered",
                delivered_at=datetime.now(UTC),
                last_error=""
                if status < 300
                else f"HTTP {status}" + (" (redirects are not followed)" if status < 400 else ""),
            )
            self.delivered += 1
            log.info("callback delivered", extra={**extra, "status": status})
            return
        error = error or f"HTTP {status}"
        if attempt >= self.attempts:
            await self._set(row.run_id, state="abandoned", last_error=error)
            log.error("callback abandoned", extra={**extra, "error": error})
            return
        await self._set(row.run_id, last_error=error)
        self._next_due = min(self._next_due, self.delay(attempt))
        log.warning(
            "callback attempt failed, will retry",
            extra={**extra, "error": error, "retry_in": self.delay(attempt)},
        )

    async def _set(self, run_id: str, **values: Any) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                sa.update(run_callbacks).where(run_callbacks.c.run_id == run_id).values(**values)
            )
