"""HTTP errors: one JSON shape `{"error": code, "detail": ...}` for every 4xx and 5xx, and the
mapping from a service's domain errors to statuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


class HttpError(Exception):
    """An answer decided at the edge (bad body, missing token...): status, code, detail."""

    def __init__(
        self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.headers = dict(headers or {})


def error_response(
    status: int,
    error: str,
    detail: Any,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"error": error, "detail": detail, **(extra or {})}, status=status, headers=headers
    )


#: The status of a domain error whose class is not listed, by its `code`.
STATUS_BY_CODE: Mapping[str, int] = {
    "invalid_input": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "already_exists": 409,
    "conflict": 409,
    "too_large": 413,
    "unavailable": 503,
}


@dataclass(frozen=True, kw_only=True)
class ErrorMapping:
    """How a service's domain errors become answers. Each domain error carries a stable `code`
    and a `detail`; the most specific class listed in `statuses` gives the status, else its
    code (`STATUS_BY_CODE`: not_found is 404...), else `default_status`."""

    base: type[Exception]
    statuses: Mapping[type[Exception], int] = field(default_factory=dict)
    default_status: int = 400
    #: More keys for the body (e.g. every located problem of an invalid document).
    extra: Callable[[Exception], Mapping[str, Any] | None] | None = None
    #: Headers of the answer (e.g. Retry-After).
    headers: Callable[[Exception], Mapping[str, str] | None] | None = None

    def status_of(self, exc: Exception) -> int:
        for cls in type(exc).__mro__:
            if cls in self.statuses:
                return self.statuses[cls]
        return STATUS_BY_CODE.get(str(getattr(exc, "code", "")), self.default_status)

    def answer(self, exc: Exception) -> web.Response:
        return error_response(
            self.status_of(exc),
            str(getattr(exc, "code", "error")),
            getattr(exc, "detail", str(exc)),
            self.extra(exc) if self.extra is not None else None,
            self.headers(exc) if self.headers is not None else None,
        )
