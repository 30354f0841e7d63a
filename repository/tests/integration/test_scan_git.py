"""Scanning real git repositories (made with `git init` here) into the real database."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from ryax_kit.database import ensure_database, migrate
from ryax_repository.application.use_cases import RepositoryUseCases
from ryax_repository.container import Container
from ryax_repository.domain.errors import InvalidInput, ScanFailed
from ryax_repository.domain.model import Credentials, FindingStatus, ProjectId, SourceState
from ryax_repository.infrastructure.database import MIGRATIONS

pytestmark = pytest.mark.integration
P = ProjectId("project-a")
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "actions"

BROKEN = """\
apiVersion: "ryax.tech/v2.0"
kind: processor
spec:
  id: Not An Id
  version: "1.0"
  type: python3
  inputs:
    - name: x
      human_name: X
      help: x
      type: strin
"""

BOMB = """\
apiVersion: "ryax.tech/v2.0"
kind: Processor
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
spec: *d
"""


def statuses(report: Any) -> dict[str, str]:
    return {a.path: a.status.value for a in report.actions}


def files_in(archive: bytes) -> list[tuple[str, float, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return [(m.name, m.mtime, m.uid, m.mode) for m in tar.getmembers()]


@pytest.fixture
def hostile_repo(tmp_path: Path, helpers: Any) -> Any:
    repo = helpers.GitRepo(tmp_path / "origin")
    repo.add_action("actions/echo", helpers.action_files("echo", logo=helpers.png(16, 16)))
    repo.add_action("actions/ticker", helpers.action_files("ticker", kind="Trigger"))
    repo.write("actions/broken/ryax_metadata.yaml", BROKEN)
    repo.write("actions/broken/ryax_handler.py", "def handle(request): pass\n")
    repo.write("actions/bomb/ryax_metadata.yaml", BOMB)
    repo.write(
        "actions/huge/ryax_metadata.yaml",
        "# " + "x" * (1024 * 1024 + 10) + "\n" + helpers.metadata("huge"),
    )
    repo.add_action("actions/biglogo", helpers.action_files("biglogo", logo=helpers.png(300, 20)))
    repo.write("actions/nohandler/ryax_metadata.yaml", helpers.metadata("nohandler"))
    repo.write("actions/badhandler/ryax_metadata.yaml", helpers.metadata("badhandler"))
    repo.write("actions/badhandler/ryax_handler.py", "async def handle(request):\n    pass\n")
    repo.symlink("actions/echo/passwd", "/etc/passwd")
    repo.symlink("actions/echo/up", "../../..")
    repo.symlink("actions/echo/sibling.py", "../ticker/ryax_run.py")
    repo.symlink("etc-link", "/etc")
    repo.symlink("actions/linked/ryax_metadata.yaml", "/etc/hostname")
    repo.commit("first")
    return repo


async def add(
    uc: RepositoryUseCases, url: str, name: str = "origin", branch: str | None = None
) -> Any:
    return await uc.add_repository(P, name=name, url=url, branch=branch, credentials=Credentials())


async def test_scan_reports_everything_at_once_and_never_follows_links(
    container: Container, hostile_repo: Any
) -> None:
    uc = container.use_cases()
    repo = await add(uc, str(hostile_repo.path))
    report = await uc.scan_repository(P, repo.id)

    assert report.commit == hostile_repo.git("rev-parse", "HEAD").strip()
    assert report.branch == "main"
    assert statuses(report) == {
        "actions/echo": "new",
        "actions/ticker": "new",
        "actions/broken": "invalid",
        "actions/bomb": "invalid",
        "actions/huge": "invalid",
        "actions/biglogo": "invalid",
        "actions/nohandler": "invalid",
        "actions/badhandler": "invalid",
    }
    errors = {(e.file, e.field): e for e in report.all_errors}
    broken = [e for e in report.all_errors if e.file == "actions/broken/ryax_metadata.yaml"]
    assert {e.field for e in broken} >= {
        "kind",
        "spec.id",
        "spec.human_name",
        "spec.inputs[0].type",
    }
    assert all(e.line > 0 for e in broken)
    kind_error = errors[("actions/broken/ryax_metadata.yaml", "kind")]
    assert kind_error.line == 2 and "Processor" in kind_error.message
    [bomb] = [e for e in report.all_errors if e.file == "actions/bomb/ryax_metadata.yaml"]
    assert "anchors" in bomb.message and bomb.line == 3
    [huge] = [e for e in report.all_errors if e.file == "actions/huge/ryax_metadata.yaml"]
    assert "at most 1048576 bytes" in huge.message
    [logo] = [e for e in report.all_errors if e.file == "actions/biglogo/ryax_metadata.yaml"]
    assert logo.field == "spec.logo" and "300x20" in logo.message and logo.line == 8
    [missing] = [e for e in report.all_errors if e.file.startswith("actions/nohandler")]
    assert "ryax_handler.py is missing" in missing.message
    [bad] = [e for e in report.all_errors if e.file == "actions/badhandler/ryax_handler.py"]
    assert "def handle(request)" in bad.message and bad.line == 1

    warnings = [w.message for w in report.all_warnings]
    assert any(
        w.startswith(
            "actions/echo/passwd: symbolic link to '/etc/passwd' points outside the repository"
        )
        for w in warnings
    )
    assert any(
        w.startswith("actions/echo/up: symbolic link to '../../..' points outside")
        for w in warnings
    )
    assert any(
        w.startswith("actions/echo/sibling.py: symbolic link") and "ignored" in w for w in warnings
    )
    assert any(w.startswith("etc-link: symbolic link to '/etc' points outside") for w in warnings)
    assert any(w.startswith("actions/linked/ryax_metadata.yaml: symbolic link") for w in warnings)

    echo = next(a for a in report.actions if a.path == "actions/echo")
    archive = await container.filestore().read_bytes(f"sources/{echo.sha256}.tar.gz")
    import hashlib

    assert hashlib.sha256(archive).hexdigest() == echo.sha256
    entries = files_in(archive)
    assert [e[0] for e in entries] == ["logo.png", "ryax_handler.py", "ryax_metadata.yaml"]
    assert {(e[1], e[2]) for e in entries} == {(0, 0)}

    views = {(v.source.action_id, v.source.state) for v in await uc.list_actions(P)}
    assert ("echo", SourceState.VALID) in views and ("ticker", SourceState.VALID) in views
    assert ("huge", SourceState.INVALID) not in views  # no identity: reported by path only
    invalid_paths = {
        v.source.origin.path
        for v in await uc.list_actions(P)
        if v.source.state is SourceState.INVALID
    }
    assert "actions/broken" in invalid_paths and "actions/bomb" in invalid_paths
    echo_view = await uc.get_action(P, "echo", "1.0")
    assert echo_view.source.packed is not None and echo_view.source.packed.logo is not None
    assert echo_view.source.packed.logo_media_type == "image/png"


async def test_rescan_follows_commits_and_keeps_a_changed_same_version(
    container: Container, tmp_path: Path, helpers: Any
) -> None:
    uc = container.use_cases()
    origin = helpers.GitRepo(tmp_path / "origin")
    origin.add_action("echo", helpers.action_files("echo"))
    first = origin.commit("first")
    repo = await add(uc, f"file://{origin.path}")
    report = await uc.scan_repository(P, repo.id)
    recorded = report.actions[0].sha256

    # Same content, new unrelated commit: unchanged, follows the commit.
    origin.write("README.md", "hello")
    second = origin.commit("readme")
    report = await uc.scan_repository(P, repo.id)
    assert statuses(report) == {"echo": "unchanged"} and report.commit == second
    assert (await uc.get_action(P, "echo", "1.0")).source.origin.commit == second

    # The handler changes but the version does not: reported, not applied.
    origin.write("echo/ryax_handler.py", "def handle(request):\n    return {'result': 'x'}\n")
    origin.add_action("adder", helpers.action_files("adder"))
    third = origin.commit("edit without bump")
    report = await uc.scan_repository(P, repo.id)
    assert statuses(report) == {"echo": "changed_same_version", "adder": "new"}
    echo = next(a for a in report.actions if a.path == "echo")
    assert echo.recorded_sha256 == recorded and echo.sha256 != recorded
    assert "the recorded source is kept" in echo.message
    view = await uc.get_action(P, "echo", "1.0")
    assert view.source.packed is not None and view.source.packed.sha256 == recorded
    assert view.source.origin.commit == second
    assert view.source.pending_change is not None
    assert view.source.pending_change.origin.commit == third

    # Bumping the version publishes the change as a new version; 1.0 stays as it was.
    origin.write("echo/ryax_metadata.yaml", helpers.metadata("echo", "1.1"))
    origin.commit("bump")
    report = await uc.scan_repository(P, repo.id)
    assert statuses(report) == {"echo": "new", "adder": "unchanged"}
    versions = {(v.source.action_id, v.source.version) for v in await uc.list_actions(P)}
    assert {("echo", "1.0"), ("echo", "1.1"), ("adder", "1.0")} <= versions
    old = await uc.get_action(P, "echo", "1.0")
    assert old.source.packed is not None and old.source.packed.sha256 == recorded

    # Forcing replaces the recorded content of the same version.
    origin.write("echo/ryax_handler.py", "def handle(request):\n    return {'result': 'y'}\n")
    origin.commit("edit 1.1")
    report = await uc.scan_repository(P, repo.id)
    assert statuses(report)["echo"] == "changed_same_version"
    report = await uc.scan_repository(P, repo.id, force=True)
    assert statuses(report)["echo"] == "replaced"
    replaced = await uc.get_action(P, "echo", "1.1")
    assert replaced.source.packed is not None
    assert replaced.source.packed.sha256 == report.actions[1].sha256
    assert replaced.source.pending_change is None
    assert first != second


async def test_branches_default_branch_detection_and_unknown_branch(
    container: Container, tmp_path: Path, helpers: Any
) -> None:
    uc = container.use_cases()
    origin = helpers.GitRepo(tmp_path / "origin")
    origin.add_action("main-action", helpers.action_files("main-action"))
    origin.commit("main")
    origin.git("checkout", "-q", "-b", "dev")
    origin.add_action("dev-action", helpers.action_files("dev-action"))
    origin.commit("dev")
    origin.git("checkout", "-q", "main")

    on_main = await add(uc, str(origin.path), name="main")
    on_dev = await add(uc, str(origin.path), name="dev", branch="dev")
    assert set(statuses(await uc.scan_repository(P, on_main.id))) == {"main-action"}
    dev = await uc.scan_repository(P, on_dev.id)
    assert set(statuses(dev)) == {"main-action", "dev-action"} and dev.branch == "dev"

    legacy = helpers.GitRepo(tmp_path / "legacy", branch="master")
    legacy.add_action("old", helpers.action_files("old"))
    legacy.commit("old")
    on_master = await add(uc, str(legacy.path), name="legacy")
    report = await uc.scan_repository(P, on_master.id)
    assert report.branch == "master"
    assert (await uc.get_repository(P, on_master.id)).resolved_branch == "master"

    missing = await add(uc, str(origin.path), name="missing", branch="nope")
    with pytest.raises(ScanFailed, match="the branch 'nope' does not exist"):
        await uc.scan_repository(P, missing.id)


async def test_unreachable_and_plain_folders(
    container: Container, tmp_path: Path, helpers: Any
) -> None:
    uc = container.use_cases()
    gone = await add(uc, str(tmp_path / "does-not-exist"), name="gone")
    with pytest.raises(ScanFailed, match="does not exist"):
        await uc.scan_repository(P, gone.id)

    examples = EXAMPLES
    plain = await add(uc, str(examples), name="examples")
    report = await uc.scan_repository(P, plain.id)
    assert report.commit is None
    assert any("not the root of a git repository" in w.message for w in report.warnings)
    assert report.actions and all(a.status is FindingStatus.NEW for a in report.actions), (
        report.all_errors
    )


async def test_local_sources_are_refused_without_the_setting(
    make_settings: Any, tmp_path: Path, helpers: Any
) -> None:
    settings = make_settings(allow_local=False)
    await ensure_database(settings.database_url)
    await migrate(settings.database_url, MIGRATIONS)
    c = Container(settings=settings)
    try:
        for url in (
            str(tmp_path),
            f"file://{tmp_path}",
            "https://127.0.0.1/x.git",
            "https://localhost/x.git",
            "https://169.254.169.254/x",
            "git@[::1]:x.git",
        ):
            with pytest.raises(InvalidInput) as caught:
                await c.use_cases().add_repository(
                    P, name="x", url=url, branch=None, credentials=Credentials()
                )
            assert "RYAX_REPOSITORY_ALLOW_LOCAL=true" in caught.value.detail, url
    finally:
        await c.engine().dispose()
