"""The filestore: S3 through the minio client when RYAX_S3_ENDPOINT is set, else a local
directory (RYAX_FILESTORE_DIR). Keys are relative paths (`runs/<run>/<execution>/<name>/<file>`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024


class Filestore(Protocol):
    async def put_file(self, key: str, path: Path) -> None:
        """Store a local file under `key` (the file may be moved)."""
        ...

    def read(self, key: str) -> AsyncIterator[bytes]: ...

    async def exists(self, key: str) -> bool: ...

    async def ready(self) -> bool: ...


def _safe(key: str) -> str:
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"invalid filestore key {key!r}")
    return "/".join(parts)


class LocalFilestore:
    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / _safe(key)

    async def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))

        await asyncio.to_thread(move)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def ready(self) -> bool:
        return await asyncio.to_thread(lambda: self.root.is_dir() or _mkdir(self.root))


def _mkdir(root: Path) -> bool:
    root.mkdir(parents=True, exist_ok=True)
    return True


class S3Filestore:
    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = False
    ) -> None:
        from minio import Minio

        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        self._bucket = bucket
        self._bucket_checked = False

    async def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return

        def ensure() -> None:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)

        await asyncio.to_thread(ensure)
        self._bucket_checked = True

    async def put_file(self, key: str, path: Path) -> None:
        await self._ensure_bucket()
        await asyncio.to_thread(self._client.fput_object, self._bucket, _safe(key), str(path))
        await asyncio.to_thread(os.unlink, path)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        response = await asyncio.to_thread(self._client.get_object, self._bucket, _safe(key))
        try:
            while True:
                chunk = await asyncio.to_thread(response.read, CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def exists(self, key: str) -> bool:
        from minio.error import S3Error

        try:
            await asyncio.to_thread(self._client.stat_object, self._bucket, _safe(key))
            return True
        except S3Error:
            return False

    async def ready(self) -> bool:
        try:
            await self._ensure_bucket()
            return True
        except Exception:  # noqa: BLE001 - readiness answers, it does not raise
            return False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
