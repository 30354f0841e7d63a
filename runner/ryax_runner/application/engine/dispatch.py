"""Dispatch: runs and their executions, from start to end, and the timers they need.

An execution lost with its worker (the worker restarted, the site went silent, the execution
timed out on a site that is offline) is run again as a new attempt, within the infrastructure
budget (`EngineSettings.infra_retries`), on whichever site has its step ready: the same site
once it is back, or the site its step was placed on again. Deadlines are kept by the reaper
(`deadlines.py`)."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections import defaultdict
from datetime import datetime

from ...domain.deployment import Deployment, DeploymentId, DeploymentState, StepState
from ...domain.errors import Conflict, NotFound, Unavailable
from ...domain.run import Execution, ExecutionId, ExecutionState, Run, RunId, RunUpdate
from ...domain.site import Site, SiteId, SiteState
from ...domain.values import FileRef, Value
from ..messages import (
    CancelOrder,
    ExecuteOrder,
    ExecutionEnded,
    ExecutionProgressed,
    LogLine,
    TriggerFired,
)
from ..ports import Clock, Recorder, TimerHandle, Timers
from .files import HeldFiles
from .links import WorkerLinks
from .log_hub import LogHub
from .state import EngineSettings, EngineState, WorkerLink

log = logging.getLogger(__name__)


class Dispatcher:
    """An execution goes out when its step is ready, retries at not_before, runs again when
    lost with its worker, fails past its deadline."""

    def __init__(
        self,
        state: EngineState,
        *,
        links: WorkerLinks,
        files: HeldFiles,
        log_hub: LogHub,
        recorder: Recorder,
        clock: Clock,
        timers: Timers,
        settings: EngineSettings,
    ) -> None:
        self._state = state
        self._links = links
        self._files = files
        files.on_ready = self._dispatch_parked
        files.on_failed = self._fail_parked
        self._log_hub = log_hub
        self._recorder = recorder
        self._clock = clock
        self._timers = timers
        self._settings = settings
        #: The retry timer of an execution waiting for its not_before time.
        self._pending: dict[ExecutionId, TimerHandle] = {}
        #: Executions waiting for their step to be ready on its site.
        self._waiting: dict[tuple[DeploymentId, str], list[Execution]] = defaultdict(list)
        self._run_waiters: dict[RunId, list[asyncio.Future[Run]]] = defaultdict(list)

    # -- runs ------------------------------------------------------------------------------------

    def start_run(
        self,
        d: Deployment,
        trigger_outputs: dict[str, Value],
        origin: str,
        run_id: RunId | None = None,
        refused: str = "",
        while_deploying: bool = False,
        unannounced: bool = False,
    ) -> Run:
        """Create a run of a deployed workflow and dispatch its first steps (a run whose
        trigger outputs cannot be kept fails at once, naming the output). `while_deploying`: a
        run its trigger started while the other steps are still being deployed is taken (its
        executions wait for their steps, as any execution whose step is not ready).

        `unannounced`: nobody outside the runner knows of the run until its caller is answered
        (a fresh run id, never given again; the answer waits for the run's record or its end):
        its first Execute orders leave at once instead of after its first commit
        (`WorkerLinks.send(early=True)`), which saves that commit's wait on every run's path.
        Not for a run a worker or a timer may start again after a crash with the same id."""
        if self._state.draining:
            raise Unavailable("the runner is shutting down; retry in a moment")
        deploying = while_deploying and d.state in (
            DeploymentState.DEPLOYING,
            DeploymentState.WAITING_FOR_SITE,
        )
        if not d.is_active and not deploying:
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
            max_inline_bytes=self._settings.max_inline_bytes,
            refused=refused,
            max_executions=self._settings.max_run_executions,
        )
        self._state.runs[run.id] = run
        self._state.stats.runs_started += 1
        self.settle(run, update, early=unannounced)
        return run

    def cancel_run(self, project_id: str, run_id: str, reason: str) -> Run:
        run = self._state.runs.get(RunId(run_id))
        if run is None or run.project_id != project_id:
            raise NotFound(f"run {run_id} is not running")
        self.settle(run, run.cancel(reason, self._clock.now()))
        return run

    def cancel_runs_of(self, deployment_id: DeploymentId, reason: str) -> None:
        """The deployment goes away: its runs are cancelled, its waiting executions lost."""
        for run in list(self._state.runs.values()):
            if run.deployment_id == deployment_id and not run.state.is_terminal:
                self.settle(run, run.cancel(reason, self._clock.now()))
        for key in [k for k in self._waiting if k[0] == deployment_id]:
            self.fail_waiting(key[0], key[1], reason)

    def wait_for(self, run: Run) -> asyncio.Future[Run]:
        """A future resolved with the run once it ended and its end was recorded."""
        future: asyncio.Future[Run] = asyncio.get_running_loop().create_future()
        if run.state.is_terminal:
            asyncio.get_running_loop().create_task(self._wake_waiters(run, [future]))
        else:
            self._run_waiters[run.id].append(future)
        return future

    def is_running(self, run_id: str) -> bool:
        run = self._state.runs.get(RunId(run_id))
        return run is not None and not run.state.is_terminal

    def restore_run(self, run: Run, executions: list[Execution], now: datetime) -> None:
        """Take a run back after a restart: executions on a known site are awaited again
        (their deadline still counted from their dispatch), the others dispatched again or at
        their retry time."""
        run.max_executions = self._settings.max_run_executions
        update = Run.restore(run, executions, now)
        self._state.runs[run.id] = run
        for e in run.executions.values():
            if not e.is_active:
                continue
            self._state.executions[e.id] = run
            if e.state in (ExecutionState.DISPATCHED, ExecutionState.RUNNING) and e.site_id:
                link = self._state.links.get(SiteId(e.site_id))
                if link is not None:
                    link.add_execution(e.id, self._input_keys(run, e))
                else:
                    update.ready.append(e)
            elif e.state is ExecutionState.WAITING and e not in update.ready:
                if e.not_before is not None and e.not_before > now:
                    update.retries.append(e)
                else:
                    update.ready.append(e)
        self.settle(run, update)

    def settle(self, run: Run, update: RunUpdate, *, early: bool = False) -> None:
        """Carry out what a run's change asks for, then record the run. `early`: the Execute
        orders may leave before the commit (`start_run(unannounced=True)`)."""
        for e in update.ready:
            self._state.executions[e.id] = run
            self._dispatch(run, e, early=early)
        for e in update.retries:
            self._state.executions[e.id] = run
            delay = 0.0
            if e.not_before is not None:
                delay = max(0.0, (e.not_before - self._clock.now()).total_seconds())
            self._pending[e.id] = self._timers.call_later(
                delay, functools.partial(self._retry_due, run, e)
            )
        for e in update.cancel:
            if e.site_id:
                self._links.send(
                    SiteId(e.site_id), CancelOrder, execution_id=e.id, reason=run.reason
                )
        if update.ended:
            self._files.run_ended(run)
        # A run its caller does not know of yet is written with its next change, if soon.
        self._recorder.run(run, lazy=early and not run.state.is_terminal)
        if update.ended:
            self._state.stats.runs_ended[str(run.state)] += 1
            waiters = self._run_waiters.pop(run.id, [])
            if waiters:
                asyncio.get_running_loop().create_task(self._wake_waiters(run, waiters))
            self._log_hub.end(run.id)
        if run.state.is_terminal:
            for e in run.executions.values():
                if not e.is_active:
                    self._state.executions.pop(e.id, None)
                    self.cancel_timer(e.id)  # a retry of an ended run is moot
            if not run.active_executions:
                self._state.runs.pop(run.id, None)

    async def _wake_waiters(self, run: Run, waiters: list[asyncio.Future[Run]]) -> None:
        await self._recorder.durable()
        for future in waiters:
            if not future.done():
                future.set_result(run)

    # -- what workers report ---------------------------------------------------------------------

    def trigger_fired(self, site: Site, message: TriggerFired) -> None:
        """A trigger deployed on `site` yielded: a new run."""
        d = self._state.deployments.get(DeploymentId(message.deployment_id))
        step = d.steps.get(message.step_id) if d is not None else None
        if d is None or step is None or step.site_id != site.id:
            log.warning(
                "new run from a trigger not deployed here, dropped",
                extra={"deployment_id": message.deployment_id, "site": site.name},
            )
            return
        if d.is_gone or d.state is DeploymentState.UNDEPLOYED or self._state.draining:
            log.info("new run from an undeploying trigger, dropped", extra={"deployment_id": d.id})
            return
        self.start_run(
            d, message.outputs, origin="trigger", refused=message.refused, while_deploying=True
        )

    def abandon(self, run: Run, reason: str) -> None:
        """The run's record could not be written: it ends FAILED with `reason` (its active
        executions cancelled on their workers), and that simpler state is recorded."""
        for e in run.active_executions:
            self.cancel_timer(e.id)
            if e.site_id:
                link = self._state.links.get(SiteId(e.site_id))
                if link is not None:
                    link.drop_execution(e.id)
        waiting_keys = [k for k, v in self._waiting.items() if any(e.run_id == run.id for e in v)]
        for key in waiting_keys:
            self._waiting[key] = [e for e in self._waiting[key] if e.run_id != run.id]
            if not self._waiting[key]:
                del self._waiting[key]
        self.settle(run, run.abandon(reason, self._clock.now()))
        log.error("run ended: its record could not be written", extra={"run_id": run.id})

    def execution_ended(self, link: WorkerLink, message: ExecutionEnded) -> None:
        eid = ExecutionId(message.execution_id)
        link.drop_execution(eid)
        self.cancel_timer(eid)
        run = self._state.executions.get(eid)
        if run is None:
            log.info("result of an unknown or ended execution ignored", extra={"execution_id": eid})
            return
        if message.lost:
            self.lose(run, eid, f"lost on its site: {message.result.error or 'no reason given'}")
            return
        update = run.finish(
            eid,
            message.result,
            now=self._clock.now(),
            retry_backoff_seconds=self._settings.retry_backoff_seconds,
            max_inline_bytes=self._settings.max_inline_bytes,
            max_fanout=self._settings.max_fanout,
        )
        self.settle(run, update)

    def execution_progressed(self, message: ExecutionProgressed) -> None:
        run = self._state.executions.get(ExecutionId(message.execution_id))
        if run is not None:
            run.progress(
                run.executions[ExecutionId(message.execution_id)],
                message.fraction,
                message.message,
                self._clock.now(),
            )
            self._recorder.run(run, lazy=True)

    def attribute_log(self, line: LogLine) -> LogLine | None:
        """The line with its run, deployment and step filled in (None: a late line of a
        forgotten execution). A first line shows the execution running."""
        if not line.execution_id:
            return line
        run = self._state.executions.get(ExecutionId(line.execution_id))
        if run is None:
            return None
        execution = run.executions[ExecutionId(line.execution_id)]
        line = LogLine(
            execution_id=line.execution_id,
            seq=line.seq,
            stream=line.stream,
            line=line.line,
            at=line.at,
            deployment_id=run.deployment_id,
            step_id=execution.step_id,
            run_id=run.id,
        )
        if execution.state is ExecutionState.DISPATCHED:
            run.mark_running(execution, self._clock.now())
            self._recorder.run(run, lazy=True)
        return line

    def site_lost(self, site: Site, link: WorkerLink, reason: str) -> None:
        """Executions dispatched to a site that stopped answering are lost: each runs again
        where its step is ready (the site once back, or where the step is placed again)."""
        executions = link.take_executions()
        for eid in executions:
            run = self._state.executions.get(eid)
            if run is not None:
                self.lose(run, eid, f"worker lost: site {site.name} stopped responding ({reason})")

    def lose(self, run: Run, execution_id: ExecutionId, reason: str) -> None:
        """The execution's worker does not have it any more: LOST, and it runs again while the
        infrastructure budget allows (else the run fails)."""
        self.cancel_timer(execution_id)
        update = run.lose(
            execution_id, reason, now=self._clock.now(), infra_budget=self._settings.infra_retries
        )
        self.settle(run, update)

    def resend(self, run: Run, execution: Execution) -> None:
        """The worker never received the execution's order: dispatch it again (a wait for
        its step counts from now)."""
        execution.state, execution.not_before = ExecutionState.WAITING, self._clock.now()
        self._dispatch(run, execution)
        self._recorder.run(run)

    # -- steps becoming ready or failing ---------------------------------------------------------

    def flush_waiting(self, deployment_id: DeploymentId, step_id: str) -> None:
        """The step is ready: dispatch what waited for it."""
        waiting = self._waiting.pop((deployment_id, step_id), [])
        for execution in waiting:
            run = self._state.executions.get(execution.id)
            if run is not None and execution.state is ExecutionState.WAITING:
                self._dispatch(run, execution)
                self._recorder.run(run)

    def fail_waiting(self, deployment_id: DeploymentId, step_id: str, reason: str) -> None:
        """The step will not be ready: what waited for it fails."""
        waiting = self._waiting.pop((deployment_id, step_id), [])
        for execution in waiting:
            run = self._state.executions.get(execution.id)
            if run is not None and execution.is_active:
                self._fail(run, execution, reason)

    def waited_too_long(self, run: Run, execution: Execution, reason: str) -> None:
        """No site could run the execution's step in time: it fails (not retried: a retry
        would only wait again)."""
        self._files.unpark(execution)
        key = (DeploymentId(run.deployment_id), execution.step_id)
        waiting = self._waiting.get(key)
        if waiting is not None and execution in waiting:
            waiting.remove(execution)
            if not waiting:
                del self._waiting[key]
        self._fail(run, execution, reason, retryable=False)

    def timed_out(self, run: Run, execution: Execution, timeout: float) -> None:
        """No result within the step's timeout (+ grace): the step failed, unless its site is
        offline (then the execution was lost with it). The worker is told to stop it."""
        for link in self._state.links.values():
            link.drop_execution(execution.id)
        site = self._state.sites.get(SiteId(execution.site_id or ""))
        if execution.site_id:
            self._links.send(
                SiteId(execution.site_id),
                CancelOrder,
                execution_id=execution.id,
                reason="timed out",
            )
        if site is None or site.state is SiteState.OFFLINE:
            name = site.name if site is not None else execution.site_id
            self.lose(
                run,
                execution.id,
                f"worker lost: no result after {timeout:g} s, site {name} is offline",
            )
        else:
            self._fail(
                run,
                execution,
                f"timed out after {timeout:g} s: no result from site {site.name} "
                f"(+{self._settings.timeout_grace_seconds:g} s grace)",
            )

    def _fail(self, run: Run, execution: Execution, reason: str, retryable: bool = True) -> None:
        self.cancel_timer(execution.id)
        update = run.fail(
            execution.id,
            reason,
            now=self._clock.now(),
            retry_backoff_seconds=self._settings.retry_backoff_seconds,
            retryable=retryable,
        )
        self.settle(run, update)

    # -- dispatch and timers ---------------------------------------------------------------------

    def _dispatch(self, run: Run, execution: Execution, *, early: bool = False) -> None:
        d = self._state.deployments.get(DeploymentId(run.deployment_id))
        step = d.steps.get(execution.step_id) if d is not None else None
        if d is None or step is None or d.is_gone:
            self._fail(run, execution, "the workflow is not deployed any more")
            return
        if step.state is StepState.FAILED:
            self._fail(run, execution, f"step {step.step_id} is not deployed: {step.reason}")
            return
        link = self._state.links.get(step.site_id) if step.site_id is not None else None
        if step.state is not StepState.READY or link is None or link.channel is None:
            self._waiting[(d.id, execution.step_id)].append(execution)
            return
        definition = d.definition.step(execution.step_id)
        inputs = run.resolve_inputs(definition, execution.branch)
        assert step.site_id is not None
        held = self._files.held_elsewhere(inputs, step.site_id)
        if held:
            # Files another site holds are published first; the execution waits (WAITING).
            self._files.park(run, execution, held)
            return
        timeout = definition.settings.timeout(self._settings.default_step_timeout_seconds)
        seq = self._links.send(
            step.site_id,
            ExecuteOrder,
            early=early,
            execution_id=execution.id,
            run_id=run.id,
            deployment_id=d.id,
            step_id=execution.step_id,
            inputs=inputs,
            timeout_seconds=timeout,
        )
        run.mark_dispatched(execution, site_id=step.site_id, order_seq=seq, now=self._clock.now())
        link.add_execution(execution.id, (v.key for v in inputs.values() if isinstance(v, FileRef)))
        self._state.stats.executions_dispatched += 1

    @staticmethod
    def _input_keys(run: Run, execution: Execution) -> list[str]:
        inputs = run.resolve_inputs(run.definition.step(execution.step_id), execution.branch)
        return [v.key for v in inputs.values() if isinstance(v, FileRef)]

    def _dispatch_parked(self, run: Run, execution: Execution) -> None:
        """The held files the execution waited for are published: it goes out."""
        self._dispatch(run, execution)
        self._recorder.run(run)

    def _fail_parked(self, run: Run, execution: Execution, reason: str) -> None:
        """A held file the execution waited for is lost: it fails (not retried: the file
        would still be missing)."""
        self._fail(run, execution, reason, retryable=False)

    def _retry_due(self, run: Run, execution: Execution) -> None:
        self._pending.pop(execution.id, None)
        if execution.state is ExecutionState.WAITING and not run.state.is_terminal:
            self._dispatch(run, execution)
            self._recorder.run(run)

    def cancel_timer(self, execution_id: ExecutionId) -> None:
        timer = self._pending.pop(execution_id, None)
        if timer is not None:
            timer.cancel()

    def cancel_timers(self) -> None:
        for timer in self._pending.values():
            timer.cancel()
        self._pending.clear()
