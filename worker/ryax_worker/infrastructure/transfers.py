"""The kit's filestore behind the worker's FileStore port. Its errors become FileTransferFailed
here, at the edge, so the use cases and the artefact cache handle one error whatever the
backend (S3 or a local directory)."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path

from ryax_kit.filestore import Filestore, FilestoreError, InvalidKey, ObjectNotFound

from ..domain.errors import FileTransferFailed


async def _transfer(operation: Awaitable[None]) -> None:
    try:
        await operation
    except ObjectNotFound as error:
        raise FileTransferFailed(f"{error.key} is not in the filestore") from error
    except (FilestoreError, InvalidKey) as error:
        raise FileTransferFailed(str(error)) from error


class FilestoreTransfers:
    """Downloads and uploads through a `ryax_kit.filestore.Filestore`."""

    def __init__(self, store: Filestore) -> None:
        self._store = store

    async def download(self, key: str, destination: Path) -> None:
        await _transfer(self._store.download(key, destination))

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        await _transfer(self._store.upload(key, source, content_type))
