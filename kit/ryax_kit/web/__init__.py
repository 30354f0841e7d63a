"""The HTTP side of every service: aiohttp app factory, typed routes with OpenAPI, one error
shape, bodies read within limits, bearer tokens, health/readiness/metrics."""

from .api import Api, Handler, Param, RouteDoc, openapi_path
from .auth import bearer_token
from .body import MAX_JSON_BYTES, read_json, read_raw, validation_detail
from .content import UNTRUSTED_CONTENT_HEADERS
from .errors import ErrorMapping, HttpError, error_response
from .ops import Metrics, ReadyCheck, add_operational_routes, create_web_app, errors_middleware
from .serve import run_app

__all__ = [
    "MAX_JSON_BYTES",
    "UNTRUSTED_CONTENT_HEADERS",
    "Api",
    "ErrorMapping",
    "Handler",
    "HttpError",
    "Metrics",
    "Param",
    "ReadyCheck",
    "RouteDoc",
    "add_operational_routes",
    "bearer_token",
    "create_web_app",
    "error_response",
    "errors_middleware",
    "openapi_path",
    "read_json",
    "read_raw",
    "run_app",
    "validation_detail",
]
