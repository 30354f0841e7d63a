"""S3 calls stuck on a dead connection (a silently cut link: TCP retransmits with a growing
backoff until the read timeout) must not hold up the others: the S3 adapter runs its blocking
calls in an executor of its own, larger than asyncio's default (cpu count + 4, at most 32)."""

from __future__ import annotations

import asyncio
import threading

from ryax_kit.filestore import PING_SECONDS, S3_THREADS, S3Filestore

#: More than asyncio's default executor ever has.
STUCK = 40


class StuckThenAnswering:
    """Stands in for minio's client: the first STUCK calls hang until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def bucket_exists(self, bucket: str) -> bool:
        with self._lock:
            self.calls += 1
            stuck = self.calls <= STUCK
        if stuck:
            self.release.wait(60)
        return True


async def test_calls_stuck_on_a_dead_connection_do_not_hold_up_the_others() -> None:
    assert S3_THREADS > STUCK
    store = S3Filestore(endpoint="127.0.0.1:9", access_key="a", secret_key="b", bucket="c")
    client = StuckThenAnswering()
    store._client = client  # type: ignore[assignment]
    try:
        # Each stuck ping answers False after PING_SECONDS, its thread still held.
        stuck = await asyncio.gather(*(store.ping() for _ in range(STUCK)))
        assert stuck == [False] * STUCK and client.calls == STUCK
        started = asyncio.get_running_loop().time()
        assert await store.ping() is True
        assert asyncio.get_running_loop().time() - started < PING_SECONDS
    finally:
        client.release.set()
