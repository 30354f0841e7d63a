"""What operators need from every service: request metrics and errors middleware, /healthz,
/readyz (with each check), Prometheus /metrics, the OpenAPI document and its page."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from .api import Api, Handler
from .errors import ErrorMapping, HttpError, error_response

log = logging.getLogger(__name__)

#: Readiness: each named check passes (True) or not.
ReadyCheck = Callable[[], Awaitable[Mapping[str, bool]]]

DOCS_HTML = """<!doctype html><html><head><title>{title}</title><meta charset="utf-8"/></head>
<body><redoc spec-url="{spec}"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>"""


class Metrics:
    """The service's Prometheus registry, with HTTP request counts and latencies."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ryax_http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ryax_http_request_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=self.registry,
        )


def refuse_nul_parameters(request: web.Request) -> None:
    """A path or query parameter holding a NUL character is a 400 naming it: no service can
    keep one (PostgreSQL's text refuses it), and it is never meant."""
    for where, items in (("path", request.match_info.items()), ("query", request.query.items())):
        for name, value in items:
            if "\x00" in name or "\x00" in value:
                shown = name.replace("\x00", "\\0")
                raise HttpError(
                    400, "invalid_input", f"{shown}: a NUL character in a {where} parameter"
                )


def errors_middleware(metrics: Metrics, errors: ErrorMapping | None) -> Any:
    """Every failure becomes the JSON error shape; a bug is a logged 500 that says where to look;
    every request is counted with its route pattern (never the raw path)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            refuse_nul_parameters(request)
            response = await handler(request)
            status = response.status
            return response
        except HttpError as exc:
            status = exc.status
            return error_response(exc.status, exc.error, exc.detail, headers=exc.headers)
        except web.HTTPException as exc:
            status = exc.status
            if exc.status >= 400:
                code = (exc.reason or "error").lower().replace(" ", "_")
                return error_response(exc.status, code, exc.text or exc.reason)
            raise
        except Exception as exc:
            if errors is not None and isinstance(exc, errors.base):
                answer = errors.answer(exc)
                status = answer.status
                return answer
            log.exception("unhandled error", extra={"path": request.path})
            return error_response(500, "internal_error", "internal error, see the service logs")
        finally:
            metrics.requests.labels(metrics.service, request.method, route, str(status)).inc()
            metrics.latency.labels(metrics.service, request.method, route).observe(
                time.perf_counter() - start
            )

    return middleware


def add_operational_routes(
    app: web.Application,
    *,
    prefix: str,
    metrics: Metrics,
    ready: ReadyCheck,
    api: Api | None = None,
) -> None:
    """/healthz: the process answers. /readyz: 200 when every check passes, else 503, with the
    checks. /metrics: Prometheus. Each also under `prefix` (the gateway's route); with an `api`,
    `prefix`/openapi.json and `prefix`/docs."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        try:
            checks = dict(await ready())
        except Exception:
            log.exception("readiness check failed")
            checks = {"checks": False}
        ok = all(checks.values())
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    for path, handler in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", prometheus)):
        app.router.add_get(path, handler)
        app.router.add_get(prefix + path, handler)
    if api is not None:
        spec = api.openapi()

        async def openapi(_: web.Request) -> web.Response:
            return web.json_response(spec)

        async def docs(_: web.Request) -> web.Response:
            html = DOCS_HTML.format(title=api.title, spec=api.prefix + "/openapi.json")
            return web.Response(text=html, content_type="text/html")

        app.router.add_get(api.prefix + "/openapi.json", openapi)
        app.router.add_get(api.prefix + "/docs", docs)


def create_web_app(
    *,
    metrics: Metrics,
    ready: ReadyCheck,
    prefix: str,
    api: Api | None = None,
    errors: ErrorMapping | None = None,
    client_max_size: int = 1024 * 1024,
) -> web.Application:
    """An aiohttp application with the errors middleware, the `api`'s routes and the
    operational routes. The service adds its app keys and start/stop hooks."""
    app = web.Application(
        middlewares=[errors_middleware(metrics, errors)], client_max_size=client_max_size
    )
    if api is not None:
        app.add_routes(api.routes)
    add_operational_routes(app, prefix=prefix, metrics=metrics, ready=ready, api=api)
    return app
