"""Files this site published, kept on its disk by sha256 (SiteFiles), so a step of the same site
reads a file another step wrote without downloading it again.

<cache>/site-files/<sha256>      one copy per content (read-only, 0o444)
<cache>/site-files/.tmp-*        copies in progress (removed at start)

Bounded by RYAX_SITE_FILES_MAX_BYTES: past it the least recently used copies go (a hit touches
the copy). Best effort: any error is logged and the file is downloaded instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..transfers import DOWNLOAD, TransferStats

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MODE = "site-local"


class SiteFileCache:
    def __init__(self, root: Path, max_bytes: int, stats: TransferStats | None = None) -> None:
        self._root = root
        self._max = max_bytes
        self.stats = stats or TransferStats()
        self._lock = asyncio.Lock()

    def clean_partial(self) -> None:
        if self._root.is_dir():
            for leftover in self._root.glob(".tmp-*"):
                leftover.unlink(missing_ok=True)

    def _path(self, sha256: str) -> Path | None:
        return self._root / sha256 if _SHA256.match(sha256) else None

    async def keep(self, sha256: str, source: Path) -> None:
        target = self._path(sha256)
        if target is None or self._max <= 0:
            return
        try:
            size = os.stat(source).st_size
            if size > self._max:
                return
            async with self._lock:
                await asyncio.to_thread(self._keep, source, target)
        except OSError as error:
            log.warning("site file not kept", extra={"sha256": sha256, "reason": str(error)})

    def _keep(self, source: Path, target: Path) -> None:
        if target.is_file():
            os.utime(target)
            return
        self._root.mkdir(parents=True, exist_ok=True)
        _copy_atomic(source, target, 0o444)
        self._evict()

    def _evict(self) -> None:
        entries = []
        for path in self._root.iterdir():
            if path.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                info = path.stat()
                entries.append((info.st_mtime, info.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries, key=lambda entry: entry[0]):
            if total <= self._max:
                break
            path.unlink(missing_ok=True)
            total -= size

    async def copy_to(self, sha256: str, destination: Path) -> bool:
        kept = self._path(sha256)
        if kept is None or self._max <= 0:
            return False
        try:
            copied = await asyncio.to_thread(self._copy_to, kept, destination)
        except OSError as error:
            log.warning("site file not read", extra={"sha256": sha256, "reason": str(error)})
            return False
        if copied is not None:
            self.stats.add(DOWNLOAD, MODE, copied)
            return True
        return False

    def _copy_to(self, kept: Path, destination: Path) -> int | None:
        if not kept.is_file():
            return None
        os.utime(kept)
        destination.parent.mkdir(parents=True, exist_ok=True)
        _copy_atomic(kept, destination, 0o644)
        return destination.stat().st_size

    def forget(self, sha256: str) -> None:
        kept = self._path(sha256)
        if kept is not None:
            kept.unlink(missing_ok=True)


def _copy_atomic(source: Path, target: Path, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out, 1024 * 1024)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
