"""The studio's FileStore port on the kit's filestore (S3 or a local directory)."""

from __future__ import annotations

from pathlib import Path

from ryax_kit.filestore import Filestore, FilestoreError, ObjectNotFound

from ..domain.errors import NotFound, Unavailable


class KitFileStore:
    """Filestore failures become domain errors: a missing object 404, anything else 503 (the
    message names the key and the cause, never a credential)."""

    def __init__(self, filestore: Filestore) -> None:
        self._store = filestore

    async def ensure_ready(self) -> None:
        try:
            await self._store.ensure_ready()
        except FilestoreError as exc:
            raise Unavailable(f"the filestore is not ready: {exc}") from exc

    async def put_file(self, key: str, source: Path) -> None:
        try:
            await self._store.put_file(key, source)
        except FilestoreError as exc:
            raise Unavailable(f"the filestore cannot store the file: {exc}") from exc

    async def download(self, key: str, destination: Path) -> None:
        try:
            await self._store.download(key, destination)
        except ObjectNotFound as exc:
            raise NotFound(f"a static file is missing from the filestore ({key})") from exc
        except FilestoreError as exc:
            raise Unavailable(f"the filestore cannot give the file: {exc}") from exc
