"""HTTP API of the studio (prefix /studio). Every route is project-scoped and checked with the
authorization contract first (`require`); the project is the `{project}` path segment."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ryax_kit.authz import Access, Operation, require
from ryax_kit.web import UNTRUSTED_CONTENT_HEADERS, Api, ErrorMapping, Param, read_json, read_raw

from ...application.files import FileLimits, is_zip
from ...application.use_cases import (
    ActionStore,
    Deployments,
    ProjectVariables,
    Secrets,
    WorkflowListItem,
    Workflows,
    WorkflowView,
)
from ...domain.actions import IO, ActionKind, ActionVersion, IOType, Origin, ProjectId, Resources
from ...domain.deployment import Deployment, Secret, Snapshot, VariableKind
from ...domain.errors import DomainError, InvalidInput, InvalidWorkflow, TooLarge
from ...domain.hpc import hpc_params
from ...domain.problems import Problem
from ...domain.workflow import (
    MASK,
    FileValue,
    InputValue,
    Position,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    WorkflowResult,
)
from ..yaml_format import MAX_DOCUMENT_BYTES
from .uploads import upload

api = Api(title="Ryax studio", prefix="/studio")
ACTIONS = web.AppKey("actions", ActionStore)
SECRETS = web.AppKey("secrets", Secrets)
WORKFLOWS = web.AppKey("workflows", Workflows)
DEPLOYMENTS = web.AppKey("deployments", Deployments)
FILE_LIMITS = web.AppKey("file_limits", FileLimits)
VARIABLES = web.AppKey("variables", ProjectVariables)
ZIP = "application/zip"
ZIP_MAGIC = b"PK\x03\x04"

P = "/v1/projects/{project}"
W = P + "/workflows/{workflow}"
S = W + "/steps/{step}"
YAML = "application/yaml"
#: What an exported YAML document holds (docs/reference/workflows.md).
YAML_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "a workflow in the published Ryax format",
    "required": ["apiVersion", "kind", "spec"],
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "spec": {"type": "object"},
    },
}
#: The largest JSON body of a route (a secret or a static value is at most 64 KiB); YAML
#: documents take MAX_DOCUMENT_BYTES (app.py: the per-route limits).
JSON_BODY_BYTES = 256 * 1024


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- schemas: actions --------------------------------------------------------------------------
class IOOut(BaseModel):
    name: str
    type: IOType
    human_name: str
    help: str
    optional: bool
    enum_values: list[str]
    has_default: bool
    default: Any = None
    origin: Origin | None = None


class ResourcesModel(Strict):
    cpu: float | None = Field(default=None, ge=0)
    memory_bytes: int | None = Field(default=None, ge=0)
    time_seconds: float | None = Field(default=None, ge=0)
    gpu: int | None = Field(default=None, ge=0)


class ActionOut(BaseModel):
    action_id: str
    version: str
    kind: ActionKind
    human_name: str
    description: str
    type: str
    categories: list[str]
    inputs: list[IOOut]
    outputs: list[IOOut]
    resources: ResourcesModel
    artefact_key: str
    artefact_sha256: str
    has_logo: bool
    repository_id: str
    source_commit: str
    build_id: str
    ready_at: datetime | None
    builtin: bool
    dynamic_outputs: bool


class ActionsOut(BaseModel):
    actions: list[ActionOut]


def _io(io: IO) -> IOOut:
    """A password's default is shown as MASK."""
    hidden = io.type is IOType.PASSWORD and io.has_default
    return IOOut(
        name=io.name,
        type=io.type,
        human_name=io.human_name,
        help=io.help,
        optional=io.optional,
        enum_values=list(io.enum_values),
        has_default=io.has_default,
        default=MASK if hidden else io.default,
        origin=io.origin,
    )


def _resources(r: Resources) -> ResourcesModel:
    return ResourcesModel(
        cpu=r.cpu, memory_bytes=r.memory_bytes, time_seconds=r.time_seconds, gpu=r.gpu
    )


def _action(a: ActionVersion) -> ActionOut:
    return ActionOut(
        action_id=a.action_id,
        version=a.version,
        kind=a.kind,
        human_name=a.human_name,
        description=a.description,
        type=a.type,
        categories=list(a.categories),
        inputs=[_io(i) for i in a.inputs],
        outputs=[_io(o) for o in a.outputs],
        resources=_resources(a.resources),
        artefact_key=a.artefact_key,
        artefact_sha256=a.artefact_sha256,
        has_logo=a.logo is not None,
        repository_id=a.repository_id,
        source_commit=a.source_commit,
        build_id=a.build_id,
        ready_at=a.ready_at,
        builtin=a.builtin,
        dynamic_outputs=a.dynamic_outputs,
    )


# ---- schemas: secrets --------------------------------------------------------------------------
class SecretIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    value: str = Field(min_length=1, max_length=65536)


class SecretValueIn(Strict):
    value: str = Field(min_length=1, max_length=65536)


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime


class SecretsOut(BaseModel):
    secrets: list[SecretOut]


def _secret(s: Secret) -> SecretOut:
    return SecretOut(name=s.name, created_at=s.created_at, updated_at=s.updated_at)


