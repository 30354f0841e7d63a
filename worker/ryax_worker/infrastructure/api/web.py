"""HTTP for operators only: health, readiness and Prometheus metrics (the worker has no API;
it is driven by the runner's gRPC stream)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

PREFIX = "/worker"


def add_operational_routes(
    app: web.Application, registry: CollectorRegistry, ready: Callable[[], Awaitable[bool]]
) -> None:
    """/healthz: the process answers. /readyz: 200 while registered with the runner and taking
    orders, else 503. /metrics: Prometheus. Also under /worker/."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = await ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    for path, handler in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", prometheus)):
        app.router.add_get(path, handler)
        app.router.add_get(PREFIX + path, handler)
