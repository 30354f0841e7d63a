"""Use cases of the studio: the action store, workflows, secrets, deployments, import/export."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ryax_kit.core.keys import encode_segment

from ..domain.actions import (
    IO,
    ActionKind,
    ActionRef,
    ActionVersion,
    IOType,
    JsonValue,
    ProjectId,
)
from ..domain.builtins import builtin_actions, is_builtin
from ..domain.deployment import (
    Deployment,
    DeploymentId,
    DeploymentState,
    Secret,
    Snapshot,
    SnapshotId,
    VariableKind,
    check_secret,
    check_variable_name,
    take_snapshot,
)
from ..domain.errors import (
    Conflict,
    InvalidDocument,
    InvalidInput,
    InvalidWorkflow,
    NotFound,
    TooLarge,
    Unavailable,
)
from ..domain.problems import Problem
from ..domain.schedules import DEFAULT_MIN_INTERVAL_SECONDS
from ..domain.summary import WorkflowSummary, summarize
from ..domain.validation import validate_workflow
from ..domain.workflow import (
    FileValue,
    InputValue,
    Position,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    Workflow,
    WorkflowId,
    WorkflowResult,
    check_static_size,
    check_workflow_name,
)
from .files import (
    WORKFLOW_FILE,
    FileLimits,
    WorkflowZip,
    check_file_name,
    directory_tar_from_upload,
    file_path_in_zip,
    sha256_of,
    write_workflow_zip,
)
from .ports import (
    Clock,
    FileSpec,
    FileStore,
    ParsedWorkflow,
    SecretCipher,
    UnitOfWork,
    WorkflowFormat,
)

log = logging.getLogger(__name__)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class WorkflowView:
    """A workflow with what the studio knows about it right now."""

    workflow: Workflow
    problems: list[Problem]
    deployment: Deployment | None


@dataclass(frozen=True, kw_only=True)
class WorkflowListItem:
    """A workflow as a list shows it: its latest deployment, its trigger and categories."""

    workflow: Workflow
    deployment: Deployment | None
    summary: WorkflowSummary


class _Base:
    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        #: The smallest interval of a built-in `emitgw` timer (RYAX_STUDIO_MIN_TIMER_INTERVAL).
        self._min_interval = min_interval_seconds

    @staticmethod
    async def _store_for(
        uow: UnitOfWork, project_id: ProjectId, action_ids: Iterable[str]
    ) -> dict[ActionRef, ActionVersion]:
        """The store entries a workflow may use: every version of its actions, and built-ins."""
        found = {a.ref: a for a in await uow.actions.for_ids(project_id, set(action_ids))}
        for builtin in builtin_actions(project_id):
            found[builtin.ref] = builtin
        return found

    async def _problems(self, uow: UnitOfWork, workflow: Workflow) -> list[Problem]:
        """The workflow's problems; on the way, its sensitive values are marked (the static
        values of password-type inputs: sealed at rest, masked when shown)."""
        store = await self._store_for(
            uow, workflow.project_id, (s.action.action_id for s in workflow.steps)
        )
        workflow.mark_sensitive(password_inputs(store))
        secrets, variables = await _project_variables(uow, workflow.project_id)
        return validate_workflow(workflow, store, set(secrets), self._min_interval, variables)

    @staticmethod
    async def _workflow(
        uow: UnitOfWork, project_id: ProjectId, ref: str, for_update: bool = False
    ) -> Workflow:
        """By id, else by name (names are unique in a project)."""
        workflow = await uow.workflows.get(project_id, WorkflowId(ref), for_update)
        if workflow is None:
            workflow = await uow.workflows.get_by_name(project_id, ref, for_update)
        if workflow is None:
            raise NotFound(f"workflow {ref!r} not found")
        return workflow


def password_inputs(store: Mapping[ActionRef, ActionVersion]) -> dict[ActionRef, frozenset[str]]:
    return {
        ref: frozenset(io.name for io in action.inputs if io.type is IOType.PASSWORD)
        for ref, action in store.items()
    }


# ---- the action store --------------------------------------------------------------------------
class ActionStore(_Base):
    """Action versions per project, fed by the repository's ActionReady events."""

    async def register(self, message_id: str, action: ActionVersion) -> bool:
        """Add or update an action version (idempotent: a repeated message is a no-op)."""
        if is_builtin(action.action_id, action.version) or action.builtin:
            raise InvalidInput(
                "action_id",
                f"{action.action_id!r} {action.version!r} is a "
                "built-in action and cannot be replaced",
            )
        async with self._uow() as uow:
            if not await uow.claim_message(message_id):
                return False
            await uow.actions.add(action)
            await uow.commit()
            log.info(
                "action version added to the store",
                extra={
                    "project_id": action.project_id,
                    "action_id": action.action_id,
                    "action_version": action.version,
                },
            )
            return True

    async def search(
        self,
        project_id: ProjectId,
        text: str | None = None,
        category: str | None = None,
        kind: ActionKind | None = None,
    ) -> list[ActionVersion]:
        """Built-ins first, then by action id and version."""
        async with self._uow() as uow:
            stored = await uow.actions.list_for_project(project_id)
        every = [*builtin_actions(project_id), *sorted(stored, key=_version_order)]
        return [a for a in every if a.matches(text, category, kind)]

    async def versions(self, project_id: ProjectId, action_id: str) -> list[ActionVersion]:
        async with self._uow() as uow:
            found = await uow.actions.for_ids(project_id, [action_id])
        found += [a for a in builtin_actions(project_id) if a.action_id == action_id]
        if not found:
            raise NotFound(f"action {action_id!r} not found in the project's store")
        return sorted(found, key=_version_order)

    async def show(self, project_id: ProjectId, action_id: str, version: str) -> ActionVersion:
        for builtin in builtin_actions(project_id):
            if (builtin.action_id, builtin.version) == (action_id, version):
                return builtin
        async with self._uow() as uow:
            action = await uow.actions.get(project_id, action_id, version)
        if action is None:
            raise NotFound(f"action {action_id!r} version {version!r} not found")
        return action

    async def delete(self, project_id: ProjectId, action_id: str, version: str) -> None:
        """Refused while a deployed workflow uses the version; drafts then show an error."""
        if is_builtin(action_id, version):
            raise Conflict(f"{action_id!r} is built in and cannot be deleted")
        async with self._uow() as uow:
            action = await uow.actions.get(project_id, action_id, version)
            if action is None:
                raise NotFound(f"action {action_id!r} version {version!r} not found")
            users: list[str] = []
            for deployment in await uow.deployments.active_in_project(project_id):
                snapshot = await uow.snapshots.get(project_id, deployment.snapshot_id)
                if snapshot is not None and snapshot.uses(action.ref):
                    users.append(f"{snapshot.workflow_name!r} (deployment {deployment.id})")
            if users:
                raise Conflict(
                    f"action {action_id!r} version {version!r} is used by deployed "
                    f"workflow(s) {', '.join(users)}: undeploy them first"
                )
            await uow.actions.delete(action)
            await uow.commit()


