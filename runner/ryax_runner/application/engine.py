"""The engine: deployments, sites and runs kept in memory, driven by pushes, recorded in batches.

Everything runs on one event loop and no method awaits between reading and changing state, so
no lock is needed. Hot path of a run: a result arrives (`report`) -> the run's state machine
says what became ready -> Execute orders are queued on the workers' streams at once; the
recorder commits the changes a few milliseconds later, in one transaction with everything else
that changed meanwhile, and only then are the worker's reports acknowledged (ReportAck), so a
runner crash loses nothing the worker will not send again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..domain.deployment import Deployment, DeploymentId, DeploymentState, StepState
from ..domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from ..domain.run import Execution, ExecutionId, ExecutionState, Run, RunId, RunUpdate
from ..domain.site import NoPlacement, Site, SiteId, SiteState, place, site_id_for
from ..domain.values import MAX_INLINE_BYTES, Value
from ..domain.workflow import SecretInput, StaticInput, StepDefinition
from .messages import (
    CancelOrder,
    DeployOrder,
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    ExecutionProgressed,
    Heartbeat,
    LogLine,
    OrdersAcked,
    Outgoing,
    Registered,
    RegisterWorker,
    Report,
    ReportAck,
    StepStateReported,
    TriggerFired,
    UndeployOrder,
    UndeployWorkflow,
)
from .ports import Clock, LoadedState, Recorder, StateStore, WorkerChannel

log = logging.getLogger(__name__)


class SiteTaken(Conflict):
    code = "site_taken"


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    heartbeat_interval_seconds: float = 2.0
    #: A site that sent nothing for this long is offline (its executions are lost).
    heartbeat_timeout_seconds: float = 6.0
    retry_backoff_seconds: float = 1.0
    max_inline_bytes: int = MAX_INLINE_BYTES
    #: Added to a step's timeout before the runner itself gives up on an execution.
    timeout_grace_seconds: float = 30.0


@dataclass(eq=False, kw_only=True)
class WorkerLink:
    """Live connection state of a site's worker (not recorded)."""

    site_id: SiteId
    channel: WorkerChannel | None = None
    last_seen: float = field(default_factory=time.monotonic)
    acked_seq: int = 0
    #: Executions dispatched to this site that have no result yet.
    executions: set[ExecutionId] = field(default_factory=set)


@dataclass(kw_only=True)
class EngineStats:
    runs_started: int = 0
    runs_ended: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    executions_dispatched: int = 0
    reports: int = 0
    duplicate_reports: int = 0


