"""Repositories, unit of work and migrations on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_kit.core import SystemClock
from ryax_kit.database import alembic_config, create_engine, ensure_database, migrate
from ryax_studio.application.use_cases import Deployments, Workflows
from ryax_studio.domain.actions import (
    IO,
    ActionKind,
    ActionRef,
    ActionVersion,
    IOType,
    Origin,
    ProjectId,
    Resources,
)
from ryax_studio.domain.deployment import (
    Deployment,
    DeploymentId,
    DeploymentState,
    SnapshotId,
    take_snapshot,
)
from ryax_studio.domain.errors import Conflict
from ryax_studio.domain.workflow import (
    Position,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    Workflow,
    WorkflowId,
    WorkflowResult,
)
from ryax_studio.infrastructure.database.tables import MIGRATIONS
from ryax_studio.infrastructure.database.uow import SqlAlchemyUnitOfWork
from ryax_studio.infrastructure.security import AesGcmSecretCipher
from ryax_studio.infrastructure.yaml_format import RyaxWorkflowYaml

pytestmark = pytest.mark.integration

P = ProjectId("pa-id")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    engine = create_engine(db_url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


CIPHER = AesGcmSecretCipher("a repositories test key of more than 32 characters")


def uow(sessions: async_sessionmaker[AsyncSession]) -> SqlAlchemyUnitOfWork:
    return SqlAlchemyUnitOfWork(sessions, CIPHER)


def _action(action_id: str, kind: ActionKind, inputs: Any = (), outputs: Any = ()) -> Any:
    return ActionVersion(
        project_id=P,
        action_id=action_id,
        version="1.0",
        kind=kind,
        human_name=action_id,
        inputs=tuple(
            IO(name=n, type=t, has_default=d is not None, default=d) for n, t, d in inputs
        ),
        outputs=tuple(IO(name=n, type=t) for n, t in outputs),
        artefact_key=f"artefacts/{action_id}",
        artefact_sha256="ef" * 32,
        resources=Resources(cpu=0.5, memory_bytes=128 * 2**20),
        logo=b"\x89PNG fake",
        logo_media_type="image/png",
        ready_at=NOW,
        categories=("A", "B"),
    )


def rich_workflow() -> Workflow:
    return Workflow(
        id=WorkflowId("11111111-1111-1111-1111-111111111111"),
        project_id=P,
        name="rich",
        description="every feature",
        created_at=NOW,
        updated_at=NOW,
        steps=[
            Step(
                id="tick",
                action=ActionRef(action_id="timer", version="1.0"),
                position=Position(x=0, y=1.5),
                streams_to=["work"],
                inputs={"interval": StaticValue(value=5)},
                outputs=(
                    IO(
                        name="extra",
                        type=IOType.ENUM,
                        enum_values=("a", "b"),
                        origin=Origin.QUERY,
                        optional=True,
                    ),
                ),
            ),
            Step(
                id="work",
                action=ActionRef(action_id="work", version="1.0"),
                human_name="Work",
                streams_to=[],
                inputs={
                    "z_first": StaticValue(value={"nested": [1, 2.5, None, "x"]}),
                    "text": ReferenceValue(step_id="tick", output="time"),
                    "key": SecretValue(name="api_key"),
                },
                settings=StepSettings(
                    timeout_seconds=12.5,
                    retries=3,
                    site_name="hpc",
                    node_pool="gpu",
                    labels=(("b", "2"), ("a", "1")),
                    resources=Resources(cpu=2.0, gpu=1),
                ),
            ),
        ],
        results=[WorkflowResult(key="out", step_id="work", output="out")],
    )


async def test_migrations_go_up_from_zero_and_down_again(db_url: str) -> None:
    await migrate(db_url, MIGRATIONS)
    engine = create_engine(db_url)
    async with engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert {
        "actions",
        "workflows",
        "secrets",
        "snapshots",
        "deployments",
        "outbox",
        "processed_messages",
        "alembic_version",
    } <= tables
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda c: sa.inspect(c).get_columns("outbox"))
    assert {"attempts", "last_error", "next_attempt_at"} <= {c["name"] for c in columns}
    await asyncio.to_thread(command.downgrade, alembic_config(db_url, MIGRATIONS), "base")
    async with engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    assert tables == {"alembic_version"}
    await migrate(db_url, MIGRATIONS)
    await engine.dispose()


async def test_a_workflow_round_trips_exactly(sessions: Any) -> None:
    wf = rich_workflow()
    async with uow(sessions) as u:
        await u.workflows.add(wf)
        await u.commit()
    async with uow(sessions) as u:
        loaded = await u.workflows.get(P, wf.id)
        by_name = await u.workflows.get_by_name(P, "rich")
        other = await u.workflows.get(ProjectId("pb-id"), wf.id)
    assert loaded is not None and by_name is not None and other is None
    assert loaded.definition_equals(wf)
    assert list(loaded.steps[1].inputs) == ["z_first", "text", "key"]  # order kept
    assert loaded.steps[0].position == Position(x=0, y=1.5)
    assert isinstance(loaded.steps[0].position.x, int)


async def test_leaving_without_commit_rolls_back(sessions: Any) -> None:
    async with uow(sessions) as u:
        await u.workflows.add(rich_workflow())
        await u.actions.add(_action("timer", ActionKind.TRIGGER))
    async with uow(sessions) as u:
        assert await u.workflows.list_for_project(P) == []
        assert await u.actions.list_for_project(P) == []


async def test_workflow_names_are_unique_per_project(sessions: Any) -> None:
    async with uow(sessions) as u:
        await u.workflows.add(rich_workflow())
        await u.commit()
    twin = rich_workflow()
    twin.id = WorkflowId("22222222-2222-2222-2222-222222222222")
    with pytest.raises(Conflict, match="name already exists"):
        async with uow(sessions) as u:
            await u.workflows.add(twin)
            await u.commit()
    twin.project_id = ProjectId("pb-id")
    async with uow(sessions) as u:
        await u.workflows.add(twin)
        await u.commit()


async def test_actions_round_trip_and_upsert(sessions: Any) -> None:
    action = _action(
        "work",
        ActionKind.PROCESSOR,
        [
            ("text", IOType.STRING, None),
            ("n", IOType.INTEGER, 3),
            ("key", IOType.PASSWORD, None),
            ("z_first", IOType.STRING, None),
        ],
        [("out", IOType.STRING)],
    )
    async with uow(sessions) as u:
        await u.actions.add(action)
        await u.actions.add(action)
        await u.commit()
    async with uow(sessions) as u:
        [loaded] = await u.actions.for_ids(P, ["work", "other"])
    assert (loaded.inputs, loaded.outputs, loaded.resources, loaded.logo, loaded.ready_at) == (
        action.inputs,
        action.outputs,
        action.resources,
        action.logo,
        action.ready_at,
    )
    assert loaded.inputs[1].has_default and loaded.inputs[1].default == 3


async def test_snapshots_and_one_active_deployment_per_workflow(sessions: Any) -> None:
    wf = rich_workflow()
    store = {
        a.ref: a
        for a in (
            _action(
                "timer",
                ActionKind.TRIGGER,
                [("interval", IOType.INTEGER, 60)],
                [("time", IOType.STRING)],
            ),
            _action(
                "work",
                ActionKind.PROCESSOR,
                [
                    ("text", IOType.STRING, None),
                    ("key", IOType.PASSWORD, None),
                    ("z_first", IOType.STRING, None),
                ],
                [("out", IOType.STRING)],
            ),
        )
    }
    store[ActionRef(action_id="timer", version="1.0")].dynamic_outputs = True
    wf.steps[1].inputs["z_first"] = StaticValue(value="plain")
    snap = take_snapshot(wf, store, {"api_key"}, SnapshotId("33333333-0000-0000-0000-0"), NOW)
    d1 = Deployment.request(
        deployment_id=DeploymentId("d1"),
        event_id="e1",
        snapshot=snap,
        current=None,
        values={("s", "api_key"): "v"},
        requested_by="a",
        now=NOW,
    )
    async with uow(sessions) as u:
        await u.snapshots.add(snap)
        await u.deployments.add(d1)
        await u.commit()
    async with uow(sessions) as u:
        loaded = await u.snapshots.get(P, snap.id)
        assert loaded is not None
        assert loaded.steps == snap.steps and loaded.results == snap.results
        assert loaded.trigger_fields == snap.trigger_fields
        assert loaded.definition.definition_equals(snap.definition)
        assert await u.snapshots.get(ProjectId("pb-id"), snap.id) is None
        outbox = (await u.deployments._session.execute(sa.text("SELECT type FROM outbox"))).all()
        assert [r.type for r in outbox] == ["WorkflowDeployRequested"]
    d2 = Deployment(
        id=DeploymentId("d2"),
        project_id=P,
        workflow_id=wf.id,
        snapshot_id=snap.id,
        state=DeploymentState.REQUESTED,
        requested_by="b",
        requested_at=NOW,
        updated_at=NOW,
    )
    with pytest.raises(Conflict, match="already deployed"):
        async with uow(sessions) as u:
            await u.deployments.add(d2)
            await u.commit()
    async with uow(sessions) as u:
        current = await u.deployments.latest_for_workflow(P, wf.id)
        assert current is not None and current.id == "d1"
        assert current.apply_state(DeploymentState.FAILED, "boom", 1, NOW)
        await u.commit()
    async with uow(sessions) as u:
        await u.deployments.add(d2)
        await u.commit()
        assert [d.id for d in await u.deployments.active_in_project(P)] == ["d2"]


async def test_concurrent_deploys_of_one_workflow_give_one_deployment(
    sessions: Any, db_url: str
) -> None:
    trigger = _action("timer", ActionKind.TRIGGER, [], [("time", IOType.STRING)])
    wf = Workflow(
        id=WorkflowId("44444444-4444-4444-4444-444444444444"),
        project_id=P,
        name="race",
        created_at=NOW,
        updated_at=NOW,
        steps=[Step(id="tick", action=trigger.ref)],
    )
    async with uow(sessions) as u:
        await u.actions.add(trigger)
        await u.workflows.add(wf)
        await u.commit()
    use_cases = Deployments(
        uow_factory=lambda: uow(sessions), clock=SystemClock(), cipher=AesGcmSecretCipher("k" * 32)
    )
    results = await asyncio.gather(
        *(use_cases.deploy(P, wf.id, f"user{i}") for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, Deployment) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Deployment))


def test_the_cipher_binds_a_value_to_its_secret() -> None:
    cipher = AesGcmSecretCipher("x" * 40)
    sealed = cipher.encrypt(P, "token", "s3cr3t")
    assert b"s3cr3t" not in sealed
    assert cipher.decrypt(P, "token", sealed) == "s3cr3t"
    assert cipher.encrypt(P, "token", "s3cr3t") != sealed  # a fresh nonce each time
    with pytest.raises(ValueError, match="cannot be decrypted"):
        cipher.decrypt(P, "other", sealed)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        cipher.decrypt(ProjectId("pb-id"), "token", sealed)
    with pytest.raises(ValueError, match="cannot be decrypted"):
        AesGcmSecretCipher("y" * 40).decrypt(P, "token", sealed)
    with pytest.raises(ValueError, match="at least 32 characters"):
        AesGcmSecretCipher("short")


def _rich_store() -> dict[ActionRef, ActionVersion]:
    store = {
        a.ref: a
        for a in (
            _action(
                "timer",
                ActionKind.TRIGGER,
                [("interval", IOType.INTEGER, 60)],
                [("time", IOType.STRING)],
            ),
            _action(
                "work",
                ActionKind.PROCESSOR,
                [
                    ("text", IOType.STRING, None),
                    ("key", IOType.PASSWORD, None),
                    ("z_first", IOType.STRING, None),
                ],
                [("out", IOType.STRING)],
            ),
        )
    }
    store[ActionRef(action_id="timer", version="1.0")].dynamic_outputs = True
    return store


async def test_the_workflow_list_reads_every_latest_deployment_in_one_query(
    sessions: Any,
) -> None:
    """`latest_per_workflow` answers what `latest_for_workflow` answers for each workflow
    (none, one, several with a failed one before, a tie on the time, another project's), and
    the workflow list makes as many queries for 12 workflows as for 4."""
    store = _rich_store()
    async with uow(sessions) as u:
        for action in store.values():
            await u.actions.add(action)
        await u.commit()

    async def add_workflows(first: int, count: int, project: ProjectId = P) -> list[Workflow]:
        made = []
        async with uow(sessions) as u:
            for i in range(first, first + count):
                wf = copy.deepcopy(rich_workflow())
                wf.id = WorkflowId(str(uuid.UUID(int=i + 1)))
                wf.project_id = project
                wf.name = f"wf-{i:02}"
                wf.steps[1].inputs["z_first"] = StaticValue(value="plain")
                await u.workflows.add(wf)
                made.append(wf)
            await u.commit()
        return made

    async def deploy(wf: Workflow, n: int, at: datetime, fail: bool) -> str:
        snap = take_snapshot(wf, store, {"api_key"}, SnapshotId(str(uuid.UUID(int=10_000 + n))), at)
        async with uow(sessions) as u:
            d = Deployment.request(
                deployment_id=DeploymentId(f"d-{n:03}"),
                event_id=f"e-{n}",
                snapshot=snap,
                current=None,
                values={},
                requested_by="a",
                now=at,
            )
            await u.snapshots.add(snap)
            await u.deployments.add(d)
            if fail:
                assert d.apply_state(DeploymentState.FAILED, "boom", 1, at)
            await u.commit()
        return d.id

    workflows = await add_workflows(0, 4)
    later = NOW.replace(hour=13)
    # wf-00: never deployed; wf-01: once; wf-02: failed twice then deployed; wf-03: two
    # failed at the same time (the tie broken by id, as latest_for_workflow breaks it).
    await deploy(workflows[1], 1, NOW, fail=False)
    await deploy(workflows[2], 2, NOW, fail=True)
    await deploy(workflows[2], 3, later, fail=True)
    await deploy(workflows[2], 4, later.replace(hour=14), fail=False)
    await deploy(workflows[3], 5, NOW, fail=True)
    await deploy(workflows[3], 6, NOW, fail=True)
    other = (await add_workflows(50, 1, ProjectId("pb-id")))[0]
    await deploy(other, 7, later.replace(hour=15), fail=False)

    async with uow(sessions) as u:
        latest = await u.deployments.latest_per_workflow(P)
        one_by_one = {
            w.id: d
            for w in workflows
            if (d := await u.deployments.latest_for_workflow(P, w.id)) is not None
        }
    assert {w: d.id for w, d in latest.items()} == {w: d.id for w, d in one_by_one.items()}
    assert {w: d.id for w, d in latest.items()} == {
        workflows[1].id: "d-001",
        workflows[2].id: "d-004",
        workflows[3].id: "d-006",
    }
    assert all(latest[w].state == one_by_one[w].state for w in latest)

    engine = sessions.kw["bind"]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    listing = Workflows(
        uow_factory=lambda: uow(sessions), clock=SystemClock(), fmt=RyaxWorkflowYaml()
    )
    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        items = await listing.list_all(P)
        few = len(statements)
        await add_workflows(4, 8)
        statements.clear()
        more = await listing.list_all(P)
        many = len(statements)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert [i.workflow.name for i in items] == [f"wf-{i:02}" for i in range(4)]
    assert {i.workflow.id: i.deployment.id for i in items if i.deployment} == {
        w: d.id for w, d in latest.items()
    }
    assert len(more) == 12 and many == few, (few, many)
    assert sum("FROM deployments" in s for s in statements) == 1