# ---- schemas: project variables ----------------------------------------------------------------
class VariableIn(Strict):
    """A value (any JSON value, shown) or a secret (a string, stored encrypted, never shown).
    A file variable is uploaded to .../variables/{name}/file."""

    kind: VariableKind = VariableKind.VALUE
    value: Any

    @model_validator(mode="after")
    def fits(self) -> VariableIn:
        if self.kind is VariableKind.FILE:
            raise ValueError("a file variable is uploaded to .../variables/{name}/file")
        if self.kind is VariableKind.SECRET and not isinstance(self.value, str):
            raise ValueError("a secret's value is a string")
        return self


class VariableOut(BaseModel):
    name: str
    kind: VariableKind
    #: A value variable's value (never a secret's).
    value: Any = None
    file: FileOut | None = None
    created_at: datetime
    updated_at: datetime


class VariablesOut(BaseModel):
    variables: list[VariableOut]


def _variable(v: Secret) -> VariableOut:
    """A secret's value is never in an answer."""
    f = v.file
    return VariableOut(
        name=v.name,
        kind=v.kind,
        value=v.value if v.kind is VariableKind.VALUE else None,
        file=(
            FileOut(name=f.name, size=f.size, sha256=f.sha256, directory=f.directory)
            if v.kind is VariableKind.FILE and f is not None
            else None
        ),
        created_at=v.created_at,
        updated_at=v.updated_at,
    )


# ---- schemas: workflows ------------------------------------------------------------------------
class WorkflowIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class WorkflowPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)


class CopyIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class PositionModel(Strict):
    x: int | float
    y: int | float


class StepIn(Strict):
    id: str = Field(min_length=1, max_length=63)
    action_id: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=128)
    human_name: str | None = Field(default=None, max_length=200)
    position: PositionModel | None = None


class StepPatch(Strict):
    human_name: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, min_length=1, max_length=128)
    position: PositionModel | None = None


class ReferenceModel(Strict):
    step: str = Field(min_length=1, max_length=63)
    output: str = Field(min_length=1, max_length=128)


class InputValueModel(Strict):
    """Exactly one of `static` (any JSON value), `secret` (a project secret's name) or
    `reference` (an upstream step's output)."""

    static: Any = None
    secret: str | None = Field(default=None, min_length=1, max_length=128)
    reference: ReferenceModel | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> InputValueModel:
        given = self.model_fields_set & {"static", "secret", "reference"}
        if len(given) != 1:
            raise ValueError("give exactly one of static, secret, reference")
        return self

    def to_domain(self) -> InputValue:
        if "secret" in self.model_fields_set and self.secret is not None:
            return SecretValue(name=self.secret)
        if "reference" in self.model_fields_set and self.reference is not None:
            return ReferenceValue(step_id=self.reference.step, output=self.reference.output)
        if "static" not in self.model_fields_set:
            raise InvalidInput("value", "give exactly one of static, secret, reference")
        return StaticValue(value=self.static)


class OutputIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    type: IOType
    human_name: str = Field(default="", max_length=128)
    help: str = Field(default="", max_length=10_000)
    optional: bool = False
    enum_values: list[str] = Field(default_factory=list, max_length=64)
    origin: Origin | None = None


class OutputsIn(Strict):
    outputs: list[OutputIn] = Field(max_length=64)


class SettingsModel(Strict):
    timeout_seconds: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0, le=100)
    site_name: str | None = Field(default=None, min_length=1, max_length=200)
    node_pool: str | None = Field(default=None, min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict)
    resources: ResourcesModel | None = None
    hpc: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        max_length=32,
        description="Ryax's HPC add-on parameters for a Slurm site (partition, nodes, ntasks, "
        "cpus_per_task, mem, time, gpus, custom_script...: docs/slurm.md); answered as texts "
        "under their canonical keys",
    )
    always_warm: bool | None = Field(
        default=None,
        description="Keep the step's action process running while idle (no cold start; the "
        "worker's retention time does not apply). null = the default (stopped when idle)",
    )


