"""A recorded build is reused only while its artefact is in the filestore: on the real database
and the real S3 filestore (SeaweedFS), a build is recorded, its artefact deleted, and asking
for the build (a scan, a build request) requests a new one."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ryax_kit.database import ensure_database, migrate
from ryax_kit.filestore import FilestoreSettings, S3Filestore
from ryax_kit.settings import Env
from ryax_repository.container import Container
from ryax_repository.domain.events import RecordBuildSucceeded
from ryax_repository.domain.model import Build, BuildState, Credentials, ProjectId, SourceState
from ryax_repository.infrastructure.database import MIGRATIONS
from ryax_repository.infrastructure.database.tables import outbox
from ryax_repository.infrastructure.proto import repository_events_pb2 as pb
from ryax_repository.settings import Settings

pytestmark = pytest.mark.integration
P = ProjectId("00000000-0000-4000-8000-0000000000aa")


@pytest.fixture
async def s3_container(
    make_settings: Callable[..., Settings], s3_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Container]:
    """The use cases on a migrated database and the S3 filestore; no broker (the outbox
    keeps what would be published)."""
    settings = make_settings(
        filestore=FilestoreSettings.read(Env(s3_env), default_dir=tmp_path / "unused")
    )
    await ensure_database(settings.database_url)
    await migrate(settings.database_url, MIGRATIONS)
    container = Container(settings=settings)
    store = container.filestore()
    assert isinstance(store, S3Filestore)
    await store.ensure_ready()
    yield container
    await container.engine().dispose()


async def requested_builds(container: Container) -> list[str]:
    """The build ids of the ActionBuildRequested events written to the outbox, in order."""
    async with container.engine().connect() as conn:
        rows = await conn.execute(
            sa.select(outbox.c.body)
            .where(outbox.c.routing_key == "ActionBuildRequested")
            .order_by(outbox.c.id)
        )
        return [pb.ActionBuildRequested.FromString(row.body).build_id for row in rows]


async def built_echo(container: Container, tmp_path: Path, helpers: Any) -> tuple[Any, Build, str]:
    """echo 1.0 scanned from a git repository and built (the builder's answer, played here),
    its artefact stored: (repository, build, artefact key)."""
    uc = container.use_cases()
    origin = helpers.GitRepo(tmp_path / "origin")
    origin.add_action("echo", helpers.action_files("echo"))
    origin.commit()
    repo = await uc.add_repository(
        P, name="actions", url=str(origin.path), branch=None, credentials=Credentials()
    )
    await uc.scan_repository(P, repo.id)
    build = await uc.build_action(P, "echo", "1.0")
    artefact_key = f"artefacts/{uuid.uuid4().hex}.tar.gz"
    await container.filestore().write_bytes(artefact_key, b"artefact", "application/gzip")
    await uc.record_build_succeeded(
        RecordBuildSucceeded(
            build_id=build.id,
            project_id=P,
            artefact_key=artefact_key,
            artefact_sha256="ab" * 32,
            log="built",
            cached=False,
            duration_seconds=1.0,
        ),
        str(uuid.uuid4()),
    )
    assert (await uc.get_action(P, "echo", "1.0")).source.state is SourceState.BUILT
    return repo, build, artefact_key


async def test_a_recorded_build_whose_artefact_is_gone_is_built_again(
    s3_container: Container, tmp_path: Path, helpers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    uc, store = s3_container.use_cases(), s3_container.filestore()
    repo, first, artefact_key = await built_echo(s3_container, tmp_path, helpers)
    assert await requested_builds(s3_container) == [first.id]

    # The artefact is there: a scan asked to build reuses the recorded build.
    report = await uc.scan_repository(P, repo.id, build=True)
    assert report.build_ids == ()
    assert await requested_builds(s3_container) == [first.id]

    # The artefact is gone (another filestore, deleted data): the scan requests a new build.
    await store.delete(artefact_key)
    with caplog.at_level(logging.WARNING, "ryax_repository"):
        report = await uc.scan_repository(P, repo.id, build=True)
    [second_id] = report.build_ids
    assert second_id != first.id
    assert await requested_builds(s3_container) == [first.id, second_id]
    view = await uc.get_action(P, "echo", "1.0")
    assert view.source.state is SourceState.BUILDING and view.source.last_build_id == second_id
    assert view.last_build is not None and view.last_build.state is BuildState.REQUESTED
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.build_id == first.id and warning.artefact_key == artefact_key  # type: ignore[attr-defined]
    assert "missing from the filestore" in report.actions[0].message


async def test_build_request_after_the_artefact_is_gone_is_a_new_build(
    s3_container: Container, tmp_path: Path, helpers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    uc, store = s3_container.use_cases(), s3_container.filestore()
    _, first, artefact_key = await built_echo(s3_container, tmp_path, helpers)
    await store.delete(artefact_key)
    with caplog.at_level(logging.WARNING, "ryax_repository"):
        second = await uc.build_action(P, "echo", "1.0")
    assert second.id != first.id and second.state is BuildState.REQUESTED
    assert await requested_builds(s3_container) == [first.id, second.id]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.build_id == first.id and warning.artefact_key == artefact_key  # type: ignore[attr-defined]
