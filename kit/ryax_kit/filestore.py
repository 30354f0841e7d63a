"""The filestore: one bucket of an S3 API endpoint (MinIO, SeaweedFS, AWS... through the `minio`
client, extra `s3`) or, when no endpoint is configured, a local directory. Both adapters have the
same async interface (`Filestore`); blocking calls run in threads (`asyncio.to_thread`; the S3
adapter in an executor of its own, S3_THREADS).

Keys (`check_key`)
    A key is a relative POSIX path of 1 to 1024 bytes whose segments match
    `[A-Za-z0-9_][A-Za-z0-9._=-]*` and are at most 255 bytes long. So: no empty, `.` or `..`
    segment, no leading `/`, no backslash, no NUL, no space, no control character, no unicode.
    A segment may start with `_` because input/output names (`[A-Za-z_][A-Za-z0-9_]*`) are
    segments; never with `.` (no hidden files, no traversal) or `-` (never read as an option).
    The 255-byte limit is a file name's limit on the local filesystem: both backends take the
    same keys. Every key the services build from ids passes:
        runs/<run uuid>/<execution uuid>/<output>[/<index>]/<file>     (runner, worker)
        triggers/<deployment uuid>/<step id>/<event uuid>/<output>/<file>   (worker)
        sources/<sha256>.tar.gz                                         (repository)
        artefacts/<sha256>.tar.gz, artefacts/<sha256>.json              (action builder)
        projects/<project id>/files/<uuid>/<file>                       (studio: static files)
    Text a user chose (the <file> above: an uploaded file's name, a file an action wrote) may
    hold spaces, unicode, a leading dot...: key builders put it through `encode_segment`, which
    returns it unchanged when it already is a plain segment, else an escaped form that is always
    valid and never shared by two texts. The key is only a place; keep the name the user gave
    beside it (FileRef.name) to show or to restore the file under.
    Why not accept any unicode instead: two spellings of one name (NFC/NFD), invisible and
    bidirectional characters, and each backend's own rules for odd bytes would make keys that
    look alike differ, or differ between S3 and the local directory.

Errors
    `InvalidKey` (a ValueError) for a key breaking the rule, raised before any I/O.
    `ObjectNotFound` for a missing key (download, read, read_bytes, size; `exists` answers False
    and `delete` does nothing). `FilestoreError`, the base of ObjectNotFound, for every backend
    failure: S3 errors, connection errors, OSError. Its message names the key and the cause,
    never a credential; the original exception is chained. A missing bucket is a
    FilestoreError, never ObjectNotFound (but SeaweedFS creates a bucket on the first PUT).

One difference stays: S3 may hold both `a` and `a/b`; the local directory cannot (`a` is a file
or a directory), and refuses the second with a FilestoreError. No service builds such keys.

Writes are atomic for readers (an object appears whole or not at all): S3 gives that, the
local directory writes a temporary file beside the target, fsyncs it and renames it. Downloads
are atomic the same way on the destination side.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import io
import itertools
import os
import shutil
import stat
import tempfile
import urllib.parse
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

from .core.keys import (
    MAX_KEY_BYTES,
    MAX_SEGMENT_BYTES,
    InvalidKey,
    _show,
    check_key,
    encode_segment,
)
from .settings import ConfigurationError, Env

if TYPE_CHECKING:
    from minio import Minio
    from urllib3 import BaseHTTPResponse, PoolManager

__all__ = [
    "CHUNK_SIZE",
    "MAX_KEY_BYTES",
    "MAX_SEGMENT_BYTES",
    "Filestore",
    "FilestoreError",
    "FilestoreSettings",
    "InvalidKey",
    "LocalDirFilestore",
    "ObjectNotFound",
    "PresignNotSupported",
    "S3Filestore",
    "check_key",
    "encode_segment",
    "filestore_from_settings",
    "split_endpoint",
]

CHUNK_SIZE = 256 * 1024
#: Longest wait of a health check (ping).
PING_SECONDS = 3.0
#: Keys per multi-object delete (S3 takes at most 1000).
DELETE_BATCH = 1000
#: Threads of an S3Filestore's own executor. A call stuck on a silently dead connection (a cut
#: link: TCP retransmits with a growing backoff, up to the read timeout) holds its thread; in
#: asyncio's default executor (cpu count + 4 threads) a few of them held up every other call,
#: health checks included, for tens of seconds after the link was back (the chaos suite's
#: cut-worker-network with a 30 s cut).
S3_THREADS = 64
MAX_PRESIGN_EXPIRY = timedelta(days=7)
MIN_PRESIGN_EXPIRY = timedelta(seconds=1)
DEFAULT_REGION = "us-east-1"
FILE_MODE = 0o644

# minio's codes for "no such object": HEAD answers 404 without a body, which it names NoSuchKey.
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound"})
_BUCKET_TAKEN_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})

T = TypeVar("T")


# --------------------------------------------------------------------------- errors


class FilestoreError(Exception):
    """The filestore could not do what was asked; the message names the key and the cause."""


class ObjectNotFound(FilestoreError):
    """No object under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{_show(key)} is not in the filestore")
        self.key = key


