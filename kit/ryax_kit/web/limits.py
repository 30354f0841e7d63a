"""Per-route body limits: a request whose declared body (Content-Length) is over its route's
limit is refused with 413 before the handler runs, naming the limit.

Every route gets `default` (JSON bodies are small: the kit's 1 MiB, smaller where sensible);
the few routes that take more (an upload streamed to disk) are listed with their own limit. A
body sent without Content-Length (chunked) is bounded where it is read: `read_json`/`read_raw`
(1 MiB by default), aiohttp's `client_max_size` for `request.read()`/`post()`, and a streaming
handler's own count.

    app = create_web_app(...)
    add_body_limits(app, default=64 * 1024, routes={("POST", "/runner/.../{e}"): 2**31})
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from .api import Handler, openapi_path
from .body import MAX_JSON_BYTES
from .errors import HttpError

#: The limit that applied to the request (set by the middleware for the handler).
BODY_LIMIT = web.RequestKey("ryax_body_limit", int)


def too_large(size: int, limit: int, hint: str = "") -> HttpError:
    return HttpError(
        413,
        "body_too_large",
        f"the body is {size} bytes, more than the {limit} bytes this route accepts"
        + (f" ({hint})" if hint else ""),
    )


def add_body_limits(
    app: web.Application,
    *,
    default: int = MAX_JSON_BYTES,
    routes: Mapping[tuple[str, str], int] | None = None,
    hints: Mapping[tuple[str, str], str] | None = None,
) -> None:
    """Add the limit middleware to `app` (before it starts). `routes`: (method, path as
    registered, router patterns allowed) -> limit in bytes; `hints`: what to say with a
    route's refusal (e.g. the setting of its limit)."""
    limits = {(m.upper(), openapi_path(p)): n for (m, p), n in (routes or {}).items()}
    said = {(m.upper(), openapi_path(p)): h for (m, p), h in (hints or {}).items()}

    @web.middleware
    async def body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = openapi_path(resource.canonical) if resource is not None else ""
        limit = limits.get((request.method, route), default)
        request[BODY_LIMIT] = limit
        size = request.content_length
        if size is not None and size > limit:
            raise too_large(size, limit, said.get((request.method, route), ""))
        return await handler(request)

    app.middlewares.append(body_limit)
