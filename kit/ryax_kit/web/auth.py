"""The caller's credential: `Authorization: Bearer <token>` on every service."""

from __future__ import annotations

from aiohttp import web

from .errors import HttpError

CHALLENGE = 'Bearer realm="ryax"'


def bearer_token(request: web.Request) -> str:
    """`Authorization: Bearer <token>` (any case of `Bearer`); a bare token is accepted too
    (older clients). Missing or empty: 401."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise HttpError(
            401,
            "unauthenticated",
            "missing Authorization header",
            {"WWW-Authenticate": CHALLENGE},
        )
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    if not token:
        raise HttpError(
            401, "unauthenticated", "empty bearer token", {"WWW-Authenticate": CHALLENGE}
        )
    return token
