"""HTTP for operators only: health, readiness and Prometheus metrics (the builder has no API;
it is driven by messages)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ...domain.model import ActionBuildFailed, ActionBuilt, BuildOutcome

PREFIX = "/action-builder"


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.builds = Counter(
            "ryax_builds_total",
            "Build orders answered, by outcome (built, cached, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.build_seconds = Histogram(
            "ryax_build_seconds",
            "Time to answer a build order, by outcome",
            ["outcome"],
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.building = Gauge(
            "ryax_builds_in_progress", "Builds running now (0 or 1)", registry=self.registry
        )

    def observe(self, outcome: BuildOutcome) -> None:
        if isinstance(outcome, ActionBuilt):
            label = "cached" if outcome.cached else "built"
        else:
            assert isinstance(outcome, ActionBuildFailed)
            label = "failed"
        self.builds.labels(label).inc()
        self.build_seconds.labels(label).observe(outcome.duration_seconds)


def add_operational_routes(
    app: web.Application, metrics: Metrics, ready: Callable[[], Awaitable[dict[str, bool]]]
) -> None:
    """/healthz: the process answers. /readyz: 200 when every check passes, else 503 with the
    checks. /metrics: Prometheus. Also under /action-builder/ for the gateway."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await ready()
        ok = all(checks.values())
        return web.json_response({"ready": ok, "checks": checks}, status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    for path, handler in (("/healthz", healthz), ("/readyz", readyz), ("/metrics", prometheus)):
        app.router.add_get(path, handler)
        app.router.add_get(PREFIX + path, handler)
