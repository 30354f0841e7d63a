"""Files through presigned URLs ("presigned" mode: a site that holds no filestore keys).

For each object, the worker asks the runner for a URL (`UrlSource`, the runner's
WorkerService.PresignTransfers over gRPC), then streams it with plain HTTP: GET into a temporary
file beside the destination, renamed once whole and complete; PUT of the file with its length.
The runner only signs the objects of this site's own executions and deployed steps.

Failures: a connection error, a 5xx or a 429 is tried again (RYAX_FILE_ATTEMPTS attempts in all,
with a growing pause); a 403 means the URL expired (or was signed for another host): a new one
is asked for, within the same attempts. A 404 is "not in the filestore". A refusal of the runner
(PERMISSION_DENIED...) is not retried. Every failure is FileTransferFailed naming the key
(TransferNotGranted when the runner refused the object or could not be reached at all),
never the URL: a URL is a bearer secret until it expires, so it is neither logged nor put in an
error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import aiohttp

from ..domain.errors import FileTransferFailed, TransferNotGranted
from .transfers import DOWNLOAD, UPLOAD, TransferStats

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
GET, PUT = "get", "put"
#: Statuses worth another attempt with the same URL.
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
_S3_CODE = re.compile(rb"<Code>([A-Za-z]{1,64})</Code>")


@dataclass(frozen=True, kw_only=True)
class PresignedUrl:
    url: str
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # never show the URL itself
        return f"PresignedUrl(expires_at={self.expires_at!r})"


class PresignDenied(Exception):
    """The runner will not sign this object (or this worker): retrying cannot help."""


class PresignNotGranted(PresignDenied):
    """The runner does not grant this object to the site now (PERMISSION_DENIED): not one of
    its executions' or steps' objects, or a held file it did not (or no longer) ask for."""


class PresignUnavailable(Exception):
    """The runner could not be asked now (unreachable, timed out): try again."""


class UrlSource(Protocol):
    """Hands out presigned URLs for this site's objects."""

    async def presign(self, method: str, key: str) -> PresignedUrl:
        """A URL to GET or PUT `key`; PresignDenied or PresignUnavailable otherwise."""
        ...


class _Retry(Exception):
    """This attempt failed in a way another may fix; `renew`: ask for a new URL first."""

    def __init__(self, reason: str, *, renew: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.renew = reason, renew


def _s3_code(body: bytes) -> str:
    found = _S3_CODE.search(body[:4096])
    return found.group(1).decode() if found else ""


class PresignedTransfers:
    """The FileStore port over presigned URLs."""

    mode = "presigned"

    def __init__(
        self,
        urls: UrlSource,
        *,
        stats: TransferStats | None = None,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        connect_timeout_seconds: float = 10.0,
        read_timeout_seconds: float = 120.0,
    ) -> None:
        self._urls = urls
        self.stats = stats or TransferStats()
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_seconds, sock_read=read_timeout_seconds
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cookies, no proxy from the environment: a URL goes to the filestore only.
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the port ----------------------------------------------------------------------------

    async def download(self, key: str, destination: Path) -> None:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        count = await self._with_retries(GET, key, lambda url: self._get(key, url, destination))
        self.stats.add(DOWNLOAD, self.mode, count)

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        count = await self._with_retries(
            PUT, key, lambda url: self._put(key, url, Path(source), content_type)
        )
        self.stats.add(UPLOAD, self.mode, count)

    # -- attempts ----------------------------------------------------------------------------

    async def _with_retries(self, method: str, key: str, attempt: _Attempt) -> int:
        url: PresignedUrl | None = None
        had_url = False
        reason = ""
        no_runner = False  # the last attempt could not reach the runner
        for number in range(1, self._attempts + 1):
            try:
                if url is None:
                    url = await self._ask(method, key, renewal=had_url)
                    had_url = True
                return await attempt(url.url)
            except _Retry as retry:
                reason = retry.reason
                no_runner = isinstance(retry, _RetryLater)
                if retry.renew:
                    url = None
                log.warning(
                    "file transfer failed" + (", trying again" if number < self._attempts else ""),
                    extra={"key": key, "method": method, "attempt": number, "reason": reason},
                )
            if number < self._attempts:
                await asyncio.sleep(self._backoff * 2 ** (number - 1))
        verb = "download" if method == GET else "upload"
        failed = TransferNotGranted if no_runner else FileTransferFailed
        raise failed(
            f"cannot {verb} {key} through a presigned URL after {self._attempts} attempts: {reason}"
        )

    async def _ask(self, method: str, key: str, *, renewal: bool) -> PresignedUrl:
        try:
            url = await self._urls.presign(method, key)
        except PresignNotGranted as error:
            raise TransferNotGranted(str(error)) from error
        except PresignDenied as error:
            raise FileTransferFailed(str(error)) from error
        except PresignUnavailable as error:
            raise _RetryLater(str(error)) from error
        self.stats.urls_requested += 1
        if renewal:
            self.stats.urls_renewed += 1
        return url

    # -- one HTTP exchange -------------------------------------------------------------------

    async def _get(self, key: str, url: str, destination: Path) -> int:
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=destination.parent)
        try:
            count = 0
            with os.fdopen(fd, "wb") as out:
                try:
                    async with self._client().get(url) as response:
                        await self._check(key, response)
                        expected = response.content_length
                        async for chunk in response.content.iter_chunked(CHUNK):
                            out.write(chunk)
                            count += len(chunk)
                except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
                    raise _Retry(_describe(error)) from error
                if expected is not None and count != expected:
                    raise _Retry(f"got {count} bytes of {expected}")
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, destination)
            return count
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def _put(self, key: str, url: str, source: Path, content_type: str) -> int:
        try:
            with source.open("rb") as data:
                size = os.fstat(data.fileno()).st_size
                headers = {"Content-Type": content_type, "Content-Length": str(size)}
                async with self._client().put(url, data=data, headers=headers) as response:
                    await self._check(key, response)
                    await response.read()
                return size
        except OSError as error:
            if isinstance(error, ConnectionError):
                raise _Retry(_describe(error)) from error
            raise FileTransferFailed(
                f"cannot read {source.name} to upload {key}: {error}"
            ) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _Retry(_describe(error)) from error

    async def _check(self, key: str, response: aiohttp.ClientResponse) -> None:
        if response.status in (200, 201, 204):
            return
        body = await response.read()
        code = _s3_code(body)
        what = f"HTTP {response.status}" + (f" {code}" if code else "")
        if response.status == 403:
            raise _Retry(f"{what} (the URL expired or was refused)", renew=True)
        if response.status in _TRANSIENT:
            raise _Retry(what)
        if response.status == 404:
            raise FileTransferFailed(f"{key} is not in the filestore ({what})")
        raise FileTransferFailed(f"the filestore answered {what} for {key}")


class _RetryLater(_Retry):
    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot get a URL from the runner: {reason}", renew=True)


class _Attempt(Protocol):
    async def __call__(self, url: str) -> int: ...


def _describe(error: BaseException) -> str:
    # aiohttp's messages may quote the request URL: name the error's type and its cause only.
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{type(error).__name__}: HTTP {error.status}"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to the filestore: {error.os_error}"
    if isinstance(error, TimeoutError):
        return "timed out"
    return type(error).__name__
