"""The builder's own Prometheus metrics, on the service's registry (`ryax_kit.web.Metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..domain.model import ActionBuildFailed, ActionBuilt, BuildOutcome


class BuildMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.builds = Counter(
            "ryax_builds_total",
            "Build orders answered, by outcome (built, cached, failed)",
            ["outcome"],
            registry=registry,
        )
        self.build_seconds = Histogram(
            "ryax_build_seconds",
            "Time to answer a build order, by outcome",
            ["outcome"],
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.building = Gauge(
            "ryax_builds_in_progress", "Builds running now (0 or 1)", registry=registry
        )

    def observe(self, outcome: BuildOutcome) -> None:
        if isinstance(outcome, ActionBuilt):
            label = "cached" if outcome.cached else "built"
        else:
            assert isinstance(outcome, ActionBuildFailed)
            label = "failed"
        self.builds.labels(label).inc()
        self.build_seconds.labels(label).observe(outcome.duration_seconds)
