"""What the SDK returns: typed, read-only views over the services' JSON answers.

Each model reads every field from exactly one key of the answer, the one the service sends:
`KEYS` maps a field to its key (`a.b` is key `b` of the object under `a`), and `SCHEMAS` names
the response schemas of the services' OpenAPI documents the model reads. A field in `OPTIONAL`
may be absent or null (it then has its default); the schemas require the others.
`NESTED` names the model of each field that holds objects. `cli/tests/unit/test_models_contract.py`
checks all of it against the services' OpenAPI, so a renamed key fails a test instead of
showing up as an empty column. Every model keeps the whole answer in `raw` (the `-o json`
output), so a field a service adds later reaches `-o json` without a new client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from .errors import RyaxError, problem_text


@dataclass(frozen=True)
class Schema:
    """A response schema of a service's OpenAPI document (`components.schemas.<name>`)."""

    service: str
    name: str


@dataclass(frozen=True, kw_only=True)
class Model:
    raw: dict[str, Any] = field(repr=False, compare=False)

    #: the response schemas this model reads (a key is in every one, an OPTIONAL key in one)
    SCHEMAS: ClassVar[tuple[Schema, ...]] = ()
    #: field -> the one key it is read from
    KEYS: ClassVar[Mapping[str, str]] = {}
    #: fields whose key may be absent or null
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    #: field -> the model of the object(s) under its key
    NESTED: ClassVar[Mapping[str, type[Model]]] = {}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        raise NotImplementedError


M = TypeVar("M", bound=Model)


class _Reader:
    """Reads the fields of one answer, each from the key its model declares (and no other)."""

    def __init__(self, model: type[Model], doc: Any) -> None:
        if not isinstance(doc, dict):
            raise RyaxError(
                f"unexpected answer from the server: expected an object ({model.__name__}), "
                f"got {type(doc).__name__}"
            )
        self._model = model
        self.doc: dict[str, Any] = doc

    def value(self, name: str) -> Any:
        found: Any = self.doc
        for part in self._model.KEYS[name].split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return found

    def text(self, name: str) -> str:
        found = self.value(name)
        return "" if found is None else str(found)

    def opt_text(self, name: str) -> str | None:
        return self.text(name) or None

    def flag(self, name: str) -> bool:
        return self.value(name) is True

    def integer(self, name: str) -> int | None:
        found = self.value(name)
        return found if isinstance(found, int) and not isinstance(found, bool) else None

    def number(self, name: str) -> float | None:
        found = self.value(name)
        if isinstance(found, bool) or not isinstance(found, int | float):
            return None
        return float(found)

    def time(self, name: str) -> datetime | None:
        found = self.value(name)
        if not isinstance(found, str) or not found:
            return None
        try:
            return datetime.fromisoformat(found)
        except ValueError:
            return None

    def mapping(self, name: str) -> dict[str, Any]:
        found = self.value(name)
        return found if isinstance(found, dict) else {}

    def texts(self, name: str) -> list[str]:
        found = self.value(name)
        return [str(item) for item in found] if isinstance(found, list) else []

    def many(self, name: str, model: type[M]) -> list[M]:
        self._nested(name, model)
        found = self.value(name)
        return [model.from_json(item) for item in found] if isinstance(found, list) else []

    def one(self, name: str, model: type[M]) -> M | None:
        self._nested(name, model)
        found = self.value(name)
        return model.from_json(found) if found is not None else None

    def _nested(self, name: str, model: type[Model]) -> None:
        if self._model.NESTED.get(name) is not model:
            raise TypeError(f"{self._model.__name__}.NESTED must declare {name}: {model.__name__}")


