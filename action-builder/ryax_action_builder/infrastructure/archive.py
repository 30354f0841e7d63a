"""Unpack an action's source archive (.tar.gz) after checking every member."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ..domain.errors import UnsafeArchive
from ..domain.model import (
    ArchiveLimits,
    ArchiveMember,
    MemberType,
    SourceEntry,
    UnpackedSource,
    check_archive,
    source_digest,
)


def _member(info: tarfile.TarInfo) -> ArchiveMember:
    if info.isdir():
        kind = MemberType.DIRECTORY
    elif info.issym():
        kind = MemberType.SYMLINK
    elif info.islnk():
        kind = MemberType.HARDLINK
    elif info.isreg():
        kind = MemberType.FILE
    else:
        kind = MemberType.OTHER
    return ArchiveMember(name=info.name, type=kind, size=info.size, link=info.linkname)


class TarSourceUnpacker:
    def unpack(self, archive: Path, destination: Path, limits: ArchiveLimits) -> UnpackedSource:
        try:
            with tarfile.open(archive, "r:*") as tar:
                infos = tar.getmembers()
                check_archive((_member(i) for i in infos), limits)
                destination.mkdir(parents=True, exist_ok=True)
                # The data filter re-checks the same rules (and drops set-uid bits, devices).
                tar.extractall(destination, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, tarfile.FilterError):
                raise UnsafeArchive(f"source archive: {exc}") from None
            raise UnsafeArchive(f"source archive: not a readable .tar.gz ({exc})") from None
        return UnpackedSource(
            files=frozenset(_relative(i.name) for i in infos if i.isreg() or i.islnk()),
            digest=source_digest(_entries(destination)),
        )


def _entries(root: Path) -> Iterator[SourceEntry]:
    """What was extracted (the data filter may have dropped or changed members)."""
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs + files:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                yield SourceEntry(path=rel, type=MemberType.SYMLINK, content=os.readlink(path))
            elif path.is_dir():
                yield SourceEntry(path=rel, type=MemberType.DIRECTORY)
            else:
                yield SourceEntry(
                    path=rel,
                    type=MemberType.FILE,
                    executable=bool(path.stat().st_mode & stat.S_IXUSR),
                    content=_sha256(path),
                )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _relative(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts)
