"""What the SDK returns: typed, read-only views over the server's JSON.

Every model keeps the server's document in `raw` (the `-o json` output of the CLI) and reads
its fields tolerantly, so a field the server adds later never breaks an older client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import problem_text


def _str(d: dict[str, Any], *keys: str, default: str = "") -> str:
    for key in keys:
        value = d.get(key)
        if value is not None and value != "":
            return str(value)
    return default


def _opt_str(d: dict[str, Any], *keys: str) -> str | None:
    value = _str(d, *keys)
    return value or None


def _time(d: dict[str, Any], *keys: str) -> datetime | None:
    for key in keys:
        value = d.get(key)
        if isinstance(value, str) and value:
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
    return None


def _list(d: Any, *keys: str) -> list[Any]:
    """A list answer, bare or wrapped in an object under one of `keys` (or `items`)."""
    if isinstance(d, list):
        return d
    if isinstance(d, dict):
        for key in (*keys, "items", "results", "data"):
            value = d.get(key)
            if isinstance(value, list):
                return value
    return []


def _dict(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        value = d.get(key)
        if isinstance(value, dict):
            return value
    return {}


@dataclass(frozen=True, kw_only=True)
class Model:
    raw: dict[str, Any] = field(repr=False, compare=False)


# --------------------------------------------------------------------------- authorization


@dataclass(frozen=True, kw_only=True)
class User(Model):
    id: str
    username: str
    is_admin: bool = False
    created_at: datetime | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> User:
        return cls(
            raw=d,
            id=_str(d, "id"),
            username=_str(d, "username", "name"),
            is_admin=bool(d.get("is_admin", False)),
            created_at=_time(d, "created_at"),
        )


@dataclass(frozen=True, kw_only=True)
class Session(Model):
    access_token: str
    expires_at: datetime | None
    user: User

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Session:
        return cls(
            raw=d,
            access_token=_str(d, "access_token", "token"),
            expires_at=_time(d, "expires_at"),
            user=User.from_json(_dict(d, "user")),
        )


@dataclass(frozen=True, kw_only=True)
class Member(Model):
    user_id: str
    role: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Member:
        return cls(raw=d, user_id=_str(d, "user_id", "user"), role=_str(d, "role"))


@dataclass(frozen=True, kw_only=True)
class Project(Model):
    id: str
    name: str
    role: str | None = None
    created_at: datetime | None = None
    members: list[Member] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Project:
        return cls(
            raw=d,
            id=_str(d, "id"),
            name=_str(d, "name"),
            role=_opt_str(d, "role"),
            created_at=_time(d, "created_at"),
            members=[Member.from_json(m) for m in _list(d.get("members"))],
        )


@dataclass(frozen=True, kw_only=True)
class Me(Model):
    id: str
    username: str
    is_admin: bool
    projects: list[Project]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Me:
        return cls(
            raw=d,
            id=_str(d, "id"),
            username=_str(d, "username"),
            is_admin=bool(d.get("is_admin", False)),
            projects=[Project.from_json(p) for p in _list(d.get("projects"))],
        )


@dataclass(frozen=True, kw_only=True)
class MachineToken(Model):
    id: str
    name: str
    token: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MachineToken:
        return cls(
            raw=d,
            id=_str(d, "id"),
            name=_str(d, "name"),
            token=_opt_str(d, "token"),
            expires_at=_time(d, "expires_at"),
            revoked_at=_time(d, "revoked_at"),
        )


# --------------------------------------------------------------------------- repository


@dataclass(frozen=True, kw_only=True)
class Repository(Model):
    id: str
    name: str
    url: str
    branch: str | None = None
    auth: str | None = None
    last_commit: str | None = None
    last_scan_at: datetime | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Repository:
        last = _dict(d, "last_scan")
        return cls(
            raw=d,
            id=_str(d, "id"),
            name=_str(d, "name"),
            url=_str(d, "url"),
            branch=_opt_str(d, "branch") or _opt_str(last, "branch"),
            auth=_opt_str(d, "auth"),
            last_commit=_opt_str(last, "commit"),
            last_scan_at=_time(last, "finished_at") or _time(d, "last_scan_at"),
        )


@dataclass(frozen=True, kw_only=True)
class IoSpec(Model):
    name: str
    type: str
    optional: bool = False
    help: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IoSpec:
        return cls(
            raw=d,
            name=_str(d, "name"),
            type=_str(d, "type"),
            optional=bool(d.get("optional", False)),
            help=_str(d, "help", "human_name"),
        )


@dataclass(frozen=True, kw_only=True)
class Action(Model):
    """An action source found by a scan (repository) or an action of the studio's store.

    `id` is the server's id of this source; `action_id` and `version` are the metadata's
    `spec.id` and `spec.version`, what workflows and builds name.
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

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Action:
        action_id = _str(d, "action_id", "technical_name", "id")
        origin = _dict(d, "origin")
        last_build = _dict(d, "last_build")
        return cls(
            raw=d,
            id=_str(d, "id", "source_id", "action_id"),
            action_id=action_id,
            version=_str(d, "version", "action_version"),
            kind=_str(d, "kind"),
            name=_str(d, "human_name", "name", default=action_id),
            description=_str(d, "description"),
            build_state=_opt_str(d, "build_state", "state", "status"),
            last_build_id=_opt_str(last_build, "id"),
            repository=_opt_str(origin, "name")
            or _opt_str(d, "repository_name", "repository", "repository_id"),
            inputs=[IoSpec.from_json(i) for i in _list(d.get("inputs")) if isinstance(i, dict)],
            outputs=[IoSpec.from_json(o) for o in _list(d.get("outputs")) if isinstance(o, dict)],
            problems=[ScanProblem.from_json(e) for e in _list(d.get("errors"))],
        )