def _version_order(action: ActionVersion) -> tuple[str, tuple[tuple[int, int | str], ...]]:
    parts: list[tuple[int, int | str]] = []
    for piece in action.version.replace("-", ".").split("."):
        parts.append((0, int(piece)) if piece.isdigit() else (1, piece))
    return (action.action_id, tuple(parts))


# ---- secrets -----------------------------------------------------------------------------------
class Secrets(_Base):
    """Project secrets: stored encrypted, values never returned."""

    def __init__(
        self, *, uow_factory: Callable[[], UnitOfWork], clock: Clock, cipher: SecretCipher
    ) -> None:
        super().__init__(uow_factory=uow_factory, clock=clock)
        self._cipher = cipher

    async def put(
        self, project_id: ProjectId, name: str, value: str, create_only: bool = False
    ) -> tuple[Secret, bool]:
        """Create or replace; (secret, created)."""
        check_secret(name, value)
        now = self._clock.now()
        async with self._uow() as uow:
            existing = await uow.secrets.get(project_id, name)
            if existing is not None and create_only:
                raise Conflict(f"secret {name!r} already exists")
            secret = Secret(
                project_id=project_id,
                name=name,
                ciphertext=self._cipher.encrypt(project_id, name, value),
                created_at=existing.created_at if existing else now,
                updated_at=now,
            )
            await uow.secrets.add(secret)
            await uow.commit()
            return secret, existing is None

    async def list_all(self, project_id: ProjectId) -> list[Secret]:
        async with self._uow() as uow:
            found = await uow.secrets.list_for_project(project_id)
        return [s for s in found if s.kind is VariableKind.SECRET]

    async def delete(self, project_id: ProjectId, name: str) -> None:
        """Workflows that name it show an error until it exists again; deployed ones keep it."""
        async with self._uow() as uow:
            secret = await uow.secrets.get(project_id, name)
            if secret is None:
                raise NotFound(f"secret {name!r} not found")
            await uow.secrets.delete(secret)
            await uow.commit()


async def _project_variables(
    uow: UnitOfWork, project_id: ProjectId
) -> tuple[dict[str, Secret], dict[str, StaticValue | FileValue]]:
    """The project's secrets by name, and what each value or file variable gives."""
    secrets: dict[str, Secret] = {}
    variables: dict[str, StaticValue | FileValue] = {}
    for v in await uow.secrets.list_for_project(project_id):
        resolved = v.resolved()
        if resolved is None:
            secrets[v.name] = v
        else:
            variables[v.name] = resolved
    return secrets, variables


