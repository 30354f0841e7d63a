"""Safe extraction of uploaded zip and tar(.gz/.bz2/.xz) archives.

The whole archive is checked before anything is written: absolute paths, `..` components,
backslashes, symbolic and hard links, devices and pipes are refused (every problem listed),
as are archives with too many entries or more uncompressed bytes than allowed. Extraction
then writes each file itself (never `extractall`), with O_EXCL|O_NOFOLLOW, counting the bytes
it really writes, so a lying size header cannot inflate past the limit.
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from ..domain.errors import InvalidInput, TooLarge, UnsafeArchive

CHUNK = 1024 * 1024
MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    size: int
    mode: int


def archive_format(path: Path) -> str:
    """'zip' or 'tar' from the content (not the name)."""
    with open(path, "rb") as handle:
        head = handle.read(512 + 8)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        return "tar"
    raise InvalidInput("archive", "expected a .zip, .tar, .tar.gz, .tar.bz2 or .tar.xz archive")


def _check_name(name: str) -> tuple[str | None, str]:
    """(problem or None, the normalised relative name)."""
    if "\x00" in name:
        return "contains a NUL character", name
    if "\\" in name:
        return "contains a backslash (not a portable path)", name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path", name
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        return "goes outside the archive root ('..')", name
    return None, "/".join(parts)


class SafeArchiveExtractor:
    def __init__(self, *, max_bytes: int = 500 * 1024 * 1024, max_entries: int = 20_000) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries

    def extract(self, archive: Path, destination: Path) -> None:
        kind = archive_format(archive)
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    self._extract(self._zip_members(zf), destination, lambda m: zf.open(m.name))
            else:
                with tarfile.open(archive, "r:*") as tf:
                    members = self._tar_members(tf)
                    by_name = {m.name: m for m in tf.getmembers()}

                    def opener(member: _Member) -> IO[bytes]:
                        handle = tf.extractfile(by_name[member.name])
                        assert handle is not None
                        return handle

                    self._extract(members, destination, opener)
        except (
            zipfile.BadZipFile,
            tarfile.TarError,
            EOFError,
            zlib.error,
            gzip.BadGzipFile,
            lzma.LZMAError,
            NotImplementedError,
            ValueError,
        ) as exc:
            raise InvalidInput("archive", f"the archive is damaged or truncated: {exc}") from None

    # ---- listing and checks ----------------------------------------------------------------
    def _zip_members(self, zf: zipfile.ZipFile) -> list[_Member]:
        infos = zf.infolist()
        self._check_count(len(infos))
        members, problems = [], []
        for info in infos:
            mode = (info.external_attr >> 16) & 0xFFFF
            problem, _ = _check_name(info.filename)
            if problem:
                problems.append(f"entry {info.filename!r} {problem}")
            elif stat.S_ISLNK(mode):
                problems.append(f"entry {info.filename!r} is a symbolic link")
            elif mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
                problems.append(f"entry {info.filename!r} is not a regular file or folder")
            else:
                members.append(_Member(info.filename, info.is_dir(), info.file_size, mode & 0o777))
        self._finish_checks(members, problems)
        return members

    def _tar_members(self, tf: tarfile.TarFile) -> list[_Member]:
        members, problems = [], []
        for count, info in enumerate(_iterate(tf), start=1):
            self._check_count(count)
            problem, _ = _check_name(info.name)
            if problem:
                problems.append(f"entry {info.name!r} {problem}")
            elif info.issym():
                problems.append(f"entry {info.name!r} is a symbolic link (to {info.linkname!r})")
            elif info.islnk():
                problems.append(f"entry {info.name!r} is a hard link (to {info.linkname!r})")
            elif not (info.isreg() or info.isdir()):
                problems.append(f"entry {info.name!r} is a device, pipe or other special file")
            else:
                members.append(_Member(info.name, info.isdir(), info.size, info.mode & 0o777))
        self._finish_checks(members, problems)
        return members

    def _check_count(self, count: int) -> None:
        if count > self._max_entries:
            raise TooLarge(f"the archive holds more than {self._max_entries} entries")

    def _finish_checks(self, members: list[_Member], problems: list[str]) -> None:
        if problems:
            shown = problems[:MAX_PROBLEMS_SHOWN]
            if len(problems) > len(shown):
                shown.append(f"and {len(problems) - len(shown)} more")
            raise UnsafeArchive(shown)
        declared = sum(m.size for m in members if not m.is_dir)
        if declared > self._max_bytes:
            raise TooLarge(
                f"the archive expands to {declared} bytes; at most {self._max_bytes} are accepted"
                " (RYAX_REPOSITORY_MAX_EXTRACTED_BYTES)"
            )

    # ---- writing ---------------------------------------------------------------------------
    def _extract(
        self,
        members: list[_Member],
        destination: Path,
        opener: Callable[[_Member], IO[bytes]],
    ) -> None:
        written = 0
        root = destination.resolve()
        for member in members:
            _, relative = _check_name(member.name)
            if not relative:
                continue
            target = root.joinpath(*relative.split("/"))
            if member.is_dir:
                _mkdirs(root, relative)
                continue
            parent = relative.rpartition("/")[0]
            if parent:
                _mkdirs(root, parent)
            try:
                fd = os.open(
                    target,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                    0o755 if member.mode & 0o111 else 0o644,
                )
            except FileExistsError:
                raise UnsafeArchive([f"entry {member.name!r} appears twice"]) from None
            except (NotADirectoryError, IsADirectoryError):
                raise UnsafeArchive(
                    [f"entry {member.name!r} conflicts with another entry"]
                ) from None
            with os.fdopen(fd, "wb") as out, opener(member) as source:
                while chunk := source.read(CHUNK):
                    written += len(chunk)
                    if written > self._max_bytes:
                        raise TooLarge(
                            f"the archive expands to more than {self._max_bytes} "
                            "bytes (RYAX_REPOSITORY_MAX_EXTRACTED_BYTES)"
                        )
                    out.write(chunk)


def _mkdirs(root: Path, relative: str) -> None:
    current = root
    for part in relative.split("/"):
        current = current / part
        try:
            current.mkdir()
        except FileExistsError:
            if current.is_symlink() or not current.is_dir():
                raise UnsafeArchive(
                    [f"entry {relative!r} conflicts with a file of the same name"]
                ) from None


def _iterate(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        info = tf.next()
        if info is None:
            return
        yield info