@dataclass(frozen=True, kw_only=True)
class ScanProblem(Model):
    path: str
    message: str

    @classmethod
    def from_json(cls, d: Any) -> ScanProblem:
        if not isinstance(d, dict):
            return cls(raw={"message": str(d)}, path="", message=str(d))
        path = _str(d, "file", "path", "location")
        line = d.get("line")
        if path and isinstance(line, int) and line > 0:
            path = f"{path}:{line}"
        message = _str(d, "message", "detail", "error")
        fld = _str(d, "field")
        return cls(raw=d, path=path, message=f"{fld}: {message}" if fld else message)


@dataclass(frozen=True, kw_only=True)
class ScanResult(Model):
    id: str
    repository_id: str | None
    commit: str | None
    actions: list[Action]
    problems: list[ScanProblem]
    warnings: list[ScanProblem]
    build_ids: list[str]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScanResult:
        return cls(
            raw=d,
            id=_str(d, "id"),
            repository_id=_opt_str(d, "repository_id"),
            commit=_opt_str(d, "commit"),
            actions=[Action.from_json(a) for a in _list(d.get("actions"))],
            problems=[
                ScanProblem.from_json(p) for p in _list(d.get("errors") or d.get("problems"))
            ],
            warnings=[ScanProblem.from_json(p) for p in _list(d.get("warnings"))],
            build_ids=[str(b) for b in _list(d.get("build_ids"))],
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
    def from_json(cls, d: dict[str, Any]) -> Build:
        log = d.get("log") or d.get("build_log") or d.get("logs") or ""
        if isinstance(log, list):
            log = "\n".join(str(line) for line in log)
        return cls(
            raw=d,
            id=_str(d, "id", "build_id"),
            action_id=_str(d, "action_id"),
            version=_str(d, "version", "action_version"),
            state=_str(d, "state", "status", default="unknown"),
            error=_opt_str(d, "error", "error_message", "reason"),
            log=str(log),
            created_at=_time(d, "created_at", "requested_at"),
            ended_at=_time(d, "ended_at", "finished_at", "completed_at"),
        )


# --------------------------------------------------------------------------- studio


@dataclass(frozen=True, kw_only=True)
class WorkflowProblem(Model):
    message: str
    step: str | None = None
    input: str | None = None
    code: str | None = None
    line: int | None = None
    path: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> WorkflowProblem:
        if not isinstance(d, dict):
            return cls(raw={"message": str(d)}, message=str(d))
        line = d.get("line")
        return cls(
            raw=d,
            message=_str(d, "message", "detail", "error"),
            step=_opt_str(d, "step_id", "step", "function"),
            input=_opt_str(d, "input", "input_name", "field"),
            code=_opt_str(d, "code", "error"),
            line=line if isinstance(line, int) else None,
            path=_opt_str(d, "path"),
        )

    def __str__(self) -> str:
        return problem_text(self.raw)


@dataclass(frozen=True, kw_only=True)
class Step(Model):
    id: str
    action_id: str
    version: str
    inputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else d.get("inputs_values")
        return cls(
            raw=d,
            id=_str(d, "id", "step_id", "name"),
            action_id=_str(d, "action_id", "from", "action"),
            version=_str(d, "version", "action_version"),
            inputs=inputs if isinstance(inputs, dict) else {},
        )


HTTP_TRIGGERS = frozenset({"httpapijson", "http_api_json"})


@dataclass(frozen=True, kw_only=True)
class Workflow(Model):
    id: str
    name: str
    description: str = ""
    step_count: int = 0
    steps: list[Step] = field(default_factory=list)
    problems: list[WorkflowProblem] = field(default_factory=list)
    deployment: Deployment | None = None
    updated_at: datetime | None = None

    @property
    def valid(self) -> bool:
        return bool(self.raw.get("valid", not self.problems))

    @property
    def deployment_state(self) -> str | None:
        return self.deployment.state if self.deployment else None

    @property
    def http_endpoint(self) -> bool:
        """Started by the built-in HTTP endpoint trigger (only known with the steps)."""
        return any(s.action_id in HTTP_TRIGGERS for s in self.steps)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Workflow:
        raw_steps = d.get("steps", d.get("functions"))
        steps = [Step.from_json(s) for s in _list(raw_steps) if isinstance(s, dict)]
        count = raw_steps if isinstance(raw_steps, int) else len(steps)
        problems = d.get("problems") if d.get("problems") is not None else d.get("errors")
        deployment = _dict(d, "deployment")
        return cls(
            raw=d,
            id=_str(d, "id", "workflow_id"),
            name=_str(d, "name", "human_name"),
            description=_str(d, "description"),
            step_count=count,
            steps=steps,
            problems=[WorkflowProblem.from_json(p) for p in _list(problems, "problems")],
            deployment=Deployment.from_json(deployment) if deployment else None,
            updated_at=_time(d, "updated_at", "created_at"),
        )


# --------------------------------------------------------------------------- runner

DEPLOYMENT_OK = frozenset({"deployed", "running", "ready", "active"})
DEPLOYMENT_FAILED = frozenset({"failed", "error"})
DEPLOYMENT_GONE = frozenset({"undeployed", "stopped", "not_deployed"})


@dataclass(frozen=True, kw_only=True)
class Deployment(Model):
    """States: requested, deploying, waiting_for_site, deployed, undeploying, undeployed,
    failed; `reason` says why (a failure, or which site is missing)."""

    id: str
    workflow_id: str
    state: str
    reason: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    updated_at: datetime | None = None

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
    def from_json(cls, d: dict[str, Any]) -> Deployment:
        return cls(
            raw=d,
            id=_str(d, "id", "deployment_id"),
            workflow_id=_str(d, "workflow_id", "workflow"),
            state=_str(d, "state", "status", default="unknown"),
            reason=_opt_str(d, "reason", "error", "error_message"),
            steps=[s for s in _list(d.get("steps")) if isinstance(s, dict)],
            updated_at=_time(d, "updated_at", "created_at", "requested_at"),
        )


RUN_OK = frozenset({"completed", "success", "succeeded", "done"})
RUN_FAILED = frozenset({"failed", "error"})
RUN_CANCELLED = frozenset({"cancelled", "canceled"})


@dataclass(frozen=True, kw_only=True)
class FileRef(Model):
    """A file output: download it with `Run.download(name, dest)` or `Client.download(ref)`."""

    name: str
    url: str | None = None
    size: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FileRef:
        size = d.get("size")
        return cls(
            raw=d,
            name=_str(d, "name", "file_name", "filename", "path"),
            url=_opt_str(d, "url", "download_url", "href", "link"),
            size=size if isinstance(size, int) else None,
        )

    @staticmethod
    def looks_like(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        kind = str(value.get("type", value.get("kind", ""))).lower()
        has_link = any(k in value for k in ("url", "download_url", "href", "link"))
        return kind in ("file", "directory") or (has_link and "name" in value)


@dataclass(frozen=True, kw_only=True)
class StepRun(Model):
    step: str
    state: str
    error: str | None = None
    site: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StepRun:
        return cls(
            raw=d,
            step=_str(d, "step", "step_id", "id", "name"),
            state=_str(d, "state", "status", default="unknown"),
            error=_opt_str(d, "error", "error_message", "reason"),
            site=_opt_str(d, "site_name", "site_id"),
            outputs=d["outputs"] if isinstance(d.get("outputs"), dict) else {},
        )


@dataclass(frozen=True, kw_only=True)
class RunInfo(Model):
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

    @property
    def done(self) -> bool:
        s = self.state.lower()
        return s in RUN_OK or s in RUN_FAILED or s in RUN_CANCELLED

    @property
    def succeeded(self) -> bool:
        return self.state.lower() in RUN_OK

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunInfo:
        outputs = d.get("results") if d.get("results") is not None else d.get("outputs")
        steps = _list(d.get("steps") or d.get("executions"))
        error = d.get("reason") or d.get("error") or d.get("detail")
        if isinstance(error, dict):
            error = " ".join(
                str(error.get(k)) for k in ("step", "message", "detail") if error.get(k)
            )
        duration = d.get("duration_seconds")
        return cls(
            raw=d,
            id=_str(d, "id", "run_id"),
            workflow_id=_str(d, "workflow_id", "workflow"),
            workflow_name=_str(d, "workflow_name"),
            state=_str(d, "state", "status", default="unknown"),
            error=str(error) if error else None,
            failed_step=_opt_str(d, "failed_step_id", "step_id"),
            outputs=outputs if isinstance(outputs, dict) else {},
            steps=[StepRun.from_json(s) for s in steps if isinstance(s, dict)],
            started_at=_time(d, "started_at", "created_at", "submitted_at"),
            ended_at=_time(d, "ended_at", "finished_at", "completed_at"),
            duration_seconds=float(duration) if isinstance(duration, int | float) else None,
        )


@dataclass(frozen=True, kw_only=True)
class LogLine(Model):
    message: str
    step: str | None = None
    time: datetime | None = None
    stream: str | None = None
    seq: int | None = None

    @classmethod
    def from_json(cls, d: Any) -> LogLine:
        if not isinstance(d, dict):
            return cls(raw={"message": str(d)}, message=str(d))
        seq = d.get("seq", d.get("number", d.get("index")))
        return cls(
            raw=d,
            message=_str(d, "message", "line", "text", "msg").rstrip("\n"),
            step=_opt_str(d, "step", "step_id", "execution_step"),
            time=_time(d, "at", "time", "timestamp", "ts", "created_at"),
            stream=_opt_str(d, "stream", "level"),
            seq=seq if isinstance(seq, int) else None,
        )


@dataclass(frozen=True, kw_only=True)
class Site(Model):
    id: str
    name: str
    backend: str = ""
    state: str = ""
    reason: str | None = None
    node_pools: list[dict[str, Any]] = field(default_factory=list)
    last_seen_at: datetime | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Site:
        return cls(
            raw=d,
            id=_str(d, "id", "site_id", "name"),
            name=_str(d, "name", "id"),
            backend=_str(d, "backend_kind", "backend", "type", "kind"),
            state=_str(d, "state", "status"),
            reason=_opt_str(d, "state_reason", "reason"),
            node_pools=[p for p in _list(d.get("node_pools")) if isinstance(p, dict)],
            last_seen_at=_time(d, "last_heartbeat_at", "last_seen_at", "last_heartbeat"),
        )


items_of = _list
