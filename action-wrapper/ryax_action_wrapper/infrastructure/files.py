"""Local file system adapters: what is at a path, and the execution's current directory."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ..domain.io import PathInfo


def probe_path(path: str) -> PathInfo:
    try:
        st = os.stat(path)
    except OSError:
        return PathInfo("missing")
    if stat.S_ISREG(st.st_mode):
        return PathInfo("file", st.st_size)
    if stat.S_ISDIR(st.st_mode):
        return PathInfo("directory")
    return PathInfo("other")


class ProcessWorkingDirectory:
    """Executions never overlap in one process, so changing the process's directory is safe."""

    @contextmanager
    def entered(self, path: str) -> Iterator[None]:
        if not path:
            yield
            return
        os.makedirs(path, exist_ok=True)
        previous = os.getcwd()
        os.chdir(path)
        try:
            yield
        finally:
            try:
                os.chdir(previous)
            except OSError:
                os.chdir("/")
