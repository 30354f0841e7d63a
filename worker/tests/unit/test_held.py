"""Publish orders on a site that holds its files (application/held.py), on the real site store
and a filestore that fails as told: a published file is answered `Published`; a file the site
lost, or one the filestore refused, is a failure the runner fails its consumers with; an upload
the runner did not grant (it restarted and no longer asks, or could not be reached) is no answer
at all: the file is not lost, the runner asks again."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from ryax_worker.application.held import HeldFiles
from ryax_worker.application.reports import ReportQueue
from ryax_worker.domain.errors import FileTransferFailed, TransferNotGranted
from ryax_worker.domain.model import FilesPublished, FileToPublish, PublishFiles, ReportBuffer
from ryax_worker.infrastructure.local.site_files import SiteFileCache

DATA = b"held content\n"
SHA = hashlib.sha256(DATA).hexdigest()
KEY = "runs/r1/e1/out/file.txt"


class FailingStore:
    """The filestore port: uploads recorded, or the failures planned first raised."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.uploaded: list[str] = []

    async def download(self, key: str, destination: Path) -> None:
        raise AssertionError("a publication downloads nothing")

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.uploaded.append(key)


def written(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(DATA)
    return path


async def publish(
    tmp_path: Path,
    store: FailingStore,
    *keys: str,
    lose: Path | None = None,
    retry_seconds: tuple[float, ...] = (),
) -> list[FilesPublished]:
    """Hold DATA for run r1 (then delete `lose`: a disk wiped), carry out one Publish of
    `keys` (and its tries again, after `retry_seconds`); what was reported."""
    cache = SiteFileCache(tmp_path / "site-files", max_bytes=1 << 20)
    source = await asyncio.to_thread(written, tmp_path / "out.txt")
    await cache.hold(SHA, source, "r1")
    if lose is not None:
        await asyncio.to_thread(lose.unlink)
    buffer = ReportBuffer()
    held = HeldFiles(
        store=cache,
        filestore=store,
        reports=ReportQueue(buffer),
        enabled=True,
        retry_seconds=retry_seconds,
    )
    held.publish(
        PublishFiles(
            order_seq=1, files=tuple(FileToPublish(key=k, sha256=SHA, run_id="r1") for k in keys)
        )
    )
    async with asyncio.timeout(5):
        while held._tasks:  # the order carried out, and its tries again
            await asyncio.gather(*held._tasks)
    reports = []
    while (numbered := buffer.take()) is not None:
        assert isinstance(numbered.report, FilesPublished)
        reports.append(numbered.report)
    return reports


async def test_a_published_file_is_answered(tmp_path: Path) -> None:
    store = FailingStore()
    assert await publish(tmp_path, store, KEY) == [FilesPublished(keys=(KEY,))]
    assert store.uploaded == [KEY]


async def test_a_refused_upload_is_a_failure_naming_why(tmp_path: Path) -> None:
    store = FailingStore(FileTransferFailed(f"the filestore answered HTTP 400 for {KEY}"))
    [report] = await publish(tmp_path, store, KEY)
    assert report.keys == () and [key for key, _ in report.failures] == [KEY]
    assert "HTTP 400" in report.failures[0][1]


async def test_a_file_the_site_lost_is_a_failure(tmp_path: Path) -> None:
    store = FailingStore()
    cache = tmp_path / "site-files"
    reports = await publish(tmp_path, store, KEY, lose=cache / SHA)
    assert [key for key, _ in reports[0].failures] == [KEY]
    assert "no longer holds it" in reports[0].failures[0][1] and store.uploaded == []


async def test_an_upload_the_runner_did_not_grant_is_no_answer(tmp_path: Path) -> None:
    store = FailingStore(TransferNotGranted(f"the runner refused a URL for {KEY}"))
    assert await publish(tmp_path, store, KEY) == []
    # The next Publish of the same file (the runner asking again) is carried out.
    store = FailingStore()
    assert await publish(tmp_path / "again", store, KEY) == [FilesPublished(keys=(KEY,))]


async def test_only_the_granted_files_of_an_order_are_answered(tmp_path: Path) -> None:
    other = "runs/r1/e2/out/file.txt"
    store = FailingStore(TransferNotGranted("cannot get a URL from the runner: UNAVAILABLE"))
    assert await publish(tmp_path, store, KEY, other) == [FilesPublished(keys=(other,))]


async def test_an_upload_not_granted_is_tried_again_on_its_own(tmp_path: Path) -> None:
    # The runner could not sign twice (restarting, overloaded), then could: answered then.
    store = FailingStore(
        TransferNotGranted("cannot get a URL from the runner: UNAVAILABLE"),
        TransferNotGranted("cannot get a URL from the runner: UNAVAILABLE"),
    )
    reports = await publish(tmp_path, store, KEY, retry_seconds=(0.01, 0.01, 0.01))
    assert reports == [FilesPublished(keys=(KEY,))] and store.uploaded == [KEY]


async def test_tries_again_end_and_leave_the_file_to_the_runners_next_ask(tmp_path: Path) -> None:
    store = FailingStore(*(TransferNotGranted(f"the runner refused a URL for {KEY}"),) * 3)
    assert await publish(tmp_path, store, KEY, retry_seconds=(0.01, 0.01)) == []
    assert store.failures == [] and store.uploaded == []  # 1 + 2 tries, no more