@dataclass(frozen=True)
class Listing(Generic[M]):
    """A list answer: the items under `key` of the `schema` object the service answers."""

    model: type[M]
    key: str
    schema: Schema

    def read(self, body: Any) -> list[M]:
        items = body.get(self.key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise RyaxError(
                f"unexpected answer from the server: expected {self.schema.name} "
                f"with a list under {self.key!r}"
            )
        return [self.model.from_json(item) for item in items]


def _keys(*names: str, **renamed: str) -> dict[str, str]:
    """Fields read from the key of the same name, and fields read from another key."""
    return {**{n: n for n in names}, **renamed}


# --------------------------------------------------------------------------- authorization

AUTHORIZATION = "authorization"


@dataclass(frozen=True, kw_only=True)
class User(Model):
    id: str
    username: str
    is_admin: bool = False
    created_at: datetime | None = None

    SCHEMAS = (Schema(AUTHORIZATION, "UserOut"),)
    KEYS = _keys("id", "username", "is_admin", "created_at")

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            username=r.text("username"),
            is_admin=r.flag("is_admin"),
            created_at=r.time("created_at"),
        )


@dataclass(frozen=True, kw_only=True)
class Session(Model):
    access_token: str
    expires_at: datetime | None
    user: User

    SCHEMAS = (Schema(AUTHORIZATION, "LoginOut"),)
    KEYS = _keys("access_token", "expires_at", "user")
    NESTED = {"user": User}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            access_token=r.text("access_token"),
            expires_at=r.time("expires_at"),
            user=r.one("user", User) or User.from_json({}),
        )


@dataclass(frozen=True, kw_only=True)
class Member(Model):
    user_id: str
    role: str
    #: Empty for a user that no longer exists.
    username: str = ""

    SCHEMAS = (Schema(AUTHORIZATION, "MemberOut"),)
    KEYS = _keys("user_id", "role", "username")

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc, user_id=r.text("user_id"), role=r.text("role"), username=r.text("username")
        )


@dataclass(frozen=True, kw_only=True)
class Project(Model):
    id: str
    name: str
    role: str | None = None
    created_at: datetime | None = None
    members: list[Member] = field(default_factory=list)

    SCHEMAS = (Schema(AUTHORIZATION, "ProjectOut"),)
    KEYS = _keys("id", "name", "role", "created_at", "members")
    OPTIONAL = frozenset({"role", "members"})
    NESTED = {"members": Member}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            role=r.opt_text("role"),
            created_at=r.time("created_at"),
            members=r.many("members", Member),
        )


@dataclass(frozen=True, kw_only=True)
class Me(Model):
    id: str
    username: str
    is_admin: bool
    projects: list[Project]

    SCHEMAS = (Schema(AUTHORIZATION, "MeOut"),)
    KEYS = _keys("id", "username", "is_admin", "projects")
    NESTED = {"projects": Project}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            username=r.text("username"),
            is_admin=r.flag("is_admin"),
            projects=r.many("projects", Project),
        )


@dataclass(frozen=True, kw_only=True)
class MachineToken(Model):
    """A machine token; `token` (its value) is only in the answer that created it."""

    id: str
    name: str
    token: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    SCHEMAS = (Schema(AUTHORIZATION, "TokenOut"), Schema(AUTHORIZATION, "NewTokenOut"))
    KEYS = _keys("id", "name", "token", "created_at", "expires_at", "revoked_at")
    OPTIONAL = frozenset({"token", "expires_at", "revoked_at"})

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            token=r.opt_text("token"),
            created_at=r.time("created_at"),
            expires_at=r.time("expires_at"),
            revoked_at=r.time("revoked_at"),
        )


@dataclass(frozen=True, kw_only=True)
class ApiKey(Model):
    """A project API key; `key` (its value) is only in the answer that created it."""

    id: str
    name: str
    project_id: str
    key: str | None = None
    revoked: bool = False
    created_at: datetime | None = None
    created_by: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    SCHEMAS = (Schema(AUTHORIZATION, "ApiKeyOut"), Schema(AUTHORIZATION, "NewApiKeyOut"))
    KEYS = _keys(
        "id",
        "name",
        "project_id",
        "key",
        "revoked",
        "created_at",
        "created_by",
        "last_used_at",
        "revoked_at",
    )
    OPTIONAL = frozenset({"key", "created_by", "last_used_at", "revoked_at"})

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            project_id=r.text("project_id"),
            key=r.opt_text("key"),
            revoked=r.flag("revoked"),
            created_at=r.time("created_at"),
            created_by=r.opt_text("created_by"),
            last_used_at=r.time("last_used_at"),
            revoked_at=r.time("revoked_at"),
        )