async def store_static_file(
    files: FileStore | None,
    limits: FileLimits,
    project_id: ProjectId,
    source: Path,
    name: str,
    *,
    directory: bool,
    repack: bool = True,
) -> FileValue:
    """Put a file in the filestore under the project's prefix (a directory: an uploaded
    zip/tar re-packed as the tar workers take, unless `repack` is False: already that tar)."""
    if files is None:
        raise Unavailable("no filestore is configured for static files")
    with tempfile.TemporaryDirectory(prefix="ryax-studio-") as tmp:
        path = source
        if directory and repack:
            path = Path(tmp) / "directory.tar"
            await asyncio.to_thread(directory_tar_from_upload, source, path, limits)
        digest, size = await asyncio.to_thread(sha256_of, path)
        if size > limits.max_file_bytes:
            raise TooLarge(
                f"{name!r} is {size} bytes, more than the {limits.max_file_bytes} "
                "bytes a static file may hold (RYAX_STUDIO_MAX_FILE_BYTES)"
            )
        key = f"projects/{encode_segment(project_id)}/files/{new_id()}/{encode_segment(name)}"
        await files.put_file(key, path)
    log.info(
        "static file stored",
        extra={"project_id": project_id, "key": key, "size": size, "directory": directory},
    )
    return FileValue(key=key, name=name, size=size, sha256=digest, directory=directory)


