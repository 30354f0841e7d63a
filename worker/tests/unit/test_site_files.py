"""A file one step of the site published is read by the next step of the same site from the
site's disk, not downloaded again (checked against its sha256; a bad copy is downloaded
instead); the copies are bounded, least recently used dropped first."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from ryax_kit.filestore import LocalDirFilestore
from ryax_worker.application.staging import FileStaging
from ryax_worker.domain.model import FileRef
from ryax_worker.infrastructure.local.site_files import SiteFileCache
from ryax_worker.infrastructure.placement import FilestorePlacement
from ryax_worker.infrastructure.transfers import FilestoreTransfers, TransferStats

PLACE = FilestorePlacement()


class CountingStore(FilestoreTransfers):
    """The local-directory filestore, counting downloads."""

    def __init__(self, root: Path) -> None:
        super().__init__(LocalDirFilestore(root))
        self.downloads: list[str] = []

    async def download(self, key: str, destination: Path) -> None:
        self.downloads.append(key)
        await super().download(key, destination)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read(path: Path) -> bytes:
    return path.read_bytes()


async def publish(staging: FileStaging, tmp_path: Path, name: str, data: bytes) -> FileRef:
    produced = await asyncio.to_thread(write, tmp_path / "work" / name, data)
    published = await staging.publish_outputs(
        {"out": FileRef(key=str(produced), name=name)},
        lambda output, file: PLACE.output_key("r1", "e1", output, file),
        produced.parent,
    )
    ref = published["out"]
    assert isinstance(ref, FileRef)
    return ref


@pytest.fixture
def parts(tmp_path: Path) -> tuple[CountingStore, SiteFileCache, FileStaging]:
    store = CountingStore(tmp_path / "store")
    cache = SiteFileCache(tmp_path / "site-files", 1024 * 1024, TransferStats())
    return store, cache, FileStaging(store, tmp_path / "ex", cache)


async def test_the_next_step_on_the_site_reads_the_file_from_disk(
    parts: tuple[CountingStore, SiteFileCache, FileStaging], tmp_path: Path
) -> None:
    store, cache, staging = parts
    ref = await publish(staging, tmp_path, "a.txt", b"from step A")
    assert ref.key == "runs/r1/e1/out/a.txt"  # still published: the filestore holds it too
    assert await asyncio.to_thread(read, tmp_path / "store" / "runs/r1/e1/out/a.txt") == (
        b"from step A"
    )
    fetched = (await staging.fetch_inputs({"doc": ref}, tmp_path / "b" / "inputs"))["doc"]
    assert isinstance(fetched, FileRef)
    assert await asyncio.to_thread(read, Path(fetched.key)) == b"from step A"
    assert fetched.sha256 == hashlib.sha256(b"from step A").hexdigest()
    assert store.downloads == []
    assert dict(cache.stats.bytes) == {("download", "site-local"): 11}


async def test_a_directory_too(
    parts: tuple[CountingStore, SiteFileCache, FileStaging], tmp_path: Path
) -> None:
    store, _, staging = parts
    folder = tmp_path / "work" / "data"
    await asyncio.to_thread(write, folder / "x.txt", b"x")
    published = await staging.publish_outputs(
        {"dir": FileRef(key=str(folder), name="", is_directory=True)},
        lambda output, file: PLACE.output_key("r1", "e1", output, file),
        folder.parent,
    )
    fetched = (await staging.fetch_inputs(published, tmp_path / "b" / "inputs"))["dir"]
    assert isinstance(fetched, FileRef)
    assert await asyncio.to_thread(read, Path(fetched.key) / "x.txt") == b"x"
    assert store.downloads == []


async def test_a_bad_copy_is_dropped_and_the_file_downloaded(
    parts: tuple[CountingStore, SiteFileCache, FileStaging], tmp_path: Path
) -> None:
    store, _, staging = parts
    ref = await publish(staging, tmp_path, "a.txt", b"the real one")
    kept = tmp_path / "site-files" / ref.sha256
    await asyncio.to_thread(kept.chmod, 0o644)
    await asyncio.to_thread(write, kept, b"tampered")
    fetched = (await staging.fetch_inputs({"doc": ref}, tmp_path / "b" / "inputs"))["doc"]
    assert isinstance(fetched, FileRef)
    assert await asyncio.to_thread(read, Path(fetched.key)) == b"the real one"
    assert store.downloads == [ref.key]
    assert not await asyncio.to_thread(kept.exists)


async def test_another_sites_file_or_no_room_is_downloaded(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    staging = FileStaging(store, tmp_path / "ex", SiteFileCache(tmp_path / "none", 0))
    ref = await publish(staging, tmp_path, "a.txt", b"content")
    await staging.fetch_inputs({"doc": ref}, tmp_path / "b" / "inputs")
    assert store.downloads == [ref.key]


async def test_least_recently_used_copies_go_first(tmp_path: Path) -> None:
    cache = SiteFileCache(tmp_path / "kept", 10)
    digests = []
    for n, data in enumerate((b"aaaaaa", b"bbbbbb", b"cccccc")):
        source = await asyncio.to_thread(write, tmp_path / f"f{n}", data)
        digest = hashlib.sha256(data).hexdigest()
        digests.append(digest)
        await cache.keep(digest, source)
        await asyncio.sleep(0.01)  # distinct mtimes
    assert await cache.copy_to(digests[2], tmp_path / "out" / "c")
    assert not await cache.copy_to(digests[0], tmp_path / "out" / "a")
    assert not await cache.copy_to(digests[1], tmp_path / "out" / "b")
    assert not await cache.copy_to("not-a-digest", tmp_path / "out" / "x")