USERS = Listing(User, "users", Schema(AUTHORIZATION, "UsersOut"))
API_KEYS = Listing(ApiKey, "api_keys", Schema(AUTHORIZATION, "ApiKeysOut"))
PROJECTS = Listing(Project, "projects", Schema(AUTHORIZATION, "ProjectsOut"))
TOKENS = Listing(MachineToken, "tokens", Schema(AUTHORIZATION, "TokensOut"))

# --------------------------------------------------------------------------- repository

REPOSITORY = "repository"
STUDIO = "studio"


@dataclass(frozen=True, kw_only=True)
class Repository(Model):
    """`branch` is the one asked for (None: the remote's default); `last_scan_branch` the one
    the last scan fetched."""

    id: str
    name: str
    url: str
    branch: str | None = None
    auth: str | None = None
    last_commit: str | None = None
    last_scan_branch: str | None = None
    last_scan_at: datetime | None = None

    SCHEMAS = (Schema(REPOSITORY, "RepositoryOut"),)
    KEYS = _keys(
        "id",
        "name",
        "url",
        "branch",
        "auth",
        last_commit="last_scan.commit",
        last_scan_branch="last_scan.branch",
        last_scan_at="last_scan.finished_at",
    )
    OPTIONAL = frozenset({"branch", "last_commit", "last_scan_branch", "last_scan_at"})

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            url=r.text("url"),
            branch=r.opt_text("branch"),
            auth=r.opt_text("auth"),
            last_commit=r.opt_text("last_commit"),
            last_scan_branch=r.opt_text("last_scan_branch"),
            last_scan_at=r.time("last_scan_at"),
        )


@dataclass(frozen=True, kw_only=True)
class IoSpec(Model):
    """An input or output of an action (the repository's and the studio's answers agree)."""

    name: str
    type: str
    optional: bool = False
    help: str = ""

    SCHEMAS = (Schema(REPOSITORY, "IOOut"), Schema(STUDIO, "IOOut"))
    KEYS = _keys("name", "type", "optional", "help")

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            name=r.text("name"),
            type=r.text("type"),
            optional=r.flag("optional"),
            help=r.text("help"),
        )


@dataclass(frozen=True, kw_only=True)
class ScanProblem(Model):
    """An error or warning of a scan, about one field of one metadata file; `message` is
    self-contained (it starts with the field, when there is one)."""

    file: str
    line: int | None
    field: str
    message: str

    SCHEMAS = (Schema(REPOSITORY, "IssueOut"),)
    KEYS = _keys("file", "line", "field", "message")

    @property
    def path(self) -> str:
        """`file:line` (the line when known)."""
        return f"{self.file}:{self.line}" if self.file and self.line else self.file

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            file=r.text("file"),
            line=r.integer("line"),
            field=r.text("field"),
            message=r.text("message"),
        )