class ProjectVariables(_Base):
    """Project variables, referenced from steps by name: secrets (encrypted, never shown),
    values (JSON, shown) and files (a static file or directory of the filestore)."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        cipher: SecretCipher,
        files: FileStore | None = None,
        file_limits: FileLimits | None = None,
    ) -> None:
        super().__init__(uow_factory=uow_factory, clock=clock)
        self._cipher = cipher
        self._files = files
        self._limits = file_limits or FileLimits()

    async def _put(self, variable: Secret) -> tuple[Secret, bool]:
        async with self._uow() as uow:
            existing = await uow.secrets.get(variable.project_id, variable.name)
            if existing is not None:
                variable.created_at = existing.created_at
            await uow.secrets.add(variable)
            await uow.commit()
        log.info(
            "project variable set",
            extra={
                "project_id": variable.project_id,
                "variable": variable.name,
                "kind": str(variable.kind),
            },
        )
        return variable, existing is None

    async def set_value(
        self, project_id: ProjectId, name: str, value: JsonValue
    ) -> tuple[Secret, bool]:
        check_variable_name(name)
        if value is None:
            raise InvalidInput("value", "null is not a value: delete the variable instead")
        try:
            check_static_size("value", value)
        except TooLarge as exc:
            raise InvalidInput("value", exc.detail) from exc
        now = self._clock.now()
        return await self._put(
            Secret(
                project_id=project_id,
                name=name,
                kind=VariableKind.VALUE,
                value=value,
                created_at=now,
                updated_at=now,
            )
        )

    async def set_secret(self, project_id: ProjectId, name: str, value: str) -> tuple[Secret, bool]:
        check_secret(name, value)
        now = self._clock.now()
        return await self._put(
            Secret(
                project_id=project_id,
                name=name,
                ciphertext=self._cipher.encrypt(project_id, name, value),
                created_at=now,
                updated_at=now,
            )
        )

    async def set_file(
        self, project_id: ProjectId, name: str, upload: Path, filename: str, *, directory: bool
    ) -> tuple[Secret, bool]:
        check_variable_name(name)
        filename = check_file_name(filename)
        if directory:
            filename = _directory_name(filename)
        value = await store_static_file(
            self._files, self._limits, project_id, upload, filename, directory=directory
        )
        now = self._clock.now()
        return await self._put(
            Secret(
                project_id=project_id,
                name=name,
                kind=VariableKind.FILE,
                file=value,
                created_at=now,
                updated_at=now,
            )
        )

    async def list_all(self, project_id: ProjectId) -> list[Secret]:
        async with self._uow() as uow:
            return await uow.secrets.list_for_project(project_id)

    async def delete(self, project_id: ProjectId, name: str) -> None:
        """Steps that name it show an error until it exists again; deployed ones keep it."""
        async with self._uow() as uow:
            found = await uow.secrets.get(project_id, name)
            if found is None:
                raise NotFound(f"project variable {name!r} not found")
            await uow.secrets.delete(found)
            await uow.commit()


# ---- workflows ---------------------------------------------------------------------------------
class Workflows(_Base):
    """Creating and editing workflows; every answer carries the current problems."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        fmt: WorkflowFormat,
        min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
        files: FileStore | None = None,
        file_limits: FileLimits | None = None,
    ) -> None:
        super().__init__(
            uow_factory=uow_factory, clock=clock, min_interval_seconds=min_interval_seconds
        )
        self._format = fmt
        self._files = files
        self._limits = file_limits or FileLimits()

    def _filestore(self) -> FileStore:
        if self._files is None:
            raise Unavailable("no filestore is configured for static files")
        return self._files

    async def _view(self, uow: UnitOfWork, workflow: Workflow) -> WorkflowView:
        return WorkflowView(
            workflow=workflow,
            problems=await self._problems(uow, workflow),
            deployment=await uow.deployments.latest_for_workflow(workflow.project_id, workflow.id),
        )

    @staticmethod
    async def _ensure_name_free(uow: UnitOfWork, project_id: ProjectId, name: str) -> None:
        if await uow.workflows.get_by_name(project_id, name) is not None:
            raise Conflict(f"a workflow named {name!r} already exists in this project")

    async def create(self, project_id: ProjectId, name: str, description: str = "") -> WorkflowView:
        check_workflow_name(name)
        now = self._clock.now()
        workflow = Workflow(
            id=WorkflowId(new_id()),
            project_id=project_id,
            name=name,
            created_at=now,
            updated_at=now,
        )
        workflow.set_description(description, now)
        async with self._uow() as uow:
            await self._ensure_name_free(uow, project_id, name)
            await uow.workflows.add(workflow)
            view = await self._view(uow, workflow)
            await uow.commit()
            return view

    async def list_all(self, project_id: ProjectId) -> list[WorkflowListItem]:
        """Each workflow with its latest deployment and its summary (trigger, categories): one
        read of the workflows, one of their latest deployments, one of the store for every
        workflow's actions, whatever the number of workflows."""
        async with self._uow() as uow:
            workflows = await uow.workflows.list_for_project(project_id)
            store = await self._store_for(
                uow, project_id, (s.action.action_id for w in workflows for s in w.steps)
            )
            latest = await uow.deployments.latest_per_workflow(project_id)
            return [
                WorkflowListItem(
                    workflow=w,
                    deployment=latest.get(w.id),
                    summary=summarize(w, store),
                )
                for w in workflows
            ]

    async def show(self, project_id: ProjectId, ref: str) -> WorkflowView:
        async with self._uow() as uow:
            return await self._view(uow, await self._workflow(uow, project_id, ref))

    async def problems(self, project_id: ProjectId, ref: str) -> list[Problem]:
        async with self._uow() as uow:
            return await self._problems(uow, await self._workflow(uow, project_id, ref))

    async def _edit(
        self,
        project_id: ProjectId,
        ref: str,
        change: Callable[[UnitOfWork, Workflow], Awaitable[None] | None],
    ) -> WorkflowView:
        """Lock the workflow, apply one change, answer with the new state and its problems."""
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref, for_update=True)
            result = change(uow, workflow)
            if inspect.isawaitable(result):
                await result
            view = await self._view(uow, workflow)
            await uow.commit()
            return view

    async def update(
        self, project_id: ProjectId, ref: str, name: str | None, description: str | None
    ) -> WorkflowView:
        """Rename and/or describe."""
        now = self._clock.now()

        async def change(uow: UnitOfWork, w: Workflow) -> None:
            if name is not None and name != w.name:
                await self._ensure_name_free(uow, project_id, name)
                w.rename(name, now)
            if description is not None:
                w.set_description(description, now)

        return await self._edit(project_id, ref, change)

    async def copy(self, project_id: ProjectId, ref: str, name: str) -> WorkflowView:
        now = self._clock.now()
        async with self._uow() as uow:
            source = await self._workflow(uow, project_id, ref)
            await self._ensure_name_free(uow, project_id, name)
            workflow = source.copy(WorkflowId(new_id()), name, now)
            await uow.workflows.add(workflow)
            view = await self._view(uow, workflow)
            await uow.commit()
            return view

    async def delete(self, project_id: ProjectId, ref: str) -> None:
        """Refused while deployed; its snapshots stay (runs refer to them)."""
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref, for_update=True)
            current = await uow.deployments.latest_for_workflow(project_id, workflow.id)
            if current is not None and current.active:
                raise Conflict(
                    f"workflow {workflow.name!r} is deployed (state {current.state}):"
                    " undeploy it first"
                )
            await uow.workflows.delete(workflow)
            await uow.commit()

    # ---- steps ---------------------------------------------------------------------------------
    async def add_step(
        self,
        project_id: ProjectId,
        ref: str,
        *,
        step_id: str,
        action_id: str,
        version: str,
        human_name: str | None = None,
        position: Position | None = None,
    ) -> WorkflowView:
        """The action version must be in the store when the step is added."""
        now = self._clock.now()

        async def change(uow: UnitOfWork, w: Workflow) -> None:
            store = await self._store_for(uow, project_id, [action_id])
            target = ActionRef(action_id=action_id, version=version)
            if target not in store:
                raise NotFound(
                    f"action {action_id!r} version {version!r} is not in the project's store"
                )
            w.add_step(
                Step(id=step_id, action=target, human_name=human_name, position=position),
                now,
                trigger=store[target].kind is ActionKind.TRIGGER,
            )

        return await self._edit(project_id, ref, change)

    async def update_step(
        self,
        project_id: ProjectId,
        ref: str,
        step_id: str,
        *,
        human_name: str | None = None,
        clear_human_name: bool = False,
        version: str | None = None,
        position: Position | None = None,
    ) -> WorkflowView:
        """Display name, editor position, or another version of the same action."""
        now = self._clock.now()

        async def change(uow: UnitOfWork, w: Workflow) -> None:
            step = w.step(step_id)
            if human_name is not None or clear_human_name:
                w.rename_step(step_id, human_name, now)
            if position is not None:
                w.move_step(step_id, position, now)
            if version is not None:
                store = await self._store_for(uow, project_id, [step.action.action_id])
                target = ActionRef(action_id=step.action.action_id, version=version)
                if target not in store:
                    raise NotFound(
                        f"action {target.action_id!r} version {version!r} is not "
                        "in the project's store"
                    )
                w.change_action(step_id, target, now)

        return await self._edit(project_id, ref, change)

    async def remove_step(self, project_id: ProjectId, ref: str, step_id: str) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(project_id, ref, lambda _, w: w.remove_step(step_id, now))

    async def set_input(
        self, project_id: ProjectId, ref: str, step_id: str, name: str, value: InputValue
    ) -> WorkflowView:
        """Any value is kept; the answer's problems say whether it fits the input."""
        now = self._clock.now()
        return await self._edit(
            project_id, ref, lambda _, w: w.set_input(step_id, name, value, now)
        )

    async def unset_input(
        self, project_id: ProjectId, ref: str, step_id: str, name: str
    ) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(project_id, ref, lambda _, w: w.unset_input(step_id, name, now))

    async def set_outputs(
        self, project_id: ProjectId, ref: str, step_id: str, outputs: tuple[IO, ...]
    ) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(project_id, ref, lambda _, w: w.set_outputs(step_id, outputs, now))

    async def set_settings(
        self, project_id: ProjectId, ref: str, step_id: str, settings: StepSettings
    ) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(
            project_id, ref, lambda _, w: w.set_settings(step_id, settings, now)
        )

    async def add_link(
        self, project_id: ProjectId, ref: str, from_step: str, to_step: str
    ) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(project_id, ref, lambda _, w: w.add_link(from_step, to_step, now))

    async def remove_link(
        self, project_id: ProjectId, ref: str, from_step: str, to_step: str
    ) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(
            project_id, ref, lambda _, w: w.remove_link(from_step, to_step, now)
        )

    async def set_results(
        self, project_id: ProjectId, ref: str, results: list[WorkflowResult]
    ) -> WorkflowView:
        now = self._clock.now()
        return await self._edit(project_id, ref, lambda _, w: w.set_results(results, now))

    # ---- static files ----------------------------------------------------------------------
    async def set_input_file(
        self,
        project_id: ProjectId,
        ref: str,
        step_id: str,
        name: str,
        upload: Path,
        filename: str,
    ) -> WorkflowView:
        """Store an uploaded file (a file input) or a zip/tar of a directory's contents (a
        directory input) in the filestore under the project's prefix; the input holds it."""
        filename = check_file_name(filename)
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref)
            step = workflow.step(step_id)
            store = await self._store_for(uow, project_id, [step.action.action_id])
        action = store.get(step.action)
        if action is None:
            raise NotFound(
                f"step {step_id!r}: action {step.action.action_id!r} version "
                f"{step.action.version!r} is not in the store, so its input types are unknown"
            )
        io = next((i for i in action.inputs if i.name == name), None)
        if io is None:
            raise NotFound(f"step {step_id!r}: action {action.action_id!r} has no input {name!r}")
        if io.type not in (IOType.FILE, IOType.DIRECTORY):
            raise InvalidInput(
                name, f"a {io.type} input takes no file (only file and directory inputs do)"
            )
        directory = io.type is IOType.DIRECTORY
        if directory:
            filename = _directory_name(filename)
        value = await self._store_file(project_id, upload, filename, directory=directory)
        now = self._clock.now()
        return await self._edit(
            project_id, ref, lambda _, w: w.set_input(step_id, name, value, now)
        )

    async def _store_file(
        self, project_id: ProjectId, source: Path, name: str, *, directory: bool
    ) -> FileValue:
        return await store_static_file(
            self._files, self._limits, project_id, source, name, directory=directory
        )

    # ---- import / export -----------------------------------------------------------------------
    async def import_document(
        self,
        project_id: ProjectId,
        data: bytes,
        *,
        draft: bool = False,
        name: str | None = None,
    ) -> WorkflowView:
        """All or nothing: every problem with its line, nothing saved unless the whole document
        is accepted. A draft import keeps a workflow whose problems are only about validity.
        A bare document cannot hold static files: those need the workflow zip."""
        parsed = self._format.parse(data)
        return await self._import(project_id, parsed, None, draft=draft, name=name)

    async def import_archive(
        self,
        project_id: ProjectId,
        archive: Path,
        *,
        draft: bool = False,
        name: str | None = None,
    ) -> WorkflowView:
        """A workflow zip: `workflow.yaml` and the static files it names (same rules)."""
        zipped = await asyncio.to_thread(WorkflowZip, archive, self._limits)
        with zipped:
            data = await asyncio.to_thread(zipped.read_document)
            try:
                parsed = self._format.parse(data)
            except InvalidDocument as exc:
                raise InvalidDocument(
                    [dataclasses.replace(p, file=WORKFLOW_FILE) for p in exc.problems], exc.code
                ) from exc
            return await self._import(project_id, parsed, zipped, draft=draft, name=name)

    def _file_problems(
        self, parsed: ParsedWorkflow, zipped: WorkflowZip | None, keep: Workflow | None = None
    ) -> list[Problem]:
        problems: list[Problem] = []
        for (step_id, input_name), spec in parsed.files.items():
            if keep is not None and _kept_file(keep, step_id, input_name, spec) is not None:
                continue
            kind = "directory" if spec.directory else "file"
            if zipped is None:
                message = (
                    f"{spec.where}: the static {kind} {spec.path!r} is not in a bare document: "
                    "import the workflow zip that holds it, or remove the value and upload the "
                    f"{kind} to the step"
                )
            elif (spec.directory and zipped.has_directory(spec.path)) or (
                not spec.directory and zipped.has_file(spec.path)
            ):
                continue
            else:
                message = f"{spec.where}: the static {kind} {spec.path!r} is not in the zip"
            problems.append(
                Problem(
                    code="missing_file",
                    message=message,
                    step_id=step_id,
                    input_name=input_name,
                    location=("step", step_id, "inputs_values", input_name),
                    line=spec.line,
                    path=spec.where,
                    file=WORKFLOW_FILE if zipped is not None else None,
                )
            )
        return problems

    async def _import(
        self,
        project_id: ProjectId,
        parsed: ParsedWorkflow,
        zipped: WorkflowZip | None,
        *,
        draft: bool,
        name: str | None,
    ) -> WorkflowView:
        in_zip = WORKFLOW_FILE if zipped is not None else None
        now = self._clock.now()
        workflow = Workflow(
            id=WorkflowId(new_id()),
            project_id=project_id,
            name=name or parsed.name,
            description=parsed.description,
            steps=parsed.steps,
            results=parsed.results,
            created_at=now,
            updated_at=now,
        )
        try:
            check_workflow_name(workflow.name)
        except InvalidInput as exc:
            raise InvalidWorkflow(
                [
                    _with_line(
                        Problem(
                            code="invalid_name",
                            message=exc.detail,
                            location=("name",),
                            file=in_zip,
                        ),
                        parsed.lines,
                    )
                ],
                "the document cannot be imported",
            ) from exc
        async with self._uow() as uow:
            problems = [_with_line(p, parsed.lines) for p in await self._problems(uow, workflow)]
            blocking = _blocking(
                [*parsed.problems, *self._file_problems(parsed, zipped)], problems, draft
            )
            if blocking:
                raise InvalidWorkflow(
                    [dataclasses.replace(p, file=p.file or in_zip) for p in blocking],
                    "the document cannot be imported",
                )
            await self._ensure_name_free(uow, project_id, workflow.name)
        if zipped is not None:
            await self._store_zip_files(project_id, workflow, parsed, zipped)
        async with self._uow() as uow:
            await self._ensure_name_free(uow, project_id, workflow.name)
            await uow.workflows.add(workflow)
            view = WorkflowView(workflow=workflow, problems=problems, deployment=None)
            await uow.commit()
            return view

    async def _store_zip_files(
        self, project_id: ProjectId, workflow: Workflow, parsed: ParsedWorkflow, zipped: WorkflowZip
    ) -> None:
        """Each static value the document names, from the zip to the filestore."""
        with tempfile.TemporaryDirectory(prefix="ryax-studio-zip-") as tmp:
            for i, ((step_id, input_name), spec) in enumerate(parsed.files.items()):
                local = Path(tmp) / f"{i}.bin"
                if spec.directory:
                    await asyncio.to_thread(zipped.directory_tar, spec.path, local)
                    name = spec.path.rstrip("/").rsplit("/", 1)[-1]
                else:
                    await asyncio.to_thread(zipped.extract_file, spec.path, local)
                    name = spec.path.rsplit("/", 1)[-1]
                value = await self._store_file_as_is(project_id, local, name, spec.directory)
                local.unlink(missing_ok=True)
                workflow.step(step_id).inputs[input_name] = value

    async def _store_file_as_is(
        self, project_id: ProjectId, path: Path, name: str, directory: bool
    ) -> FileValue:
        return await store_static_file(
            self._files, self._limits, project_id, path, name, directory=directory, repack=False
        )

    async def replace_document(
        self, project_id: ProjectId, ref: str, data: bytes, *, draft: bool = False
    ) -> WorkflowView:
        """Replace a workflow's definition with a document (same all-or-nothing rules). A
        static file named at the path an export gives it keeps the stored file."""
        parsed = self._format.parse(data)
        now = self._clock.now()
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref, for_update=True)
            candidate = Workflow(
                id=workflow.id,
                project_id=project_id,
                name=parsed.name,
                description=parsed.description,
                steps=parsed.steps,
                results=parsed.results,
                created_at=workflow.created_at,
                updated_at=now,
            )
            candidate.keep_masked(workflow)
            for (step_id, input_name), spec in parsed.files.items():
                kept = _kept_file(workflow, step_id, input_name, spec)
                if kept is not None:
                    candidate.step(step_id).inputs[input_name] = kept
            try:
                check_workflow_name(candidate.name)
            except InvalidInput as exc:
                problem = Problem(code="invalid_name", message=exc.detail, location=("name",))
                raise InvalidWorkflow(
                    [_with_line(problem, parsed.lines)], "the document cannot be imported"
                ) from exc
            problems = [_with_line(p, parsed.lines) for p in await self._problems(uow, candidate)]
            blocking = _blocking(
                [*parsed.problems, *self._file_problems(parsed, None, keep=workflow)],
                problems,
                draft,
            )
            if blocking:
                raise InvalidWorkflow(blocking, "the document cannot be imported")
            if candidate.name != workflow.name:
                await self._ensure_name_free(uow, project_id, candidate.name)
            workflow.name, workflow.description = candidate.name, candidate.description
            workflow.steps, workflow.results = candidate.steps, candidate.results
            workflow.updated_at = now
            view = await self._view(uow, workflow)
            await uow.commit()
            return view

    async def export_document(self, project_id: ProjectId, ref: str) -> tuple[Workflow, str]:
        """Sensitive values are exported as MASK (given back, they keep the stored value)."""
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref)
            await self._problems(uow, workflow)  # marks what is sensitive
        return workflow, self._format.render(workflow.masked())

    async def export_archive(self, project_id: ProjectId, ref: str, destination: Path) -> Workflow:
        """The workflow zip: `workflow.yaml` and every static file at the path it names."""
        workflow, text = await self.export_document(project_id, ref)
        store = self._filestore() if _file_values(workflow) else None
        with tempfile.TemporaryDirectory(prefix="ryax-studio-export-") as tmp:
            files: list[tuple[str, Path, bool]] = []
            for i, (step_id, input_name, value) in enumerate(_file_values(workflow)):
                local = Path(tmp) / f"{i}.bin"
                assert store is not None
                await store.download(value.key, local)
                files.append((file_path_in_zip(step_id, input_name, value), local, value.directory))
            await asyncio.to_thread(write_workflow_zip, destination, text, files)
        return workflow

    async def export_snapshot(
        self, project_id: ProjectId, snapshot_id: str
    ) -> tuple[Snapshot, str]:
        async with self._uow() as uow:
            snapshot = await uow.snapshots.get(project_id, SnapshotId(snapshot_id))
        if snapshot is None:
            raise NotFound(f"snapshot {snapshot_id!r} not found")
        return snapshot, self._format.render(snapshot.definition.masked())


