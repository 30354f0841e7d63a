"""FileStore adapters: any S3 API endpoint (through the `minio` client) or a local directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from minio import Minio
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError

from ..domain.errors import FileTransferFailed


def _check_key(key: str) -> str:
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or any(part in {"..", "."} for part in parts):
        raise FileTransferFailed(f"invalid filestore key {key!r}")
    return key


class S3FileStore:
    """Objects in one bucket of an S3 API endpoint (MinIO, SeaweedFS, AWS...)."""

    def __init__(
        self, *, endpoint: str, access_key: str, secret_key: str, bucket: str, secure: bool
    ) -> None:
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)
        self._bucket = bucket
        self._endpoint = endpoint

    async def ensure_bucket(self) -> None:
        def ensure() -> None:
            if not self._client.bucket_exists(self._bucket):
                try:
                    self._client.make_bucket(self._bucket)
                except S3Error as error:
                    if error.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

        await asyncio.to_thread(ensure)

    async def download(self, key: str, destination: Path) -> None:
        _check_key(key)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(self._client.fget_object, self._bucket, key, str(destination))
        except S3Error as error:
            if error.code in {"NoSuchKey", "NoSuchObject"}:
                raise FileTransferFailed(f"{key} is not in the filestore") from error
            raise FileTransferFailed(f"cannot read {key}: {error.code}: {error.message}") from error
        except (MinioException, HTTPError, OSError, ValueError) as error:
            raise FileTransferFailed(f"cannot read {key} from {self._endpoint}: {error}") from error

    async def upload(self, source: Path, key: str) -> None:
        _check_key(key)
        try:
            await asyncio.to_thread(self._client.fput_object, self._bucket, key, str(source))
        except S3Error as error:
            raise FileTransferFailed(
                f"cannot write {key}: {error.code}: {error.message}"
            ) from error
        except (MinioException, HTTPError, OSError, ValueError) as error:
            raise FileTransferFailed(f"cannot write {key} to {self._endpoint}: {error}") from error


class LocalDirectoryFileStore:
    """Objects as files under a directory (the single-machine, embedded default)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    async def ensure_bucket(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*PurePosixPath(_check_key(key)).parts)

    async def download(self, key: str, destination: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise FileTransferFailed(f"{key} is not in the filestore")
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(shutil.copyfile, source, destination)
        except OSError as error:
            raise FileTransferFailed(f"cannot read {key}: {error}") from error

    async def upload(self, source: Path, key: str) -> None:
        target = self._path(key)

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Readers never see half a file: write aside, then rename.
            fd, temp = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
            os.close(fd)
            try:
                shutil.copyfile(source, temp)
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise

        try:
            await asyncio.to_thread(copy)
        except OSError as error:
            raise FileTransferFailed(f"cannot write {key}: {error}") from error