@dataclass(frozen=True, kw_only=True)
class Action(Model):
    """An action source recorded by a scan or an upload (the repository service).

    `id` is the source's id; `action_id` and `version` are the metadata's `spec.id` and
    `spec.version` (unknown for an invalid source), what workflows and builds name.
    """

    id: str
    action_id: str
    version: str
    kind: str = ""
    name: str = ""
    description: str = ""
    build_state: str | None = None
    last_build_id: str | None = None
    repository: str | None = None
    inputs: list[IoSpec] = field(default_factory=list)
    outputs: list[IoSpec] = field(default_factory=list)
    problems: list[ScanProblem] = field(default_factory=list)

    SCHEMAS = (Schema(REPOSITORY, "ActionOut"),)
    KEYS = _keys(
        "id",
        "action_id",
        "version",
        "kind",
        "description",
        "inputs",
        "outputs",
        name="human_name",
        build_state="state",
        last_build_id="last_build.id",
        repository="origin.name",
        problems="errors",
    )
    OPTIONAL = frozenset({"action_id", "version", "kind", "name", "description", "last_build_id"})
    NESTED = {"inputs": IoSpec, "outputs": IoSpec, "problems": ScanProblem}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            action_id=r.text("action_id"),
            version=r.text("version"),
            kind=r.text("kind"),
            name=r.text("name"),
            description=r.text("description"),
            build_state=r.opt_text("build_state"),
            last_build_id=r.opt_text("last_build_id"),
            repository=r.opt_text("repository"),
            inputs=r.many("inputs", IoSpec),
            outputs=r.many("outputs", IoSpec),
            problems=r.many("problems", ScanProblem),
        )


@dataclass(frozen=True, kw_only=True)
class StoreAction(Model):
    """A built action of the studio's store, what workflow steps use."""

    action_id: str
    version: str
    kind: str = ""
    name: str = ""
    description: str = ""
    builtin: bool = False
    ready_at: datetime | None = None
    inputs: list[IoSpec] = field(default_factory=list)
    outputs: list[IoSpec] = field(default_factory=list)

    SCHEMAS = (Schema(STUDIO, "ActionOut"),)
    KEYS = _keys(
        "action_id",
        "version",
        "kind",
        "description",
        "builtin",
        "ready_at",
        "inputs",
        "outputs",
        name="human_name",
    )
    OPTIONAL = frozenset({"ready_at"})
    NESTED = {"inputs": IoSpec, "outputs": IoSpec}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            action_id=r.text("action_id"),
            version=r.text("version"),
            kind=r.text("kind"),
            name=r.text("name"),
            description=r.text("description"),
            builtin=r.flag("builtin"),
            ready_at=r.time("ready_at"),
            inputs=r.many("inputs", IoSpec),
            outputs=r.many("outputs", IoSpec),
        )


@dataclass(frozen=True, kw_only=True)
class ScannedAction(Model):
    """One action folder a scan found: `status` says what the scan did with it (new,
    unchanged, changed_same_version, replaced, invalid); `id` is its source's id."""

    path: str
    status: str
    id: str | None = None
    action_id: str = ""
    version: str = ""
    kind: str = ""
    build_state: str | None = None
    message: str = ""
    problems: list[ScanProblem] = field(default_factory=list)
    warnings: list[ScanProblem] = field(default_factory=list)

    SCHEMAS = (Schema(REPOSITORY, "ScannedActionOut"),)
    KEYS = _keys(
        "path",
        "status",
        "action_id",
        "version",
        "kind",
        "message",
        "warnings",
        id="source_id",
        build_state="state",
        problems="errors",
    )
    OPTIONAL = frozenset({"id", "action_id", "version", "kind", "build_state"})
    NESTED = {"problems": ScanProblem, "warnings": ScanProblem}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            path=r.text("path"),
            status=r.text("status"),
            id=r.opt_text("id"),
            action_id=r.text("action_id"),
            version=r.text("version"),
            kind=r.text("kind"),
            build_state=r.opt_text("build_state"),
            message=r.text("message"),
            problems=r.many("problems", ScanProblem),
            warnings=r.many("warnings", ScanProblem),
        )


@dataclass(frozen=True, kw_only=True)
class ScanResult(Model):
    id: str
    repository_id: str | None
    commit: str | None
    actions: list[ScannedAction]
    problems: list[ScanProblem]
    warnings: list[ScanProblem]
    build_ids: list[str]

    SCHEMAS = (Schema(REPOSITORY, "ScanOut"),)
    KEYS = _keys(
        "id", "repository_id", "commit", "actions", "warnings", "build_ids", problems="errors"
    )
    OPTIONAL = frozenset({"repository_id", "commit"})
    NESTED = {"actions": ScannedAction, "problems": ScanProblem, "warnings": ScanProblem}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            repository_id=r.opt_text("repository_id"),
            commit=r.opt_text("commit"),
            actions=r.many("actions", ScannedAction),
            problems=r.many("problems", ScanProblem),
            warnings=r.many("warnings", ScanProblem),
            build_ids=r.texts("build_ids"),
        )


