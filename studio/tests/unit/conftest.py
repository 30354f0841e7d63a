"""Builders for domain objects and in-memory fakes of the application's ports."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ryax_kit.core.keys import check_key
from ryax_studio.application.files import FileLimits
from ryax_studio.application.use_cases import ActionStore, Deployments, Secrets, Workflows
from ryax_studio.domain.actions import (
    IO,
    ActionKind,
    ActionRef,
    ActionVersion,
    IOType,
    ProjectId,
    http_endpoint_trigger,
)
from ryax_studio.domain.deployment import (
    Deployment,
    DeploymentId,
    Event,
    Secret,
    Snapshot,
    SnapshotId,
)
from ryax_studio.domain.errors import Conflict, NotFound
from ryax_studio.domain.workflow import (
    InputValue,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    Workflow,
    WorkflowId,
)
from ryax_studio.infrastructure.yaml_format import RyaxWorkflowYaml

PROJECT = ProjectId("project-a")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def action(
    action_id: str,
    kind: ActionKind = ActionKind.PROCESSOR,
    inputs: Iterable[IO] = (),
    outputs: Iterable[IO] = (),
    version: str = "1.0",
    project: ProjectId = PROJECT,
) -> ActionVersion:
    return ActionVersion(
        project_id=project,
        action_id=action_id,
        version=version,
        kind=kind,
        human_name=action_id.title(),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        artefact_key=f"artefacts/{action_id}-{version}.tar.gz",
        artefact_sha256="ab" * 32,
        categories=("Text",),
    )


def io(name: str, type_: IOType = IOType.STRING, **kw: Any) -> IO:
    kw.setdefault("human_name", name.title())
    kw.setdefault("help", f"the {name}")
    return IO(name=name, type=type_, **kw)


def standard_store(project: ProjectId = PROJECT) -> dict[ActionRef, ActionVersion]:
    """The example actions (examples/actions) plus the built-in trigger."""
    actions = [
        http_endpoint_trigger(project),
        action(
            "timer",
            ActionKind.TRIGGER,
            [
                io("interval", IOType.INTEGER, has_default=True, default=60),
                io("max_runs", IOType.INTEGER, has_default=True, default=0),
            ],
            [io("time")],
            project=project,
        ),
        action(
            "make-report",
            inputs=[io("text"), io("title", has_default=True, default="Report")],
            outputs=[io("report", IOType.FILE)],
            project=project,
        ),
        action(
            "word-count",
            inputs=[io("document", IOType.FILE)],
            outputs=[io("counts", IOType.FILE), io("total", IOType.INTEGER)],
            project=project,
        ),
        action("uppercase", inputs=[io("text")], outputs=[io("upper")], project=project),
        action(
            "concat",
            inputs=[io("left"), io("right"), io("separator", has_default=True, default=" ")],
            outputs=[io("text")],
            project=project,
        ),
        action(
            "print-publisher",
            ActionKind.PUBLISHER,
            [
                io("text", optional=True),
                io("total", IOType.INTEGER, optional=True),
                io("report", IOType.FILE, optional=True),
            ],
            project=project,
        ),
        action(
            "typed",
            inputs=[
                io("s"),
                io("ls", IOType.LONGSTRING, optional=True),
                io("i", IOType.INTEGER, optional=True),
                io("f", IOType.FLOAT, optional=True),
                io("b", IOType.BOOLEAN, optional=True),
                io("p", IOType.PASSWORD, optional=True),
                io("e", IOType.ENUM, optional=True, enum_values=("a", "b")),
                io("file", IOType.FILE, optional=True),
                io("dir", IOType.DIRECTORY, optional=True),
            ],
            outputs=[
                io("s"),
                io("i", IOType.INTEGER),
                io("f", IOType.FLOAT),
                io("e", IOType.ENUM, enum_values=("a", "c")),
                io("e2", IOType.ENUM, enum_values=("b",)),
                io("file", IOType.FILE),
            ],
            project=project,
        ),
        action(
            "uppercase", inputs=[io("text")], outputs=[io("upper")], version="2.0", project=project
        ),
    ]
    return {a.ref: a for a in actions}


def step(
    step_id: str,
    action_id: str,
    /,
    version: str = "1.0",
    streams_to: Iterable[str] = (),
    **inputs: InputValue | Any,
) -> Step:
    values: dict[str, InputValue] = {}
    for name, value in inputs.items():
        if isinstance(value, StaticValue | ReferenceValue | SecretValue):
            values[name] = value
        elif isinstance(value, str) and value.startswith("@"):
            s, o = value[1:].split(".")
            values[name] = ReferenceValue(step_id=s, output=o)
        else:
            values[name] = StaticValue(value=value)
    return Step(
        id=step_id,
        action=ActionRef(action_id=action_id, version=version),
        inputs=values,
        streams_to=list(streams_to),
    )


def workflow(*steps: Step, name: str = "wf", project: ProjectId = PROJECT) -> Workflow:
    return Workflow(
        id=WorkflowId("wf-1"),
        project_id=project,
        name=name,
        steps=list(steps),
        created_at=T0,
        updated_at=T0,
    )


def demo_workflow() -> Workflow:
    """examples/workflows/demo.yaml, as domain objects."""
    api = step(
        "api", "httpapijson", streams_to=["report"], path="/demo/word-count", summary="Count words"
    )
    api.outputs = (io("text", help="The text to analyse."),)
    return workflow(
        api,
        step("report", "make-report", streams_to=["count"], text="@api.text", title="Posted"),
        step("count", "word-count", streams_to=["shout", "slug"], document="@report.report"),
        step("shout", "uppercase", streams_to=["join"], text="@api.text"),
        step("slug", "uppercase", streams_to=["join"], text="@api.text"),
        step("join", "concat", streams_to=["log"], left="@shout.upper", right="@slug.upper"),
        step(
            "log",
            "print-publisher",
            text="@join.text",
            total="@count.total",
            report="@count.counts",
        ),
        name="Word count demo",
    )


# ---- fakes -------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class FakeCipher:
    """Reversible, bound to the project and name like the real one."""

    def encrypt(self, project_id: ProjectId, name: str, value: str) -> bytes:
        return f"{project_id}|{name}|{value}".encode()[::-1]

    def decrypt(self, project_id: ProjectId, name: str, ciphertext: bytes) -> str:
        p, n, value = ciphertext[::-1].decode().split("|", 2)
        if (p, n) != (project_id, name):
            raise ValueError("moved ciphertext")
        return value


@dataclass
class FakeState:
    """What the fake database holds (shared by every unit of work of a test)."""

    actions: dict[tuple[str, str, str], ActionVersion] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    secrets: dict[tuple[str, str], Secret] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    outbox: list[Event] = field(default_factory=list)
    #: The values deployments were requested with (sealed apart in the real database).
    deployment_values: dict[str, dict[tuple[str, str], Any]] = field(default_factory=dict)
    commits: int = 0


class FakeActions:
    def __init__(self, state: dict[tuple[str, str, str], ActionVersion]) -> None:
        self.state = state

    async def add(self, a: ActionVersion) -> None:
        self.state[a.key] = a

    async def get(
        self, project_id: ProjectId, action_id: str, version: str
    ) -> ActionVersion | None:
        return self.state.get((project_id, action_id, version))

    async def list_for_project(self, project_id: ProjectId) -> list[ActionVersion]:
        return [a for a in self.state.values() if a.project_id == project_id]

    async def for_ids(
        self, project_id: ProjectId, action_ids: Iterable[str]
    ) -> list[ActionVersion]:
        ids = set(action_ids)
        return [a for a in self.state.values() if a.project_id == project_id and a.action_id in ids]

    async def delete(self, a: ActionVersion) -> None:
        del self.state[a.key]


class FakeWorkflows:
    def __init__(self, state: dict[str, Workflow]) -> None:
        self.state = state
        self.seen: dict[str, Workflow] = {}
        self.deleted: set[str] = set()

    def _copy(self, w: Workflow | None) -> Workflow | None:
        if w is None:
            return None
        return self.seen.setdefault(w.id, copy.deepcopy(w))

    async def add(self, w: Workflow) -> None:
        self.seen[w.id] = w

    async def get(
        self, project_id: ProjectId, workflow_id: WorkflowId, for_update: bool = False
    ) -> Workflow | None:
        w = self.state.get(workflow_id)
        return self._copy(w if w is not None and w.project_id == project_id else None)

    async def get_by_name(
        self, project_id: ProjectId, name: str, for_update: bool = False
    ) -> Workflow | None:
        pending = [
            w
            for w in self.seen.values()
            if w.project_id == project_id and w.name == name and w.id not in self.deleted
        ]
        if pending:
            return pending[0]
        found = [w for w in self.state.values() if w.project_id == project_id and w.name == name]
        return self._copy(found[0] if found else None)

    async def list_for_project(self, project_id: ProjectId) -> list[Workflow]:
        return sorted(
            (w for w in self.state.values() if w.project_id == project_id), key=lambda w: w.name
        )

    async def delete(self, w: Workflow) -> None:
        self.deleted.add(w.id)
        self.seen.pop(w.id, None)


class FakeSecrets:
    def __init__(self, state: dict[tuple[str, str], Secret]) -> None:
        self.state = state
        self.pending: dict[tuple[str, str], Secret | None] = {}

    async def add(self, s: Secret) -> None:
        self.pending[(s.project_id, s.name)] = s

    async def get(self, project_id: ProjectId, name: str) -> Secret | None:
        key = (project_id, name)
        return self.pending[key] if key in self.pending else self.state.get(key)

    async def list_for_project(self, project_id: ProjectId) -> list[Secret]:
        merged = {**self.state, **self.pending}
        return sorted(
            (s for k, s in merged.items() if s is not None and k[0] == project_id),
            key=lambda s: s.name,
        )

    async def delete(self, s: Secret) -> None:
        self.pending[(s.project_id, s.name)] = None


class FakeSnapshots:
    def __init__(self, state: dict[str, Snapshot]) -> None:
        self.state = state
        self.pending: list[Snapshot] = []

    async def add(self, s: Snapshot) -> None:
        self.pending.append(s)

    async def get(self, project_id: ProjectId, snapshot_id: SnapshotId) -> Snapshot | None:
        s = self.state.get(snapshot_id)
        return s if s is not None and s.project_id == project_id else None

    async def list_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> list[Snapshot]:
        return [
            s
            for s in self.state.values()
            if s.project_id == project_id and s.workflow_id == workflow_id
        ][::-1]


class FakeDeployments:
    def __init__(
        self, state: dict[str, Deployment], values: dict[str, dict[tuple[str, str], Any]]
    ) -> None:
        self.state = state
        self.values = values
        self.seen: dict[str, Deployment] = {}

    async def values_of(self, deployment_id: DeploymentId) -> dict[tuple[str, str], Any]:
        return dict(self.values.get(deployment_id, {}))

    def _copy(self, d: Deployment) -> Deployment:
        return self.seen.setdefault(d.id, copy.deepcopy(d))

    async def add(self, d: Deployment) -> None:
        self.seen[d.id] = d

    async def get(self, deployment_id: DeploymentId) -> Deployment | None:
        d = self.state.get(deployment_id)
        return self._copy(d) if d else None

    async def latest_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> Deployment | None:
        found = [
            d
            for d in self.state.values()
            if d.project_id == project_id and d.workflow_id == workflow_id
        ]
        return self._copy(found[-1]) if found else None

    async def latest_per_workflow(self, project_id: ProjectId) -> dict[WorkflowId, Deployment]:
        latest: dict[WorkflowId, Deployment] = {}
        for d in self.state.values():  # in the order added: the last one wins
            if d.project_id == project_id:
                latest[d.workflow_id] = d
        return {w: self._copy(d) for w, d in latest.items()}

    async def list_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> list[Deployment]:
        return [
            self._copy(d)
            for d in self.state.values()
            if d.project_id == project_id and d.workflow_id == workflow_id
        ][::-1]

    async def active_in_project(self, project_id: ProjectId) -> list[Deployment]:
        return [
            self._copy(d) for d in self.state.values() if d.project_id == project_id and d.active
        ]


class FakeUnitOfWork:
    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def __aenter__(self) -> FakeUnitOfWork:
        self.actions_pending: dict[tuple[str, str, str], ActionVersion] = dict(self.state.actions)
        self.actions = FakeActions(self.actions_pending)
        self.workflows = FakeWorkflows(self.state.workflows)
        self.secrets = FakeSecrets(self.state.secrets)
        self.snapshots = FakeSnapshots(self.state.snapshots)
        self.deployments = FakeDeployments(self.state.deployments, self.state.deployment_values)
        self.claims: set[str] = set()
        return self

    async def __aexit__(self, *args: object) -> None:
        pass

    async def claim_message(self, message_id: str) -> bool:
        if message_id in self.state.claimed or message_id in self.claims:
            return False
        self.claims.add(message_id)
        return True

    async def commit(self) -> None:
        s = self.state
        s.actions.clear()
        s.actions.update(self.actions_pending)
        for wid in self.workflows.deleted:
            s.workflows.pop(wid, None)
        for w in self.workflows.seen.values():
            s.workflows[w.id] = copy.deepcopy(w)
        for key, secret in self.secrets.pending.items():
            if secret is None:
                s.secrets.pop(key, None)
            else:
                s.secrets[key] = secret
        for snap in self.snapshots.pending:
            s.snapshots[snap.id] = snap
        for d in self.deployments.seen.values():
            if (
                any(
                    o.workflow_id == d.workflow_id and o.active and o.id != d.id
                    for o in s.deployments.values()
                )
                and d.active
            ):
                raise Conflict("already deployed")
            s.outbox.extend(d.events)
            d.events = []
            if d.values:
                s.deployment_values.setdefault(d.id, dict(d.values))
                d.values = None
            s.deployments[d.id] = copy.deepcopy(d)
        s.claimed |= self.claims
        s.commits += 1


class FakeFileStore:
    """The filestore as a dict of key -> bytes."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put_file(self, key: str, source: Path) -> None:
        check_key(key)
        self.objects[key] = await asyncio.to_thread(source.read_bytes)

    async def download(self, key: str, destination: Path) -> None:
        if key not in self.objects:
            raise NotFound(f"no object {key}")
        await asyncio.to_thread(destination.write_bytes, self.objects[key])


