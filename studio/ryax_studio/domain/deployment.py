"""Snapshots (immutable deployed definitions), deployments and their states, project secrets."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .actions import (
    HTTP_TRIGGER_ID,
    IO,
    ActionKind,
    ActionRef,
    ActionVersion,
    IOType,
    JsonValue,
    ProjectId,
)
from .errors import Conflict, InvalidInput, InvalidWorkflow
from .schedules import DEFAULT_MIN_INTERVAL_SECONDS
from .validation import step_outputs, validate_workflow
from .workflow import (
    FileValue,
    InputValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    Workflow,
    WorkflowId,
    WorkflowResult,
)

SnapshotId = NewType("SnapshotId", str)
DeploymentId = NewType("DeploymentId", str)

SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
MAX_SECRET_BYTES = 64 * 1024


# ---- snapshots ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SnapshotStep:
    step_id: str
    human_name: str
    action_id: str
    action_version: str
    action_kind: ActionKind
    artefact_key: str
    artefact_sha256: str
    inputs: tuple[IO, ...]
    outputs: tuple[IO, ...]
    #: Every input that has a value: given, or the declared default (as a static value).
    input_values: tuple[tuple[str, InputValue], ...]
    parent_step_ids: tuple[str, ...]
    settings: StepSettings


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What a deployment runs, frozen: editing the workflow afterwards never changes it."""

    id: SnapshotId
    project_id: ProjectId
    workflow_id: WorkflowId
    workflow_name: str
    description: str
    created_at: datetime
    #: Topological order, the trigger first.
    steps: tuple[SnapshotStep, ...]
    trigger_step_id: str
    http_endpoint: bool
    trigger_fields: tuple[IO, ...]
    results: tuple[WorkflowResult, ...]
    #: The workflow as it was edited (for showing and exporting the snapshot).
    definition: Workflow
    #: The built-in trigger's action id (httpapijson, emitgw, crongw, runonce) the runner runs
    #: itself; empty when the trigger is an action deployed on a site.
    builtin_trigger: str = ""

    def sensitive_inputs(self) -> list[tuple[str, str, InputValue]]:
        """(step id, input, value) of every input whose value never travels in an event: a
        project secret, or the static value of a password-type input."""
        return [
            (step.step_id, name, value)
            for step in self.steps
            for name, value in step.input_values
            if isinstance(value, SecretValue)
            or (isinstance(value, StaticValue) and value.sensitive)
        ]

    def secret_names(self) -> list[str]:
        names: list[str] = []
        for step in self.steps:
            for _, value in step.input_values:
                if isinstance(value, SecretValue) and value.name not in names:
                    names.append(value.name)
        return names

    def uses(self, ref: ActionRef) -> bool:
        return any(
            s.action_id == ref.action_id and s.action_version == ref.version for s in self.steps
        )


def topological_order(workflow: Workflow) -> list[Step]:
    """Parents before children; ties in the workflow's step order (Kahn). Needs a DAG."""
    parents = workflow.parents()
    remaining = {s.id: len(parents[s.id]) for s in workflow.steps}
    ready = [s for s in workflow.steps if remaining[s.id] == 0]
    by_id = {s.id: s for s in workflow.steps}
    order: list[Step] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for child in current.streams_to:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(by_id[child])
    return order


