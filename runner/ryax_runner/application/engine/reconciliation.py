"""Reconciliation: what a worker says it has, brought in line with what is desired of its site."""

from __future__ import annotations

from ...domain.deployment import DeploymentId, DeploymentState, StepState
from ...domain.site import Site
from ..messages import CancelOrder, RegisterWorker, StepStateReported, UndeployOrder
from .dispatch import Dispatcher
from .links import WorkerLinks
from .placement import Placer
from .state import EngineState, WorkerLink


class Reconciler:
    """The runner's desired state wins over what a (re)connecting worker reports it has."""

    def __init__(
        self,
        state: EngineState,
        *,
        links: WorkerLinks,
        placer: Placer,
        dispatcher: Dispatcher,
    ) -> None:
        self._state = state
        self._links = links
        self._placer = placer
        self._dispatcher = dispatcher

    def reconcile(self, site: Site, link: WorkerLink, cmd: RegisterWorker) -> None:
        """A worker (re)registered with what it has deployed and what it still runs."""
        self._reconcile_steps(site, cmd)
        self._reconcile_executions(site, link, cmd)
        for d in list(self._state.deployments.values()):
            for step in d.steps_on(site.id):
                if step.state is StepState.READY:
                    self._dispatcher.flush_waiting(d.id, step.step_id)

    def _reconcile_steps(self, site: Site, cmd: RegisterWorker) -> None:
        reported = {(s.deployment_id, s.step_id): s.state for s in cmd.deployed_steps}
        desired: set[tuple[str, str]] = set()
        for d in list(self._state.deployments.values()):
            changed = False
            for step in d.steps_on(site.id):
                key: tuple[str, str] = (d.id, step.step_id)
                state = reported.get(key)
                if d.is_gone:
                    if state is not None and state is not StepState.UNDEPLOYED:
                        desired.add(key)
                        self._placer.send_undeploy(site, d, step.step_id)
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
                    self._placer.send_deploy(site, d, d.definition.step(step.step_id))
                    changed = True
            if changed:
                self._placer.refresh(d)
        for (dep_id, step_id), state in reported.items():
            if (dep_id, step_id) not in desired and state is not StepState.UNDEPLOYED:
                self._links.send(site.id, UndeployOrder, deployment_id=dep_id, step_id=step_id)

    def _reconcile_executions(self, site: Site, link: WorkerLink, cmd: RegisterWorker) -> None:
        """Executions dispatched here: still running, never received, or lost (run again).
        What the worker runs that the runner does not await here is cancelled."""
        running = cmd.running_execution_ids
        awaited: set[str] = set()
        for eid in list(link.executions):
            run = self._state.executions.get(eid)
            if run is None:
                link.drop_execution(eid)
                continue
            execution = run.executions[eid]
            if eid in running:
                awaited.add(eid)
                if run.state.is_terminal:
                    self._links.send(site.id, CancelOrder, execution_id=eid, reason=run.reason)
                continue
            link.drop_execution(eid)
            if cmd.last_seen_order_seq and execution.order_seq > cmd.last_seen_order_seq:
                self._dispatcher.resend(run, execution)
            else:
                self._dispatcher.lose(
                    run, eid, f"worker lost: site {site.name} no longer knows the execution"
                )
        for stray in sorted(running - awaited):
            # Lost (another attempt replaces it) or of an ended run: a worker that was cut off
            # must not go on with it. A worker that already finished it ignores the cancel.
            self._links.send(
                site.id,
                CancelOrder,
                execution_id=stray,
                reason="the runner no longer awaits this execution (lost or ended)",
            )

    def step_state_reported(self, site: Site, message: StepStateReported) -> None:
        """A worker reports a step's state: applied if the step is desired there, else the
        step is undeployed."""
        d = self._state.deployments.get(DeploymentId(message.deployment_id))
        step = d.steps.get(message.step_id) if d is not None else None
        if d is None or step is None or step.site_id != site.id:
            if message.state not in (StepState.UNDEPLOYED, StepState.UNDEPLOYING):
                self._links.send(
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
        self._placer.refresh(d)
        if message.state is StepState.READY:
            self._dispatcher.flush_waiting(d.id, message.step_id)
        elif message.state is StepState.FAILED:
            self._dispatcher.fail_waiting(
                d.id, message.step_id, f"step {message.step_id} is not deployed: {reason}"
            )
