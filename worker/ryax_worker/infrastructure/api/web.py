"""HTTP plumbing shared by the routes of this service: typed routes that feed the OpenAPI
document, the error middleware, health, readiness and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ValidationError

from ...domain.errors import (
    AlreadyExists,
    AuthenticationFailed,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
)

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1024 * 1024

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    InvalidInput: 400,
    AuthenticationFailed: 401,
    Forbidden: 403,
    NotFound: 404,
    AlreadyExists: 409,
    Conflict: 409,
}


class HttpError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: Any) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body; errors name the field."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise HttpError(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise HttpError(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HttpError(400, "invalid_input", _validation_detail(exc)) from exc


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def bearer_token(request: web.Request) -> str:
    """`Authorization: Bearer <token>`; a bare token is accepted too (older clients)."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise HttpError(401, "unauthenticated", "missing Authorization header")
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    if not token:
        raise HttpError(401, "unauthenticated", "empty bearer token")
    return token


@dataclass
class RouteDoc:
    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    auth: bool


@dataclass
class Api:
    """Collects routes with their schemas and serves them with an OpenAPI document."""

    title: str
    prefix: str
    version: str = "1.0.0"
    docs: list[RouteDoc] = field(default_factory=list)
    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: bool = True,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.route(method, self.prefix + path)(handler)
            self.docs.append(
                RouteDoc(
                    method.lower(), self.prefix + path, summary, tag, body, response, status, auth
                )
            )
            return handler

        return register

    def openapi(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        schemas: dict[str, Any] = {}

        def ref(model: type[BaseModel]) -> dict[str, str]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        for d in self.docs:
            op: dict[str, Any] = {"summary": d.summary, "tags": [d.tag], "responses": {}}
            params = [
                {
                    "name": p.strip("{}"),
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
                for p in d.path.split("/")
                if p.startswith("{")
            ]
            if params:
                op["parameters"] = params
            if d.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(d.body)}},
                }
            ok: dict[str, Any] = {"description": "success"}
            if d.response is not None:
                ok["content"] = {"application/json": {"schema": ref(d.response)}}
            op["responses"][str(d.status)] = ok
            op["responses"]["400"] = {"description": "invalid input, the detail names the field"}
            if d.auth:
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = {"description": "missing, invalid or expired token"}
                op["responses"]["403"] = {"description": "no access to this project"}
            paths.setdefault(d.path, {})[d.method] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
        }


DOCS_HTML = """<!doctype html><html><head><title>{title}</title><meta charset="utf-8"/></head>
<body><redoc spec-url="{spec}"></redoc>
<script src="https://cdn.redoc.ly/redoc/latest/bundles/redoc.standalone.js"></script>
</body></html>"""


class Metrics:
    def __init__(self, service: str) -> None:
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
        self.service = service


def make_middlewares(metrics: Metrics) -> list[Any]:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        route = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else "unmatched"
        )
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except HttpError as exc:
            status = exc.status
            return error_response(exc.status, exc.error, exc.detail)
        except DomainError as exc:
            status = status_of(exc)
            return error_response(status, exc.code, exc.detail)
        except web.HTTPException as exc:
            status = exc.status
            if exc.status >= 400:
                return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text)
            raise
        except Exception:
            log.exception("unhandled error", extra={"path": request.path})
            return error_response(500, "internal_error", "internal error, see the service logs")
        finally:
            metrics.requests.labels(metrics.service, request.method, route, str(status)).inc()
            metrics.latency.labels(metrics.service, request.method, route).observe(
                time.perf_counter() - start
            )

    return [errors]


def add_operational_routes(
    app: web.Application, api: Api, metrics: Metrics, ready: Callable[[], Awaitable[bool]]
) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = await ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    spec = api.openapi()

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(spec)

    async def docs(_: web.Request) -> web.Response:
        html = DOCS_HTML.format(title=api.title, spec=api.prefix + "/openapi.json")
        return web.Response(text=html, content_type="text/html")

    for path, handler in (
        ("/healthz", healthz),
        ("/readyz", readyz),
        ("/metrics", prometheus),
    ):
        app.router.add_get(path, handler)
        app.router.add_get(api.prefix + path, handler)
    app.router.add_get(api.prefix + "/openapi.json", openapi)
    app.router.add_get(api.prefix + "/docs", docs)
