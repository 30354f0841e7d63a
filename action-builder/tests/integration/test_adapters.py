"""The tar unpacker on crafted archives, and the kit's filestores (local dir, real S3) seen
through the application's port."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ryax_action_builder.application.ports import Filestore, ObjectNotFound
from ryax_action_builder.domain.errors import UnsafeArchive
from ryax_action_builder.domain.model import ArchiveLimits
from ryax_action_builder.infrastructure.archive import TarSourceUnpacker
from ryax_action_builder.infrastructure.kit_filestore import KitFilestore
from ryax_kit.filestore import LocalDirFilestore, S3Filestore

pytestmark = pytest.mark.integration


def archive(tmp_path: Path, members: list[tarfile.TarInfo], mtime: int = 0) -> Path:
    path = tmp_path / f"source-{mtime}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            info.mtime = mtime
            data = b"x" * info.size if info.isreg() else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file(name: str, size: int = 3, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, mode
    return info


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_unpacks_and_digests_content_not_archive(tmp_path: Path) -> None:
    members = [file("ryax_handler.py"), file("lib/util.py"), link("lib/alias.py", "util.py")]
    first = TarSourceUnpacker().unpack(
        archive(tmp_path, members, 1), tmp_path / "a", ArchiveLimits()
    )
    again = TarSourceUnpacker().unpack(
        archive(tmp_path, members, 2), tmp_path / "b", ArchiveLimits()
    )
    assert first.files == {"ryax_handler.py", "lib/util.py"}
    assert (tmp_path / "a" / "lib" / "alias.py").is_symlink()
    assert first.digest == again.digest  # another mtime, same content
    changed = TarSourceUnpacker().unpack(
        archive(tmp_path, [*members[:2], file("extra.py")], 3), tmp_path / "c", ArchiveLimits()
    )
    assert changed.digest != first.digest


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (file("../escape.py"), "escapes the archive root"),
        (file("/etc/cron.d/evil"), "absolute path"),
        (link("evil", "/etc/passwd"), "absolute path"),
        (link("lib/evil", "../../etc/passwd"), "points outside"),
        (link("hard", "../../etc/passwd", tarfile.LNKTYPE), "points outside"),
    ],
)
def test_refuses_members_escaping_the_root(
    tmp_path: Path, member: tarfile.TarInfo, message: str
) -> None:
    path = archive(tmp_path, [file("ryax_handler.py"), member])
    with pytest.raises(UnsafeArchive, match=message):
        TarSourceUnpacker().unpack(path, tmp_path / "out", ArchiveLimits())
    assert not (tmp_path / "escape.py").exists()
    assert not (tmp_path / "out").exists()  # nothing extracted at all


def test_refuses_archive_bombs_and_garbage(tmp_path: Path) -> None:
    path = archive(tmp_path, [file("big.bin", size=2048)])
    with pytest.raises(UnsafeArchive, match="more than"):
        TarSourceUnpacker().unpack(path, tmp_path / "out", ArchiveLimits(max_total_bytes=1024))
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tarball")
    with pytest.raises(UnsafeArchive, match="not a readable"):
        TarSourceUnpacker().unpack(garbage, tmp_path / "out2", ArchiveLimits())


async def exercise(store: Filestore, tmp_path: Path) -> None:
    """What a build does with the filestore; a missing object is the application's error."""
    source = tmp_path / "in.bin"
    source.write_bytes(b"artefact")
    assert not await store.exists("artefacts/a.tar.gz")
    with pytest.raises(ObjectNotFound, match=r"artefacts/a\.json"):
        await store.read_bytes("artefacts/a.json")
    with pytest.raises(ObjectNotFound, match=r"artefacts/a\.tar\.gz"):
        await store.download("artefacts/a.tar.gz", tmp_path / "missing")
    await store.upload("artefacts/a.tar.gz", source, "application/gzip")
    await store.write_bytes("artefacts/a.json", b"{}", "application/json")
    assert await store.exists("artefacts/a.tar.gz")
    assert await store.read_bytes("artefacts/a.json") == b"{}"
    await store.download("artefacts/a.tar.gz", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == b"artefact"


async def test_local_directory_filestore(tmp_path: Path) -> None:
    store = LocalDirFilestore(tmp_path / "store")
    await store.ensure_ready()
    await exercise(KitFilestore(store), tmp_path)
    assert await store.ping()


async def test_s3_filestore(s3_server: Any, fresh_bucket: str, tmp_path: Path) -> None:
    store = S3Filestore(
        endpoint=s3_server.address,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=fresh_bucket,
        region=s3_server.region,
    )
    await store.ensure_ready()
    await exercise(KitFilestore(store), tmp_path)
    assert await store.ping()
