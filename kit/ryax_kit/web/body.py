"""Reading request bodies within limits: JSON validated by a pydantic model (errors name the
field), or raw bytes refused with 413 as soon as they pass the limit."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .errors import HttpError

M = TypeVar("M", bound=BaseModel)
#: The default limit of a JSON body.
MAX_JSON_BYTES = 1024 * 1024


def _too_large(limit: int) -> HttpError:
    return HttpError(413, "body_too_large", f"the body exceeds {limit} bytes")


async def read_raw(request: web.Request, limit: int = MAX_JSON_BYTES) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def validation_detail(exc: ValidationError) -> str:
    """`field.sub: message; other: message`: every problem, each naming its field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    if any("\ud800" <= c <= "\udfff" for c in text):
        return "contains a lone surrogate (U+D800 to U+DFFF), which is not text"
    return None


def unstorable_text(data: Any, path: str = "") -> str | None:
    """`field.sub: why` for the first string of parsed JSON (a key or a value) that is not text a
    database can keep (PostgreSQL refuses NUL; a lone surrogate cannot be encoded); None if none."""
    if isinstance(data, str):
        problem = _text_problem(data)
        return f"{path or 'body'}: {problem}" if problem else None
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return None
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        problem = _text_problem(key) if isinstance(key, str) else None
        if problem:
            shown = where.replace("\x00", "\\0")
            return f"{shown}: a key that {problem}"
        found = unstorable_text(item, where)
        if found:
            return found
    return None


async def read_json(request: web.Request, model: type[M], limit: int = MAX_JSON_BYTES) -> M:
    """Parse and validate a JSON body; an empty body is `{}`. A string no database can keep
    (a NUL character, a lone surrogate) is a 400 naming its field."""
    raw = await read_raw(request, limit)
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    problem = unstorable_text(data)
    if problem:
        raise HttpError(400, "invalid_input", problem)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HttpError(400, "invalid_input", validation_detail(exc)) from exc
