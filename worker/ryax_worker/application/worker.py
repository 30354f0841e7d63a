"""The worker as the runner sees it: orders in, registration data, graceful stop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..domain.model import (
    CancelExecution,
    DeployStep,
    ExecuteStep,
    Order,
    OrderAck,
    OrderLedger,
    PublishFiles,
    Registration,
    ReleaseRuns,
    SiteInfo,
    UndeployStep,
)
from .deployments import Deployments
from .executions import Executions
from .held import HeldFiles
from .ports import ResumableBackend, SiteBackend
from .reports import ReportQueue

log = logging.getLogger(__name__)

#: Order acks are cumulative and the runner does not act on them (it derives orders again at
#: each registration): one ack at most this often, the rest folded into the next one or sent
#: with the next heartbeat (`flush_ack`). One message less per execution under load.
ACK_INTERVAL_SECONDS = 0.5


@dataclass(frozen=True, kw_only=True)
class WorkerStats:
    deployed_steps: int
    running_executions: int
    finished_executions: dict[str, int]
    reports_pending: int
    reports_unacked: int
    dropped_log_lines: int
    last_order_seq: int


class Worker:
    """Takes orders in charge (once each, in order_seq order) and acknowledges them."""

    def __init__(
        self,
        *,
        site: SiteInfo,
        backend: SiteBackend,
        reports: ReportQueue,
        deployments: Deployments,
        executions: Executions,
        held: HeldFiles | None = None,
        ack_interval_seconds: float = ACK_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.reports = reports
        self._backend = backend
        self._deployments = deployments
        self._executions = executions
        self._held = held
        self._ledger = OrderLedger()
        self.accepting = True
        self._ack_interval = ack_interval_seconds
        self._monotonic = monotonic
        self._acked = 0
        self._acked_at = float("-inf")

    def registration(self) -> Registration:
        """What to tell the runner on every (re)connection."""
        return Registration(
            site=self.site,
            last_seen_order_seq=self._ledger.last_handled,
            deployed_steps=self._deployments.states(),
            running_execution_ids=tuple(
                sorted(
                    {
                        *self._executions.running_ids(),
                        *self.reports.buffer.unsettled_ids(),
                    }
                )
            ),
            held_files=self._held.held() if self._held is not None else (),
        )

    def registered_as(self, site_id: str) -> None:
        """The runner answered Registered: this site's id (held files carry it)."""
        if self._held is not None:
            self._held.site_id = site_id

    def resume_detached(self) -> int:
        """Follow again the executions a previous process of this worker left running on the
        backend (Slurm jobs): before the first Register, so they are reported running."""
        if not isinstance(self._backend, ResumableBackend):
            return 0
        found = self._backend.detached()
        self._executions.adopt(found)
        return len(found)

    def handle(self, order: Order) -> bool:
        """Take an order in charge and acknowledge it; an order already handled is only
        acknowledged again. False while shutting down: the order is left to the runner."""
        if not self.accepting:
            log.info("shutting down, order refused", extra={"order_seq": order.order_seq})
            return False
        if self._ledger.is_new(order.order_seq):
            # Executions are many (the runner records them); the other orders are rare.
            log.log(
                logging.DEBUG if isinstance(order, ExecuteStep) else logging.INFO,
                "order",
                extra={"order_seq": order.order_seq, "order": type(order).__name__},
            )
            if isinstance(order, DeployStep):
                self._deployments.deploy(order)
            elif isinstance(order, UndeployStep):
                self._deployments.undeploy(order)
            elif isinstance(order, ExecuteStep):
                self._executions.execute(order)
            elif isinstance(order, CancelExecution):
                self._executions.cancel(order)
            elif isinstance(order, PublishFiles) and self._held is not None:
                self._held.publish(order)
            elif isinstance(order, ReleaseRuns) and self._held is not None:
                self._held.release(order)
            self._ledger.handled(order.order_seq)
        else:
            log.info("duplicate order ignored", extra={"order_seq": order.order_seq})
            self._acked = 0  # a repeat is acknowledged again
        if self._monotonic() - self._acked_at >= self._ack_interval:
            self.flush_ack()
        return True

    def flush_ack(self) -> None:
        """Acknowledge the orders handled since the last ack, if any (cumulative)."""
        last = self._ledger.last_handled
        if last > self._acked:
            self.reports.report(OrderAck(order_seq=last))
            self._acked, self._acked_at = last, self._monotonic()

    def stats(self) -> WorkerStats:
        buffer = self.reports.buffer
        return WorkerStats(
            deployed_steps=len(self._deployments.states()),
            running_executions=self._executions.running_count(),
            finished_executions=dict(self._executions.finished),
            reports_pending=buffer.pending(),
            reports_unacked=buffer.unacked(),
            dropped_log_lines=buffer.dropped_logs,
            last_order_seq=self._ledger.last_handled,
        )

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop taking orders, let executions finish (bounded), stop every action."""
        self.accepting = False
        await self._executions.drain(grace_seconds)
        if self._held is not None:
            await self._held.close()
        await self._deployments.close()
        await self._backend.close()
