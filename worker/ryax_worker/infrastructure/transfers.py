"""The kit's filestore behind the worker's FileStore port ("direct" mode: the worker holds the
filestore's settings). Its errors become FileTransferFailed here, at the edge, so the use cases
and the artefact cache handle one error whatever the backend (S3 or a local directory). Bytes
moved are counted in TransferStats (both modes; the /metrics page shows them)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from ryax_kit.filestore import Filestore, FilestoreError, InvalidKey, ObjectNotFound

from ..domain.errors import FileTransferFailed

DOWNLOAD, UPLOAD = "download", "upload"


@dataclass
class TransferStats:
    """Bytes moved to and from the filestore, by (direction, mode), and presigned URLs asked
    for (renewals of an expired one included)."""

    bytes: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    urls_requested: int = 0
    urls_renewed: int = 0

    def add(self, direction: str, mode: str, count: int) -> None:
        self.bytes[(direction, mode)] += count


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def _transfer(operation: Awaitable[None]) -> None:
    try:
        await operation
    except ObjectNotFound as error:
        raise FileTransferFailed(f"{error.key} is not in the filestore") from error
    except (FilestoreError, InvalidKey) as error:
        raise FileTransferFailed(str(error)) from error


class FilestoreTransfers:
    """Downloads and uploads through a `ryax_kit.filestore.Filestore`."""

    mode = "direct"

    def __init__(self, store: Filestore, stats: TransferStats | None = None) -> None:
        self._store = store
        self.stats = stats or TransferStats()

    async def download(self, key: str, destination: Path) -> None:
        await _transfer(self._store.download(key, destination))
        self.stats.add(DOWNLOAD, self.mode, _size(destination))

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        size = _size(source)
        await _transfer(self._store.upload(key, source, content_type))
        self.stats.add(UPLOAD, self.mode, size)
