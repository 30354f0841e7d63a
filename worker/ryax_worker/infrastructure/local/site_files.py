"""Files this site published, kept on its disk by sha256 (SiteFiles), so a step of the same site
reads a file another step wrote without downloading it again.

<cache>/site-files/<sha256>      one copy per content (read-only, 0o444)
<cache>/site-files/.tmp-*        copies in progress (removed at start)
<cache>/site-files/.pins/<run_id>/<sha256>   a file held for a run (RYAX_SITE_FILES=hold)

Bounded by RYAX_SITE_FILES_MAX_BYTES: past it the least recently used copies go (a hit touches
the copy). Best effort: any error is logged and the file is downloaded instead.

Held files (`hold`) are another matter: the only copy until published. Each is written to a
temporary file, flushed (fsync), renamed, and its directory flushed; then its pin (an empty file
under .pins/<run_id>/) likewise, all before the execution's result is reported. A pinned copy
is never dropped by the bound (nor one being published); the pins are read again at start.
`release` removes the pins of ended runs: the copies stay as ordinary cache entries.
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
_RUN_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")
MODE = "site-local"
PINS = ".pins"


class SiteFileCache:
    def __init__(self, root: Path, max_bytes: int, stats: TransferStats | None = None) -> None:
        self._root = root
        self._max = max_bytes
        self.stats = stats or TransferStats()
        self._lock = asyncio.Lock()
        #: sha256 -> the runs that pin it.
        self._pins: dict[str, set[str]] = {}
        #: Copies being published (never dropped meanwhile).
        self._busy: dict[str, int] = {}

    def clean_partial(self) -> None:
        """At start: remove copies left half-written, read the pins back."""
        if self._root.is_dir():
            for leftover in self._root.glob(".tmp-*"):
                leftover.unlink(missing_ok=True)
        self._pins = {}
        pins = self._root / PINS
        if pins.is_dir():
            for run_dir in pins.iterdir():
                for pin in run_dir.iterdir() if run_dir.is_dir() else ():
                    if _SHA256.match(pin.name):
                        self._pins.setdefault(pin.name, set()).add(run_dir.name)
                    else:
                        pin.unlink(missing_ok=True)  # a pin left half-written
        if self._pins:
            log.info("held files found again", extra={"files": len(self._pins)})

    # -- held files (RYAX_SITE_FILES=hold) -------------------------------------------------

    async def hold(self, sha256: str, source: Path, run_id: str) -> None:
        target = self._path(sha256)
        if target is None or not _RUN_ID.match(run_id):
            raise OSError(f"cannot hold {sha256!r} for run {run_id!r}: not a valid name")
        async with self._lock:
            await asyncio.to_thread(self._hold, source, target, run_id)
            self._pins.setdefault(sha256, set()).add(run_id)

    def _hold(self, source: Path, target: Path, run_id: str) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            _copy_atomic(source, target, 0o444, durable=True)
        else:
            os.utime(target)
        run_dir = self._root / PINS / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        pin = run_dir / target.name
        if not pin.exists():
            fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=run_dir)
            os.fsync(fd)
            os.close(fd)
            os.replace(temporary, pin)
            _fsync_dir(run_dir)
            _fsync_dir(run_dir.parent)
            _fsync_dir(self._root)

    def held(self) -> tuple[tuple[str, str], ...]:
        return tuple(
            sorted((run_id, sha256) for sha256, runs in self._pins.items() for run_id in runs)
        )

    def held_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path is not None and path.is_file() else None

    def busy(self, sha256: str, busy: bool) -> None:
        count = self._busy.get(sha256, 0) + (1 if busy else -1)
        if count > 0:
            self._busy[sha256] = count
        else:
            self._busy.pop(sha256, None)

    async def release(self, run_ids: tuple[str, ...]) -> int:
        released = 0
        async with self._lock:
            for run_id in run_ids:
                if not _RUN_ID.match(run_id):
                    continue
                for sha256 in [h for h, runs in self._pins.items() if run_id in runs]:
                    self._pins[sha256].discard(run_id)
                    if not self._pins[sha256]:
                        del self._pins[sha256]
                    released += 1
                await asyncio.to_thread(
                    shutil.rmtree, self._root / PINS / run_id, ignore_errors=True
                )
            if released:
                await asyncio.to_thread(self._evict)
        return released

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
            if path.name in self._pins or path.name in self._busy:
                continue  # held for a run, or being published: never dropped
            path.unlink(missing_ok=True)
            total -= size

    async def copy_to(self, sha256: str, destination: Path) -> bool:
        kept = self._path(sha256)
        if kept is None or (self._max <= 0 and sha256 not in self._pins):
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
        if kept is not None and sha256 not in self._pins:
            kept.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_atomic(source: Path, target: Path, mode: int, durable: bool = False) -> None:
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out, 1024 * 1024)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
        if durable:
            _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