class PresignNotSupported(FilestoreError):
    """This filestore cannot hand out URLs."""


def _check_expiry(expires: timedelta) -> timedelta:
    if not isinstance(expires, timedelta):
        raise ValueError(f"expires must be a timedelta, not {type(expires).__name__}")
    if not MIN_PRESIGN_EXPIRY <= expires <= MAX_PRESIGN_EXPIRY:
        raise ValueError(f"expires must be between 1 second and 7 days, not {expires}")
    return expires


# --------------------------------------------------------------------------- the port


class Filestore(Protocol):
    """Objects under keys (see `check_key`); every method may raise FilestoreError."""

    async def ensure_ready(self) -> None:
        """Create the bucket or directory when missing (idempotent, safe when concurrent)."""
        ...

    async def ping(self) -> bool:
        """True when the filestore answers and is usable; never raises."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int:
        """Bytes in the object; ObjectNotFound when missing."""
        ...

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        """Copy a local file in (replacing any object under the key)."""
        ...

    async def put_file(self, key: str, source: Path) -> None:
        """Move a local file in: `source` is gone once this returns (kept when it fails)."""
        ...

    async def download(self, key: str, destination: Path) -> None:
        """Write the object to `destination` (parents created; appears whole or not at all)."""
        ...

    def read(self, key: str) -> AsyncGenerator[bytes, None]:
        """The object in chunks of at most CHUNK_SIZE bytes. Close the iterator when stopping
        early (`contextlib.aclosing`) so the connection or file is released at once."""
        ...

    async def read_bytes(self, key: str) -> bytes: ...

    async def write_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with `prefix` (a key followed by '/', e.g.
        `runs/<run>/`), in batches; how many were removed (0 when none: not an error)."""
        ...

    async def presigned_get_url(self, key: str, expires: timedelta) -> str:
        """A URL anyone holding it may GET the object with until `expires` (1 s to 7 days)."""
        ...

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        """A URL anyone holding it may PUT the object with until `expires` (1 s to 7 days)."""
        ...


# --------------------------------------------------------------------------- local directory


