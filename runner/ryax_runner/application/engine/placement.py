"""Placement: which site runs each step of a deployment, and the Deploy/Undeploy orders."""

from __future__ import annotations

from collections import defaultdict

from ...domain.deployment import Deployment, DeploymentId, DeploymentState, StepState
from ...domain.site import NoPlacement, Site, SiteId, place
from ...domain.user_api import user_api_refusal
from ...domain.values import Value
from ...domain.workflow import SecretInput, StaticInput, StepDefinition
from ..messages import DeployOrder, DeployWorkflow, UndeployOrder
from ..ports import Clock, Recorder
from .links import WorkerLinks
from .state import EngineState


class Placer:
    """Each step of a live deployment runs on the least loaded online site that fits it."""

    def __init__(
        self, state: EngineState, *, links: WorkerLinks, recorder: Recorder, clock: Clock
    ) -> None:
        self._state = state
        self._links = links
        self._recorder = recorder
        self._clock = clock
        #: (project id, workflow name | workflow id | deployment id) -> deployments
        self._endpoints: dict[tuple[str, str], list[DeploymentId]] = defaultdict(list)

    def request(self, cmd: DeployWorkflow) -> Deployment:
        """A new deployment, placed where it can be."""
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
        self.index(d)
        refused = user_api_refusal(d, self._state.deployments.values())
        if refused:
            d.refuse(refused, self._clock.now())
        self.place(d)
        self.refresh(d, force=True)
        return d

    def start_undeploy(self, d: Deployment) -> None:
        """Undeploy orders to the sites still connected; a step on a site that is not is
        undeployed for us (its worker is told when it comes back)."""
        for step in d.start_undeploy(self._clock.now()):
            assert step.site_id is not None
            link = self._state.links.get(step.site_id)
            site = self._state.sites.get(step.site_id)
            if link is None or site is None or link.channel is None:
                d.step_reported(step.step_id, StepState.UNDEPLOYED, "")
            else:
                self.send_undeploy(site, d, step.step_id)

    def index(self, d: Deployment) -> None:
        self._state.deployments[d.id] = d
        for step in d.definition.steps:
            if step.artefact_key:
                self._state.artefact_users.setdefault(step.artefact_key, set()).add(d.id)
        for key in {d.workflow_name, d.workflow_id, d.id}:
            ids = self._endpoints[(d.project_id, key)]
            if d.id not in ids:
                ids.append(d.id)

    def _forget(self, d: Deployment) -> None:
        self._state.deployments.pop(d.id, None)
        for step in d.definition.steps:
            users = self._state.artefact_users.get(step.artefact_key)
            if users is not None:
                users.discard(d.id)
                if not users:
                    del self._state.artefact_users[step.artefact_key]
        for key in {d.workflow_name, d.workflow_id, d.id}:
            ids = self._endpoints.get((d.project_id, key))
            if ids and d.id in ids:
                ids.remove(d.id)
                if not ids:
                    del self._endpoints[(d.project_id, key)]

    def find_endpoint(self, project_id: str, endpoint: str) -> Deployment | None:
        """The project's deployment for `endpoint` (workflow name, workflow id or deployment
        id), preferring a deployed one, then the most recent."""
        ids = self._endpoints.get((project_id, endpoint), [])
        found = [self._state.deployments[i] for i in ids if i in self._state.deployments]
        if not found:
            return None
        deployed = [d for d in found if d.state is DeploymentState.DEPLOYED]
        pool = deployed or found
        return max(pool, key=lambda d: d.created_at)

    def refresh(self, d: Deployment, force: bool = False) -> None:
        """Recompute the deployment's state from its steps; record it if it changed."""
        changed = d.refresh(self._clock.now())
        if changed or force or d.events:
            self._recorder.deployment(d)
        if d.state is DeploymentState.UNDEPLOYED:
            self._forget(d)

    def _load(self) -> dict[SiteId, int]:
        load: dict[SiteId, int] = defaultdict(int)
        for d in self._state.deployments.values():
            for step in d.steps.values():
                if step.site_id is not None:
                    load[step.site_id] += 1
        return load

    def place(self, d: Deployment) -> bool:
        """Place every unplaced step of `d` that fits somewhere; send Deploy orders."""
        if d.is_gone or d.state is DeploymentState.FAILED:
            return False
        placed = False
        for step in d.steps.values():
            if step.state is not StepState.UNPLACED:
                continue
            definition = d.definition.step(step.step_id)
            where = place(definition, self._state.sites.values(), self._load())
            if isinstance(where, NoPlacement):
                d.unplace(step.step_id, where.reason)
                continue
            d.place(step.step_id, where.site_id, where.node_pool)
            self.send_deploy(self._state.sites[where.site_id], d, definition)
            placed = True
        return placed

    def place_unplaced(self) -> None:
        """A site came: place what waited for one."""
        for d in list(self._state.deployments.values()):
            unplaced = any(s.state is StepState.UNPLACED for s in d.steps.values())
            if unplaced and self.place(d):
                self.refresh(d)

    def site_offline(self, site: Site) -> None:
        """Steps on an offline site are placed elsewhere (or wait for a site); an undeploying
        deployment's are undeployed."""
        for d in list(self._state.deployments.values()):
            steps = d.steps_on(site.id)
            if not steps:
                continue
            for step in steps:
                if d.is_gone:
                    d.step_reported(step.step_id, StepState.UNDEPLOYED, "")
                elif d.state is not DeploymentState.FAILED:
                    d.unplace(step.step_id, f"step {step.step_id}: site {site.name} is offline")
            self.place(d)
            self.refresh(d)

    def send_deploy(self, site: Site, d: Deployment, step: StepDefinition) -> None:
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
        self._links.send(
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
            hpc=step.settings.hpc,
            always_warm=step.settings.always_warm,
        )

    def send_undeploy(self, site: Site, d: Deployment, step_id: str) -> None:
        self._links.send(site.id, UndeployOrder, deployment_id=d.id, step_id=step_id)
