"""The typed Python SDK over the Ryax HTTP APIs (all behind one gateway URL).

    from pathlib import Path
    from ryax_cli.sdk import Client

    with Client("http://127.0.0.1:8080") as client:
        client.login("alice", "secret")
        client.repositories.add("demo", "examples", "https://github.com/me/actions.git")
        client.repositories.scan("demo", "examples")
        client.actions.build("demo", "word-count", on_progress=lambda b: print(b.state))
        wf = client.workflows.import_yaml("demo", Path("demo.yaml").read_text())
        client.workflows.deploy("demo", wf.name)          # waits until deployed
        run = client.runs.trigger("demo", wf.name, {"text": "hello", "doc": Path("a.txt")})
        run.wait(timeout=60)
        print(run.state, run.outputs)                     # file outputs are FileRef
        run.refresh().download("count.counts", Path("."))  # a step's file output
        for line in client.runs.logs("demo", run.id, follow=True):
            print(line.step, line.message)

Projects, workflows and endpoints are named by id or name; repositories by id or name (resolved
here). Errors are `ryax_cli.errors.RyaxError` subclasses: `ServerUnreachable`, `AuthenticationError`
(401), `PermissionDenied` (403), `NotFoundError` (404), `ConflictError` (409),
`InvalidRequest` (other 4xx, with the server's detail), `ServerError` (5xx), `WaitTimeout`,
`BuildFailed`, `DeploymentFailed`, `RunFailed`, `InvalidWorkflowFile`.
"""

from __future__ import annotations

from types import TracebackType

import httpx

from ._http import DEFAULT_TIMEOUT, DEFAULT_URL, Transport
from .api._base import Waiting
from .api.authorization import ApiKeys, Projects, Sessions, Tokens, Users
from .api.repository import Actions, Repositories
from .api.runner import Run, Runs, Sites
from .api.studio import Variables, Workflows
from .errors import (
    ApiError,
    AuthenticationError,
    BuildFailed,
    ConflictError,
    DeploymentFailed,
    InvalidRequest,
    InvalidWorkflowFile,
    NotFoundError,
    PermissionDenied,
    RunFailed,
    RyaxError,
    ServerError,
    ServerUnreachable,
    WaitTimeout,
)
from .models import (
    Action,
    ApiKey,
    Build,
    Deployment,
    FileRef,
    LogLine,
    MachineToken,
    Me,
    NodePool,
    Project,
    Repository,
    RunInfo,
    RunPage,
    ScannedAction,
    ScanResult,
    Session,
    Site,
    SiteCredential,
    StoreAction,
    User,
    Workflow,
    WorkflowProblem,
    WorkflowSummary,
)

__all__ = [
    "Action",
    "ApiError",
    "ApiKey",
    "AuthenticationError",
    "Build",
    "BuildFailed",
    "Client",
    "ConflictError",
    "Deployment",
    "DeploymentFailed",
    "FileRef",
    "InvalidRequest",
    "InvalidWorkflowFile",
    "LogLine",
    "MachineToken",
    "Me",
    "NodePool",
    "NotFoundError",
    "PermissionDenied",
    "Project",
    "Repository",
    "Run",
    "RunFailed",
    "RunInfo",
    "RunPage",
    "RyaxError",
    "ScanResult",
    "ScannedAction",
    "ServerError",
    "ServerUnreachable",
    "Session",
    "Site",
    "SiteCredential",
    "StoreAction",
    "User",
    "WaitTimeout",
    "Workflow",
    "WorkflowProblem",
    "WorkflowSummary",
]


class Client:
    """One connection to a Ryax platform; the groups below each speak to one service."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        poll_interval: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        verify: bool = True,
    ) -> None:
        self._http = Transport(url, token, timeout=timeout, transport=transport, verify=verify)
        self.waiting = Waiting(interval=poll_interval)
        self.sessions = Sessions(self._http, self.waiting)
        self.users = Users(self._http, self.waiting)
        self.projects = Projects(self._http, self.waiting)
        self.tokens = Tokens(self._http, self.waiting)
        self.api_keys = ApiKeys(self._http, self.waiting)
        self.repositories = Repositories(self._http, self.waiting)
        self.actions = Actions(self._http, self.waiting)
        self.workflows = Workflows(self._http, self.waiting)
        self.variables = Variables(self._http, self.waiting)
        self.runs = Runs(self._http, self.waiting, self.workflows)
        self.sites = Sites(self._http, self.waiting)

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def token(self) -> str | None:
        return self._http.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._http.token = value

    def login(self, username: str, password: str) -> Session:
        """Log in; later calls carry the new token (`client.token`)."""
        return self.sessions.login(username, password)

    def logout(self) -> None:
        self.sessions.logout()

    def me(self) -> Me:
        return self.sessions.me()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