class LocalDirFilestore:
    """Objects as files under `root` (the single-machine filestore). Files are 0o644 and
    written atomically; a key is `root` joined with its segments, so it never leaves `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"LocalDirFilestore({str(self.root)!r})"

    def path_of(self, key: str) -> Path:
        """Where the object of `key` lives (InvalidKey for a bad key)."""
        return self.root.joinpath(*check_key(key).split("/"))

    async def _call(self, verb: str, key: str | None, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except FilestoreError:
            raise
        except OSError as error:
            what = f" {_show(key)}" if key is not None else ""
            raise FilestoreError(f"cannot {verb}{what} in {self.root}: {error}") from error

    async def ensure_ready(self) -> None:
        await self._call("create the directory", None, lambda: _mkdirs(self.root))

    async def ping(self) -> bool:
        def usable() -> bool:
            return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)

        try:
            return await asyncio.to_thread(usable)
        except Exception:  # noqa: BLE001 - a health check answers, it does not raise
            return False

    async def exists(self, key: str) -> bool:
        path = self.path_of(key)
        return await self._call("look up", key, path.is_file)

    async def size(self, key: str) -> int:
        path = self.path_of(key)

        def measure() -> int:
            try:
                if path.is_file():
                    return path.stat().st_size
            except FileNotFoundError:
                pass
            raise ObjectNotFound(key)

        return await self._call("stat", key, measure)

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        target = self.path_of(key)

        def copy() -> None:
            with open(source, "rb") as data:
                _atomic_write(target, lambda out: shutil.copyfileobj(data, out, CHUNK_SIZE))

        await self._call("upload", key, copy)

    async def put_file(self, key: str, source: Path) -> None:
        target = self.path_of(key)
        await self._call("move in", key, lambda: _move_into(Path(source), target))

    async def download(self, key: str, destination: Path) -> None:
        path = self.path_of(key)

        def copy() -> None:
            with _open_object(path, key) as data:
                _atomic_write(
                    Path(destination), lambda out: shutil.copyfileobj(data, out, CHUNK_SIZE)
                )

        await self._call("download", key, copy)

    async def read(self, key: str) -> AsyncGenerator[bytes, None]:
        path = self.path_of(key)
        handle = await self._call("read", key, lambda: _open_object(path, key))
        try:
            while chunk := await self._call("read", key, lambda: handle.read(CHUNK_SIZE)):
                yield chunk
        finally:
            handle.close()

    async def read_bytes(self, key: str) -> bytes:
        path = self.path_of(key)

        def read() -> bytes:
            with _open_object(path, key) as data:
                return data.read()

        return await self._call("read", key, read)

    async def write_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        target = self.path_of(key)
        await self._call("write", key, lambda: _atomic_write(target, lambda out: out.write(data)))

    async def delete(self, key: str) -> None:
        path = self.path_of(key)

        def remove() -> None:
            # A directory or a file in place of a directory: no object there, as on S3.
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                path.unlink()

        await self._call("delete", key, remove)

    async def delete_prefix(self, prefix: str) -> int:
        directory = self.path_of(_check_prefix(prefix))

        def remove() -> int:
            if not directory.is_dir():
                return 0
            count = sum(1 for p in directory.rglob("*") if p.is_file())
            shutil.rmtree(directory, ignore_errors=False)
            return count

        return await self._call("delete under", prefix, remove)

    async def presigned_get_url(self, key: str, expires: timedelta) -> str:
        raise _no_urls()

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        raise _no_urls()


def _check_prefix(prefix: str) -> str:
    """The key part of a prefix (`runs/<run>/` -> `runs/<run>`); InvalidKey if it is none."""
    if not isinstance(prefix, str) or not prefix.endswith("/"):
        raise InvalidKey(prefix, "a prefix is a key followed by '/'")
    return check_key(prefix[:-1])


def _no_urls() -> PresignNotSupported:
    return PresignNotSupported(
        "the local-directory filestore cannot hand out URLs; configure an S3 endpoint "
        "(RYAX_S3_ENDPOINT) for remote sites"
    )


def _mkdirs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _open_object(path: Path, key: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ObjectNotFound(key) from None


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; best effort (not every filesystem lets a directory be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Readers see the old file or the whole new one: write aside, fsync, rename over."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)


def _move_into(source: Path, target: Path) -> None:
    """Rename when on the same filesystem (no copy), else copy atomically; then the source is
    gone. The source stays where it was when anything fails."""
    info = os.lstat(source)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(f"{source} is a directory, not a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A symbolic link or a file with other names is copied: renaming would put the link, or a
    # file others still write to, into the store.
    same_device = info.st_dev == target.parent.stat().st_dev
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and same_device:
        with open(source, "rb") as data:
            os.fsync(data.fileno())
        os.chmod(source, FILE_MODE)
        os.replace(source, target)
        _fsync_directory(target.parent)
        return
    with open(source, "rb") as data:
        _atomic_write(target, lambda out: shutil.copyfileobj(data, out, CHUNK_SIZE))
    source.unlink(missing_ok=True)


# --------------------------------------------------------------------------- S3


def split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """`host:port` and whether to use TLS: an `http(s)://host:port` URL gives both (its scheme
    wins over `secure`), a bare `host:port` keeps `secure`."""
    text = endpoint.strip()
    if "://" not in text:
        if not text or "/" in text:
            raise ValueError(f"invalid S3 endpoint {endpoint!r}: expected host:port or a URL")
        return text, secure
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"invalid S3 endpoint {endpoint!r}: expected http(s)://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"invalid S3 endpoint {endpoint!r}: only a scheme, host and port")
    return parts.netloc, parts.scheme == "https"


def _http_client() -> PoolManager:
    """minio's own settings, with a connect timeout a health check can live with."""
    import certifi
    import urllib3

    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )


