"""SQL repositories. Aggregates handed out are tracked (`seen`); the unit of work saves them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from ...domain.actions import ActionKind, ActionVersion, JsonValue, ProjectId
from ...domain.deployment import (
    Deployment,
    DeploymentId,
    DeploymentState,
    Secret,
    Snapshot,
    SnapshotId,
    VariableKind,
)
from ...domain.errors import TooLarge
from ...domain.workflow import MAX_DEFINITION_BYTES, FileValue, Workflow, WorkflowId
from .documents import (
    ValueBox,
    definition_to_doc,
    io_from_doc,
    io_to_doc,
    resources_from_doc,
    resources_to_doc,
    snapshot_from_row,
    snapshot_to_doc,
    workflow_from_row,
)
from .tables import (
    ACTIVE_STATES_SQL,
    actions,
    deployment_values,
    deployments,
    secrets,
    snapshots,
    workflows,
)


def _action(row: Any) -> ActionVersion:
    return ActionVersion(
        project_id=ProjectId(row.project_id),
        action_id=row.action_id,
        version=row.version,
        kind=ActionKind(row.kind),
        human_name=row.human_name,
        description=row.description,
        type=row.type,
        categories=tuple(row.categories),
        inputs=tuple(io_from_doc(i) for i in row.inputs),
        outputs=tuple(io_from_doc(o) for o in row.outputs),
        resources=resources_from_doc(row.resources),
        artefact_key=row.artefact_key,
        artefact_sha256=row.artefact_sha256,
        logo=row.logo,
        logo_media_type=row.logo_media_type,
        repository_id=row.repository_id,
        source_commit=row.source_commit,
        build_id=row.build_id,
        ready_at=row.ready_at,
    )


class SqlAlchemyActionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, action: ActionVersion) -> None:
        values = {
            "project_id": action.project_id,
            "action_id": action.action_id,
            "version": action.version,
            "kind": str(action.kind),
            "human_name": action.human_name,
            "description": action.description,
            "type": action.type,
            "categories": list(action.categories),
            "inputs": [io_to_doc(i) for i in action.inputs],
            "outputs": [io_to_doc(o) for o in action.outputs],
            "resources": resources_to_doc(action.resources),
            "artefact_key": action.artefact_key,
            "artefact_sha256": action.artefact_sha256,
            "logo": action.logo,
            "logo_media_type": action.logo_media_type,
            "repository_id": action.repository_id,
            "source_commit": action.source_commit,
            "build_id": action.build_id,
            "ready_at": action.ready_at,
        }
        stmt = insert(actions).values(**values)
        await self._session.execute(
            stmt.on_conflict_do_update(
                index_elements=[actions.c.project_id, actions.c.action_id, actions.c.version],
                set_=values,
            )
        )

    async def get(
        self, project_id: ProjectId, action_id: str, version: str
    ) -> ActionVersion | None:
        row = (
            await self._session.execute(
                sa.select(actions).where(
                    actions.c.project_id == project_id,
                    actions.c.action_id == action_id,
                    actions.c.version == version,
                )
            )
        ).first()
        return _action(row) if row else None

    async def list_for_project(self, project_id: ProjectId) -> list[ActionVersion]:
        rows = (
            await self._session.execute(
                sa.select(actions)
                .where(actions.c.project_id == project_id)
                .order_by(actions.c.action_id, actions.c.version)
            )
        ).all()
        return [_action(r) for r in rows]

    async def for_ids(
        self, project_id: ProjectId, action_ids: Iterable[str]
    ) -> list[ActionVersion]:
        ids = sorted(set(action_ids))
        if not ids:
            return []
        rows = (
            await self._session.execute(
                sa.select(actions)
                .where(actions.c.project_id == project_id, actions.c.action_id.in_(ids))
                .order_by(actions.c.action_id, actions.c.version)
            )
        ).all()
        return [_action(r) for r in rows]

    async def delete(self, action: ActionVersion) -> None:
        await self._session.execute(
            sa.delete(actions).where(
                actions.c.project_id == action.project_id,
                actions.c.action_id == action.action_id,
                actions.c.version == action.version,
            )
        )


class SqlAlchemyWorkflowRepository:
    def __init__(self, session: AsyncSession, box: ValueBox) -> None:
        self._session = session
        self._box = box
        self.seen: dict[WorkflowId, Workflow] = {}

    def _track(self, row: Any) -> Workflow | None:
        if row is None:
            return None
        workflow = workflow_from_row(row, self._box)
        self.seen[workflow.id] = workflow
        return workflow

    async def add(self, workflow: Workflow) -> None:
        self.seen[workflow.id] = workflow

    async def get(
        self, project_id: ProjectId, workflow_id: WorkflowId, for_update: bool = False
    ) -> Workflow | None:
        query = sa.select(workflows).where(
            workflows.c.project_id == project_id, workflows.c.id == workflow_id
        )
        if for_update:
            query = query.with_for_update()
        return self._track((await self._session.execute(query)).first())

    async def get_by_name(
        self, project_id: ProjectId, name: str, for_update: bool = False
    ) -> Workflow | None:
        query = sa.select(workflows).where(
            workflows.c.project_id == project_id, workflows.c.name == name
        )
        if for_update:
            query = query.with_for_update()
        return self._track((await self._session.execute(query)).first())

    async def list_for_project(self, project_id: ProjectId) -> list[Workflow]:
        rows = (
            await self._session.execute(
                sa.select(workflows)
                .where(workflows.c.project_id == project_id)
                .order_by(workflows.c.name)
            )
        ).all()
        return [workflow_from_row(r, self._box) for r in rows]

    async def delete(self, workflow: Workflow) -> None:
        self.seen.pop(workflow.id, None)
        await self._session.execute(sa.delete(workflows).where(workflows.c.id == workflow.id))

    async def save(self) -> None:
        for w in self.seen.values():
            definition = definition_to_doc(w, self._box)
            size = len(json.dumps(definition).encode()) + len(w.description.encode())
            if size > MAX_DEFINITION_BYTES:
                raise TooLarge(
                    f"workflow {w.name!r}: its definition is {size} bytes, more than the "
                    f"{MAX_DEFINITION_BYTES} bytes a workflow may hold"
                )
            values = {
                "id": w.id,
                "project_id": w.project_id,
                "name": w.name,
                "description": w.description,
                "definition": definition,
                "created_at": w.created_at,
                "updated_at": w.updated_at,
            }
            stmt = insert(workflows).values(**values)
            await self._session.execute(
                stmt.on_conflict_do_update(index_elements=[workflows.c.id], set_=values)
            )


def _secret(row: Any) -> Secret:
    kind = VariableKind(row.kind)
    doc = row.value or {}
    return Secret(
        project_id=ProjectId(row.project_id),
        name=row.name,
        ciphertext=row.ciphertext or b"",
        created_at=row.created_at,
        updated_at=row.updated_at,
        kind=kind,
        value=doc.get("value") if kind is VariableKind.VALUE else None,
        file=_file_from_doc(doc["file"]) if kind is VariableKind.FILE else None,
    )


def _file_from_doc(f: dict[str, Any]) -> FileValue:
    return FileValue(
        key=f["key"],
        name=f["name"],
        size=int(f["size"]),
        sha256=f["sha256"],
        directory=bool(f.get("directory", False)),
    )


def _variable_doc(secret: Secret) -> dict[str, Any] | None:
    if secret.kind is VariableKind.VALUE:
        return {"value": secret.value}
    if secret.kind is VariableKind.FILE and secret.file is not None:
        f = secret.file
        return {
            "file": {
                "key": f.key,
                "name": f.name,
                "size": f.size,
                "sha256": f.sha256,
                "directory": f.directory,
            }
        }
    return None


class SqlAlchemySecretRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, secret: Secret) -> None:
        values = {
            "project_id": secret.project_id,
            "name": secret.name,
            "ciphertext": secret.ciphertext if secret.kind is VariableKind.SECRET else None,
            "created_at": secret.created_at,
            "updated_at": secret.updated_at,
            "kind": str(secret.kind),
            "value": _variable_doc(secret),
        }
        stmt = insert(secrets).values(**values)
        await self._session.execute(
            stmt.on_conflict_do_update(
                index_elements=[secrets.c.project_id, secrets.c.name], set_=values
            )
        )

    async def get(self, project_id: ProjectId, name: str) -> Secret | None:
        row = (
            await self._session.execute(
                sa.select(secrets).where(secrets.c.project_id == project_id, secrets.c.name == name)
            )
        ).first()
        return _secret(row) if row else None

    async def list_for_project(self, project_id: ProjectId) -> list[Secret]:
        rows = (
            await self._session.execute(
                sa.select(secrets)
                .where(secrets.c.project_id == project_id)
                .order_by(secrets.c.name)
            )
        ).all()
        return [_secret(r) for r in rows]

    async def delete(self, secret: Secret) -> None:
        await self._session.execute(
            sa.delete(secrets).where(
                secrets.c.project_id == secret.project_id, secrets.c.name == secret.name
            )
        )


class SqlAlchemySnapshotRepository:
    def __init__(self, session: AsyncSession, box: ValueBox) -> None:
        self._session = session
        self._box = box

    async def add(self, snapshot: Snapshot) -> None:
        await self._session.execute(
            sa.insert(snapshots).values(
                id=snapshot.id,
                project_id=snapshot.project_id,
                workflow_id=snapshot.workflow_id,
                workflow_name=snapshot.workflow_name,
                created_at=snapshot.created_at,
                document=snapshot_to_doc(snapshot, self._box),
            )
        )

    async def get(self, project_id: ProjectId, snapshot_id: SnapshotId) -> Snapshot | None:
        row = (
            await self._session.execute(
                sa.select(snapshots).where(
                    snapshots.c.project_id == project_id, snapshots.c.id == snapshot_id
                )
            )
        ).first()
        return snapshot_from_row(row, self._box) if row else None

    async def list_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> list[Snapshot]:
        rows = (
            await self._session.execute(
                sa.select(snapshots)
                .where(snapshots.c.project_id == project_id, snapshots.c.workflow_id == workflow_id)
                .order_by(snapshots.c.created_at.desc())
            )
        ).all()
        return [snapshot_from_row(r, self._box) for r in rows]


def _deployment(row: Any) -> Deployment:
    return Deployment(
        id=DeploymentId(row.id),
        project_id=ProjectId(row.project_id),
        workflow_id=WorkflowId(row.workflow_id),
        snapshot_id=SnapshotId(row.snapshot_id),
        state=DeploymentState(row.state),
        reason=row.reason,
        state_seq=row.state_seq,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        updated_at=row.updated_at,
    )


class DeploymentValuesBox(Protocol):
    def seal_deployment_values(
        self, deployment_id: str, values: Mapping[tuple[str, str], JsonValue]
    ) -> bytes: ...

    def open_deployment_values(
        self, deployment_id: str, sealed: bytes
    ) -> dict[tuple[str, str], JsonValue]: ...


class SqlAlchemyDeploymentRepository:
    def __init__(self, session: AsyncSession, box: DeploymentValuesBox) -> None:
        self._session = session
        self._box = box
        self.seen: dict[DeploymentId, Deployment] = {}

    def _track(self, rows: Iterable[Any]) -> list[Deployment]:
        result = []
        for row in rows:
            found = self.seen.get(DeploymentId(row.id))
            if found is None:
                found = _deployment(row)
                self.seen[found.id] = found
            result.append(found)
        return result

    async def add(self, deployment: Deployment) -> None:
        self.seen[deployment.id] = deployment

    async def get(self, deployment_id: DeploymentId) -> Deployment | None:
        rows = (
            await self._session.execute(
                sa.select(deployments).where(deployments.c.id == deployment_id).with_for_update()
            )
        ).all()
        found = self._track(rows)
        return found[0] if found else None

    async def latest_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> Deployment | None:
        rows = (
            await self._session.execute(
                sa.select(deployments)
                .where(
                    deployments.c.project_id == project_id, deployments.c.workflow_id == workflow_id
                )
                .order_by(deployments.c.requested_at.desc(), deployments.c.id.desc())
                .limit(1)
            )
        ).all()
        found = self._track(rows)
        return found[0] if found else None

    async def latest_per_workflow(self, project_id: ProjectId) -> dict[WorkflowId, Deployment]:
        # DISTINCT ON keeps the first row of each workflow in this order: its latest.
        rows = (
            await self._session.execute(
                sa.select(deployments)
                .where(deployments.c.project_id == project_id)
                .ext(distinct_on(deployments.c.workflow_id))
                .order_by(
                    deployments.c.workflow_id,
                    deployments.c.requested_at.desc(),
                    deployments.c.id.desc(),
                )
            )
        ).all()
        return {d.workflow_id: d for d in self._track(rows)}

    async def list_for_workflow(
        self, project_id: ProjectId, workflow_id: WorkflowId
    ) -> list[Deployment]:
        rows = (
            await self._session.execute(
                sa.select(deployments)
                .where(
                    deployments.c.project_id == project_id, deployments.c.workflow_id == workflow_id
                )
                .order_by(deployments.c.requested_at.desc())
            )
        ).all()
        return self._track(rows)

    async def active_in_project(self, project_id: ProjectId) -> list[Deployment]:
        rows = (
            await self._session.execute(
                sa.select(deployments).where(
                    deployments.c.project_id == project_id, sa.text(f"state IN {ACTIVE_STATES_SQL}")
                )
            )
        ).all()
        return self._track(rows)

    async def save(self) -> None:
        for d in self.seen.values():
            values = {
                "id": d.id,
                "project_id": d.project_id,
                "workflow_id": d.workflow_id,
                "snapshot_id": d.snapshot_id,
                "state": str(d.state),
                "reason": d.reason,
                "state_seq": d.state_seq,
                "requested_by": d.requested_by,
                "requested_at": d.requested_at,
                "updated_at": d.updated_at,
            }
            stmt = insert(deployments).values(**values)
            await self._session.execute(
                stmt.on_conflict_do_update(index_elements=[deployments.c.id], set_=values)
            )
            if d.values:
                # Sealed, bound to the deployment; written once, with the request.
                await self._session.execute(
                    insert(deployment_values)
                    .values(
                        deployment_id=d.id,
                        sealed=self._box.seal_deployment_values(d.id, d.values),
                        created_at=d.requested_at,
                    )
                    .on_conflict_do_nothing(index_elements=[deployment_values.c.deployment_id])
                )
                d.values = None

    async def values_of(self, deployment_id: DeploymentId) -> dict[tuple[str, str], JsonValue]:
        sealed = (
            await self._session.execute(
                sa.select(deployment_values.c.sealed).where(
                    deployment_values.c.deployment_id == deployment_id
                )
            )
        ).scalar_one_or_none()
        return {} if sealed is None else self._box.open_deployment_values(deployment_id, sealed)