@dataclass
class App:
    state: FakeState
    actions: ActionStore
    secrets: Secrets
    workflows: Workflows
    deployments: Deployments
    files: FakeFileStore


@pytest.fixture
def app() -> App:
    state = FakeState()
    clock = FakeClock()

    def uow() -> FakeUnitOfWork:
        return FakeUnitOfWork(state)

    factory: Callable[[], Any] = uow
    files = FakeFileStore()
    return App(
        files=files,
        state=state,
        actions=ActionStore(uow_factory=factory, clock=clock),
        secrets=Secrets(uow_factory=factory, clock=clock, cipher=FakeCipher()),
        workflows=Workflows(
            uow_factory=factory,
            clock=clock,
            fmt=RyaxWorkflowYaml(),
            files=files,
            file_limits=FileLimits(max_file_bytes=64 * 1024, max_archive_bytes=256 * 1024),
        ),
        deployments=Deployments(uow_factory=factory, clock=clock, cipher=FakeCipher()),
    )


@pytest.fixture
def store() -> dict[ActionRef, ActionVersion]:
    return standard_store()


class Builders:
    """Test builders, handed to tests by the `b` fixture (test modules cannot import conftest)."""

    PROJECT = PROJECT
    T0 = T0
    action = staticmethod(action)
    io = staticmethod(io)
    step = staticmethod(step)
    workflow = staticmethod(workflow)
    demo_workflow = staticmethod(demo_workflow)
    standard_store = staticmethod(standard_store)


@pytest.fixture
def b() -> type[Builders]:
    return Builders