BUILD_OK = frozenset({"built", "success", "succeeded", "done", "ready", "completed"})
BUILD_FAILED = frozenset({"failed", "error", "build_error", "cancelled", "canceled"})


@dataclass(frozen=True, kw_only=True)
class Build(Model):
    id: str
    action_id: str
    version: str
    state: str
    error: str | None = None
    log: str = ""
    created_at: datetime | None = None
    ended_at: datetime | None = None

    SCHEMAS = (Schema(REPOSITORY, "BuildOut"),)
    KEYS = _keys(
        "id",
        "action_id",
        "version",
        "state",
        "log",
        error="reason",
        created_at="requested_at",
        ended_at="finished_at",
    )
    OPTIONAL = frozenset({"ended_at"})

    @property
    def done(self) -> bool:
        return self.succeeded or self.failed

    @property
    def succeeded(self) -> bool:
        return self.state.lower() in BUILD_OK

    @property
    def failed(self) -> bool:
        return self.state.lower() in BUILD_FAILED

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            action_id=r.text("action_id"),
            version=r.text("version"),
            state=r.text("state") or "unknown",
            error=r.opt_text("error"),
            log=r.text("log"),
            created_at=r.time("created_at"),
            ended_at=r.time("ended_at"),
        )


REPOSITORIES = Listing(Repository, "repositories", Schema(REPOSITORY, "RepositoriesOut"))
ACTIONS = Listing(Action, "actions", Schema(REPOSITORY, "ActionsOut"))
STORE_ACTIONS = Listing(StoreAction, "actions", Schema(STUDIO, "ActionsOut"))

# --------------------------------------------------------------------------- studio


@dataclass(frozen=True, kw_only=True)
class WorkflowProblem(Model):
    message: str
    step: str | None = None
    input: str | None = None
    code: str | None = None
    line: int | None = None
    path: str | None = None

    SCHEMAS = (Schema(STUDIO, "ProblemOut"),)
    KEYS = _keys("message", "input", "code", "line", "path", step="step_id")
    OPTIONAL = frozenset({"step", "input", "line", "path"})

    def __str__(self) -> str:
        return problem_text(self.raw)

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            message=r.text("message"),
            step=r.opt_text("step"),
            input=r.opt_text("input"),
            code=r.opt_text("code"),
            line=r.integer("line"),
            path=r.opt_text("path"),
        )


@dataclass(frozen=True, kw_only=True)
class Step(Model):
    """A step; `inputs` maps an input to its value: {"static": v}, {"secret": name} or
    {"reference": {"step", "output"}}."""

    id: str
    action_id: str
    version: str
    inputs: dict[str, Any] = field(default_factory=dict)
    #: Where and how it runs: timeout_seconds, retries, site_name, node_pool, labels,
    #: resources {cpu, memory_bytes, time_seconds, gpu}, hpc {key: text} (StepSettings).
    settings: dict[str, Any] = field(default_factory=dict)

    SCHEMAS = (Schema(STUDIO, "StepOut"),)
    KEYS = _keys("id", "action_id", "version", "inputs", "settings")

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            action_id=r.text("action_id"),
            version=r.text("version"),
            inputs=r.mapping("inputs"),
            settings=r.mapping("settings"),
        )


HTTP_TRIGGERS = frozenset({"httpapijson", "http_api_json"})

DEPLOYMENT_OK = frozenset({"deployed", "running", "ready", "active"})
DEPLOYMENT_FAILED = frozenset({"failed", "error"})
DEPLOYMENT_GONE = frozenset({"undeployed", "stopped", "not_deployed"})


