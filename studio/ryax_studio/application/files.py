"""Static files and directories of step inputs, and the workflow zip (workflow.yaml + files).

A static file is stored in the filestore under the project's prefix,
`projects/<project>/files/<uuid>/<name>` (the name through `encode_segment`), with its size and
sha256 kept in the input's value. A directory is stored as the worker expects it: an
uncompressed tar of its contents, members relative to the directory (worker staging). A
directory is uploaded as a zip or a tar (gzip allowed) of its contents, and re-packed: regular
files and folders only, every member checked (no absolute path, no `..`, no link, no device).

The workflow zip (docs/reference/workflows.md, "Workflow zip"): `workflow.yaml` at the root;
each static value at the path its input names (`{static_file: files/<step>/<input>/<name>}`, a
directory: `{static_directory: files/<step>/<input>/<name>/}`, its contents below that folder).
Reading refuses, before extracting anything, a zip over its size, with too many entries, a
member whose name is absolute, holds `..`, a backslash or a NUL, a link, a duplicate name, or
whose declared size or compression ratio is out of bounds; while extracting, the bytes actually
produced are counted, so a member lying about its size is stopped at the limit too.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..domain.errors import InvalidInput, TooLarge
from ..domain.workflow import FileValue

CHUNK = 1024 * 1024
#: The YAML document of a workflow zip.
WORKFLOW_FILE = "workflow.yaml"
#: Where an export puts static values: files/<step id>/<input name>/<name>.
FILES_DIR = "files"
MAX_NAME_CHARS = 255
#: What is read of a zip's workflow.yaml: more than any acceptable document (1 MiB).
MAX_DOCUMENT_READ = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class FileLimits:
    #: One file, or one directory's tar (RYAX_STUDIO_MAX_FILE_BYTES).
    max_file_bytes: int = 256 * 1024 * 1024
    #: A whole zip, compressed and once extracted (RYAX_STUDIO_MAX_ARCHIVE_BYTES).
    max_archive_bytes: int = 1024 * 1024 * 1024
    #: Members of a zip, or of an uploaded directory archive.
    max_entries: int = 10_000
    #: Largest ratio of a member's size to its compressed size (a zip bomb's is ~1000).
    max_ratio: int = 200


def check_file_name(name: str, field: str = "file") -> str:
    """A file's own name (no folder): what the input shows and the action sees."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or "\x00" in base or any(ord(c) < 32 for c in base):
        raise InvalidInput(field, f"{name!r} is not a usable file name")
    if len(base) > MAX_NAME_CHARS:
        raise InvalidInput(field, f"a file name has at most {MAX_NAME_CHARS} characters")
    return base


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_path_in_zip(step_id: str, input_name: str, value: FileValue) -> str:
    """Where an export puts a static value (a directory: a folder, written with a final /)."""
    path = f"{FILES_DIR}/{step_id}/{input_name}/{value.name}"
    return path + "/" if value.directory else path


# ---- member names ------------------------------------------------------------------------------
def _member_problem(name: str) -> str | None:
    if not name or "\x00" in name:
        return "an empty name or a NUL character"
    if "\\" in name:
        return "a backslash (zip paths use /)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "an empty, '.' or '..' path segment (it would escape the archive)"
    if any(any(ord(c) < 32 for c in p) for p in parts):
        return "a control character"
    return None


def zip_path_problem(path: str) -> str | None:
    """Why `path` cannot name a member of a workflow zip (None: it can)."""
    return _member_problem(path)


def _mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF


# ---- directories: an uploaded zip/tar -> the tar the worker expects ----------------------------
def _copy_limited(source: IO[bytes], out: IO[bytes], budget: list[int], what: str) -> int:
    """Copy, counting the bytes actually produced against `budget[0]` (shared)."""
    written = 0
    while chunk := source.read(CHUNK):
        written += len(chunk)
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise TooLarge(f"{what}: more than the bytes allowed once extracted")
        out.write(chunk)
    return written


def _add_dir(archive: tarfile.TarFile, name: str, seen: set[str]) -> None:
    parts = name.split("/")
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub in seen:
            continue
        seen.add(sub)
        info = tarfile.TarInfo(sub)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)


