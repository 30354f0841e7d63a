"""The queue of reports to the runner, shared by the use cases (producers) and the stream."""

from __future__ import annotations

import asyncio

from ..domain.model import Numbered, Report, ReportBuffer


class ReportQueue:
    """An awaitable ReportBuffer: use cases add reports at any time, connected or not; the
    connection takes them one by one, acknowledges them, and resumes after a reconnect."""

    def __init__(self, buffer: ReportBuffer | None = None) -> None:
        self._buffer = buffer or ReportBuffer()
        self._changed = asyncio.Event()

    @property
    def buffer(self) -> ReportBuffer:
        return self._buffer

    def report(self, report: Report) -> None:
        self._buffer.add(report)
        self._changed.set()

    async def next(self) -> Numbered:
        """The next numbered report to write on the stream (waits for one)."""
        while True:
            numbered = self._buffer.take()
            if numbered is not None:
                return numbered
            self._changed.clear()
            await self._changed.wait()

    def ack(self, report_seq: int) -> None:
        self._buffer.ack(report_seq)
        self._changed.set()

    def resume(self, last_applied: int) -> None:
        self._buffer.resume(last_applied)
        self._changed.set()

    async def wait_settled(self, within_seconds: float) -> bool:
        """Wait until every report was sent and acknowledged; False if it takes longer."""
        try:
            async with asyncio.timeout(within_seconds):
                while not self._buffer.is_settled():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True