@dataclass(frozen=True, kw_only=True)
class Deployment(Model):
    """A deployment as the studio reports it. States: requested, deploying, waiting_for_site,
    deployed, undeploying, undeployed, failed; `reason` says why (a failure, or which site
    is missing)."""

    id: str
    workflow_id: str
    state: str
    reason: str | None = None
    requested_at: datetime | None = None
    updated_at: datetime | None = None

    SCHEMAS = (Schema(STUDIO, "DeploymentOut"),)
    KEYS = _keys("id", "workflow_id", "state", "reason", "requested_at", "updated_at")

    @property
    def running(self) -> bool:
        return self.state.lower() in DEPLOYMENT_OK

    @property
    def failed(self) -> bool:
        return self.state.lower() in DEPLOYMENT_FAILED

    @property
    def gone(self) -> bool:
        return self.state.lower() in DEPLOYMENT_GONE

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            workflow_id=r.text("workflow_id"),
            state=r.text("state") or "unknown",
            reason=r.opt_text("reason"),
            requested_at=r.time("requested_at"),
            updated_at=r.time("updated_at"),
        )


@dataclass(frozen=True, kw_only=True)
class WorkflowSummary(Model):
    """A workflow as listed: its number of steps and its deployment."""

    id: str
    name: str
    description: str = ""
    step_count: int = 0
    deployment: Deployment | None = None
    updated_at: datetime | None = None

    SCHEMAS = (Schema(STUDIO, "WorkflowSummary"),)
    KEYS = _keys("id", "name", "description", "deployment", "updated_at", step_count="steps")
    OPTIONAL = frozenset({"deployment"})
    NESTED = {"deployment": Deployment}

    @property
    def deployment_state(self) -> str | None:
        return self.deployment.state if self.deployment else None

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            description=r.text("description"),
            step_count=r.integer("step_count") or 0,
            deployment=r.one("deployment", Deployment),
            updated_at=r.time("updated_at"),
        )


@dataclass(frozen=True, kw_only=True)
class Workflow(Model):
    """A workflow with its steps, its problems and its current deployment."""

    id: str
    name: str
    description: str = ""
    valid: bool = False
    steps: list[Step] = field(default_factory=list)
    problems: list[WorkflowProblem] = field(default_factory=list)
    deployment: Deployment | None = None
    updated_at: datetime | None = None

    SCHEMAS = (Schema(STUDIO, "WorkflowOut"),)
    KEYS = _keys(
        "id", "name", "description", "valid", "steps", "problems", "deployment", "updated_at"
    )
    OPTIONAL = frozenset({"deployment"})
    NESTED = {"steps": Step, "problems": WorkflowProblem, "deployment": Deployment}

    @property
    def step_count(self) -> int:
        return len(self.steps)

    @property
    def deployment_state(self) -> str | None:
        return self.deployment.state if self.deployment else None

    @property
    def http_endpoint(self) -> bool:
        """Started by the built-in HTTP endpoint trigger."""
        return any(s.action_id in HTTP_TRIGGERS for s in self.steps)

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            description=r.text("description"),
            valid=r.flag("valid"),
            steps=r.many("steps", Step),
            problems=r.many("problems", WorkflowProblem),
            deployment=r.one("deployment", Deployment),
            updated_at=r.time("updated_at"),
        )


WORKFLOWS = Listing(WorkflowSummary, "workflows", Schema(STUDIO, "WorkflowsOut"))
WORKFLOW_PROBLEMS = Listing(WorkflowProblem, "problems", Schema(STUDIO, "ProblemsOut"))
DEPLOYMENTS = Listing(Deployment, "deployments", Schema(STUDIO, "DeploymentsOut"))

# --------------------------------------------------------------------------- runner

RUNNER = "runner"
RUN_OK = frozenset({"completed", "success", "succeeded", "done"})
RUN_FAILED = frozenset({"failed", "error"})
RUN_CANCELLED = frozenset({"cancelled", "canceled"})


