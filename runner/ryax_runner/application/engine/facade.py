"""The engine's facade: what the gRPC server, the HTTP API and the studio consumer call."""

from __future__ import annotations

import asyncio
import logging

from ...domain.deployment import Deployment, DeploymentId
from ...domain.run import Run, RunId
from ...domain.site import Site, SiteId, SiteState
from ...domain.values import FileRef, Value
from ..messages import (
    DeployWorkflow,
    ExecutionEnded,
    ExecutionProgressed,
    FilesPublished,
    Heartbeat,
    LogLine,
    OrdersAcked,
    Registered,
    RegisterWorker,
    Report,
    StepStateReported,
    TriggerFired,
    UndeployWorkflow,
)
from ..ports import Clock, LoadedState, Recorder, StateStore, TimerHandle, Timers, WorkerChannel
from .deadlines import Reaper
from .dispatch import Dispatcher
from .files import HeldFiles
from .links import WorkerLinks
from .log_hub import LogHub, LogQueue
from .placement import Placer
from .reconciliation import Reconciler
from .sites import SiteAdmin
from .state import EngineSettings, EngineState, EngineStats, WorkerLink
from .transfers import TransferAsk, TransferGrants

log = logging.getLogger(__name__)

#: How often `drain` looks whether dispatched executions finished.
DRAIN_POLL_SECONDS = 0.05