class S3Filestore:
    """Objects in one bucket of an S3 API endpoint. `public_endpoint`, when given, is the
    address remote workers reach the same server at: presigned URLs are signed for that host
    (with `region`, by default us-east-1, since such a client may not reach the server)."""

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        public_endpoint: str | None = None,
    ) -> None:
        from minio import Minio
        from minio.error import MinioException
        from urllib3.exceptions import HTTPError

        self.endpoint, self.secure = split_endpoint(endpoint, secure)
        self.bucket = bucket
        # Presigning for another host signs offline: both clients must agree on the region.
        self.region = region or (DEFAULT_REGION if public_endpoint else None)
        self._secret = secret_key  # only to scrub it from error messages
        self._failures: tuple[type[BaseException], ...] = (MinioException, HTTPError, OSError)
        self._client: Minio = Minio(
            self.endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=self.secure,
            region=self.region,
            http_client=_http_client(),
        )
        self._bucket_seen = False
        self._executor = ThreadPoolExecutor(max_workers=S3_THREADS, thread_name_prefix="s3")
        self.public_endpoint: str | None = None
        self._signer = self._client
        if public_endpoint:
            self.public_endpoint, public_secure = split_endpoint(public_endpoint, self.secure)
            self._signer = Minio(
                self.public_endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=public_secure,
                region=self.region,
                http_client=_http_client(),
            )

    def __repr__(self) -> str:
        public = f", public_endpoint={self.public_endpoint!r}" if self.public_endpoint else ""
        return (
            f"S3Filestore(endpoint={self.endpoint!r}, bucket={self.bucket!r}, "
            f"secure={self.secure}{public})"
        )

    # ---- errors

    def _describe(self, error: BaseException) -> str:
        from minio.error import S3Error

        if isinstance(error, S3Error):
            cause = f"{error.code}: {error.message}"
        else:
            cause = f"{type(error).__name__}: {error}"
        if len(self._secret) >= 4:
            cause = cause.replace(self._secret, "***")
        return cause

    def _failure(self, verb: str, key: str | None, error: BaseException) -> FilestoreError:
        from minio.error import S3Error

        if key is not None and isinstance(error, S3Error) and error.code in _MISSING_CODES:
            return ObjectNotFound(key)
        what = f" {_show(key)}" if key is not None else ""
        return FilestoreError(
            f"cannot {verb}{what} (bucket {self.bucket!r} at {self.endpoint}): "
            f"{self._describe(error)}"
        )

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """`fn` in this store's own executor (as asyncio.to_thread, context included)."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(context.run, fn))

    async def _call(self, verb: str, key: str | None, fn: Callable[[], T]) -> T:
        try:
            return await self._in_thread(fn)
        except FilestoreError:
            raise
        except self._failures as error:
            raise self._failure(verb, key, error) from error

    # ---- the interface

    async def ensure_ready(self) -> None:
        from minio.error import S3Error

        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as error:
                    if error.code not in _BUCKET_TAKEN_CODES:  # else made meanwhile by a peer
                        raise
            self._bucket_seen = True

        await self._call("create the bucket", None, ensure)

    async def ping(self) -> bool:
        """Bounded: an unreachable endpoint answers False within PING_SECONDS (the client's own
        retries would take much longer)."""
        try:
            return await asyncio.wait_for(
                self._in_thread(lambda: self._client.bucket_exists(self.bucket)), PING_SECONDS
            )
        except Exception:  # noqa: BLE001 - a health check answers, it does not raise
            return False

    def _stat(self, key: str) -> int | None:
        """The object's size, None when it is missing. A HEAD answers a bare 404 for a missing
        bucket too (minio calls both NoSuchKey): the first miss checks the bucket is there."""
        try:
            return int(self._client.stat_object(self.bucket, key).size or 0)
        except self._failures as error:
            if not isinstance(self._failure("look up", key, error), ObjectNotFound):
                raise
        if not self._bucket_seen:
            if not self._client.bucket_exists(self.bucket):
                raise FilestoreError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint} "
                    f"(looking up {_show(key)}); ensure_ready() creates it"
                )
            self._bucket_seen = True
        return None

    async def exists(self, key: str) -> bool:
        check_key(key)
        return await self._call("look up", key, lambda: self._stat(key) is not None)

    async def size(self, key: str) -> int:
        check_key(key)

        def measure() -> int:
            size = self._stat(key)
            if size is None:
                raise ObjectNotFound(key)
            return size

        return await self._call("stat", key, measure)

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        check_key(key)

        def put() -> None:
            self._client.fput_object(self.bucket, key, str(source), content_type=content_type)

        await self._call("upload", key, put)

    async def put_file(self, key: str, source: Path) -> None:
        await self.upload(key, source)
        await self._call("remove the source of", key, lambda: Path(source).unlink(missing_ok=True))

    async def download(self, key: str, destination: Path) -> None:
        check_key(key)

        def fetch() -> None:
            response = self._client.get_object(self.bucket, key)
            try:
                _atomic_write(Path(destination), lambda out: _copy_response(response, out))
            finally:
                response.close()
                response.release_conn()

        await self._call("download", key, fetch)

    async def read(self, key: str) -> AsyncGenerator[bytes, None]:
        check_key(key)
        response = await self._call("read", key, lambda: self._client.get_object(self.bucket, key))
        try:
            while chunk := await self._call("read", key, lambda: response.read(CHUNK_SIZE)):
                yield chunk
        finally:
            # Not in a thread: this also runs when the generator is collected without a loop.
            response.close()
            response.release_conn()

    async def read_bytes(self, key: str) -> bytes:
        check_key(key)

        def get() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await self._call("read", key, get)

    async def write_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        check_key(key)

        def put() -> None:
            self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )

        await self._call("write", key, put)

    async def delete(self, key: str) -> None:
        check_key(key)
        # S3 answers 204 for a missing key too.
        await self._call("delete", key, lambda: self._client.remove_object(self.bucket, key))

    async def delete_prefix(self, prefix: str) -> int:
        """Listed and removed DELETE_BATCH keys at a time (one multi-object delete each)."""
        from minio.deleteobjects import DeleteObject

        _check_prefix(prefix)

        def remove() -> int:
            removed = 0
            names = (
                o.object_name
                for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)
                if o.object_name
            )
            while batch := list(itertools.islice(names, DELETE_BATCH)):
                errors = list(
                    self._client.remove_objects(self.bucket, [DeleteObject(n) for n in batch])
                )
                if errors:
                    raise FilestoreError(
                        f"cannot delete {len(errors)} of {len(batch)} objects under "
                        f"{_show(prefix)} (bucket {self.bucket!r} at {self.endpoint}): "
                        f"{errors[0].code}: {errors[0].message} ({errors[0].name})"
                    )
                removed += len(batch)
            return removed

        return await self._call("delete under", prefix, remove)

    async def presigned_get_url(self, key: str, expires: timedelta) -> str:
        check_key(key)
        _check_expiry(expires)
        return await self._call(
            "sign a download URL for",
            key,
            lambda: self._signer.presigned_get_object(self.bucket, key, expires=expires),
        )

    async def presigned_put_url(self, key: str, expires: timedelta) -> str:
        check_key(key)
        _check_expiry(expires)
        return await self._call(
            "sign an upload URL for",
            key,
            lambda: self._signer.presigned_put_object(self.bucket, key, expires=expires),
        )


def _copy_response(response: BaseHTTPResponse, out: BinaryIO) -> None:
    while chunk := response.read(CHUNK_SIZE):
        out.write(chunk)


# --------------------------------------------------------------------------- from settings


def filestore_from_settings(
    *,
    s3_endpoint: str | None,
    s3_access_key: str,
    s3_secret_key: str,
    s3_bucket: str,
    s3_secure: bool,
    s3_region: str | None,
    filestore_dir: Path | str,
    s3_public_endpoint: str | None = None,
) -> S3Filestore | LocalDirFilestore:
    """S3 when an endpoint is set (`host:port` or `http(s)://host:port`, whose scheme then
    decides TLS), else the local directory."""
    if s3_endpoint and s3_endpoint.strip():
        return S3Filestore(
            endpoint=s3_endpoint,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            bucket=s3_bucket,
            secure=s3_secure,
            region=s3_region or None,
            public_endpoint=s3_public_endpoint or None,
        )
    return LocalDirFilestore(Path(filestore_dir))


@dataclass(frozen=True, kw_only=True)
class FilestoreSettings:
    """The filestore as every service reads it from the environment.

    RYAX_S3_ENDPOINT (`host:port`, or `http(s)://host:port` whose scheme decides TLS; unset:
    the local directory RYAX_FILESTORE_DIR), RYAX_S3_ACCESS_KEY, RYAX_S3_SECRET_KEY,
    RYAX_S3_BUCKET (default `ryax`), RYAX_S3_SECURE (default false), RYAX_S3_REGION,
    RYAX_S3_PUBLIC_ENDPOINT (the address remote sites reach the filestore at, for presigned
    URLs; default: the endpoint).
    """

    s3_endpoint: str | None
    s3_access_key: str = field(repr=False)
    s3_secret_key: str = field(repr=False)
    s3_bucket: str
    s3_secure: bool
    s3_region: str | None
    s3_public_endpoint: str | None
    filestore_dir: Path

    @classmethod
    def read(cls, e: Env, *, default_dir: Path) -> FilestoreSettings:
        """A malformed endpoint stops the start, naming the variable."""
        for name in ("RYAX_S3_ENDPOINT", "RYAX_S3_PUBLIC_ENDPOINT"):
            value = e.raw(name)
            if value is not None:
                try:
                    split_endpoint(value, False)
                except ValueError as error:
                    raise ConfigurationError(f"{name}: {error}") from None
        return cls(
            s3_endpoint=e.raw("RYAX_S3_ENDPOINT"),
            s3_access_key=e.text("RYAX_S3_ACCESS_KEY"),
            s3_secret_key=e.text("RYAX_S3_SECRET_KEY"),
            s3_bucket=e.text("RYAX_S3_BUCKET", "ryax"),
            s3_secure=e.flag("RYAX_S3_SECURE"),
            s3_region=e.raw("RYAX_S3_REGION"),
            s3_public_endpoint=e.raw("RYAX_S3_PUBLIC_ENDPOINT"),
            filestore_dir=e.path("RYAX_FILESTORE_DIR") or default_dir,
        )

    def filestore(self) -> S3Filestore | LocalDirFilestore:
        return filestore_from_settings(
            s3_endpoint=self.s3_endpoint,
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
            s3_bucket=self.s3_bucket,
            s3_secure=self.s3_secure,
            s3_region=self.s3_region,
            filestore_dir=self.filestore_dir,
            s3_public_endpoint=self.s3_public_endpoint,
        )