def take_snapshot(
    workflow: Workflow,
    actions: Mapping[ActionRef, ActionVersion],
    secrets: set[str],
    snapshot_id: SnapshotId,
    now: datetime,
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
    variables: Mapping[str, StaticValue | FileValue] | None = None,
) -> Snapshot:
    """Freeze a valid workflow with everything the runner needs; refuse an invalid one. A
    value or file project variable is resolved here (frozen in the snapshot); a secret is
    named, its value fetched by the runner."""
    variables = variables or {}
    problems = validate_workflow(workflow, actions, secrets, min_interval_seconds, variables)
    if problems:
        raise InvalidWorkflow(problems, "the workflow cannot be deployed")
    parents = workflow.parents()
    steps: list[SnapshotStep] = []
    trigger: Step | None = None
    trigger_action: ActionVersion | None = None
    for step in topological_order(workflow):
        action = actions[step.action]
        if action.kind is ActionKind.TRIGGER:
            trigger, trigger_action = step, action
        values: list[tuple[str, InputValue]] = []
        for io in action.inputs:
            given = step.inputs.get(io.name)
            if isinstance(given, SecretValue) and given.name in variables:
                given = variables[given.name]
            password = io.type is IOType.PASSWORD
            if isinstance(given, StaticValue) and password and not given.sensitive:
                given = StaticValue(value=given.value, sensitive=True)
            if given is not None:
                values.append((io.name, given))
            elif io.has_default:
                values.append(
                    (io.name, StaticValue(value=copy.deepcopy(io.default), sensitive=password))
                )
        settings = step.settings
        if settings.resources is None and not action.resources.is_empty():
            settings = replace(settings, resources=action.resources)
        steps.append(
            SnapshotStep(
                step_id=step.id,
                human_name=step.human_name or action.human_name or step.id,
                action_id=action.action_id,
                action_version=action.version,
                action_kind=action.kind,
                artefact_key=action.artefact_key,
                artefact_sha256=action.artefact_sha256,
                inputs=action.inputs,
                outputs=tuple(step_outputs(step, action)),
                input_values=tuple(values),
                parent_step_ids=tuple(parents[step.id]),
                settings=settings,
            )
        )
    assert trigger is not None and trigger_action is not None  # validation guarantees one
    return Snapshot(
        id=snapshot_id,
        project_id=workflow.project_id,
        workflow_id=workflow.id,
        workflow_name=workflow.name,
        description=workflow.description,
        created_at=now,
        steps=tuple(steps),
        trigger_step_id=trigger.id,
        # The JSON endpoint only: the form portal (postgw) is served as a form (builtin_trigger).
        http_endpoint=trigger_action.builtin and trigger_action.action_id == HTTP_TRIGGER_ID,
        trigger_fields=tuple(step_outputs(trigger, trigger_action)),
        results=tuple(workflow.results),
        definition=workflow.copy(workflow.id, workflow.name, workflow.updated_at),
        builtin_trigger=trigger_action.action_id if trigger_action.builtin else "",
    )


# ---- deployments -------------------------------------------------------------------------------
class DeploymentState(StrEnum):
    REQUESTED = "requested"  # studio sent the request; the runner has not answered yet
    DEPLOYING = "deploying"
    WAITING_FOR_SITE = "waiting_for_site"
    DEPLOYED = "deployed"
    UNDEPLOYING = "undeploying"
    UNDEPLOYED = "undeployed"
    FAILED = "failed"


#: States in which the workflow counts as deployed: a second deploy is refused.
ACTIVE_STATES = frozenset(
    {
        DeploymentState.REQUESTED,
        DeploymentState.DEPLOYING,
        DeploymentState.WAITING_FOR_SITE,
        DeploymentState.DEPLOYED,
        DeploymentState.UNDEPLOYING,
    }
)
RUNNER_STATES = frozenset(DeploymentState) - {DeploymentState.REQUESTED}


@dataclass(frozen=True, kw_only=True)
class WorkflowDeployRequested:
    event_id: str
    deployment_id: DeploymentId
    project_id: ProjectId
    workflow_id: WorkflowId
    workflow_name: str
    snapshot: Snapshot
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True, kw_only=True)
class WorkflowUndeployRequested:
    event_id: str
    deployment_id: DeploymentId
    project_id: ProjectId
    workflow_id: WorkflowId
    requested_by: str
    requested_at: datetime


Event = WorkflowDeployRequested | WorkflowUndeployRequested


