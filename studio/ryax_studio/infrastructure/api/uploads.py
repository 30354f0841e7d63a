"""Uploads (a static file, a workflow zip): the body streamed to a temporary file, counted
against the route's limit as it arrives (never held in memory), refused with 413 past it.

Two forms: multipart/form-data with the file in the part `file` (as `curl -F file=@x.zip`, the
form Ryax's studio takes), or the raw bytes as the body with the name in `?filename=`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from ryax_kit.web.limits import too_large

from ...domain.errors import InvalidInput, TooLarge

#: First bytes -> (limit, the setting or rule to name).
Narrowing = Callable[[bytes], tuple[int, str]]

CHUNK = 256 * 1024
#: The part of a multipart upload that holds the file.
FILE_PART = "file"


def _write(out: IO[bytes], chunk: bytes) -> None:
    out.write(chunk)


async def _spool(
    chunks: AsyncIterator[bytes],
    limit: int,
    what: str,
    setting: str,
    narrow: Narrowing | None = None,
    declared: int | None = None,
) -> Path:
    fd, name = tempfile.mkstemp(prefix="ryax-studio-upload-")
    path = Path(name)
    size = 0
    first = True
    try:
        out = await asyncio.to_thread(os.fdopen, fd, "wb")
        try:
            async for chunk in chunks:
                if first and narrow is not None:
                    # what the body is decides its limit (a YAML document is far smaller
                    # than a zip): refuse at once when its declared size is already over
                    limit, setting = narrow(chunk)
                    if declared is not None and declared > limit:
                        raise too_large(declared, limit, setting)
                first = False
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"{what} is more than the {limit} bytes allowed ({setting})")
                await asyncio.to_thread(_write, out, chunk)
        finally:
            await asyncio.to_thread(out.close)
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    return path


@contextlib.asynccontextmanager
async def upload(
    request: web.Request,
    limit: int,
    setting: str,
    default_name: str = "",
    narrow: Narrowing | None = None,
) -> AsyncIterator[tuple[Path, str]]:
    """(temporary file, the name the user gave it); the file is removed on exit. `narrow`
    gives, from the first bytes, a smaller (limit, what to say) for what they show."""
    content_type = request.content_type
    if content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
        except (ValueError, BadHttpMessage) as exc:
            raise InvalidInput("Content-Type", f"not a readable multipart body ({exc})") from exc
        path: Path | None = None
        filename = ""
        while True:
            try:
                part = await reader.next()
            except (ValueError, BadHttpMessage) as exc:  # a part's headers unreadable
                raise InvalidInput("body", f"not a readable multipart body ({exc})") from exc
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                raise InvalidInput("body", "nested multipart is not supported")
            if part.name != FILE_PART:
                raise InvalidInput(
                    part.name or "part", f"unknown part (send the file as the part {FILE_PART!r})"
                )
            if path is not None:
                await asyncio.to_thread(path.unlink, True)
                raise InvalidInput(FILE_PART, "one file per request")
            filename = part.filename or default_name

            async def chunks(p: aiohttp.BodyPartReader = part) -> AsyncIterator[bytes]:
                try:
                    while chunk := await p.read_chunk(CHUNK):
                        yield chunk
                except (ValueError, BadHttpMessage) as exc:  # cut short, a bad boundary
                    raise InvalidInput(FILE_PART, f"not a readable part ({exc})") from exc

            path = await _spool(chunks(), limit, f"the file {filename!r}", setting, narrow)
        if path is None:
            raise InvalidInput(FILE_PART, f"no part {FILE_PART!r} in the multipart body")
    else:
        filename = request.query.get("filename") or default_name
        path = await _spool(
            request.content.iter_chunked(CHUNK),
            limit,
            f"the file {filename!r}",
            setting,
            narrow,
            request.content_length,
        )
    try:
        yield path, filename
    finally:
        await asyncio.to_thread(path.unlink, True)