_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")


def _directory_name(filename: str) -> str:
    """A directory uploaded as `data.zip` or `data.tar.gz` is named `data`."""
    lower = filename.lower()
    for suffix in _ARCHIVE_SUFFIXES:
        if lower.endswith(suffix) and len(filename) > len(suffix):
            return filename[: -len(suffix)]
    return filename


def _file_values(workflow: Workflow) -> list[tuple[str, str, FileValue]]:
    return [
        (step.id, name, value)
        for step in workflow.steps
        for name, value in step.inputs.items()
        if isinstance(value, FileValue)
    ]


def _kept_file(
    workflow: Workflow, step_id: str, input_name: str, spec: FileSpec
) -> FileValue | None:
    """The stored value a document names by the path an export gave it, if any."""
    step = workflow.find_step(step_id)
    current = step.inputs.get(input_name) if step is not None else None
    if (
        isinstance(current, FileValue)
        and current.directory == spec.directory
        and file_path_in_zip(step_id, input_name, current).rstrip("/") == spec.path.rstrip("/")
    ):
        return current
    return None


#: Problems a draft import still refuses: the document itself is broken, not just incomplete.
_STRUCTURAL = frozenset(
    {
        "too_many_steps",
        "too_many_inputs",
        "too_many_outputs",
        "value_too_large",
        "invalid_step_id",
        "duplicate_step",
        "duplicate_link",
        "self_link",
        "dangling_link",
        "duplicate_output",
        "duplicate_result",
    }
)