@dataclass(eq=False, kw_only=True)
class Deployment:
    id: DeploymentId
    project_id: ProjectId
    workflow_id: WorkflowId
    snapshot_id: SnapshotId
    state: DeploymentState
    reason: str = ""
    #: The runner's counter of the last state applied (0: none yet).
    state_seq: int = 0
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    events: list[Event] = field(default_factory=list)
    #: Set when the deployment is requested: the values of its sensitive inputs (step id,
    #: input) -> value, frozen then. Stored sealed apart from the request and given only to the
    #: runner (internal route); never in an event.
    values: Mapping[tuple[str, str], JsonValue] | None = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Deployment) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @classmethod
    def request(
        cls,
        *,
        deployment_id: DeploymentId,
        event_id: str,
        snapshot: Snapshot,
        current: Deployment | None,
        values: Mapping[tuple[str, str], JsonValue],
        requested_by: str,
        now: datetime,
    ) -> Deployment:
        """A workflow has at most one active deployment: a second deploy is a conflict."""
        if current is not None and current.active:
            raise Conflict(
                f"workflow {snapshot.workflow_name!r} is already deployed (deployment "
                f"{current.id}, state {current.state}): undeploy it first"
            )
        deployment = cls(
            id=deployment_id,
            project_id=snapshot.project_id,
            workflow_id=snapshot.workflow_id,
            snapshot_id=snapshot.id,
            state=DeploymentState.REQUESTED,
            requested_by=requested_by,
            requested_at=now,
            updated_at=now,
            values=dict(values),
        )
        deployment.events.append(
            WorkflowDeployRequested(
                event_id=event_id,
                deployment_id=deployment_id,
                project_id=snapshot.project_id,
                workflow_id=snapshot.workflow_id,
                workflow_name=snapshot.workflow_name,
                snapshot=snapshot,
                requested_by=requested_by,
                requested_at=now,
            )
        )
        return deployment

    def request_undeploy(self, event_id: str, requested_by: str, now: datetime) -> None:
        if self.state is DeploymentState.UNDEPLOYING:
            raise Conflict(f"deployment {self.id} is already being undeployed")
        if not self.active:
            raise Conflict(f"deployment {self.id} is {self.state}: nothing to undeploy")
        self.state = DeploymentState.UNDEPLOYING
        self.reason = f"undeploy requested by {requested_by}"
        self.updated_at = now
        self.events.append(
            WorkflowUndeployRequested(
                event_id=event_id,
                deployment_id=self.id,
                project_id=self.project_id,
                workflow_id=self.workflow_id,
                requested_by=requested_by,
                requested_at=now,
            )
        )

    def apply_state(self, state: DeploymentState, reason: str, seq: int, at: datetime) -> bool:
        """Apply a runner state change; an older or repeated one (seq not greater) is ignored."""
        if seq <= self.state_seq:
            return False
        self.state, self.reason, self.state_seq, self.updated_at = state, reason, seq, at
        return True


# ---- project variables (secrets, values, files) ------------------------------------------------
class VariableKind(StrEnum):
    SECRET = "secret"
    VALUE = "value"
    FILE = "file"


@dataclass(eq=False, kw_only=True)
class Secret:
    """A project variable, referenced from steps by name (`project_variable_value`). A secret
    (the default kind): only its encrypted value is stored, and it is never shown. A value: a
    JSON value, shown. A file: a static file or directory of the filestore, shown by name."""

    project_id: ProjectId
    name: str
    ciphertext: bytes = field(repr=False, default=b"")
    created_at: datetime
    updated_at: datetime
    kind: VariableKind = VariableKind.SECRET
    value: JsonValue = None
    file: FileValue | None = None

    def resolved(self) -> StaticValue | FileValue | None:
        """What a step referring to a value or file variable gets (None for a secret)."""
        if self.kind is VariableKind.VALUE:
            return StaticValue(value=copy.deepcopy(self.value))
        if self.kind is VariableKind.FILE:
            return self.file
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (other.project_id, other.name) == (
            self.project_id,
            self.name,
        )

    def __hash__(self) -> int:
        return hash((self.project_id, self.name))


#: A project variable is a secret or a file (up to its own limit), or a value of this size.
ProjectVariable = Secret


def check_variable_name(name: str) -> None:
    if not SECRET_NAME_RE.match(name):
        raise InvalidInput(
            "name",
            f"{name!r} is not a valid variable name: letters, digits, "
            "_ . -, starting with a letter or _, at most 128 characters",
        )


def check_secret(name: str, value: str) -> None:
    check_variable_name(name)
    if not value:
        raise InvalidInput("value", "must not be empty")
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise InvalidInput("value", f"at most {MAX_SECRET_BYTES} bytes")
