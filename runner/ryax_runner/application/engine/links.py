"""Worker links: which worker serves which site, whether it is still heard, and the numbered
orders and acknowledgements on its stream."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ...domain.errors import Conflict, DomainError, InvalidInput
from ...domain.site import AuthFailure, Site, SiteId, SiteState, site_id_for
from ..messages import Outgoing, Registered, RegisterWorker, ReportAck
from ..ports import Clock, Recorder, Timers, WorkerChannel
from .state import EngineSettings, EngineState, WorkerLink

log = logging.getLogger(__name__)


class SiteTaken(Conflict):
    code = "site_taken"


class WorkerRefused(DomainError):
    """The worker's site credential is missing, wrong or revoked, or names no usable site:
    nothing about the site changes. `reason` is for the log and the metric; the detail (sent
    to the worker) says no more than whether a credential was presented."""

    code = "unauthenticated"

    def __init__(self, reason: AuthFailure, site_name: str) -> None:
        if reason is AuthFailure.MISSING:
            detail = "no site credential: give the worker its site's credential"
        else:
            detail = f"site credential refused for site {site_name[:200]!r}"
        super().__init__(detail)
        self.reason, self.site_name = reason, site_name


class WorkerLinks:
    """A site is served by one heard worker; each report applies once, acked after commit; an
    order leaves only once the state that produced it is committed."""

    def __init__(
        self,
        state: EngineState,
        *,
        recorder: Recorder,
        clock: Clock,
        timers: Timers,
        settings: EngineSettings,
    ) -> None:
        self._state = state
        self._recorder = recorder
        self._clock = clock
        self._timers = timers
        self._settings = settings
        #: Orders waiting for the commit of what produced them, in order_seq order, each with
        #: the stream it was meant for.
        self._held: deque[tuple[SiteId, WorkerChannel, Outgoing]] = deque()

    def restore(self, sites: Iterable[Site]) -> None:
        now = self._timers.monotonic()
        for site in sites:
            self._state.sites[site.id] = site
            # A site recorded online gets a full heartbeat timeout to reconnect.
            self._state.links[site.id] = WorkerLink(site_id=site.id, last_seen=now)

    def authenticate(self, site_name: str, credential: str) -> Site:
        """The site whose credential this is; WorkerRefused (nothing changes) otherwise."""
        site = self._state.sites.get(site_id_for(site_name)) if site_name else None
        refusal = (
            AuthFailure.MISSING
            if not credential
            else AuthFailure.UNKNOWN_SITE
            if site is None
            else site.refusal(credential)
        )
        if refusal is not None:
            raise WorkerRefused(refusal, site_name)
        assert site is not None
        return site

    def connect(
        self, cmd: RegisterWorker, channel: WorkerChannel
    ) -> tuple[Site, WorkerLink, Registered]:
        """Take the site for the worker (its credential checked first; unless another live
        worker serves it) and answer Registered on its stream. Only a site an admin created
        can be taken: a worker never creates one."""
        site = self.authenticate(cmd.site_name, cmd.credential)
        if not cmd.worker_id:
            raise InvalidInput("register", "worker_id is required")
        if cmd.backend_kind != site.backend_kind:
            raise InvalidInput(
                "backend_kind",
                f"site {site.name!r} is of type {site.backend_kind}, this worker's backend is "
                f"{cmd.backend_kind or 'not given'}",
            )
        now = self._clock.now()
        sid = site.id
        link = self._state.links.get(sid)
        if (
            link is not None
            and site.worker_id != cmd.worker_id
            and site.state is SiteState.ONLINE
            and link.channel is not None
            and self._timers.monotonic() - link.last_seen < self._settings.heartbeat_timeout_seconds
        ):
            raise SiteTaken(
                f"site {cmd.site_name!r} is served by worker {site.worker_id!r}, still online"
            )
        if link is None:
            link = self._state.links[sid] = WorkerLink(
                site_id=sid, last_seen=self._timers.monotonic()
            )
        if link.channel is not None and link.channel is not channel:
            link.channel.close("replaced by a newer connection of the worker")
        site.register(
            worker_id=cmd.worker_id,
            backend_kind=cmd.backend_kind,
            node_pools=cmd.node_pools,
            labels=dict(cmd.labels),
            version=cmd.version,
            last_seen_order_seq=cmd.last_seen_order_seq,
            now=now,
            address=cmd.address,
        )
        link.channel, link.last_seen, link.acked_seq = channel, self._timers.monotonic(), 0
        self._recorder.site(site)
        reply = Registered(
            worker_id=cmd.worker_id,
            site_id=sid,
            last_report_seq=site.last_report_seq,
            heartbeat_interval_seconds=self._settings.heartbeat_interval_seconds,
        )
        channel.send(reply)
        log.info(
            "worker registered",
            extra={
                "site": site.name,
                "worker_id": cmd.worker_id,
                "address": cmd.address,
                "last_seen_order_seq": cmd.last_seen_order_seq,
            },
        )
        return site, link, reply

    def add_site(self, site: Site) -> None:
        """A site an admin created: known (offline) until its worker connects."""
        self._state.sites[site.id] = site
        self._state.links.setdefault(
            site.id, WorkerLink(site_id=site.id, last_seen=self._timers.monotonic())
        )
        self._recorder.site(site)

    def cut(self, site_id: SiteId, reason: str) -> None:
        """End the site's stream now (its credential changed): the worker must connect again,
        with a credential that works. Like any end of stream, the site stays online until its
        heartbeat timeout."""
        link = self._state.links.get(site_id)
        if link is not None and link.channel is not None:
            link.channel.close(reason)
            link.channel = None

    def disconnected(self, site_id: SiteId, channel: WorkerChannel) -> None:
        """The stream ended; the site stays online until its heartbeat timeout."""
        link = self._state.links.get(site_id)
        if link is not None and link.channel is channel:
            link.channel = None

    def accept(self, site_id: SiteId, report_seq: int, *, record: bool = True) -> bool:
        """The worker was heard; True when the report is new (to apply), False for a repeat.

        `record=False` for a report without effect the worker does not keep (an order ack): its
        report_seq moves in memory and is recorded (and acknowledged) with the next commit, so
        it does not start a commit of its own, which orders waiting for theirs would queue
        behind."""
        site, link = self._state.sites[site_id], self._state.links[site_id]
        link.last_seen = self._timers.monotonic()
        self._state.stats.reports += 1
        if report_seq <= site.last_report_seq:
            self._state.stats.duplicate_reports += 1
            # Recording the site brings an ack of what was applied, duplicates included.
            self._recorder.site(site)
            return False
        site.last_report_seq = report_seq
        if record:
            self._recorder.site(site)
        return True

    def heartbeat(self, site_id: SiteId) -> None:
        self._state.sites[site_id].last_seen_at = self._clock.now()

    def committed(self, site_seqs: dict[SiteId, int]) -> None:
        """Acknowledge to each worker the reports now committed."""
        for sid, seq in site_seqs.items():
            link = self._state.links.get(sid)
            if link is not None and link.channel is not None and seq > link.acked_seq:
                link.acked_seq = seq
                link.channel.send(ReportAck(report_seq=seq))

    def send(
        self, site_id: SiteId, order: Callable[..., Outgoing], *, early: bool = False, **fields: Any
    ) -> int:
        """Number an order for the site's stream and send it once everything marked so far is
        committed; 0 when the worker is not connected.

        A worker must never act on a state the runner could lose in a crash (an Execute of a
        run not recorded). The batch that commits the state is taken after the engine's
        current step, so it also carries what the step marks after this call (the execution
        marked dispatched).

        `early`: an Execute of a run nobody outside the runner knows of yet (a fresh run id,
        its caller not answered: `Dispatcher.start_run(unannounced=True)`) leaves at once, its
        run committed meanwhile. If the runner crashes first, the run never existed: its caller
        gets no answer, and the worker's registration names an execution the runner does not
        await, which is cancelled (its result, if any, is ignored). It still goes behind any
        order held before it: orders leave in `order_seq` order."""
        link = self._state.links.get(site_id)
        if link is None or link.channel is None:
            return 0
        site = self._state.sites[site_id]
        seq = site.next_order_seq()
        self._recorder.site(site)
        message = order(order_seq=seq, **fields)
        if early and not self._held:
            self._state.stats.early_orders += 1
            link.channel.send(message)
            return seq
        self._held.append((site_id, link.channel, message))
        self._recorder.when_durable(self._release)
        return seq

    def _release(self) -> None:
        """The oldest held order is durable: it goes out if its stream is still the site's
        (a newer stream gets its orders again from reconciliation)."""
        if not self._held:
            return
        site_id, channel, message = self._held.popleft()
        link = self._state.links.get(site_id)
        if link is not None and link.channel is channel:
            channel.send(message)

    def silent(self) -> list[tuple[SiteId, float]]:
        """Online sites not heard for longer than the heartbeat timeout, with their silence."""
        now = self._timers.monotonic()
        found: list[tuple[SiteId, float]] = []
        for sid, link in self._state.links.items():
            if self._state.sites[sid].state is not SiteState.ONLINE:
                continue
            silence = now - link.last_seen
            if silence > self._settings.heartbeat_timeout_seconds:
                found.append((sid, silence))
        return found

    def go_offline(self, site_id: SiteId, reason: str) -> tuple[Site, WorkerLink]:
        """Record the site offline and end its stream."""
        site, link = self._state.sites[site_id], self._state.links[site_id]
        site.go_offline(reason)
        self._recorder.site(site)
        log.warning("site offline", extra={"site": site.name, "reason": reason})
        if link.channel is not None:
            link.channel.close("site declared offline")
            link.channel = None
        return site, link

    def busy(self) -> bool:
        """Some execution dispatched to a worker has no result yet."""
        return any(link.executions for link in self._state.links.values())

    def close_all(self, reason: str) -> None:
        for link in self._state.links.values():
            if link.channel is not None:
                link.channel.close(reason)
                link.channel = None
