"""Action sources and builds: states, build requests, results, the no-silent-overwrite rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ryax_repository.domain.action_metadata import ActionKind, ActionMetadata
from ryax_repository.domain.errors import Conflict, InvalidInput
from ryax_repository.domain.events import ActionBuildRequested, ActionReady
from ryax_repository.domain.git_url import parse_git_url
from ryax_repository.domain.model import (
    ActionSource,
    AuthKind,
    BuildId,
    BuildState,
    Credentials,
    FindingStatus,
    Origin,
    PackedSource,
    ProjectId,
    RepositoryId,
    SourceId,
    SourceState,
    check_branch,
    check_credentials,
    source_key,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"


def packed(
    sha: str = "a" * 64,
    version: str = "1.0",
    logo: bytes | None = None,
    dependencies: tuple[str, ...] = (),
) -> PackedSource:
    meta = ActionMetadata(
        kind=ActionKind.PROCESSOR,
        id="demo",
        version=version,
        human_name="Demo action",
        type="python3",
        dependencies=dependencies,
    )
    return PackedSource(
        sha256=sha,
        size=10,
        metadata=meta,
        metadata_yaml="yaml",
        logo=logo,
        logo_media_type="image/png" if logo else "",
    )


def source(sha: str = "a" * 64, dependencies: tuple[str, ...] = ()) -> ActionSource:
    return ActionSource.valid(
        id=SourceId("s1"),
        project_id=ProjectId("p1"),
        origin=Origin(repository_id=RepositoryId("r1"), name="repo", path="demo", commit="c1"),
        packed=packed(sha, dependencies=dependencies),
        warnings=(),
        now=NOW,
    )


def test_source_key_is_content_addressed() -> None:
    assert source_key("ab" * 32) == f"sources/{'ab' * 32}.tar.gz"
    assert packed("f" * 64).key == f"sources/{'f' * 64}.tar.gz"


def test_same_content_is_unchanged_different_content_is_changed_same_version() -> None:
    s = source()
    assert s.compare("a" * 64) is FindingStatus.UNCHANGED
    assert s.compare("b" * 64) is FindingStatus.CHANGED_SAME_VERSION


def test_a_noted_change_keeps_the_recorded_source() -> None:
    s = source()
    s.note_change("b" * 64, Origin(repository_id=RepositoryId("r1"), path="demo", commit="c2"), NOW)
    assert s.packed is not None and s.packed.sha256 == "a" * 64
    assert s.origin.commit == "c1"
    assert s.pending_change is not None and s.pending_change.sha256 == "b" * 64


def test_forced_replacement_takes_the_new_content_and_needs_a_new_build() -> None:
    s = source()
    s.request_build(BuildId("b1"), "e1", NOW)
    s.replace(Origin(path="demo", commit="c2"), packed("c" * 64), (), NOW)
    assert s.state is SourceState.VALID
    assert s.packed is not None and s.packed.sha256 == "c" * 64
    assert s.pending_change is None


def test_build_request_records_the_event_and_the_building_state() -> None:
    s = source()
    build = s.request_build(BuildId("b1"), "e1", NOW)
    assert s.state is SourceState.BUILDING and s.last_build_id == "b1"
    assert build.state is BuildState.REQUESTED and build.source_sha256 == "a" * 64
    [event] = s.events
    assert isinstance(event, ActionBuildRequested)
    assert (event.build_id, event.action_id, event.action_version, event.action_kind) == (
        "b1",
        "demo",
        "1.0",
        "processor",
    )
    assert event.source_key == source_key("a" * 64)
    assert (event.repository_id, event.source_commit) == ("r1", "c1")
    assert event.python_packages == ()


def test_build_request_carries_the_python_packages_the_repository_maps() -> None:
    """The repository owns the Nix -> PyPI table: the builder installs what the request says."""
    s = source(dependencies=("pythonPackages.scikitlearn", "ffmpeg", "python3Packages.tabulate"))
    s.request_build(BuildId("b1"), "e1", NOW)
    [event] = s.events
    assert isinstance(event, ActionBuildRequested)
    assert [(p.dependency, p.requirement) for p in event.python_packages] == [
        ("pythonPackages.scikitlearn", "scikit-learn"),
        ("python3Packages.tabulate", "tabulate"),
    ]


def test_one_build_at_a_time_unless_forced() -> None:
    s = source()
    s.request_build(BuildId("b1"), "e1", NOW)
    with pytest.raises(Conflict, match="already being built"):
        s.request_build(BuildId("b2"), "e2", NOW)
    s.request_build(BuildId("b2"), "e2", NOW, force=True)
    assert s.last_build_id == "b2"


def test_an_invalid_source_cannot_be_built() -> None:
    s = ActionSource.invalid(
        id=SourceId("s"),
        project_id=ProjectId("p"),
        origin=Origin(path="x"),
        errors=(),
        warnings=(),
        now=NOW,
    )
    with pytest.raises(Conflict, match="invalid"):
        s.request_build(BuildId("b"), "e", NOW)


def test_success_of_the_latest_build_makes_the_action_ready() -> None:
    s = ActionSource.valid(
        id=SourceId("s1"),
        project_id=ProjectId("p1"),
        origin=Origin(path="demo"),
        packed=packed(logo=b"png"),
        warnings=(),
        now=NOW,
    )
    build = s.request_build(BuildId("b1"), "e1", NOW)
    s.events.clear()
    assert build.succeed(
        artefact_key="artefacts/x.tar.gz",
        artefact_sha256="x" * 64,
        log="ok",
        cached=False,
        duration_seconds=1.5,
        now=NOW,
    )
    s.build_succeeded(build, "ready-1", NOW)
    assert s.state is SourceState.BUILT
    [event] = s.events
    assert isinstance(event, ActionReady)
    assert event.artefact_key == "artefacts/x.tar.gz" and event.logo == b"png"
    assert event.metadata.id == "demo"


def test_a_build_outcome_is_recorded_once() -> None:
    s = source()
    build = s.request_build(BuildId("b1"), "e1", NOW)
    assert build.fail(reason="no wheel", log="log", duration_seconds=1, now=NOW)
    assert not build.succeed(
        artefact_key="k", artefact_sha256="s", log="", cached=False, duration_seconds=1, now=NOW
    )
    assert build.state is BuildState.FAILED and build.reason == "no wheel"


def test_an_outdated_build_does_not_change_the_action_state() -> None:
    s = source()
    old = s.request_build(BuildId("b1"), "e1", NOW)
    s.request_build(BuildId("b2"), "e2", NOW + timedelta(seconds=1), force=True)
    s.events.clear()
    old.succeed(
        artefact_key="k",
        artefact_sha256="s" * 64,
        log="",
        cached=False,
        duration_seconds=1,
        now=NOW,
    )
    s.build_succeeded(old, "r", NOW)
    assert s.state is SourceState.BUILDING and s.events == []
    s.build_failed(old, NOW)
    assert s.state is SourceState.BUILDING


def test_a_build_of_replaced_content_does_not_make_the_new_content_ready() -> None:
    s = source()
    build = s.request_build(BuildId("b1"), "e1", NOW)
    s.replace(Origin(path="demo"), packed("c" * 64), (), NOW)
    s.events.clear()
    build.succeed(
        artefact_key="k",
        artefact_sha256="s" * 64,
        log="",
        cached=False,
        duration_seconds=1,
        now=NOW,
    )
    s.build_succeeded(build, "r", NOW)
    assert s.state is SourceState.VALID and s.events == []


def test_a_huge_build_log_keeps_its_end() -> None:
    s = source()
    build = s.request_build(BuildId("b1"), "e1", NOW)
    build.fail(reason="r", log="x" * 3_000_000 + "THE END", duration_seconds=1, now=NOW)
    assert build.log.endswith("THE END") and len(build.log) < 1_100_000


def test_credentials_never_show_in_repr() -> None:
    creds = Credentials(username="bob", password="hunter2-secret")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)
    assert creds.kind is AuthKind.PASSWORD and creds.secrets == ("hunter2-secret",)


@pytest.mark.parametrize(
    ("url", "creds", "field"),
    [
        ("https://example.com/r", Credentials(ssh_key=KEY), "ssh_key"),
        ("git@example.com:r.git", Credentials(username="u", password="p"), "password"),
        ("https://example.com/r", Credentials(password="p"), "username"),
        ("https://example.com/r", Credentials(username="u"), "password"),
        ("git@example.com:r.git", Credentials(ssh_key="not a key"), "ssh_key"),
        ("/srv/repo", Credentials(ssh_key=KEY), "ssh_key"),
    ],
)
def test_credentials_must_fit_the_url(url: str, creds: Credentials, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_credentials(parse_git_url(url), creds)
    assert caught.value.field == field


def test_fitting_credentials_pass() -> None:
    check_credentials(
        parse_git_url("https://example.com/r"), Credentials(username="u", password="p")
    )
    check_credentials(parse_git_url("git@example.com:r.git"), Credentials(ssh_key=KEY))
    check_credentials(parse_git_url("/srv/repo"), Credentials())


@pytest.mark.parametrize("branch", ["main", "release/1.0", "feature-x_y", "v1.2.3"])
def test_valid_branches(branch: str) -> None:
    check_branch(branch)


@pytest.mark.parametrize("branch", ["-x", "a..b", "a b", "/x", "x/", "x.lock", "a@{1}", ""])
def test_invalid_branches(branch: str) -> None:
    with pytest.raises(InvalidInput):
        check_branch(branch)