class Engine:
    """Deployments, sites and runs kept in memory, driven by pushes, recorded in batches."""

    def __init__(
        self,
        *,
        recorder: Recorder,
        store: StateStore,
        clock: Clock,
        timers: Timers,
        settings: EngineSettings | None = None,
    ) -> None:
        self._recorder = recorder
        self._store = store
        self._clock = clock
        self._timers = timers
        self.settings = settings or EngineSettings()
        self._state = EngineState()
        self._links = WorkerLinks(
            self._state, recorder=recorder, clock=clock, timers=timers, settings=self.settings
        )
        self._log_hub = LogHub(recorder)
        self._files = HeldFiles(self._state, links=self._links)
        self._placer = Placer(self._state, links=self._links, recorder=recorder, clock=clock)
        self._dispatcher = Dispatcher(
            self._state,
            links=self._links,
            files=self._files,
            log_hub=self._log_hub,
            recorder=recorder,
            clock=clock,
            timers=timers,
            settings=self.settings,
        )
        self._reconciler = Reconciler(
            self._state, links=self._links, placer=self._placer, dispatcher=self._dispatcher
        )
        self._reaper = Reaper(
            self._state,
            dispatcher=self._dispatcher,
            files=self._files,
            clock=clock,
            timers=timers,
            settings=self.settings,
        )
        self._grants = TransferGrants(self._state, files=self._files)
        self._site_admin = SiteAdmin(self._state, links=self._links, recorder=recorder, clock=clock)
        self._monitor: TimerHandle | None = None
        #: Rebuilt from the record and running (site administration waits for it).
        self.started = False
        recorder.add_commit_listener(self._links.committed)

    # -- state, read by the API, the metrics and the tests ----------------------------------------

    @property
    def sites(self) -> dict[SiteId, Site]:
        return self._state.sites

    @property
    def links(self) -> dict[SiteId, WorkerLink]:
        return self._state.links

    @property
    def deployments(self) -> dict[DeploymentId, Deployment]:
        return self._state.deployments

    @property
    def runs(self) -> dict[RunId, Run]:
        return self._state.runs

    @property
    def stats(self) -> EngineStats:
        return self._state.stats

    @property
    def draining(self) -> bool:
        return self._state.draining

    @draining.setter
    def draining(self, value: bool) -> None:
        self._state.draining = value

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Rebuild the in-memory state from the record, then watch heartbeats and deadlines
        (the first look at deadlines once the sites had their heartbeat timeout to come back)."""
        self.restore(await self._store.load())
        self._arm_monitor()
        self._reaper.start(
            max(self.settings.reap_interval_seconds, self.settings.heartbeat_timeout_seconds)
        )
        self.started = True

    async def stop(self) -> None:
        self.started = False
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
        self._reaper.stop()
        self._dispatcher.cancel_timers()
        self._links.close_all("runner shutting down")
        await self._recorder.durable()

    async def durable(self, run: Run | None = None) -> None:
        """Return once every change made so far is committed; `run`'s too if it was marked
        lazily (an answer about to name it)."""
        if run is not None:
            self._recorder.run(run)
        await self._recorder.durable()

    async def drain(self, grace_seconds: float) -> None:
        """Stop taking new runs; give dispatched executions `grace_seconds` to finish."""
        self._state.draining = True
        self._log_hub.end_all()  # live log streams end; clients reconnect later
        deadline = self._timers.monotonic() + grace_seconds
        while self._timers.monotonic() < deadline and self._links.busy():
            await self._sleep(DRAIN_POLL_SECONDS)
        await self._recorder.durable()

    def restore(self, state: LoadedState) -> None:
        self._links.restore(state.sites)
        for d in state.deployments:
            self._placer.index(d)
        now = self._clock.now()
        for run, executions in state.runs:
            self._dispatcher.restore_run(run, executions, now)
        log.info(
            "engine restored",
            extra={
                "sites": len(self._state.sites),
                "deployments": len(self._state.deployments),
                "active_runs": len(self._state.runs),
            },
        )

    async def _sleep(self, seconds: float) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        handle = self._timers.call_later(seconds, wake)
        try:
            await done
        finally:
            handle.cancel()

    # -- heartbeat monitor -----------------------------------------------------------------------

    def _arm_monitor(self) -> None:
        period = min(0.5, self.settings.heartbeat_timeout_seconds / 4)
        self._monitor = self._timers.call_later(period, self._monitor_due)

    def _monitor_due(self) -> None:
        try:
            self._watch_once()
        except Exception:
            log.exception("heartbeat monitor failed")
        self._arm_monitor()

    def _watch_once(self) -> None:
        """A site silent for longer than the heartbeat timeout is lost."""
        for sid, silence in self._links.silent():
            self.site_lost(sid, f"no message for {silence:.1f} s")

    # -- workers ---------------------------------------------------------------------------------

    def register_worker(self, cmd: RegisterWorker, channel: WorkerChannel) -> Registered:
        """A worker (re)connects: answer Registered, then reconcile the site's desired state."""
        site, link, reply = self._links.connect(cmd, channel)
        self._placer.place_unplaced()
        self._reconciler.reconcile(site, link, cmd)
        self._files.site_registered(site, cmd.held_files)
        return reply

    def disconnected(self, site_id: SiteId, channel: WorkerChannel) -> None:
        """The stream ended; the site stays online until its heartbeat timeout."""
        self._links.disconnected(site_id, channel)

    def report(self, site_id: SiteId, report_seq: int, message: Report) -> None:
        """Apply one report of a worker, once (report_seq)."""
        if not self._links.accept(site_id, report_seq, record=not isinstance(message, OrdersAcked)):
            return
        site = self._state.sites[site_id]
        if isinstance(message, LogLine):
            line = self._dispatcher.attribute_log(message)
            if line is not None:
                self._log_hub.publish(line)
        elif isinstance(message, ExecutionEnded):
            self._dispatcher.execution_ended(self._state.links[site_id], message)
        elif isinstance(message, Heartbeat):
            self._links.heartbeat(site_id)
        elif isinstance(message, StepStateReported):
            self._reconciler.step_state_reported(site, message)
        elif isinstance(message, ExecutionProgressed):
            self._dispatcher.execution_progressed(message)
        elif isinstance(message, TriggerFired):
            self._dispatcher.trigger_fired(site, message)
        elif isinstance(message, FilesPublished):
            self._files.published(site, message)
        elif isinstance(message, OrdersAcked):
            pass  # orders are re-derived from the desired state at each registration

    def authenticate_site(self, site_name: str, credential: str) -> Site:
        """The site whose credential this is (the same check as a worker's registration);
        WorkerRefused otherwise."""
        return self._links.authenticate(site_name, credential)

    def authorise_transfers(self, site_name: str, credential: str, asks: list[TransferAsk]) -> Site:
        """The site presenting `credential` may move each object asked (presigned URLs): the
        site, else WorkerRefused (credential) or TransferDenied (naming the key)."""
        site = self.authenticate_site(site_name, credential)
        self._grants.check(site.id, asks)
        return site

    def site_lost(self, site_id: SiteId, reason: str) -> None:
        """The site stopped answering: its executions are lost (and run again where their step
        is ready), its steps re-placed."""
        site, link = self._links.go_offline(site_id, reason)
        self._dispatcher.site_lost(site, link, reason)
        self._placer.site_offline(site)

    # -- site administration (admins; the credential is returned once) --------------------------

    def find_site(self, ref: str) -> Site:
        """The site named (or whose id is) `ref`; NotFound otherwise."""
        return self._site_admin.find(ref)

    def create_site(self, name: str, kind: str, by: str) -> tuple[Site, str]:
        """A new site, offline until its worker connects, and its credential."""
        return self._site_admin.create(name, kind, by)

    def configure_site(self, name: str, kind: str, credential: str) -> Site:
        """The built-in site of the configuration: created if missing, `credential` made the
        one that works (call after start, before workers can connect)."""
        return self._site_admin.configure(name, kind, credential)

    def rotate_site_credential(self, ref: str, by: str) -> tuple[Site, str]:
        """A new credential; the old one stops working, its worker is cut off."""
        return self._site_admin.rotate(ref, by)

    def revoke_site_credential(self, ref: str, by: str) -> Site:
        """No credential works any more; the worker is cut off (the site goes offline after
        its heartbeat timeout, as any site whose worker went away)."""
        return self._site_admin.revoke(ref, by)

    def archive_site(self, ref: str, by: str) -> Site:
        """Retire the site: credential revoked, offline now (its executions lost and run again
        elsewhere, its steps re-placed), kept in the record."""
        site = self._site_admin.find(ref)
        if not site.is_archived and site.state is SiteState.ONLINE:
            self.site_lost(site.id, "site archived")
        archived = self._site_admin.archive(site, by)
        self._files.site_gone(archived)
        return archived

    async def publish_held(self, ref: FileRef, run_id: str) -> None:
        """A file a site holds is wanted outside it (a user's download): ask the site to
        publish it and wait (at most `EngineSettings.publish_wait_seconds`); Unavailable
        naming the site if it is offline or too slow, NotFound if the file is lost."""
        await self._files.publish_now(ref, run_id, self.settings.publish_wait_seconds)

    # -- deployments -----------------------------------------------------------------------------

    async def deploy_workflow(self, cmd: DeployWorkflow) -> Deployment | None:
        """Record a deployment, place its steps and send Deploy orders. Idempotent."""
        if await self._store.is_claimed(cmd.message_id):
            return None
        existing = self._state.deployments.get(DeploymentId(cmd.deployment_id))
        if existing is not None or await self._store.deployment_exists(cmd.deployment_id):
            self._recorder.claim(cmd.message_id)
            await self._recorder.durable()
            return existing
        d = self._placer.request(cmd)
        self._recorder.claim(cmd.message_id)
        log.info("deployment requested", extra={"deployment_id": d.id, "state": str(d.state)})
        await self._recorder.durable()
        return d

    async def knows(self, message_id: str, deployment_id: str) -> bool:
        """The message was handled, or the deployment is recorded (a redelivery)."""
        return (
            DeploymentId(deployment_id) in self._state.deployments
            or await self._store.is_claimed(message_id)
            or await self._store.deployment_exists(deployment_id)
        )

    async def undeploy_workflow(self, cmd: UndeployWorkflow) -> Deployment | None:
        """Cancel the deployment's runs and undeploy its steps. Unknown or repeated: no-op."""
        if await self._store.is_claimed(cmd.message_id):
            return None
        d = self._state.deployments.get(DeploymentId(cmd.deployment_id))
        if d is None or d.is_gone:
            self._recorder.claim(cmd.message_id)
            await self._recorder.durable()
            return d
        self._placer.start_undeploy(d)
        self._dispatcher.cancel_runs_of(d.id, "workflow undeployed")
        self._placer.refresh(d, force=True)
        self._recorder.claim(cmd.message_id)
        await self._recorder.durable()
        return d

    def fail_deployment(self, d: Deployment, reason: str) -> None:
        """The runner cannot run the deployment (its built-in trigger's settings): failed,
        recorded and told to the studio; its runs cancelled."""
        if d.fail(reason, self._clock.now()):
            log.warning("deployment failed", extra={"deployment_id": d.id, "reason": reason})
            self._dispatcher.cancel_runs_of(d.id, reason)
            self._recorder.deployment(d)

    def find_endpoint(self, project_id: str, endpoint: str) -> Deployment | None:
        """The project's deployment for `endpoint` (workflow name, workflow id or deployment
        id), preferring a deployed one, then the most recent."""
        return self._placer.find_endpoint(project_id, endpoint)

    # -- runs ------------------------------------------------------------------------------------

    def start_run(
        self,
        d: Deployment,
        trigger_outputs: dict[str, Value],
        origin: str,
        run_id: RunId | None = None,
        *,
        unannounced: bool = False,
    ) -> Run:
        """Create a run of a deployed workflow and dispatch its first steps; `unannounced`:
        see `Dispatcher.start_run` (a call through the API, answered once the run is recorded
        or ended)."""
        return self._dispatcher.start_run(
            d, trigger_outputs, origin, run_id, unannounced=unannounced
        )

    def cancel_run(self, project_id: str, run_id: str, reason: str) -> Run:
        return self._dispatcher.cancel_run(project_id, run_id, reason)

    def abandon_run(self, run: Run, reason: str) -> None:
        """The recorder could not write the run (its write was set aside, with `reason`): the
        run must not go on unrecorded, so it ends FAILED "could not be recorded: <reason>"."""
        self._dispatcher.abandon(run, f"could not be recorded: {reason}")

    def wait_for(self, run: Run) -> asyncio.Future[Run]:
        """A future resolved with the run once it ended and its end was recorded."""
        return self._dispatcher.wait_for(run)

    def is_running(self, run_id: str) -> bool:
        return self._dispatcher.is_running(run_id)

    # -- live logs -------------------------------------------------------------------------------

    def subscribe_logs(self, key: str) -> LogQueue:
        """Live log lines of a run (key = run id) or of a deployment ("deployment:<id>");
        None marks the end of the run."""
        return self._log_hub.subscribe(key)

    def unsubscribe_logs(self, key: str, queue: LogQueue) -> None:
        self._log_hub.unsubscribe(key, queue)
