"""Kernel files read or written at every execution (a cgroup's CPU account, the wrapper's
/proc status and clear_refs), kept open: one `pread` or `write` each time instead of open,
read and close through pathlib, which showed in the hop path's profile (issue #18)."""

from __future__ import annotations

import contextlib
import os

#: Enough for /proc/<pid>/status, cpu.stat and cpuacct.usage.
_READ_SIZE = 8192


class OpenFile:
    """One file kept open while its path stays the same; opened again when the path changes
    (a new pid), closed by `close()`. Read and write errors answer None/False: the callers
    treat a vanished process or cgroup as unknown."""

    def __init__(self, *, write: bool = False) -> None:
        self._flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC
        self._path: str | None = None
        self._fd: int | None = None

    def _open(self, path: str | os.PathLike[str]) -> int | None:
        path = os.fspath(path)
        if self._fd is not None and self._path == path:
            return self._fd
        self.close()
        try:
            self._fd = os.open(path, self._flags)
        except OSError:
            return None
        self._path = path
        return self._fd

    def read(self, path: str | os.PathLike[str]) -> bytes | None:
        """The file's content now (kernel files are generated again at offset 0)."""
        fd = self._open(path)
        if fd is None:
            return None
        try:
            return os.pread(fd, _READ_SIZE, 0)
        except OSError:
            self.close()
            return None

    def write(self, path: str | os.PathLike[str], data: bytes) -> bool:
        fd = self._open(path)
        if fd is None:
            return False
        try:
            os.write(fd, data)
        except OSError:
            self.close()
            return False
        return True

    def close(self) -> None:
        fd, self._fd, self._path = self._fd, None, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def number_after(text: bytes, name: bytes) -> int | None:
    """The first number after `name` at the start of a line (`VmHWM:`, `usage_usec`)."""
    if text.startswith(name):
        at = 0
    else:
        at = text.find(b"\n" + name) + 1
        if at == 0:
            return None
    end = text.find(b"\n", at)
    parts = text[at + len(name) : end if end >= 0 else None].split()
    try:
        return int(parts[0])
    except (IndexError, ValueError):
        return None