class Engine:
    def __init__(
        self,
        *,
        recorder: Recorder,
        store: StateStore,
        clock: Clock,
        settings: EngineSettings | None = None,
    ) -> None:
        self._recorder = recorder
        self._store = store
        self._clock = clock
        self.settings = settings or EngineSettings()
        self.sites: dict[SiteId, Site] = {}
        self.links: dict[SiteId, WorkerLink] = {}
        self.deployments: dict[DeploymentId, Deployment] = {}
        self._endpoints: dict[tuple[str, str], list[DeploymentId]] = defaultdict(list)
        self.runs: dict[RunId, Run] = {}
        self._executions: dict[ExecutionId, Run] = {}
        self._waiting: dict[tuple[DeploymentId, str], list[Execution]] = defaultdict(list)
        self._timers: dict[ExecutionId, asyncio.TimerHandle] = {}
        self._run_waiters: dict[RunId, list[asyncio.Future[Run]]] = defaultdict(list)
        self._log_subscribers: dict[str, set[asyncio.Queue[LogLine | None]]] = defaultdict(set)
        self._monitor: asyncio.Task[None] | None = None
        self.draining = False
        self.stats = EngineStats()
        recorder.add_commit_listener(self._committed)

    # =========================================================================================
    # Lifecycle

    async def start(self) -> None:
        """Rebuild the in-memory state from the record, then watch heartbeats."""
        self.restore(await self._store.load())
        self._monitor = asyncio.create_task(self._watch(), name="runner-heartbeat-monitor")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for link in self.links.values():
            if link.channel is not None:
                link.channel.close("runner shutting down")
                link.channel = None
        await self._recorder.durable()

    async def durable(self) -> None:
        """Return once every change made so far is committed."""
        await self._recorder.durable()

    async def drain(self, grace_seconds: float) -> None:
        """Stop taking new runs; give dispatched executions `grace_seconds` to finish."""
        self.draining = True
        for queues in self._log_subscribers.values():
            for queue in queues:
                queue.put_nowait(None)  # live log streams end; clients reconnect later
        deadline = time.monotonic() + grace_seconds
        busy = lambda: any(k.executions for k in self.links.values())  # noqa: E731
        while time.monotonic() < deadline and busy():  # noqa: ASYNC110 - bounded, at shutdown
            await asyncio.sleep(0.05)
        await self._recorder.durable()

    def restore(self, state: LoadedState) -> None:
        now_mono = time.monotonic()
        for site in state.sites:
            self.sites[site.id] = site
            # A site recorded online gets a full heartbeat timeout to reconnect.
            self.links[site.id] = WorkerLink(site_id=site.id, last_seen=now_mono)
        for d in state.deployments:
            self._index_deployment(d)
        now = self._clock.now()
        for run, executions in state.runs:
            update = Run.restore(run, executions, now)
            self.runs[run.id] = run
            for e in run.executions.values():
                if not e.is_active:
                    continue
                self._executions[e.id] = run
                if e.state in (ExecutionState.DISPATCHED, ExecutionState.RUNNING) and e.site_id:
                    link = self.links.get(SiteId(e.site_id))
                    if link is not None:
                        link.executions.add(e.id)
                        self._arm_timeout(run, e)
                    else:
                        update.ready.append(e)
                elif e.state is ExecutionState.WAITING and e not in update.ready:
                    if e.not_before is not None and e.not_before > now:
                        update.retries.append(e)
                    else:
                        update.ready.append(e)
            self._settle(run, update)
        log.info(
            "engine restored",
            extra={
                "sites": len(self.sites),
                "deployments": len(self.deployments),
                "active_runs": len(self.runs),
            },
        )

    # =========================================================================================
    # Workers

    def register_worker(self, cmd: RegisterWorker, channel: WorkerChannel) -> Registered:
        """A worker (re)connects: answer Registered, then reconcile the site's desired state."""
        if not cmd.worker_id or not cmd.site_name:
            raise InvalidInput("register", "worker_id and site_name are required")
        now = self._clock.now()
        sid = site_id_for(cmd.site_name)
        site = self.sites.get(sid)
        link = self.links.get(sid)
        if (
            site is not None
            and link is not None
            and site.worker_id != cmd.worker_id
            and site.state is SiteState.ONLINE
            and link.channel is not None
            and time.monotonic() - link.last_seen < self.settings.heartbeat_timeout_seconds
        ):
            raise SiteTaken(
                f"site {cmd.site_name!r} is served by worker {site.worker_id!r}, still online"
            )
        if site is None:
            site = Site(
                id=sid,
                name=cmd.site_name,
                worker_id=cmd.worker_id,
                backend_kind=cmd.backend_kind,
                registered_at=now,
                last_seen_at=now,
            )
            self.sites[sid] = site
        if link is None:
            link = self.links[sid] = WorkerLink(site_id=sid)
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
        )
        link.channel, link.last_seen, link.acked_seq = channel, time.monotonic(), 0
        self._recorder.site(site)
        reply = Registered(
            worker_id=cmd.worker_id,
            site_id=sid,
            last_report_seq=site.last_report_seq,
            heartbeat_interval_seconds=self.settings.heartbeat_interval_seconds,
        )
        channel.send(reply)
        log.info(
            "worker registered",
            extra={
                "site": site.name,
                "worker_id": cmd.worker_id,
                "last_seen_order_seq": cmd.last_seen_order_seq,
            },
        )
        self._place_unplaced()
        self._reconcile(site, link, cmd)
        return reply

    def disconnected(self, site_id: SiteId, channel: WorkerChannel) -> None:
        """The stream ended; the site stays online until its heartbeat timeout."""
        link = self.links.get(site_id)
        if link is not None and link.channel is channel:
            link.channel = None

    def report(self, site_id: SiteId, report_seq: int, message: Report) -> None:
        """Apply one report of a worker, once (report_seq)."""
        site, link = self.sites[site_id], self.links[site_id]
        link.last_seen = time.monotonic()
        self.stats.reports += 1
        if report_seq <= site.last_report_seq:
            self.stats.duplicate_reports += 1
            # Recording the site brings an ack of what was applied, duplicates included.
            self._recorder.site(site)
            return
        site.last_report_seq = report_seq
        self._recorder.site(site)
        if isinstance(message, LogLine):
            self._on_log(message)
        elif isinstance(message, ExecutionEnded):
            self._on_result(link, message)
        elif isinstance(message, Heartbeat):
            site.last_seen_at = self._clock.now()
        elif isinstance(message, StepStateReported):
            self._on_step_state(site, message)
        elif isinstance(message, ExecutionProgressed):
            run = self._executions.get(ExecutionId(message.execution_id))
            if run is not None:
                run.progress(
                    run.executions[ExecutionId(message.execution_id)],
                    message.fraction,
                    message.message,
                    self._clock.now(),
                )
                self._recorder.run(run)
        elif isinstance(message, TriggerFired):
            self._on_trigger(site, message)
        elif isinstance(message, OrdersAcked):
            pass  # orders are re-derived from the desired state at each registration

    def _committed(self, site_seqs: dict[SiteId, int]) -> None:
        for sid, seq in site_seqs.items():
            link = self.links.get(sid)
            if link is not None and link.channel is not None and seq > link.acked_seq:
                link.acked_seq = seq
                link.channel.send(ReportAck(report_seq=seq))

    def _on_log(self, line: LogLine) -> None:
        if line.execution_id:
            run = self._executions.get(ExecutionId(line.execution_id))
            if run is None:
                return  # a late line of a forgotten execution
            line = LogLine(
                execution_id=line.execution_id,
                seq=line.seq,
                stream=line.stream,
                line=line.line,
                at=line.at,
                deployment_id=run.deployment_id,
                step_id=run.executions[ExecutionId(line.execution_id)].step_id,
                run_id=run.id,
            )
            execution = run.executions[ExecutionId(line.execution_id)]
            if execution.state is ExecutionState.DISPATCHED:
                run.mark_running(execution, self._clock.now())
                self._recorder.run(run)
        self._recorder.log(line)
        for key in (line.run_id, f"deployment:{line.deployment_id}"):
            for queue in self._log_subscribers.get(key, ()):
                queue.put_nowait(line)

    def _on_result(self, link: WorkerLink, message: ExecutionEnded) -> None:
        eid = ExecutionId(message.execution_id)
        link.executions.discard(eid)
        self._cancel_timer(eid)
        run = self._executions.get(eid)
        if run is None:
            log.info("result of an unknown or ended execution ignored", extra={"execution_id": eid})
            return
        update = run.finish(
            eid,
            message.result,
            now=self._clock.now(),
            retry_backoff_seconds=self.settings.retry_backoff_seconds,
            max_inline_bytes=self.settings.max_inline_bytes,
        )
        self._settle(run, update)

    def _on_step_state(self, site: Site, message: StepStateReported) -> None:
        d = self.deployments.get(DeploymentId(message.deployment_id))
        step = d.steps.get(message.step_id) if d is not None else None
        if d is None or step is None or step.site_id != site.id:
            # Not (or no longer) desired on this site: make sure it goes away.
            if message.state not in (StepState.UNDEPLOYED, StepState.UNDEPLOYING):
                self._send(
                    site.id,
                    UndeployOrder,
                    deployment_id=message.deployment_id,
                    step_id=message.step_id,
                )
            return
        reason = message.reason
        if message.state is StepState.FAILED and not reason:
            reason = "failed on site " + site.name
        if not d.step_reported(message.step_id, message.state, reason):
            return
        self._refresh(d)
        if message.state is StepState.READY:
            self._flush_waiting(d.id, message.step_id)
        elif message.state is StepState.FAILED:
            self._fail_waiting(
                d.id, message.step_id, f"step {message.step_id} is not deployed: {reason}"
            )

    def _on_trigger(self, site: Site, message: TriggerFired) -> None:
        d = self.deployments.get(DeploymentId(message.deployment_id))
        step = d.steps.get(message.step_id) if d is not None else None
        if d is None or step is None or step.site_id != site.id:
            log.warning(
                "new run from a trigger not deployed here, dropped",
                extra={"deployment_id": message.deployment_id, "site": site.name},
            )
            return
        if d.is_gone or d.state is DeploymentState.UNDEPLOYED or self.draining:
            log.info("new run from an undeploying trigger, dropped", extra={"deployment_id": d.id})
            return
        self.start_run(d, message.outputs, origin="trigger")

    # -- reconciliation --------------------------------------------------------------------------

    def _reconcile(self, site: Site, link: WorkerLink, cmd: RegisterWorker) -> None:
        reported = {(s.deployment_id, s.step_id): s.state for s in cmd.deployed_steps}
        desired: set[tuple[str, str]] = set()
        for d in list(self.deployments.values()):
            changed = False
            for step in d.steps_on(site.id):
                key: tuple[str, str] = (d.id, step.step_id)
                state = reported.get(key)
                if d.is_gone:
                    if state is not None and state is not StepState.UNDEPLOYED:
                        desired.add(key)
                        self._send_undeploy(site, d, step.step_id)
                    else:
                        changed |= d.step_reported(step.step_id, StepState.UNDEPLOYED, "")
                    continue
                desired.add(key)
                if d.state is DeploymentState.FAILED:
                    continue
                if state is StepState.READY:
                    changed |= d.step_reported(step.step_id, StepState.READY, "")
                elif state is StepState.DEPLOYING:
                    changed |= d.step_reported(step.step_id, StepState.DEPLOYING, "")
                elif state is StepState.FAILED:
                    changed |= d.step_reported(
                        step.step_id, StepState.FAILED, f"failed on site {site.name}"
                    )
                else:
                    d.step_reported(step.step_id, StepState.DEPLOYING, "")
                    self._send_deploy(site, d, d.definition.step(step.step_id))
                    changed = True
            if changed:
                self._refresh(d)
        for (dep_id, step_id), state in reported.items():
            if (dep_id, step_id) not in desired and state is not StepState.UNDEPLOYED:
                self._send(site.id, UndeployOrder, deployment_id=dep_id, step_id=step_id)
        # Executions dispatched here: still running, never received, or lost.
        running = cmd.running_execution_ids
        for eid in list(link.executions):
            run = self._executions.get(eid)
            if run is None:
                link.executions.discard(eid)
                continue
            execution = run.executions[eid]
            if eid in running:
                if run.state.is_terminal:
                    self._send(site.id, CancelOrder, execution_id=eid, reason=run.reason)
                continue
            link.executions.discard(eid)
            self._cancel_timer(eid)
            if cmd.last_seen_order_seq and execution.order_seq > cmd.last_seen_order_seq:
                execution.state = ExecutionState.WAITING
                self._dispatch(run, execution)
                self._recorder.run(run)
            else:
                update = run.lose(
                    eid,
                    f"worker lost: site {site.name} no longer knows the execution",
                    now=self._clock.now(),
                    retry_backoff_seconds=self.settings.retry_backoff_seconds,
                )
                self._settle(run, update)
        for d in list(self.deployments.values()):
            for step in d.steps_on(site.id):
                if step.state is StepState.READY:
                    self._flush_waiting(d.id, step.step_id)

    def _watch_once(self) -> None:
        now = time.monotonic()
        for sid, link in list(self.links.items()):
            site = self.sites[sid]
            if site.state is not SiteState.ONLINE:
                continue
            silent = now - link.last_seen
            if silent > self.settings.heartbeat_timeout_seconds:
                self.site_lost(sid, f"no message for {silent:.1f} s")

    async def _watch(self) -> None:
        period = min(0.5, self.settings.heartbeat_timeout_seconds / 4)
        while True:
            await asyncio.sleep(period)
            try:
                self._watch_once()
            except Exception:
                log.exception("heartbeat monitor failed")

    def site_lost(self, site_id: SiteId, reason: str) -> None:
        """The site stopped answering: its executions are lost, its steps re-placed."""
        site, link = self.sites[site_id], self.links[site_id]
        site.go_offline(reason)
        self._recorder.site(site)
        log.warning("site offline", extra={"site": site.name, "reason": reason})
        if link.channel is not None:
            link.channel.close("site declared offline")
            link.channel = None
        for eid in list(link.executions):
            self._cancel_timer(eid)
            run = self._executions.get(eid)
            if run is None:
                continue
            update = run.lose(
                eid,
                f"worker lost: site {site.name} stopped responding ({reason})",
                now=self._clock.now(),
                retry_backoff_seconds=self.settings.retry_backoff_seconds,
            )
            self._settle(run, update)
        link.executions.clear()
        for d in list(self.deployments.values()):
            steps = d.steps_on(site_id)
            if not steps:
                continue
            for step in steps:
                if d.is_gone:
                    d.step_reported(step.step_id, StepState.UNDEPLOYED, "")
                elif d.state is not DeploymentState.FAILED:
                    d.unplace(step.step_id, f"step {step.step_id}: site {site.name} is offline")
            self._place_deployment(d)
            self._refresh(d)

    # =========================================================================================
    # Deployments

    async def deploy_workflow(self, cmd: DeployWorkflow) -> Deployment | None:
        """Record a deployment, place its steps and send Deploy orders. Idempotent."""
        if await self._store.is_claimed(cmd.message_id):
            return None
        existing = self.deployments.get(DeploymentId(cmd.deployment_id))
        if existing is not None or await self._store.deployment_exists(cmd.deployment_id):
            self._recorder.claim(cmd.message_id)
            await self._recorder.durable()
            return existing
        d = Deployment.request(
            id=DeploymentId(cmd.deployment_id),
            project_id=cmd.project_id,
            workflow_id=cmd.workflow_id,
            workflow_name=cmd.workflow_name,
            snapshot_id=cmd.snapshot_id,
            definition=cmd.definition,
            requested_by=cmd.requested_by,
            now=self._clock.now(),
        )
        self._index_deployment(d)
        self._place_deployment(d)
        self._refresh(d, force=True)
        self._recorder.claim(cmd.message_id)
        log.info("deployment requested", extra={"deployment_id": d.id, "state": str(d.state)})
        await self._recorder.durable()
        return d

    async def undeploy_workflow(self, cmd: UndeployWorkflow) -> Deployment | None:
        """Cancel the deployment's runs and undeploy its steps. Unknown or repeated: no-op."""
        if await self._store.is_claimed(cmd.message_id):
            return None
        d = self.deployments.get(DeploymentId(cmd.deployment_id))
        if d is None or d.is_gone:
            self._recorder.claim(cmd.message_id)
            await self._recorder.durable()
            return d
        for step in d.start_undeploy(self._clock.now()):
            assert step.site_id is not None
            link = self.links.get(step.site_id)
            site = self.sites.get(step.site_id)
            if link is None or site is None or link.channel is None:
                # Offline: it is undeployed for us; the worker is told when it comes back.
                d.step_reported(step.step_id, StepState.UNDEPLOYED, "")
            else:
                self._send_undeploy(site, d, step.step_id)
        for run in list(self.runs.values()):
            if run.deployment_id == d.id and not run.state.is_terminal:
                self._settle(run, run.cancel("workflow undeployed", self._clock.now()))
        for key in [k for k in self._waiting if k[0] == d.id]:
            self._fail_waiting(key[0], key[1], "workflow undeployed")
        self._refresh(d, force=True)
        self._recorder.claim(cmd.message_id)
        await self._recorder.durable()
        return d

    def _index_deployment(self, d: Deployment) -> None:
        self.deployments[d.id] = d
        for key in {d.workflow_name, d.workflow_id, d.id}:
            ids = self._endpoints[(d.project_id, key)]
            if d.id not in ids:
                ids.append(d.id)

    def _forget_deployment(self, d: Deployment) -> None:
        self.deployments.pop(d.id, None)
        for key in {d.workflow_name, d.workflow_id, d.id}:
            ids = self._endpoints.get((d.project_id, key))
            if ids and d.id in ids:
                ids.remove(d.id)
                if not ids:
                    del self._endpoints[(d.project_id, key)]

    def _refresh(self, d: Deployment, force: bool = False) -> None:
        changed = d.refresh(self._clock.now())
        if changed or force or d.events:
            self._recorder.deployment(d)
        if d.state is DeploymentState.UNDEPLOYED:
            self._forget_deployment(d)

    def _load(self) -> dict[SiteId, int]:
        load: dict[SiteId, int] = defaultdict(int)
        for d in self.deployments.values():
            for step in d.steps.values():
                if step.site_id is not None:
                    load[step.site_id] += 1
        return load

    def _place_deployment(self, d: Deployment) -> bool:
        """Place every unplaced step of `d` that fits somewhere; send Deploy orders."""
        if d.is_gone or d.state is DeploymentState.FAILED:
            return False
        placed = False
        for step in d.steps.values():
            if step.state is not StepState.UNPLACED:
                continue
            definition = d.definition.step(step.step_id)
            where = place(definition, self.sites.values(), self._load())
            if isinstance(where, NoPlacement):
                d.unplace(step.step_id, where.reason)
                continue
            d.place(step.step_id, where.site_id, where.node_pool)
            self._send_deploy(self.sites[where.site_id], d, definition)
            placed = True
        return placed

    def _place_unplaced(self) -> None:
        for d in list(self.deployments.values()):
            unplaced = any(s.state is StepState.UNPLACED for s in d.steps.values())
            if unplaced and self._place_deployment(d):
                self._refresh(d)

    def _send_deploy(self, site: Site, d: Deployment, step: StepDefinition) -> None:
        trigger_inputs: dict[str, Value] = {}
        is_trigger = step.step_id == d.definition.trigger.step_id
        if is_trigger:
            for io in step.inputs:
                source = step.source(io.name)
                if isinstance(source, (StaticInput, SecretInput)):
                    trigger_inputs[io.name] = source.value
                elif source is None and io.default_json is not None:
                    trigger_inputs[io.name] = io.default()
        sd = d.steps[step.step_id]
        res = step.settings.resources
        self._send(
            site.id,
            DeployOrder,
            deployment_id=d.id,
            step_id=step.step_id,
            project_id=d.project_id,
            action_id=step.action_id,
            action_version=step.action_version,
            action_kind=step.action_kind,
            artefact_key=step.artefact_key,
            artefact_sha256=step.artefact_sha256,
            is_trigger=is_trigger,
            trigger_inputs=trigger_inputs,
            resources=res,
            node_pool=sd.node_pool,
            inputs=step.inputs,
            outputs=step.outputs,
        )

    def _send_undeploy(self, site: Site, d: Deployment, step_id: str) -> None:
        self._send(site.id, UndeployOrder, deployment_id=d.id, step_id=step_id)

    def _send(self, site_id: SiteId, order: Callable[..., Outgoing], **fields: Any) -> int:
        """Queue an order on the site's stream; 0 when the worker is not connected."""
        link = self.links.get(site_id)
        if link is None or link.channel is None:
            return 0
        site = self.sites[site_id]
        seq = site.next_order_seq()
        link.channel.send(order(order_seq=seq, **fields))
        self._recorder.site(site)
        return seq

    # =========================================================================================
    # Runs

    def find_endpoint(self, project_id: str, endpoint: str) -> Deployment | None:
        """The project's deployment for `endpoint` (workflow name, workflow id or deployment
        id), preferring a deployed one, then the most recent."""
        ids = self._endpoints.get((project_id, endpoint), [])
        found = [self.deployments[i] for i in ids if i in self.deployments]
        if not found:
            return None
        deployed = [d for d in found if d.state is DeploymentState.DEPLOYED]
        pool = deployed or found
        return max(pool, key=lambda d: d.created_at)

    def start_run(
        self,
        d: Deployment,
        trigger_outputs: dict[str, Value],
        origin: str,
        run_id: RunId | None = None,
    ) -> Run:
        """Create a run of a deployed workflow and dispatch its first steps."""
        if self.draining:
            raise Unavailable("the runner is shutting down; retry in a moment")
        if not d.is_active:
            raise Conflict(f"workflow {d.workflow_name} is not deployed (state {d.state})")
        run, update = Run.start(
            id=run_id or RunId(str(uuid.uuid4())),
            project_id=d.project_id,
            deployment_id=d.id,
            workflow_id=d.workflow_id,
            workflow_name=d.workflow_name,
            definition=d.definition,
            trigger_outputs=trigger_outputs,
            origin=origin,
            now=self._clock.now(),
        )
        self.runs[run.id] = run
        self.stats.runs_started += 1
        self._settle(run, update)
        return run

    def cancel_run(self, project_id: str, run_id: str, reason: str) -> Run:
        run = self.runs.get(RunId(run_id))
        if run is None or run.project_id != project_id:
            raise NotFound(f"run {run_id} is not running")
        self._settle(run, run.cancel(reason, self._clock.now()))
        return run

    def wait_for(self, run: Run) -> asyncio.Future[Run]:
        """A future resolved with the run once it ended and its end was recorded."""
        future: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        if run.state.is_terminal:
            asyncio.get_running_loop().create_task(self._wake_waiters(run, [future]))
        else:
            self._run_waiters[run.id].append(future)
        return future

    def subscribe_logs(self, key: str) -> asyncio.Queue[LogLine | None]:
        """Live log lines of a run (key = run id) or of a deployment ("deployment:<id>");
        None marks the end of the run."""
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue()
        self._log_subscribers[key].add(queue)
        return queue

    def unsubscribe_logs(self, key: str, queue: asyncio.Queue[LogLine | None]) -> None:
        subs = self._log_subscribers.get(key)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._log_subscribers[key]

    def is_running(self, run_id: str) -> bool:
        run = self.runs.get(RunId(run_id))
        return run is not None and not run.state.is_terminal

    def _settle(self, run: Run, update: RunUpdate) -> None:
        """Carry out what a run's change asks for, then record the run."""
        for e in update.ready:
            self._executions[e.id] = run
            self._dispatch(run, e)
        for e in update.retries:
            self._executions[e.id] = run
            delay = 0.0
            if e.not_before is not None:
                delay = max(0.0, (e.not_before - self._clock.now()).total_seconds())
            self._timers[e.id] = asyncio.get_running_loop().call_later(
                delay, self._retry_due, run, e
            )
        for e in update.cancel:
            if e.site_id:
                self._send(SiteId(e.site_id), CancelOrder, execution_id=e.id, reason=run.reason)
        self._recorder.run(run)
        if update.ended:
            self.stats.runs_ended[str(run.state)] += 1
            for e in run.executions.values():
                if not e.is_active:
                    self._executions.pop(e.id, None)
            waiters = self._run_waiters.pop(run.id, [])
            if waiters:
                asyncio.get_running_loop().create_task(self._wake_waiters(run, waiters))
            for queue in self._log_subscribers.get(run.id, ()):
                queue.put_nowait(None)
        if run.state.is_terminal:
            for e in run.executions.values():
                if not e.is_active:
                    self._executions.pop(e.id, None)
            if not run.active_executions:
                self.runs.pop(run.id, None)

    async def _wake_waiters(self, run: Run, waiters: list[asyncio.Future[Run]]) -> None:
        await self._recorder.durable()
        for future in waiters:
            if not future.done():
                future.set_result(run)

    def _retry_due(self, run: Run, execution: Execution) -> None:
        self._timers.pop(execution.id, None)
        if execution.state is ExecutionState.WAITING and not run.state.is_terminal:
            self._dispatch(run, execution)
            self._recorder.run(run)

    def _dispatch(self, run: Run, execution: Execution) -> None:
        d = self.deployments.get(DeploymentId(run.deployment_id))
        step = d.steps.get(execution.step_id) if d is not None else None
        if d is None or step is None or d.is_gone:
            self._settle(
                run,
                run.lose(
                    execution.id, "the workflow is not deployed any more", now=self._clock.now()
                ),
            )
            return
        if step.state is StepState.FAILED:
            self._settle(
                run,
                run.lose(
                    execution.id,
                    f"step {step.step_id} is not deployed: {step.reason}",
                    now=self._clock.now(),
                ),
            )
            return
        link = self.links.get(step.site_id) if step.site_id is not None else None
        if step.state is not StepState.READY or link is None or link.channel is None:
            self._waiting[(d.id, execution.step_id)].append(execution)
            return
        definition = d.definition.step(execution.step_id)
        inputs = run.resolve_inputs(definition, execution.branch)
        timeout = definition.settings.timeout_seconds
        assert step.site_id is not None
        seq = self._send(
            step.site_id,
            ExecuteOrder,
            execution_id=execution.id,
            run_id=run.id,
            deployment_id=d.id,
            step_id=execution.step_id,
            inputs=inputs,
            timeout_seconds=timeout,
        )
        run.mark_dispatched(execution, site_id=step.site_id, order_seq=seq, now=self._clock.now())
        link.executions.add(execution.id)
        self.stats.executions_dispatched += 1
        self._arm_timeout(run, execution)

    def _arm_timeout(self, run: Run, execution: Execution) -> None:
        timeout = run.definition.step(execution.step_id).settings.timeout_seconds
        if timeout > 0:
            self._cancel_timer(execution.id)
            self._timers[execution.id] = asyncio.get_running_loop().call_later(
                timeout + self.settings.timeout_grace_seconds,
                self._timed_out,
                run,
                execution,
            )

    def _timed_out(self, run: Run, execution: Execution) -> None:
        self._timers.pop(execution.id, None)
        if not execution.is_active:
            return
        for link in self.links.values():
            link.executions.discard(execution.id)
        timeout = run.definition.step(execution.step_id).settings.timeout_seconds
        update = run.lose(
            execution.id,
            f"timed out: no result {timeout:g} s (+ grace) after dispatch",
            now=self._clock.now(),
            retry_backoff_seconds=self.settings.retry_backoff_seconds,
        )
        if execution.site_id:
            self._send(
                SiteId(execution.site_id),
                CancelOrder,
                execution_id=execution.id,
                reason="timed out",
            )
        self._settle(run, update)

    def _cancel_timer(self, execution_id: ExecutionId) -> None:
        timer = self._timers.pop(execution_id, None)
        if timer is not None:
            timer.cancel()

    def _flush_waiting(self, deployment_id: DeploymentId, step_id: str) -> None:
        waiting = self._waiting.pop((deployment_id, step_id), [])
        for execution in waiting:
            run = self._executions.get(execution.id)
            if run is not None and execution.state is ExecutionState.WAITING:
                self._dispatch(run, execution)
                self._recorder.run(run)

    def _fail_waiting(self, deployment_id: DeploymentId, step_id: str, reason: str) -> None:
        waiting = self._waiting.pop((deployment_id, step_id), [])
        for execution in waiting:
            run = self._executions.get(execution.id)
            if run is not None and execution.is_active:
                self._settle(run, run.lose(execution.id, reason, now=self._clock.now()))