@dataclass(frozen=True, kw_only=True)
class FileRef(Model):
    """A file value of a run (the runner answers `{"type": "file", "name", "size", "key",
    "download_url"}`, see `present` in its routes): download it with
    `Run.download(name, dest)`. It is inside free-form results, so no OpenAPI schema
    describes it."""

    kind: str
    name: str
    key: str = ""
    url: str | None = None
    size: int | None = None

    KEYS = _keys("name", "key", "size", kind="type", url="download_url")
    FILE_KINDS: ClassVar[frozenset[str]] = frozenset({"file", "directory"})

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            kind=r.text("kind"),
            name=r.text("name"),
            key=r.text("key"),
            url=r.opt_text("url"),
            size=r.integer("size"),
        )

    @classmethod
    def looks_like(cls, value: Any) -> bool:
        return (
            isinstance(value, dict)
            and value.get(cls.KEYS["kind"]) in cls.FILE_KINDS
            and isinstance(value.get(cls.KEYS["url"]), str)
        )


@dataclass(frozen=True, kw_only=True)
class StepRun(Model):
    """One execution of a step in a run."""

    step: str
    state: str
    error: str | None = None
    site: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    SCHEMAS = (Schema(RUNNER, "ExecutionOut"),)
    KEYS = _keys("state", "error", "outputs", step="step_id", site="site_name")
    OPTIONAL = frozenset({"error", "site", "outputs"})

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            step=r.text("step"),
            state=r.text("state") or "unknown",
            error=r.opt_text("error"),
            site=r.opt_text("site"),
            outputs=r.mapping("outputs"),
        )


@dataclass(frozen=True, kw_only=True)
class RunInfo(Model):
    """A run; `outputs` are the workflow's results, `steps` only come with one run's detail."""

    id: str
    workflow_id: str
    state: str
    workflow_name: str = ""
    error: str | None = None
    failed_step: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[StepRun] = field(default_factory=list)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None

    SCHEMAS = (Schema(RUNNER, "RunOut"), Schema(RUNNER, "RunDetailOut"))
    KEYS = _keys(
        "id",
        "workflow_id",
        "workflow_name",
        "state",
        "steps",
        "started_at",
        "ended_at",
        "duration_seconds",
        error="reason",
        failed_step="failed_step_id",
        outputs="results",
    )
    OPTIONAL = frozenset(
        {"failed_step", "outputs", "steps", "started_at", "ended_at", "duration_seconds"}
    )
    NESTED = {"steps": StepRun}

    @property
    def done(self) -> bool:
        s = self.state.lower()
        return s in RUN_OK or s in RUN_FAILED or s in RUN_CANCELLED

    @property
    def succeeded(self) -> bool:
        return self.state.lower() in RUN_OK

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            workflow_id=r.text("workflow_id"),
            workflow_name=r.text("workflow_name"),
            state=r.text("state") or "unknown",
            error=r.opt_text("error"),
            failed_step=r.opt_text("failed_step"),
            outputs=r.mapping("outputs"),
            steps=r.many("steps", StepRun),
            started_at=r.time("started_at"),
            ended_at=r.time("ended_at"),
            duration_seconds=r.number("duration_seconds"),
        )


@dataclass(frozen=True, kw_only=True)
class RunPage(Model):
    """A page of runs, newest first, and the cursor of the next page (None on the last)."""

    runs: list[RunInfo]
    next_cursor: str | None = None

    SCHEMAS = (Schema(RUNNER, "RunsOut"),)
    KEYS = _keys("runs", "next_cursor")
    OPTIONAL = frozenset({"next_cursor"})
    NESTED = {"runs": RunInfo}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(raw=r.doc, runs=r.many("runs", RunInfo), next_cursor=r.opt_text("next_cursor"))


