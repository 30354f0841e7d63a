"""The log of one build, shown to the user (ActionBuilt / ActionBuildFailed.build_log)."""

from __future__ import annotations

import time

#: A build log larger than this keeps its start and its end (the error is at the end).
MAX_LOG_CHARS = 512 * 1024


class BuildLog:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._start = time.monotonic()

    def add(self, line: str) -> None:
        elapsed = time.monotonic() - self._start
        self._lines.append(f"[{elapsed:7.2f}s] {line.rstrip()}")

    def add_output(self, text: str) -> None:
        """Lines of a tool's output, kept as they are (indented under the step)."""
        for line in text.splitlines():
            self._lines.append(f"    {line.rstrip()}")

    def text(self) -> str:
        full = "\n".join(self._lines) + ("\n" if self._lines else "")
        if len(full) <= MAX_LOG_CHARS:
            return full
        half = MAX_LOG_CHARS // 2
        return full[:half] + "\n[... build log truncated ...]\n" + full[-half:]
