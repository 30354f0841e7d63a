"""What the runtime needs from the outside world."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..domain.io import PathInfo
from ..domain.model import ActionKind, LogStream

#: Receives one line (without its newline) of an execution's output; callable from any thread.
LineSink = Callable[[LogStream, str], None]


class CodeLoadError(Exception):
    """The user code cannot be loaded; `error` is one line naming the file, `traceback` the
    user's traceback when there is one."""

    def __init__(self, error: str, traceback: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.traceback = traceback


class CodeLoader(Protocol):
    def load(self, action_dir: str, kind: ActionKind) -> Callable[..., Any]:
        """Import the action's entry file and return its entry function (handle or run);
        raises CodeLoadError."""
        ...


class OutputCapture(Protocol):
    def capturing(self, sink: LineSink) -> AbstractContextManager[None]:
        """Route stdout, stderr and `logging` records to `sink` while the block runs; every
        line written before the block ends reached the sink when it ends."""
        ...


class WorkingDirectory(Protocol):
    def entered(self, path: str) -> AbstractContextManager[None]:
        """Make `path` the current directory for the block (created if missing)."""
        ...


class PathProber(Protocol):
    def __call__(self, path: str) -> PathInfo:
        """What is at an absolute local path."""
        ...
