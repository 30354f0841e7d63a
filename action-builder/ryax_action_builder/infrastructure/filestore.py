"""Filestore adapters: any S3 API endpoint (minio client) or a local directory."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from minio import Minio
from minio.error import S3Error

from ..application.ports import ObjectNotFound

_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


class S3Filestore:
    """The minio client is blocking: every call runs in a thread."""

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
    ) -> None:
        self._client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self.bucket = bucket

    async def start(self) -> None:
        """Create the bucket if it is missing (idempotent)."""

        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

        await asyncio.to_thread(ensure)

    async def exists(self, key: str) -> bool:
        def stat() -> bool:
            try:
                self._client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    return False
                raise
            return True

        return await asyncio.to_thread(stat)

    async def download(self, key: str, destination: Path) -> None:
        def get() -> None:
            try:
                self._client.fget_object(self.bucket, key, str(destination))
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    raise ObjectNotFound(key) from None
                raise

        await asyncio.to_thread(get)

    async def upload(self, key: str, source: Path, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.fput_object, self.bucket, key, str(source), content_type=content_type
        )

    async def read_bytes(self, key: str) -> bytes | None:
        def get() -> bytes | None:
            try:
                response = self._client.get_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING_CODES:
                    return None
                raise
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(get)

    async def write_bytes(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
        )

    async def ping(self) -> None:
        await asyncio.to_thread(self._client.bucket_exists, self.bucket)


class LocalDirFilestore:
    """Keys are relative paths under `root` (the embedded, single-machine filestore)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def start(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"invalid filestore key: {key!r}")
        return self.root.joinpath(*relative.parts)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_of(key).is_file)

    async def download(self, key: str, destination: Path) -> None:
        source = self.path_of(key)

        def copy() -> None:
            try:
                shutil.copyfile(source, destination)
            except FileNotFoundError:
                raise ObjectNotFound(key) from None

        await asyncio.to_thread(copy)

    async def upload(self, key: str, source: Path, content_type: str) -> None:
        target = self.path_of(key)
        await asyncio.to_thread(_atomic_copy, source, target)

    async def read_bytes(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                return self.path_of(key).read_bytes()
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def write_bytes(self, key: str, data: bytes, content_type: str) -> None:
        target = self.path_of(key)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

        await asyncio.to_thread(write)

    async def ping(self) -> None:
        if not await asyncio.to_thread(self.root.is_dir):
            raise OSError(f"filestore directory {self.root} is missing")


def _atomic_copy(source: Path, target: Path) -> None:
    """Readers never see a partial object."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
