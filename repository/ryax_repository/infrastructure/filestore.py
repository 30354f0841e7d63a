"""The filestore: S3 (any S3 API: MinIO, SeaweedFS) through the minio client, or a local
directory when no S3 endpoint is configured. Keys are relative paths like
`sources/<sha256>.tar.gz`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import tempfile
from pathlib import Path

from minio import Minio
from minio.error import S3Error

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid filestore key {key!r}")
    return key


class LocalFilestore:
    """A directory; writes are atomic (temporary file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    async def ensure_ready(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def put_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._put, self._path(key), path)

    @staticmethod
    def _put(target: Path, source: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as data:
                while chunk := data.read(1024 * 1024):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)


class S3Filestore:
    """An S3 bucket; the minio client is blocking, so calls run in threads."""

    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool = False
    ) -> None:
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        self.bucket = bucket

    def __repr__(self) -> str:
        return f"S3Filestore(bucket={self.bucket!r})"

    async def ensure_ready(self) -> None:
        def make() -> None:
            if not self._client.bucket_exists(bucket_name=self.bucket):
                with contextlib.suppress(S3Error):  # created concurrently by another service
                    self._client.make_bucket(bucket_name=self.bucket)

        await asyncio.to_thread(make)

    async def put_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(
            self._client.fput_object,
            bucket_name=self.bucket,
            object_name=check_key(key),
            file_path=str(path),
            content_type="application/gzip",
        )

    async def exists(self, key: str) -> bool:
        def stat() -> bool:
            try:
                self._client.stat_object(bucket_name=self.bucket, object_name=check_key(key))
                return True
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"):
                    return False
                raise

        return await asyncio.to_thread(stat)

    async def get_bytes(self, key: str) -> bytes:
        def get() -> bytes:
            response = self._client.get_object(bucket_name=self.bucket, object_name=check_key(key))
            try:
                buffer = io.BytesIO()
                for chunk in response.stream(1024 * 1024):
                    buffer.write(chunk)
                return buffer.getvalue()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(get)
