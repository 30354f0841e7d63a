"""Files this site holds instead of publishing them (RYAX_SITE_FILES=hold; docs/remote-sites.md,
"A file between two steps of one site").

An output file is written to the site's store (durable, pinned for its run) and reported with
`held_by` = this site's id and the key it would have in the filestore: a step of the same site
copies it from the disk, nothing crosses the network. The runner sends `Publish` when something
outside the site needs it (a step of another site, a user's download, a run's results): the
worker uploads each file from its copy and answers `Published` (kept until acknowledged, like a
result). `Release` unpins the files of ended runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..domain.errors import FileTransferFailed, TransferNotGranted
from ..domain.model import FilesPublished, PublishFiles, ReleaseRuns
from .ports import FileStore, HeldStore
from .reports import ReportQueue

log = logging.getLogger(__name__)
#: Keys published by this process remembered (a repeated Publish of one is answered at once).
REMEMBERED_KEYS = 100_000
#: Files whose upload the runner did not grant (no URL: it could not be reached, or refused)
#: are tried again on their own, after these pauses (then left to the runner's next ask, at
#: the worker's next registration): a runner that was only briefly unable to sign is not
#: waited for until the consumer's site wait runs out.
NOT_GRANTED_RETRY_SECONDS = (2.0, 4.0, 8.0, 16.0, 32.0)


class HeldFiles:
    """The hold switch, the site's id (from Registered), Publish and Release orders."""

    def __init__(
        self,
        *,
        store: HeldStore,
        filestore: FileStore,
        reports: ReportQueue,
        enabled: bool,
        retry_seconds: tuple[float, ...] = NOT_GRANTED_RETRY_SECONDS,
    ) -> None:
        self._retry_seconds = retry_seconds
        self._store = store
        self._filestore = filestore
        self._reports = reports
        self.enabled = enabled
        #: The site's id, as the runner gave it in Registered ("" before the first one).
        self.site_id = ""
        #: Keys this process already published (a repeated Publish is answered at once).
        self._published: dict[str, None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Serialises uploads (one Publish after the other; Release waits for them).
        self._lock = asyncio.Lock()

    @property
    def holding(self) -> bool:
        """Outputs are held (the mode is on and the site's id is known)."""
        return self.enabled and bool(self.site_id)

    async def hold(self, sha256: str, source: Path, run_id: str) -> None:
        """Keep an output for its run, durably, before the result is reported (OSError)."""
        await self._store.hold(sha256, source, run_id)

    def held(self) -> tuple[tuple[str, str], ...]:
        return self._store.held()

    def publish(self, order: PublishFiles) -> None:
        self._start(self._publish(order), f"publish {order.order_seq}")

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_later(self, order: PublishFiles, attempt: int) -> None:
        await asyncio.sleep(self._retry_seconds[attempt])
        await self._publish(order, attempt + 1)

    def release(self, order: ReleaseRuns) -> None:
        task = asyncio.create_task(self._release(order), name=f"release {order.order_seq}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, order: PublishFiles, attempt: int = 0) -> None:
        keys: list[str] = []
        failures: list[tuple[str, str]] = []
        #: Not granted by the runner (it no longer asks, e.g. it restarted, or it could not be
        #: reached): no answer, the file is not lost; the runner asks again when it needs it.
        not_granted: list[tuple[str, str]] = []
        async with self._lock:
            for f in order.files:
                if f.key in self._published:
                    keys.append(f.key)
                    continue
                path = self._store.held_path(f.sha256.lower())
                if path is None:
                    failures.append((f.key, f"this site no longer holds it (sha256 {f.sha256})"))
                    continue
                self._store.busy(f.sha256.lower(), True)
                try:
                    await self._filestore.upload(f.key, path)
                except TransferNotGranted as error:
                    not_granted.append((f.key, error.detail))
                    continue
                except FileTransferFailed as error:
                    failures.append((f.key, error.detail))
                    continue
                finally:
                    self._store.busy(f.sha256.lower(), False)
                self._published[f.key] = None
                while len(self._published) > REMEMBERED_KEYS:
                    del self._published[next(iter(self._published))]
                keys.append(f.key)
        log.log(
            logging.WARNING if not_granted else logging.INFO,
            "held files published",
            extra={
                "order_seq": order.order_seq,
                "published": keys,
                "failed": failures,
                "not_granted": not_granted,
            },
        )
        if keys or failures:
            self._reports.report(FilesPublished(keys=tuple(keys), failures=tuple(failures)))
        if not_granted and attempt < len(self._retry_seconds):
            waiting = {key for key, _ in not_granted}
            again = replace(order, files=tuple(f for f in order.files if f.key in waiting))
            self._start(self._publish_later(again, attempt), f"publish {order.order_seq} again")

    async def _release(self, order: ReleaseRuns) -> None:
        async with self._lock:  # after the Publish orders before it
            released = await self._store.release(order.run_ids)
        log.info("held files released", extra={"runs": list(order.run_ids), "pins": released})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