def _add_file(
    archive: tarfile.TarFile, name: str, source: IO[bytes], budget: list[int], seen: set[str]
) -> None:
    if name in seen:
        raise InvalidInput("file", f"{name!r} is in the archive twice")
    parent = posixpath.dirname(name)
    if parent:
        _add_dir(archive, parent, seen)
    seen.add(name)
    with tempfile.TemporaryFile() as spool:
        size = _copy_limited(source, spool, budget, name)
        spool.seek(0)
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o644
        archive.addfile(info, spool)


def directory_tar_from_upload(upload: Path, destination: Path, limits: FileLimits) -> None:
    """Re-pack an uploaded zip or tar (gzip, bzip2, xz allowed) of a directory's contents into
    the uncompressed tar a directory input is stored as. A single top folder holding
    everything is kept as it is (the action sees that folder inside the directory)."""
    budget = [limits.max_file_bytes]
    seen: set[str] = set()
    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as out:
        if zipfile.is_zipfile(upload):
            with zipfile.ZipFile(upload) as source:
                members = source.infolist()
                if len(members) > limits.max_entries:
                    raise TooLarge(
                        f"the archive has {len(members)} entries, more than {limits.max_entries}"
                    )
                for info in members:
                    _check_zip_member(info, limits, "the uploaded archive")
                for info in members:
                    name = info.filename.rstrip("/")
                    if info.is_dir():
                        _add_dir(out, name, seen)
                    else:
                        with source.open(info) as stream:
                            _add_file(out, name, stream, budget, seen)
            return
        try:
            source_tar = tarfile.open(upload, "r:*")  # noqa: SIM115 (closed below)
        except tarfile.TarError as exc:
            raise InvalidInput(
                "file", "a directory is uploaded as a zip or a tar of its contents"
            ) from exc
        with source_tar:
            count = 0
            for member in source_tar:
                count += 1
                if count > limits.max_entries:
                    raise TooLarge(f"the archive has more than {limits.max_entries} entries")
                name = _strip_dot(member.name)
                if name in ("", "."):
                    continue
                problem = _member_problem(name)
                if problem:
                    raise InvalidInput("file", f"archive member {member.name!r}: {problem}")
                if member.isdir():
                    _add_dir(out, name.rstrip("/"), seen)
                elif member.isreg():
                    extracted = source_tar.extractfile(member)
                    if extracted is None:
                        raise InvalidInput("file", f"archive member {member.name!r}: unreadable")
                    with extracted:
                        _add_file(out, name, extracted, budget, seen)
                else:
                    raise InvalidInput(
                        "file",
                        f"archive member {member.name!r}: only files and folders are "
                        "accepted (no link, device or fifo)",
                    )


def _check_zip_member(info: zipfile.ZipInfo, limits: FileLimits, where: str) -> None:
    problem = _member_problem(info.filename)
    if problem:
        raise InvalidInput("file", f"{where}: member {info.filename!r}: {problem}")
    mode = _mode(info)
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidInput(
            "file",
            f"{where}: member {info.filename!r}: only files and folders are accepted "
            "(no link, device or fifo)",
        )
    if info.flag_bits & 0x1:
        raise InvalidInput("file", f"{where}: member {info.filename!r} is encrypted")
    if info.file_size > limits.max_archive_bytes:
        raise TooLarge(f"{where}: member {info.filename!r} is over the size allowed")
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio:
        raise TooLarge(
            f"{where}: member {info.filename!r} expands {info.file_size // info.compress_size}"
            f" times (more than {limits.max_ratio}): refused as a zip bomb"
        )