@dataclass(frozen=True, kw_only=True)
class LogLine(Model):
    """A log line; `id` orders the pages of a run's logs (live lines have none)."""

    message: str
    id: int | None = None
    step: str | None = None
    time: datetime | None = None
    stream: str | None = None
    seq: int | None = None

    SCHEMAS = (Schema(RUNNER, "LogLineOut"),)
    KEYS = _keys("id", "stream", "seq", message="line", step="step_id", time="at")
    OPTIONAL = frozenset({"id"})

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            message=r.text("message").rstrip("\n"),
            id=r.integer("id"),
            step=r.opt_text("step"),
            time=r.time("time"),
            stream=r.opt_text("stream"),
            seq=r.integer("seq"),
        )


@dataclass(frozen=True, kw_only=True)
class NodePool(Model):
    name: str
    cpu: float | None = None
    memory_bytes: int | None = None
    gpu: int | None = None
    #: Longest an execution may run on the pool (seconds); 0: not declared.
    max_time_seconds: float | None = None

    SCHEMAS = (Schema(RUNNER, "NodePoolOut"),)
    KEYS = _keys("name", "cpu", "memory_bytes", "gpu", "max_time_seconds")

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            name=r.text("name"),
            cpu=r.number("cpu"),
            memory_bytes=r.integer("memory_bytes"),
            gpu=r.integer("gpu"),
            max_time_seconds=r.number("max_time_seconds"),
        )


@dataclass(frozen=True, kw_only=True)
class Site(Model):
    """A site (one worker serves it). `credential` is the credential's state (active, revoked,
    none), never its value; `connected` says whether its worker's stream is open, since
    `registered_at`."""

    id: str
    name: str
    backend: str = ""
    state: str = ""
    reason: str | None = None
    node_pools: list[NodePool] = field(default_factory=list)
    last_seen_at: datetime | None = None
    worker_id: str = ""
    worker_address: str = ""
    version: str = ""
    connected: bool = False
    registered_at: datetime | None = None
    credential: str = ""
    credential_issued_at: datetime | None = None
    created_at: datetime | None = None
    created_by: str = ""
    archived_at: datetime | None = None

    SCHEMAS = (Schema(RUNNER, "SiteOut"),)
    KEYS = _keys(
        "id",
        "name",
        "state",
        "node_pools",
        "last_seen_at",
        "worker_id",
        "worker_address",
        "version",
        "connected",
        "registered_at",
        "credential",
        "credential_issued_at",
        "created_at",
        "created_by",
        "archived_at",
        backend="backend_kind",
        reason="state_reason",
    )
    OPTIONAL = frozenset({"reason", "credential_issued_at", "created_at", "archived_at"})
    NESTED = {"node_pools": NodePool}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            id=r.text("id"),
            name=r.text("name"),
            backend=r.text("backend"),
            state=r.text("state"),
            reason=r.opt_text("reason"),
            node_pools=r.many("node_pools", NodePool),
            last_seen_at=r.time("last_seen_at"),
            worker_id=r.text("worker_id"),
            worker_address=r.text("worker_address"),
            version=r.text("version"),
            connected=r.flag("connected"),
            registered_at=r.time("registered_at"),
            credential=r.text("credential"),
            credential_issued_at=r.time("credential_issued_at"),
            created_at=r.time("created_at"),
            created_by=r.text("created_by"),
            archived_at=r.time("archived_at"),
        )


@dataclass(frozen=True, kw_only=True)
class SiteCredential(Model):
    """A site and its new credential: only in the answer that issued it (create, rotate)."""

    site: Site
    credential: str

    SCHEMAS = (Schema(RUNNER, "SiteCredentialOut"),)
    KEYS = _keys("site", "credential")
    NESTED = {"site": Site}

    @classmethod
    def from_json(cls, d: Any) -> Self:
        r = _Reader(cls, d)
        return cls(
            raw=r.doc,
            site=r.one("site", Site) or Site.from_json({}),
            credential=r.text("credential"),
        )


LOG_LINES = Listing(LogLine, "lines", Schema(RUNNER, "LogsOut"))
SITES = Listing(Site, "sites", Schema(RUNNER, "SitesOut"))
