"""Live log lines: recorded, and fanned out to whoever follows a run or a deployment."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from ..messages import LogLine
from ..ports import Recorder

LogQueue = asyncio.Queue[LogLine | None]


def deployment_key(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


class LogHub:
    """A log line is recorded, then queued to its run's and its deployment's subscribers."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._subscribers: dict[str, set[LogQueue]] = defaultdict(set)

    def subscribe(self, key: str) -> LogQueue:
        """Live log lines of a run (key = run id) or of a deployment ("deployment:<id>");
        None marks the end of the run."""
        queue: LogQueue = asyncio.Queue()
        self._subscribers[key].add(queue)
        return queue

    def unsubscribe(self, key: str, queue: LogQueue) -> None:
        subs = self._subscribers.get(key)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subscribers[key]

    def publish(self, line: LogLine) -> None:
        self._recorder.log(line)
        for key in (line.run_id, deployment_key(line.deployment_id)):
            for queue in self._subscribers.get(key, ()):
                queue.put_nowait(line)

    def end(self, key: str) -> None:
        """The run ended: its followers' streams end."""
        for queue in self._subscribers.get(key, ()):
            queue.put_nowait(None)

    def end_all(self) -> None:
        """Shutting down: every live stream ends (clients reconnect to another runner)."""
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)