def _blocking(
    format_problems: Sequence[Problem], problems: list[Problem], draft: bool
) -> list[Problem]:
    """Everything refuses an import, except, for a draft, what only makes it not yet valid."""
    kept = problems if not draft else [p for p in problems if p.code in _STRUCTURAL]
    return sorted([*format_problems, *kept], key=lambda p: p.line or 0)


def _with_line(problem: Problem, lines: Mapping[tuple[str | int, ...], tuple[int, str]]) -> Problem:
    """Point at the most precise part of the document found (the input, else its step...)."""
    location = problem.location
    while location:
        found = lines.get(location)
        if found is not None:
            return dataclasses.replace(problem, line=found[0], path=found[1])
        location = location[:-1]
    return problem


# ---- deployments -------------------------------------------------------------------------------
class Deployments(_Base):
    """Deploy and undeploy requests (through the outbox) and the states the runner reports."""

    def __init__(
        self,
        *,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        cipher: SecretCipher,
        min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(
            uow_factory=uow_factory, clock=clock, min_interval_seconds=min_interval_seconds
        )
        self._cipher = cipher

    async def deploy(self, project_id: ProjectId, ref: str, requested_by: str) -> Deployment:
        """Snapshot the valid workflow and ask the runner to deploy it; 409 when deployed."""
        now = self._clock.now()
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref, for_update=True)
            current = await uow.deployments.latest_for_workflow(project_id, workflow.id)
            if current is not None and current.active:
                raise Conflict(
                    f"workflow {workflow.name!r} is already deployed (deployment "
                    f"{current.id}, state {current.state}): undeploy it first"
                )
            store = await self._store_for(
                uow, project_id, (s.action.action_id for s in workflow.steps)
            )
            secrets, variables = await _project_variables(uow, project_id)
            workflow.mark_sensitive(password_inputs(store))
            snapshot = take_snapshot(
                workflow,
                store,
                set(secrets),
                SnapshotId(new_id()),
                now,
                self._min_interval,
                variables,
            )
            values: dict[tuple[str, str], JsonValue] = {}
            for step_id, name, value in snapshot.sensitive_inputs():
                if isinstance(value, SecretValue):
                    secret = secrets[value.name]
                    values[(step_id, name)] = self._cipher.decrypt(
                        project_id, value.name, secret.ciphertext
                    )
                elif isinstance(value, StaticValue):
                    values[(step_id, name)] = value.value
            deployment = Deployment.request(
                deployment_id=DeploymentId(new_id()),
                event_id=new_id(),
                snapshot=snapshot,
                current=current,
                values=values,
                requested_by=requested_by,
                now=now,
            )
            await uow.snapshots.add(snapshot)
            await uow.deployments.add(deployment)
            await uow.commit()
            log.info(
                "deploy requested",
                extra={
                    "project_id": project_id,
                    "workflow_id": workflow.id,
                    "deployment_id": deployment.id,
                    "snapshot_id": snapshot.id,
                },
            )
            return deployment

    async def values_for_runner(
        self, deployment_id: str
    ) -> tuple[Deployment, Mapping[tuple[str, str], JsonValue]]:
        """The values of a deployment's secrets and password-type inputs, for the runner only
        (the internal route): those frozen when it was requested. 404 for an unknown
        deployment, 409 once it is no longer active (the runner has them by then)."""
        async with self._uow() as uow:
            deployment = await uow.deployments.get(DeploymentId(deployment_id))
            if deployment is None:
                raise NotFound(f"deployment {deployment_id!r} not found")
            if not deployment.active:
                raise Conflict(f"deployment {deployment_id} is {deployment.state}")
            values = await uow.deployments.values_of(deployment.id)
        log.info(
            "deployment values given to the runner",
            extra={"deployment_id": deployment_id, "values": len(values)},
        )
        return deployment, values

    async def undeploy(self, project_id: ProjectId, ref: str, requested_by: str) -> Deployment:
        now = self._clock.now()
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref, for_update=True)
            current = await uow.deployments.latest_for_workflow(project_id, workflow.id)
            if current is None:
                raise Conflict(f"workflow {workflow.name!r} is not deployed")
            current.request_undeploy(new_id(), requested_by, now)
            await uow.commit()
            return current

    async def list_for_workflow(self, project_id: ProjectId, ref: str) -> list[Deployment]:
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref)
            return await uow.deployments.list_for_workflow(project_id, workflow.id)

    async def snapshots(self, project_id: ProjectId, ref: str) -> list[Snapshot]:
        async with self._uow() as uow:
            workflow = await self._workflow(uow, project_id, ref)
            return await uow.snapshots.list_for_workflow(project_id, workflow.id)

    async def snapshot(self, project_id: ProjectId, snapshot_id: str) -> Snapshot:
        async with self._uow() as uow:
            found = await uow.snapshots.get(project_id, SnapshotId(snapshot_id))
        if found is None:
            raise NotFound(f"snapshot {snapshot_id!r} not found")
        return found

    async def apply_state(
        self,
        message_id: str,
        *,
        deployment_id: str,
        project_id: str,
        state: str,
        reason: str,
        seq: int,
        at: datetime | None,
    ) -> bool:
        """Follow the runner: apply a state change once, and never an older one."""
        try:
            new_state = DeploymentState(state)
        except ValueError as exc:
            raise InvalidInput("state", f"unknown deployment state {state!r}") from exc
        if new_state is DeploymentState.REQUESTED:
            raise InvalidInput("state", "the runner cannot report 'requested'")
        async with self._uow() as uow:
            if not await uow.claim_message(message_id):
                return False
            deployment = await uow.deployments.get(DeploymentId(deployment_id))
            if deployment is None or deployment.project_id != project_id:
                log.warning(
                    "state change for an unknown deployment ignored",
                    extra={"deployment_id": deployment_id, "state": state},
                )
                await uow.commit()
                return False
            applied = deployment.apply_state(new_state, reason, seq, at or self._clock.now())
            await uow.commit()
            return applied
