"""Prometheus view of the worker, read at scrape time (nothing to keep in sync)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...application.worker import WorkerStats
from ..transfers import TransferStats


class WorkerCollector(Collector):
    def __init__(
        self,
        *,
        stats: Callable[[], WorkerStats],
        connected: Callable[[], bool],
        sessions: Callable[[], int],
        processes: Callable[[], int],
        restarts: Callable[[], int],
        asleep: Callable[[], int] = lambda: 0,
        cold_starts: Callable[[], int] = lambda: 0,
        transfers: Callable[[], TransferStats] | None = None,
    ) -> None:
        self._asleep = asleep
        self._cold_starts = cold_starts
        self._transfers = transfers
        self._stats = stats
        self._connected = connected
        self._sessions = sessions
        self._processes = processes
        self._restarts = restarts

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "ryax_worker_connected", "1 when registered with the runner", value=self._connected()
        )
        yield CounterMetricFamily(
            "ryax_worker_runner_sessions",
            "Streams registered with the runner",
            value=self._sessions(),
        )
        yield GaugeMetricFamily(
            "ryax_worker_deployed_steps", "Steps deployed on this site", value=stats.deployed_steps
        )
        yield GaugeMetricFamily(
            "ryax_worker_action_processes", "Running action processes", value=self._processes()
        )
        yield CounterMetricFamily(
            "ryax_worker_action_restarts", "Action processes started again", value=self._restarts()
        )
        yield GaugeMetricFamily(
            "ryax_worker_action_processes_asleep",
            "Deployed steps whose process is stopped for being idle (retention policy)",
            value=self._asleep(),
        )
        yield CounterMetricFamily(
            "ryax_worker_action_cold_starts",
            "Processes of sleeping steps started again by an execution",
            value=self._cold_starts(),
        )
        yield GaugeMetricFamily(
            "ryax_worker_running_executions",
            "Executions in progress",
            value=stats.running_executions,
        )
        finished = CounterMetricFamily(
            "ryax_worker_executions", "Finished executions", labels=["status"]
        )
        for status, count in sorted(stats.finished_executions.items()):
            finished.add_metric([status], count)
        yield finished
        yield GaugeMetricFamily(
            "ryax_worker_reports_pending", "Reports waiting to be sent", value=stats.reports_pending
        )
        yield GaugeMetricFamily(
            "ryax_worker_reports_unacked",
            "Reports sent, not yet acknowledged",
            value=stats.reports_unacked,
        )
        yield CounterMetricFamily(
            "ryax_worker_dropped_log_lines",
            "Log lines dropped while the runner was unreachable",
            value=stats.dropped_log_lines,
        )
        yield GaugeMetricFamily(
            "ryax_worker_last_order_seq", "Last order handled", value=stats.last_order_seq
        )
        if self._transfers is not None:
            moved = self._transfers()
            family = CounterMetricFamily(
                "ryax_worker_file_bytes",
                "Bytes moved between this site and the filestore, by direction (download, "
                "upload) and mode (direct: the filestore's own settings; presigned: URLs the "
                "runner signed)",
                labels=["direction", "mode"],
            )
            for (direction, mode), count in sorted(moved.bytes.items()):
                family.add_metric([direction, mode], count)
            yield family
            yield CounterMetricFamily(
                "ryax_worker_presigned_urls",
                "Presigned URLs obtained from the runner (renewals included)",
                value=moved.urls_requested,
            )
            yield CounterMetricFamily(
                "ryax_worker_presigned_url_renewals",
                "Presigned URLs asked for again after the filestore refused one (expired)",
                value=moved.urls_renewed,
            )