# ---- the workflow zip --------------------------------------------------------------------------
class WorkflowZip:
    """A workflow zip opened for reading, every member checked (see the module docstring)."""

    def __init__(self, path: Path, limits: FileLimits, label: str = "the zip") -> None:
        self._limits = limits
        self._label = label
        if path.stat().st_size > limits.max_archive_bytes:
            raise TooLarge(f"{label} is over {limits.max_archive_bytes} bytes")
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidInput("file", f"{label} is not a readable zip ({exc})") from exc
        members = self._zip.infolist()
        if len(members) > limits.max_entries:
            raise TooLarge(f"{label} has {len(members)} entries, more than {limits.max_entries}")
        total = 0
        self._by_name: dict[str, zipfile.ZipInfo] = {}
        for info in members:
            _check_zip_member(info, limits, label)
            key = info.filename.rstrip("/")
            if key in self._by_name:
                raise InvalidInput("file", f"{label}: {info.filename!r} is in the zip twice")
            self._by_name[key] = info
            total += info.file_size
        if total > limits.max_archive_bytes:
            raise TooLarge(
                f"{label} expands to {total} bytes, more than {limits.max_archive_bytes}"
            )
        self._budget = [limits.max_archive_bytes]

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> WorkflowZip:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def read_document(self) -> bytes:
        info = self._by_name.get(WORKFLOW_FILE)
        if info is None or info.is_dir():
            names = sorted(n for n in self._by_name if "/" not in n)[:10]
            raise InvalidInput(
                "file",
                f"{self._label} has no {WORKFLOW_FILE} at its root (found: "
                f"{', '.join(names) or 'nothing'})",
            )
        with self._zip.open(info) as stream:
            # enough to tell a too large document (the format refuses it, naming its limit)
            return stream.read(MAX_DOCUMENT_READ)

    def has_file(self, path: str) -> bool:
        info = self._by_name.get(path)
        return info is not None and not info.is_dir()

    def has_directory(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(n.startswith(prefix) for n in self._by_name) or (
            path.rstrip("/") in self._by_name and self._by_name[path.rstrip("/")].is_dir()
        )

    def extract_file(self, path: str, destination: Path) -> None:
        info = self._by_name[path]
        budget = [min(self._budget[0], self._limits.max_file_bytes)]
        with self._zip.open(info) as stream, destination.open("wb") as out:
            written = _copy_limited(stream, out, budget, path)
        self._budget[0] -= written

    def directory_tar(self, path: str, destination: Path) -> None:
        """The folder `path` of the zip as the tar a directory input is stored as."""
        prefix = path.rstrip("/") + "/"
        budget = [min(self._budget[0], self._limits.max_file_bytes)]
        start = budget[0]
        seen: set[str] = set()
        with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as out:
            for name, info in sorted(self._by_name.items()):
                if not name.startswith(prefix):
                    continue
                inner = name[len(prefix) :]
                if info.is_dir():
                    _add_dir(out, inner, seen)
                else:
                    with self._zip.open(info) as stream:
                        _add_file(out, inner, stream, budget, seen)
        self._budget[0] -= start - budget[0]


def _strip_dot(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def write_workflow_zip(
    destination: Path, document: str, files: list[tuple[str, Path, bool]]
) -> None:
    """The zip of an export: `workflow.yaml`, then each static value at its path (a file, or a
    directory's tar unpacked below its folder: files and folders only)."""
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as out:
        out.writestr(WORKFLOW_FILE, document.encode())
        for path, local, directory in files:
            if not directory:
                out.write(local, path)
                continue
            folder = path.rstrip("/")
            out.writestr(folder + "/", b"")
            with tarfile.open(local, "r:*") as archive:
                for member in archive:
                    name = _strip_dot(member.name).rstrip("/")
                    if not name or _member_problem(name):
                        continue
                    if member.isdir():
                        out.writestr(f"{folder}/{name}/", b"")
                    elif member.isreg():
                        stream = archive.extractfile(member)
                        if stream is None:
                            continue
                        with stream, out.open(f"{folder}/{name}", "w") as target:
                            while chunk := stream.read(CHUNK):
                                target.write(chunk)


def is_zip(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(4) == b"PK\x03\x04"


def remove_quietly(path: Path) -> None:
    try:
        if path.is_dir():
            for child in sorted(path.rglob("*"), reverse=True):
                child.unlink() if not child.is_dir() else child.rmdir()
            path.rmdir()
        else:
            os.unlink(path)
    except OSError:
        pass
