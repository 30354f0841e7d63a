"""Deployments: a workflow definition placed on sites, and the state that follows its steps."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .site import SiteId
from .workflow import WorkflowDefinition

DeploymentId = NewType("DeploymentId", str)


class DeploymentState(StrEnum):
    DEPLOYING = "deploying"
    WAITING_FOR_SITE = "waiting_for_site"
    DEPLOYED = "deployed"
    UNDEPLOYING = "undeploying"
    UNDEPLOYED = "undeployed"
    FAILED = "failed"


class StepState(StrEnum):
    UNPLACED = "unplaced"  # no site fits (yet)
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    UNDEPLOYING = "undeploying"
    UNDEPLOYED = "undeployed"


@dataclass(frozen=True, kw_only=True)
class DeploymentStateChanged:
    """Domain event, published as WorkflowDeploymentStateChanged."""

    event_id: str
    deployment_id: DeploymentId
    project_id: str
    workflow_id: str
    state: DeploymentState
    reason: str
    at: datetime
    state_seq: int


@dataclass(kw_only=True)
class StepDeployment:
    step_id: str
    site_id: SiteId | None = None
    node_pool: str = ""
    state: StepState = StepState.UNPLACED
    reason: str = ""


@dataclass(eq=False, kw_only=True)
class Deployment:
    id: DeploymentId
    project_id: str
    workflow_id: str
    workflow_name: str
    snapshot_id: str
    definition: WorkflowDefinition
    requested_by: str = ""
    created_at: datetime
    updated_at: datetime
    state: DeploymentState = DeploymentState.DEPLOYING
    reason: str = ""
    state_seq: int = 0
    steps: dict[str, StepDeployment] = field(default_factory=dict)
    events: list[DeploymentStateChanged] = field(default_factory=list)

    @classmethod
    def request(
        cls,
        *,
        id: DeploymentId,
        project_id: str,
        workflow_id: str,
        workflow_name: str,
        snapshot_id: str,
        definition: WorkflowDefinition,
        requested_by: str,
        now: datetime,
    ) -> Deployment:
        d = cls(
            id=id,
            project_id=project_id,
            workflow_id=workflow_id,
            workflow_name=workflow_name,
            snapshot_id=snapshot_id,
            definition=definition,
            requested_by=requested_by,
            created_at=now,
            updated_at=now,
            steps={
                s.step_id: StepDeployment(step_id=s.step_id) for s in definition.deployable_steps()
            },
        )
        d._set(DeploymentState.DEPLOYING, "", now)
        return d

    @property
    def is_active(self) -> bool:
        """Accepts runs only when deployed."""
        return self.state is DeploymentState.DEPLOYED

    @property
    def is_gone(self) -> bool:
        return self.state in (DeploymentState.UNDEPLOYING, DeploymentState.UNDEPLOYED)

    def steps_on(self, site_id: SiteId) -> list[StepDeployment]:
        return [s for s in self.steps.values() if s.site_id == site_id]

    def _set(self, state: DeploymentState, reason: str, now: datetime) -> bool:
        if state is self.state and reason == self.reason and self.state_seq > 0:
            return False
        self.state, self.reason, self.updated_at = state, reason, now
        self.state_seq += 1
        self.events.append(
            DeploymentStateChanged(
                event_id=str(uuid.uuid4()),
                deployment_id=self.id,
                project_id=self.project_id,
                workflow_id=self.workflow_id,
                state=state,
                reason=reason,
                at=now,
                state_seq=self.state_seq,
            )
        )
        return True

    # -- placement and step states ---------------------------------------------------------

    def place(self, step_id: str, site_id: SiteId, node_pool: str) -> None:
        step = self.steps[step_id]
        step.site_id, step.node_pool = site_id, node_pool
        step.state, step.reason = StepState.DEPLOYING, ""

    def unplace(self, step_id: str, reason: str) -> None:
        step = self.steps[step_id]
        step.site_id, step.node_pool = None, ""
        step.state, step.reason = StepState.UNPLACED, reason

    def step_reported(self, step_id: str, state: StepState, reason: str) -> bool:
        """A worker reported a step's state; False when the report is stale or unknown."""
        step = self.steps.get(step_id)
        if step is None:
            return False
        if self.is_gone and state not in (StepState.UNDEPLOYING, StepState.UNDEPLOYED):
            return False
        step.state, step.reason = state, reason
        return True

    def refuse(self, reason: str, now: datetime) -> None:
        """The deployment cannot be served as asked (e.g. its user API route is taken): it
        fails at once with the reason, before any step is placed."""
        self._set(DeploymentState.FAILED, reason, now)

    def fail(self, reason: str, now: datetime) -> bool:
        """The runner cannot run this deployment (e.g. its built-in trigger's settings are
        wrong): failed, until undeployed."""
        if self.is_gone:
            return False
        return self._set(DeploymentState.FAILED, reason, now)

    def start_undeploy(self, now: datetime) -> list[StepDeployment]:
        """Steps to undeploy (those placed on a site); the others are undeployed at once."""
        to_undeploy = []
        for step in self.steps.values():
            if step.site_id is not None and step.state is not StepState.UNDEPLOYED:
                step.state = StepState.UNDEPLOYING
                to_undeploy.append(step)
            else:
                step.state = StepState.UNDEPLOYED
        self._set(DeploymentState.UNDEPLOYING, "", now)
        return to_undeploy

    def refresh(self, now: datetime) -> bool:
        """Derive the deployment's state from its steps; True if it changed.

        failed is sticky (only an undeploy leaves it); undeploying ends in undeployed once no
        step is left on a site; otherwise: any step failed -> failed; any step without a site
        -> waiting_for_site; all ready -> deployed; else deploying.
        """
        steps = list(self.steps.values())
        if self.state is DeploymentState.UNDEPLOYED:
            return False
        if self.state is DeploymentState.UNDEPLOYING:
            if all(s.state is StepState.UNDEPLOYED for s in steps):
                return self._set(DeploymentState.UNDEPLOYED, "", now)
            return False
        if self.state is DeploymentState.FAILED:
            return False
        failed = [s for s in steps if s.state is StepState.FAILED]
        if failed:
            reason = "; ".join(f"step {s.step_id}: {s.reason or 'failed'}" for s in failed)
            return self._set(DeploymentState.FAILED, reason, now)
        unplaced = [s for s in steps if s.state is StepState.UNPLACED]
        if unplaced:
            reason = "; ".join(s.reason or f"step {s.step_id}: no site" for s in unplaced)
            return self._set(DeploymentState.WAITING_FOR_SITE, reason, now)
        if all(s.state is StepState.READY for s in steps):
            return self._set(DeploymentState.DEPLOYED, "", now)
        return self._set(DeploymentState.DEPLOYING, "", now)
