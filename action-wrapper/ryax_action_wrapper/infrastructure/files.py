"""Local file system adapters: what is at a path, and the execution's current directory."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from ..domain.io import PathInfo


def probe_path(path: str) -> PathInfo:
    try:
        st = os.stat(path)
        real = os.path.realpath(path)
    except OSError:
        return PathInfo("missing")
    if stat.S_ISREG(st.st_mode):
        return PathInfo("file", st.st_size, real)
    if stat.S_ISDIR(st.st_mode):
        return PathInfo("directory", real=real)
    return PathInfo("other", real=real)


class ProcessWorkingDirectory:
    """Executions never overlap in one process, so changing the process's directory is safe.

    During an execution its work directory is also the temporary directory (`tempfile`,
    `$TMPDIR`): a file made with `tempfile.mkdtemp()` and returned as an output is inside the
    work directory, where outputs must be, and goes away with the execution.

    Per execution it costs a change of directory there and back: the work directory is made
    only when it is missing (the worker makes it, may reuse it, or may have removed it)."""

    @contextmanager
    def entered(self, path: str) -> Iterator[None]:
        if not path:
            yield
            return
        previous = os.getcwd()
        absolute = os.path.abspath(path)
        try:
            os.chdir(absolute)
        except FileNotFoundError:
            os.makedirs(absolute, exist_ok=True)
            os.chdir(absolute)
        previous_tempdir, previous_env = tempfile.tempdir, os.environ.get("TMPDIR")
        tempfile.tempdir = os.environ["TMPDIR"] = absolute
        try:
            yield
        finally:
            tempfile.tempdir = previous_tempdir
            if previous_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = previous_env
            try:
                os.chdir(previous)
            except OSError:
                os.chdir("/")
