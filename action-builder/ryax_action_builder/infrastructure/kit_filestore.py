"""The kit's filestore seen through the application's port: the kit's `ObjectNotFound` becomes
the application's (which cannot import the kit's filestore)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ryax_kit import filestore as kit

from ..application.ports import ObjectNotFound


@contextmanager
def _missing_is_not_found() -> Iterator[None]:
    try:
        yield
    except kit.ObjectNotFound as exc:
        raise ObjectNotFound(str(exc)) from exc


class KitFilestore:
    def __init__(self, store: kit.Filestore) -> None:
        self._store = store

    async def exists(self, key: str) -> bool:
        return await self._store.exists(key)

    async def download(self, key: str, destination: Path) -> None:
        with _missing_is_not_found():
            await self._store.download(key, destination)

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        await self._store.upload(key, source, content_type)

    async def read_bytes(self, key: str) -> bytes:
        with _missing_is_not_found():
            return await self._store.read_bytes(key)

    async def write_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        await self._store.write_bytes(key, data, content_type)