class LinkIn(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_step: str = Field(alias="from", min_length=1, max_length=63)
    to: str = Field(min_length=1, max_length=63)


class ResultModel(Strict):
    key: str = Field(min_length=1, max_length=128)
    step: str = Field(min_length=1, max_length=63)
    output: str = Field(min_length=1, max_length=128)


class ResultsIn(Strict):
    results: list[ResultModel] = Field(max_length=256)


class ProblemOut(BaseModel):
    code: str
    message: str
    step_id: str | None
    input: str | None
    line: int | None = None
    path: str | None = None
    #: The file of a workflow zip the problem is in (`workflow.yaml`).
    file: str | None = None


class ProblemsOut(BaseModel):
    valid: bool
    problems: list[ProblemOut]


class FileOut(BaseModel):
    """A static file (or directory, stored as a tar) uploaded to an input."""

    name: str
    size: int
    sha256: str
    directory: bool


class InputValueOut(BaseModel):
    static: Any = None
    secret: str | None = None
    reference: ReferenceModel | None = None
    file: FileOut | None = None


class StepOut(BaseModel):
    id: str
    action_id: str
    version: str
    human_name: str | None
    position: PositionModel | None
    inputs: dict[str, InputValueOut]
    outputs: list[IOOut]
    streams_to: list[str]
    settings: SettingsModel


class DeploymentOut(BaseModel):
    id: str
    workflow_id: str
    snapshot_id: str
    state: str
    reason: str
    state_seq: int
    requested_by: str
    requested_at: datetime
    updated_at: datetime


class DeploymentsOut(BaseModel):
    deployments: list[DeploymentOut]


class TriggerOut(BaseModel):
    """The trigger step of a workflow, as a list shows it."""

    step_id: str
    action_id: str = Field(description="e.g. httpapijson, emitgw, crongw, runonce")
    version: str
    name: str = Field(description="the action's human name; its id when the store lacks it")
    kind: ActionKind | None = Field(
        description="the action's kind (trigger); null when the store has no such version "
        "(removed): the step no other step streams to is then shown"
    )
    builtin: bool = Field(description="built into the platform: the runner runs it itself")


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    steps: int
    deployment: DeploymentOut | None
    trigger: TriggerOut | None = Field(description="null when the workflow has no trigger step")
    categories: list[str] = Field(description="every category of the actions its steps use, sorted")


class WorkflowsOut(BaseModel):
    workflows: list[WorkflowSummary]


class WorkflowOut(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    steps: list[StepOut]
    results: list[ResultModel]
    valid: bool
    problems: list[ProblemOut]
    deployment: DeploymentOut | None


class SnapshotStepOut(BaseModel):
    step_id: str
    human_name: str
    action_id: str
    action_version: str
    action_kind: ActionKind
    artefact_key: str
    artefact_sha256: str
    inputs: dict[str, InputValueOut]
    outputs: list[IOOut]
    parent_step_ids: list[str]
    settings: SettingsModel


class SnapshotOut(BaseModel):
    id: str
    workflow_id: str
    workflow_name: str
    description: str
    created_at: datetime
    trigger_step_id: str
    http_endpoint: bool
    trigger_fields: list[IOOut]
    steps: list[SnapshotStepOut]
    results: list[ResultModel]


class SnapshotsOut(BaseModel):
    snapshots: list[SnapshotOut]


def _problem(p: Problem) -> ProblemOut:
    return ProblemOut(
        code=p.code,
        message=p.message,
        step_id=p.step_id,
        input=p.input_name,
        line=p.line,
        path=p.path,
        file=p.file,
    )


def problems_json(exc: Exception) -> Mapping[str, Any] | None:
    """Every problem of an invalid workflow or document, with its step, input and line."""
    problems: tuple[Problem, ...] | None = getattr(exc, "problems", None)
    if problems is None:
        return None
    return {"problems": [_problem(p).model_dump() for p in problems]}


#: Domain errors -> HTTP statuses: by their code (the kit's STATUS_BY_CODE: not_found 404,
#: conflict 409, too_large 413...; a document's other codes 400), an invalid workflow 422.
ERRORS = ErrorMapping(base=DomainError, statuses={InvalidWorkflow: 422}, extra=problems_json)


def _value(v: InputValue) -> InputValueOut:
    """A sensitive value (the static value of a password-type input) is shown as MASK."""
    if isinstance(v, StaticValue):
        return InputValueOut(static=v.shown())
    if isinstance(v, SecretValue):
        return InputValueOut(secret=v.name)
    if isinstance(v, FileValue):
        return InputValueOut(
            file=FileOut(name=v.name, size=v.size, sha256=v.sha256, directory=v.directory)
        )
    return InputValueOut(reference=ReferenceModel(step=v.step_id, output=v.output))


def _settings(s: StepSettings) -> SettingsModel:
    return SettingsModel(
        timeout_seconds=s.timeout_seconds,
        retries=s.retries,
        site_name=s.site_name,
        node_pool=s.node_pool,
        labels=dict(s.labels),
        resources=_resources(s.resources) if s.resources is not None else None,
        hpc=dict(s.hpc),
        always_warm=s.always_warm,
    )


def _step(s: Step) -> StepOut:
    return StepOut(
        id=s.id,
        action_id=s.action.action_id,
        version=s.action.version,
        human_name=s.human_name,
        position=PositionModel(x=s.position.x, y=s.position.y) if s.position else None,
        inputs={n: _value(v) for n, v in s.inputs.items()},
        outputs=[_io(o) for o in s.outputs],
        streams_to=list(s.streams_to),
        settings=_settings(s.settings),
    )


def _deployment(d: Deployment | None) -> DeploymentOut | None:
    if d is None:
        return None
    return DeploymentOut(
        id=d.id,
        workflow_id=d.workflow_id,
        snapshot_id=d.snapshot_id,
        state=str(d.state),
        reason=d.reason,
        state_seq=d.state_seq,
        requested_by=d.requested_by,
        requested_at=d.requested_at,
        updated_at=d.updated_at,
    )


def _result(r: WorkflowResult) -> ResultModel:
    return ResultModel(key=r.key, step=r.step_id, output=r.output)


def _workflow(view: WorkflowView) -> WorkflowOut:
    w = view.workflow
    return WorkflowOut(
        id=w.id,
        name=w.name,
        description=w.description,
        created_at=w.created_at,
        updated_at=w.updated_at,
        steps=[_step(s) for s in w.steps],
        results=[_result(r) for r in w.results],
        valid=not view.problems,
        problems=[_problem(p) for p in view.problems],
        deployment=_deployment(view.deployment),
    )


def _summary(item: WorkflowListItem) -> WorkflowSummary:
    w, trigger = item.workflow, item.summary.trigger
    return WorkflowSummary(
        id=w.id,
        name=w.name,
        description=w.description,
        created_at=w.created_at,
        updated_at=w.updated_at,
        steps=len(w.steps),
        deployment=_deployment(item.deployment),
        trigger=TriggerOut(
            step_id=trigger.step_id,
            action_id=trigger.action_id,
            version=trigger.version,
            name=trigger.name,
            kind=trigger.kind,
            builtin=trigger.builtin,
        )
        if trigger
        else None,
        categories=list(item.summary.categories),
    )


def _snapshot(s: Snapshot) -> SnapshotOut:
    return SnapshotOut(
        id=s.id,
        workflow_id=s.workflow_id,
        workflow_name=s.workflow_name,
        description=s.description,
        created_at=s.created_at,
        trigger_step_id=s.trigger_step_id,
        http_endpoint=s.http_endpoint,
        trigger_fields=[_io(f) for f in s.trigger_fields],
        steps=[
            SnapshotStepOut(
                step_id=st.step_id,
                human_name=st.human_name,
                action_id=st.action_id,
                action_version=st.action_version,
                action_kind=st.action_kind,
                artefact_key=st.artefact_key,
                artefact_sha256=st.artefact_sha256,
                inputs={n: _value(v) for n, v in st.input_values},
                outputs=[_io(o) for o in st.outputs],
                parent_step_ids=list(st.parent_step_ids),
                settings=_settings(st.settings),
            )
            for st in s.steps
        ],
        results=[_result(r) for r in s.results],
    )


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def _yaml(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=YAML,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _filename(name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return f"{safe or 'workflow'}.yaml"


async def _access(request: web.Request, operation: Operation) -> tuple[Access, ProjectId]:
    access = await require(request, operation)
    return access, ProjectId(access.project_id)


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise InvalidInput(name, "must be true or false")
    return value in ("true", "1", "yes")


# ---- routes: the action store ------------------------------------------------------------------
@api.route(
    "GET",
    P + "/actions",
    tag="actions",
    response=ActionsOut,
    summary="Search the project's action store (every version, built-ins included)",
    query=(
        Param("q", "text in the id, name or description"),
        Param("name", "the same as q (older clients)"),
        Param("category", "exact category (any case)"),
        Param("kind", "the kind of action", enum=tuple(k.value for k in ActionKind)),
    ),
)
async def list_actions(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    kind_text = request.query.get("kind")
    try:
        kind = ActionKind(kind_text) if kind_text else None
    except ValueError as exc:
        raise InvalidInput("kind", "must be trigger, processor or publisher") from exc
    found = await request.app[ACTIONS].search(
        project,
        text=request.query.get("q") or request.query.get("name"),
        category=request.query.get("category"),
        kind=kind,
    )
    return _json(ActionsOut(actions=[_action(a) for a in found]))


@api.route(
    "GET",
    P + "/actions/{action_id}",
    tag="actions",
    response=ActionsOut,
    summary="Every version of one action",
)
async def action_versions(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[ACTIONS].versions(project, request.match_info["action_id"])
    return _json(ActionsOut(actions=[_action(a) for a in found]))


@api.route(
    "GET",
    P + "/actions/{action_id}/versions/{version}",
    tag="actions",
    response=ActionOut,
    summary="One action version with its typed inputs and outputs",
)
async def show_action(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    action = await request.app[ACTIONS].show(
        project, request.match_info["action_id"], request.match_info["version"]
    )
    return _json(_action(action))


@api.route(
    "GET",
    P + "/actions/{action_id}/versions/{version}/logo",
    tag="actions",
    summary="The action's logo (404 when it has none)",
    response_media="image/png",
)
async def action_logo(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    action = await request.app[ACTIONS].show(
        project, request.match_info["action_id"], request.match_info["version"]
    )
    if action.logo is None:
        raise web.HTTPNotFound(text="this action has no logo")
    return web.Response(
        body=action.logo,
        content_type=action.logo_media_type or "image/png",
        headers=UNTRUSTED_CONTENT_HEADERS,
    )


@api.route(
    "DELETE",
    P + "/actions/{action_id}/versions/{version}",
    tag="actions",
    status=204,
    summary="Remove a version from the store (409 while a deployed workflow uses it)",
    errors={409: "used by a deployed workflow, or built in"},
)
async def delete_action(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    await request.app[ACTIONS].delete(
        project, request.match_info["action_id"], request.match_info["version"]
    )
    return web.Response(status=204)


# ---- routes: secrets ---------------------------------------------------------------------------
@api.route(
    "GET",
    P + "/secrets",
    tag="secrets",
    response=SecretsOut,
    summary="The project's secrets (names only: a value is never returned)",
)
async def list_secrets(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[SECRETS].list_all(project)
    return _json(SecretsOut(secrets=[_secret(s) for s in found]))


@api.route(
    "POST",
    P + "/secrets",
    tag="secrets",
    body=SecretIn,
    response=SecretOut,
    status=201,
    summary="Create a secret (stored encrypted)",
    errors={409: "a secret with this name exists"},
)
async def create_secret(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, SecretIn, limit=JSON_BODY_BYTES)
    secret, _ = await request.app[SECRETS].put(project, body.name, body.value, create_only=True)
    return _json(_secret(secret), 201)


@api.route(
    "PUT",
    P + "/secrets/{name}",
    tag="secrets",
    body=SecretValueIn,
    response=SecretOut,
    more_responses={201: ("the secret did not exist: created", SecretOut)},
    summary="Create or replace a secret's value",
)
async def put_secret(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, SecretValueIn, limit=JSON_BODY_BYTES)
    secret, created = await request.app[SECRETS].put(
        project, request.match_info["name"], body.value
    )
    return _json(_secret(secret), 201 if created else 200)


@api.route(
    "DELETE",
    P + "/secrets/{name}",
    tag="secrets",
    status=204,
    summary="Delete a secret (workflows naming it then show an error)",
)
async def delete_secret(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    await request.app[SECRETS].delete(project, request.match_info["name"])
    return web.Response(status=204)


# ---- routes: project variables -----------------------------------------------------------------
@api.route(
    "GET",
    P + "/variables",
    tag="variables",
    response=VariablesOut,
    summary="The project's variables: values (shown), secrets (names only), files (by name)",
)
async def list_variables(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[VARIABLES].list_all(project)
    return _json(VariablesOut(variables=[_variable(v) for v in found]))


@api.route(
    "PUT",
    P + "/variables/{name}",
    tag="variables",
    body=VariableIn,
    response=VariableOut,
    more_responses={201: ("the variable did not exist: created", VariableOut)},
    summary="Create or replace a value or secret project variable (steps refer to it with "
    "project_variable_value)",
)
async def put_variable(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, VariableIn, limit=JSON_BODY_BYTES)
    name = request.match_info["name"]
    variables = request.app[VARIABLES]
    if body.kind is VariableKind.SECRET:
        variable, created = await variables.set_secret(project, name, str(body.value))
    else:
        variable, created = await variables.set_value(project, name, body.value)
    return _json(_variable(variable), 201 if created else 200)


@api.route(
    "POST",
    P + "/variables/{name}/file",
    tag="variables",
    response=VariableOut,
    body_media="multipart/form-data",
    more_responses={201: ("the variable did not exist: created", VariableOut)},
    summary="Create or replace a file project variable: a file, or with directory=true a "
    "zip/tar of a directory's contents (multipart part `file`, or the raw body)",
    query=(
        Param("directory", "the upload is a directory's zip/tar", type="boolean", default=False),
        Param("filename", "the file's name (raw body only)"),
    ),
    errors={413: "over RYAX_STUDIO_MAX_FILE_BYTES", 503: "the filestore cannot be reached"},
)
async def put_variable_file(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    limits = request.app[FILE_LIMITS]
    name = request.match_info["name"]
    directory = _flag(request, "directory")
    async with upload(request, limits.max_file_bytes, "RYAX_STUDIO_MAX_FILE_BYTES", name) as (
        path,
        filename,
    ):
        variable, created = await request.app[VARIABLES].set_file(
            project, name, path, filename, directory=directory
        )
    return _json(_variable(variable), 201 if created else 200)


@api.route(
    "DELETE",
    P + "/variables/{name}",
    tag="variables",
    status=204,
    summary="Delete a project variable (steps naming it then show an error; deployed "
    "workflows keep what they were deployed with)",
)
async def delete_variable(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    await request.app[VARIABLES].delete(project, request.match_info["name"])
    return web.Response(status=204)


# ---- routes: workflows -------------------------------------------------------------------------
@api.route(
    "GET",
    P + "/workflows",
    tag="workflows",
    response=WorkflowsOut,
    summary="The project's workflows with their deployment state, trigger and categories",
)
async def list_workflows(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[WORKFLOWS].list_all(project)
    return _json(WorkflowsOut(workflows=[_summary(item) for item in found]))


@api.route(
    "POST",
    P + "/workflows",
    tag="workflows",
    body=WorkflowIn,
    response=WorkflowOut,
    status=201,
    summary="Create an empty workflow (names are unique in a project)",
    errors={409: "the name is taken"},
)
async def create_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, WorkflowIn, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].create(project, body.name, body.description)
    return _json(_workflow(view), 201)


@api.route(
    "POST",
    P + "/workflows/import",
    tag="import/export",
    response=WorkflowOut,
    status=201,
    body_media=YAML,
    summary="Import a workflow from its YAML (published Ryax format) or a workflow zip "
    "(workflow.yaml and its static files: the raw body, or multipart with the part `file`); "
    "all or nothing",
    query=(
        Param(
            "draft",
            "true: keep a workflow that is complete as a document but not yet "
            "valid (e.g. a missing input)",
            type="boolean",
            default=False,
        ),
        Param("name", "use this name instead of spec.human_name"),
    ),
    errors={
        413: "the document is over 1 MiB, or the zip over RYAX_STUDIO_MAX_ARCHIVE_BYTES (as "
        "sent or extracted), or a member expands like a zip bomb",
        400: "not a readable zip, a member with an unsafe name (absolute, .., link), no "
        "workflow.yaml at the root",
        422: "every problem of the document, each with its file, line and path",
        409: "the name is taken",
    },
)
async def import_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    limits = request.app[FILE_LIMITS]
    draft, name = _flag(request, "draft"), request.query.get("name") or None

    def narrow(first: bytes) -> tuple[int, str]:
        if first.startswith(ZIP_MAGIC):
            return limits.max_archive_bytes, "RYAX_STUDIO_MAX_ARCHIVE_BYTES"
        return MAX_DOCUMENT_BYTES, "a YAML document is at most 1 MiB; send a zip for more"

    async with upload(
        request,
        limits.max_archive_bytes,
        "RYAX_STUDIO_MAX_ARCHIVE_BYTES",
        "workflow.yaml",
        narrow,
    ) as (path, _):
        if await asyncio.to_thread(is_zip, path):
            view = await request.app[WORKFLOWS].import_archive(
                project, path, draft=draft, name=name
            )
        else:
            if (await asyncio.to_thread(path.stat)).st_size > MAX_DOCUMENT_BYTES:
                raise TooLarge(
                    f"a YAML document is at most {MAX_DOCUMENT_BYTES} bytes (a bigger import "
                    "must be a workflow zip)"
                )
            data = await asyncio.to_thread(path.read_bytes)
            view = await request.app[WORKFLOWS].import_document(
                project, data, draft=draft, name=name
            )
    return _json(_workflow(view), 201)


@api.route(
    "GET",
    W,
    tag="workflows",
    response=WorkflowOut,
    summary="A workflow (by id or name) with its problems and deployment",
)
async def show_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    view = await request.app[WORKFLOWS].show(project, request.match_info["workflow"])
    return _json(_workflow(view))


@api.route(
    "PATCH",
    W,
    tag="workflows",
    body=WorkflowPatch,
    response=WorkflowOut,
    summary="Rename or describe a workflow",
    errors={409: "the name is taken"},
)
async def update_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, WorkflowPatch, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].update(
        project, request.match_info["workflow"], body.name, body.description
    )
    return _json(_workflow(view))


@api.route(
    "DELETE",
    W,
    tag="workflows",
    status=204,
    summary="Delete a workflow (409 while deployed; its snapshots are kept)",
)
async def delete_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    await request.app[WORKFLOWS].delete(project, request.match_info["workflow"])
    return web.Response(status=204)


@api.route(
    "POST",
    W + "/copy",
    tag="workflows",
    body=CopyIn,
    response=WorkflowOut,
    status=201,
    summary="Copy a workflow under a new name",
    errors={409: "the name is taken"},
)
async def copy_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, CopyIn, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].copy(project, request.match_info["workflow"], body.name)
    return _json(_workflow(view), 201)


@api.route(
    "GET",
    W + "/errors",
    tag="workflows",
    response=ProblemsOut,
    summary="Every problem that keeps the workflow from being deployed, at once",
)
async def workflow_errors(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    problems = await request.app[WORKFLOWS].problems(project, request.match_info["workflow"])
    return _json(ProblemsOut(valid=not problems, problems=[_problem(p) for p in problems]))


@api.route(
    "GET",
    W + "/export",
    tag="import/export",
    response_content={
        YAML: {"schema": YAML_DOCUMENT},
        ZIP: {"schema": {"type": "string", "format": "binary"}},
    },
    summary="The workflow as YAML in the published Ryax format, or (format=zip, or Accept: "
    "application/zip) as a workflow zip: workflow.yaml and the static files it names",
    query=(Param("format", "yaml (default) or zip", enum=("yaml", "zip")),),
)
async def export_workflow(request: web.Request) -> web.StreamResponse:
    _, project = await _access(request, Operation.READ)
    fmt = request.query.get("format") or (
        "zip" if ZIP in request.headers.get("Accept", "") else "yaml"
    )
    if fmt not in ("yaml", "zip"):
        raise InvalidInput("format", "must be yaml or zip")
    ref = request.match_info["workflow"]
    if fmt == "yaml":
        workflow, text = await request.app[WORKFLOWS].export_document(project, ref)
        return _yaml(text, _filename(workflow.name))
    with tempfile.TemporaryDirectory(prefix="ryax-studio-export-") as tmp:
        path = Path(tmp) / "workflow.zip"
        workflow = await request.app[WORKFLOWS].export_archive(project, ref, path)
        response = web.StreamResponse(
            headers={
                "Content-Type": ZIP,
                "Content-Disposition": (
                    f'attachment; filename="{_filename(workflow.name)[:-5]}.zip"'
                ),
            }
        )
        response.content_length = path.stat().st_size
        await response.prepare(request)
        with path.open("rb") as stream:
            while chunk := await asyncio.to_thread(stream.read, 256 * 1024):
                await response.write(chunk)
        await response.write_eof()
        return response


@api.route(
    "PUT",
    W + "/yaml",
    tag="import/export",
    response=WorkflowOut,
    body_media=YAML,
    summary="Replace the workflow's definition with a YAML document (all or nothing)",
    query=(
        Param(
            "draft", "true: accept a document that is not yet valid", type="boolean", default=False
        ),
    ),
    errors={413: "the document is over 1 MiB", 422: "the document's problems"},
)
async def replace_workflow(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    data = await read_raw(request, MAX_DOCUMENT_BYTES)
    view = await request.app[WORKFLOWS].replace_document(
        project, request.match_info["workflow"], data, draft=_flag(request, "draft")
    )
    return _json(_workflow(view))


# ---- routes: steps, inputs, links, settings, results -------------------------------------------
@api.route(
    "POST",
    W + "/steps",
    tag="steps",
    body=StepIn,
    response=WorkflowOut,
    status=201,
    summary="Add a step from the action store (a trigger goes first)",
    errors={404: "no such action version", 409: "the step id is taken"},
)
async def add_step(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, StepIn, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].add_step(
        project,
        request.match_info["workflow"],
        step_id=body.id,
        action_id=body.action_id,
        version=body.version,
        human_name=body.human_name,
        position=Position(x=body.position.x, y=body.position.y) if body.position else None,
    )
    return _json(_workflow(view), 201)


@api.route(
    "PATCH",
    S,
    tag="steps",
    body=StepPatch,
    response=WorkflowOut,
    summary="Rename a step, move it, or switch it to another version of its action",
)
async def update_step(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, StepPatch, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].update_step(
        project,
        request.match_info["workflow"],
        request.match_info["step"],
        human_name=body.human_name,
        clear_human_name="human_name" in body.model_fields_set and body.human_name is None,
        version=body.version,
        position=Position(x=body.position.x, y=body.position.y) if body.position else None,
    )
    return _json(_workflow(view))


@api.route(
    "DELETE",
    S,
    tag="steps",
    response=WorkflowOut,
    summary="Remove a step and its links (references to it then show as errors)",
)
async def remove_step(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    view = await request.app[WORKFLOWS].remove_step(
        project, request.match_info["workflow"], request.match_info["step"]
    )
    return _json(_workflow(view))


@api.route(
    "PUT",
    S + "/inputs/{input}",
    tag="steps",
    body=InputValueModel,
    response=WorkflowOut,
    summary="Set an input: a static value, a project secret, or an upstream output",
)
async def set_input(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, InputValueModel, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].set_input(
        project,
        request.match_info["workflow"],
        request.match_info["step"],
        request.match_info["input"],
        body.to_domain(),
    )
    return _json(_workflow(view))


@api.route(
    "DELETE",
    S + "/inputs/{input}",
    tag="steps",
    response=WorkflowOut,
    summary="Unset an input (its default, if any, then applies)",
)
async def unset_input(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    view = await request.app[WORKFLOWS].unset_input(
        project,
        request.match_info["workflow"],
        request.match_info["step"],
        request.match_info["input"],
    )
    return _json(_workflow(view))


@api.route(
    "POST",
    S + "/inputs/{input}/file",
    tag="steps",
    response=WorkflowOut,
    body_media="multipart/form-data",
    summary="Upload a static file to a file input, or a zip/tar of a directory's contents to "
    "a directory input (multipart part `file`, or the raw body with ?filename=); stored in "
    "the filestore, shown by name, size and sha256",
    query=(Param("filename", "the file's name (raw body only)"),),
    errors={
        400: "the input is not a file or directory input, or a bad archive",
        413: "over RYAX_STUDIO_MAX_FILE_BYTES",
        503: "the filestore cannot be reached",
    },
)
async def upload_input_file(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    limits = request.app[FILE_LIMITS]
    name = request.match_info["input"]
    async with upload(request, limits.max_file_bytes, "RYAX_STUDIO_MAX_FILE_BYTES", name) as (
        path,
        filename,
    ):
        view = await request.app[WORKFLOWS].set_input_file(
            project,
            request.match_info["workflow"],
            request.match_info["step"],
            name,
            path,
            filename,
        )
    return _json(_workflow(view))


@api.route(
    "PUT",
    S + "/outputs",
    tag="steps",
    body=OutputsIn,
    response=WorkflowOut,
    summary="Declare the outputs of a trigger with dynamic outputs (the HTTP endpoint's "
    "request fields)",
)
async def set_outputs(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, OutputsIn, limit=JSON_BODY_BYTES)
    outputs = tuple(
        IO(
            name=o.name,
            type=o.type,
            human_name=o.human_name,
            help=o.help,
            optional=o.optional,
            enum_values=tuple(o.enum_values),
            origin=o.origin,
        )
        for o in body.outputs
    )
    view = await request.app[WORKFLOWS].set_outputs(
        project, request.match_info["workflow"], request.match_info["step"], outputs
    )
    return _json(_workflow(view))


@api.route(
    "PUT",
    S + "/settings",
    tag="steps",
    body=SettingsModel,
    response=WorkflowOut,
    summary="Timeout, retries, placement (site, node pool, labels), resources, HPC add-on, "
    "always warm",
)
async def set_settings(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, SettingsModel, limit=JSON_BODY_BYTES)
    r = body.resources
    settings = StepSettings(
        timeout_seconds=body.timeout_seconds,
        retries=body.retries,
        site_name=body.site_name,
        node_pool=body.node_pool,
        labels=tuple(body.labels.items()),
        resources=None
        if r is None
        else Resources(
            cpu=r.cpu, memory_bytes=r.memory_bytes, time_seconds=r.time_seconds, gpu=r.gpu
        ),
        hpc=hpc_params(body.hpc),
        always_warm=body.always_warm,
    )
    view = await request.app[WORKFLOWS].set_settings(
        project, request.match_info["workflow"], request.match_info["step"], settings
    )
    return _json(_workflow(view))


@api.route(
    "POST",
    W + "/links",
    tag="steps",
    body=LinkIn,
    response=WorkflowOut,
    status=201,
    summary="Link two steps: `from` streams to `to` (refused if it makes a cycle)",
)
async def add_link(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, LinkIn, limit=JSON_BODY_BYTES)
    view = await request.app[WORKFLOWS].add_link(
        project, request.match_info["workflow"], body.from_step, body.to
    )
    return _json(_workflow(view), 201)


@api.route(
    "DELETE", W + "/links/{from}/{to}", tag="steps", response=WorkflowOut, summary="Remove a link"
)
async def remove_link(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    view = await request.app[WORKFLOWS].remove_link(
        project,
        request.match_info["workflow"],
        request.match_info["from"],
        request.match_info["to"],
    )
    return _json(_workflow(view))


@api.route(
    "PUT",
    W + "/results",
    tag="steps",
    body=ResultsIn,
    response=WorkflowOut,
    summary="The workflow's results (what an HTTP endpoint trigger answers)",
)
async def set_results(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.WRITE)
    body = await read_json(request, ResultsIn, limit=JSON_BODY_BYTES)
    results = [WorkflowResult(key=r.key, step_id=r.step, output=r.output) for r in body.results]
    view = await request.app[WORKFLOWS].set_results(
        project, request.match_info["workflow"], results
    )
    return _json(_workflow(view))


# ---- routes: deployments and snapshots ---------------------------------------------------------
@api.route(
    "POST",
    W + "/deploy",
    tag="deployments",
    response=DeploymentOut,
    status=202,
    summary="Deploy: snapshot the valid workflow and ask the runner to deploy it",
    errors={409: "already deployed", 422: "the workflow is not valid: its problems"},
)
async def deploy(request: web.Request) -> web.Response:
    access, project = await _access(request, Operation.WRITE)
    deployment = await request.app[DEPLOYMENTS].deploy(
        project, request.match_info["workflow"], access.username
    )
    out = _deployment(deployment)
    assert out is not None
    return _json(out, 202)


@api.route(
    "POST",
    W + "/undeploy",
    tag="deployments",
    response=DeploymentOut,
    status=202,
    summary="Undeploy the current deployment",
    errors={409: "not deployed"},
)
async def undeploy(request: web.Request) -> web.Response:
    access, project = await _access(request, Operation.WRITE)
    deployment = await request.app[DEPLOYMENTS].undeploy(
        project, request.match_info["workflow"], access.username
    )
    out = _deployment(deployment)
    assert out is not None
    return _json(out, 202)


@api.route(
    "GET",
    W + "/deployments",
    tag="deployments",
    response=DeploymentsOut,
    summary="The workflow's deployments, newest first, with the state the runner reports",
)
async def list_deployments(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[DEPLOYMENTS].list_for_workflow(
        project, request.match_info["workflow"]
    )
    return _json(DeploymentsOut(deployments=[d for d in map(_deployment, found) if d]))


@api.route(
    "GET",
    W + "/snapshots",
    tag="deployments",
    response=SnapshotsOut,
    summary="The workflow's deployed snapshots (immutable), newest first",
)
async def list_snapshots(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[DEPLOYMENTS].snapshots(project, request.match_info["workflow"])
    return _json(SnapshotsOut(snapshots=[_snapshot(s) for s in found]))


@api.route(
    "GET",
    P + "/snapshots/{snapshot}",
    tag="deployments",
    response=SnapshotOut,
    summary="One snapshot: the exact definition a deployment (and its runs) used",
)
async def show_snapshot(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    found = await request.app[DEPLOYMENTS].snapshot(project, request.match_info["snapshot"])
    return _json(_snapshot(found))


@api.route(
    "GET",
    P + "/snapshots/{snapshot}/export",
    tag="import/export",
    response_media=YAML,
    response_schema=YAML_DOCUMENT,
    summary="A snapshot's definition as YAML",
)
async def export_snapshot(request: web.Request) -> web.Response:
    _, project = await _access(request, Operation.READ)
    snapshot, text = await request.app[WORKFLOWS].export_snapshot(
        project, request.match_info["snapshot"]
    )
    return _yaml(text, _filename(f"{snapshot.workflow_name}-{snapshot.id[:8]}"))
