"""The application through its use cases, with fakes for every port."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ryax_kit.net import literal_address, refusal
from ryax_repository.application.ports import Checkout, FoundAction, ScanFindings
from ryax_repository.application.use_cases import RepositoryUseCases
from ryax_repository.domain.action_metadata import ActionKind, ActionMetadata
from ryax_repository.domain.errors import (
    AlreadyExists,
    Conflict,
    InvalidInput,
    NotFound,
    ScanFailed,
)
from ryax_repository.domain.events import (
    ActionBuildRequested,
    ActionReady,
    Event,
    RecordBuildFailed,
    RecordBuildSucceeded,
)
from ryax_repository.domain.git_url import GitUrl
from ryax_repository.domain.model import (
    ActionSource,
    Build,
    BuildId,
    BuildState,
    Credentials,
    FindingStatus,
    GitRepository,
    Issue,
    PackedSource,
    ProjectId,
    RepositoryId,
    ScanId,
    ScanReport,
    SourceId,
    SourceState,
)

P1, P2 = ProjectId("project-1"), ProjectId("project-2")


# ---- fakes ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


class FakeCipher:
    def encrypt(self, credentials: Credentials, repository_id: RepositoryId) -> str:
        data = json.dumps([credentials.username, credentials.password, credentials.ssh_key])
        return f"enc:{repository_id}:" + data[::-1]

    def decrypt(self, token: str, repository_id: RepositoryId) -> Credentials:
        prefix = f"enc:{repository_id}:"
        assert token.startswith(prefix), "decrypted for another repository"
        username, password, key = json.loads(token.removeprefix(prefix)[::-1])
        return Credentials(username=username, password=password, ssh_key=key)


class FakeResolver:
    def __init__(self) -> None:
        self.hosts: dict[str, list[str]] = {
            "github.com": ["140.82.121.3"],
            "internal.corp": ["10.0.0.5"],
        }

    async def check(self, host: str, port: int) -> str:
        """The platform's rule (ryax_kit.net) over this table of names."""
        literal = literal_address(host)
        if literal is not None:
            addresses = [str(literal)]
        elif host not in self.hosts:
            raise InvalidInput("url", f"the host {host} cannot be resolved")
        else:
            addresses = self.hosts[host]
        why = refusal(host, addresses)
        if why:
            raise InvalidInput("url", why)
        return addresses[0]


@dataclass
class FakeGit:
    commit: str = "a" * 40
    calls: list[tuple[GitUrl, str | None, Credentials | None, str | None]] = field(
        default_factory=list
    )
    forgotten: list[str] = field(default_factory=list)
    fail: str | None = None

    async def checkout(
        self,
        *,
        repository_id: RepositoryId,
        url: GitUrl,
        branch: str | None,
        credentials: Credentials | None,
        pinned_address: str | None,
    ) -> Checkout:
        self.calls.append((url, branch, credentials, pinned_address))
        if self.fail:
            raise ScanFailed(self.fail)
        return Checkout(root=Path("/nonexistent"), commit=self.commit, branch=branch or "main")

    async def forget(self, repository_id: RepositoryId) -> None:
        self.forgotten.append(repository_id)


@dataclass
class FakeScanner:
    findings: ScanFindings = field(default_factory=lambda: ScanFindings(actions=()))

    def scan(self, root: Path, scratch: Path) -> ScanFindings:
        return self.findings


class FakeExtractor:
    def __init__(self) -> None:
        self.extracted: list[Path] = []

    def extract(self, archive: Path, destination: Path) -> None:
        self.extracted.append(archive)


class FakeFilestore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        self.objects[key] = b"archive"
        self.content_types[key] = content_type

    async def exists(self, key: str) -> bool:
        return key in self.objects


@dataclass
class Store:
    repositories: dict[str, GitRepository] = field(default_factory=dict)
    sources: dict[str, ActionSource] = field(default_factory=dict)
    builds: dict[str, Build] = field(default_factory=dict)
    scans: dict[str, ScanReport] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    published: list[Event] = field(default_factory=list)
    commits: int = 0


class FakeGitRepositories:
    def __init__(self, store: Store) -> None:
        self.s = store

    async def add(self, repository: GitRepository) -> None:
        self.s.repositories[repository.id] = repository

    async def get(self, project_id: ProjectId, repository_id: RepositoryId) -> GitRepository | None:
        r = self.s.repositories.get(repository_id)
        return r if r and r.project_id == project_id else None

    async def get_by_name(self, project_id: ProjectId, name: str) -> GitRepository | None:
        return next(
            (
                r
                for r in self.s.repositories.values()
                if r.project_id == project_id and r.name == name
            ),
            None,
        )

    async def list(self, project_id: ProjectId) -> list[GitRepository]:
        return [r for r in self.s.repositories.values() if r.project_id == project_id]

    async def delete(self, repository: GitRepository) -> None:
        del self.s.repositories[repository.id]


class FakeSources:
    def __init__(self, store: Store) -> None:
        self.s = store

    async def add(self, source: ActionSource) -> None:
        self.s.sources[source.id] = source

    async def get(self, source_id: SourceId) -> ActionSource | None:
        return self.s.sources.get(source_id)

    async def get_version(
        self, project_id: ProjectId, action_id: str, version: str
    ) -> ActionSource | None:
        return next(
            (
                x
                for x in self.s.sources.values()
                if (x.project_id, x.action_id, x.version) == (project_id, action_id, version)
                and x.state is not SourceState.INVALID
            ),
            None,
        )

    async def list(self, project_id: ProjectId) -> list[ActionSource]:
        return [x for x in self.s.sources.values() if x.project_id == project_id]

    async def list_for_repository(
        self, project_id: ProjectId, repository_id: RepositoryId
    ) -> list[ActionSource]:
        return [
            x
            for x in self.s.sources.values()
            if x.project_id == project_id and x.origin.repository_id == repository_id
        ]

    async def delete_invalid(self, project_id: ProjectId, repository_id: RepositoryId) -> None:
        for key in [
            k
            for k, x in self.s.sources.items()
            if x.project_id == project_id
            and x.origin.repository_id == repository_id
            and x.state is SourceState.INVALID
        ]:
            del self.s.sources[key]


class FakeBuilds:
    def __init__(self, store: Store) -> None:
        self.s = store

    async def add(self, build: Build) -> None:
        self.s.builds[build.id] = build

    async def get(self, build_id: BuildId) -> Build | None:
        return self.s.builds.get(build_id)

    async def get_many(self, build_ids: Sequence[BuildId]) -> dict[BuildId, Build]:
        return {b: self.s.builds[b] for b in build_ids if b in self.s.builds}

    async def list_for_source(self, source_id: SourceId) -> list[Build]:
        return [b for b in self.s.builds.values() if b.source_id == source_id]


class FakeScans:
    def __init__(self, store: Store) -> None:
        self.s = store

    async def add(self, report: ScanReport) -> None:
        self.s.scans[report.id] = report

    async def get(self, project_id: ProjectId, scan_id: ScanId) -> ScanReport | None:
        r = self.s.scans.get(scan_id)
        return r if r and r.project_id == project_id else None


class FakeUnitOfWork:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.repositories = FakeGitRepositories(store)
        self.sources = FakeSources(store)
        self.builds = FakeBuilds(store)
        self.scans = FakeScans(store)

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(self, *args: object) -> None:
        pass

    async def claim_message(self, message_id: str) -> bool:
        if message_id in self.store.claimed:
            return False
        self.store.claimed.add(message_id)
        return True

    async def commit(self) -> None:
        for source in self.store.sources.values():
            self.store.published.extend(source.events)
            source.events.clear()
        self.store.commits += 1


@dataclass
class World:
    uc: RepositoryUseCases
    store: Store
    git: FakeGit
    scanner: FakeScanner
    filestore: FakeFilestore
    resolver: FakeResolver


def make_world(tmp_path: Path, allow_local: bool = False) -> World:
    store, git, scanner = Store(), FakeGit(), FakeScanner()
    filestore, resolver = FakeFilestore(), FakeResolver()
    uc = RepositoryUseCases(
        uow_factory=lambda: FakeUnitOfWork(store),
        clock=FakeClock(),
        cipher=FakeCipher(),
        guard=resolver,
        git=git,
        scanner=scanner,
        extractor=FakeExtractor(),
        filestore=filestore,
        work_dir=tmp_path,
        allow_local=allow_local,
    )
    return World(uc, store, git, scanner, filestore, resolver)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def meta(action_id: str = "demo", version: str = "1.0") -> ActionMetadata:
    return ActionMetadata(
        kind=ActionKind.PROCESSOR,
        id=action_id,
        version=version,
        human_name="Demo action",
        type="python3",
    )


def found(
    path: str, sha: str, action_id: str = "demo", version: str = "1.0", logo: bytes | None = None
) -> FoundAction:
    return FoundAction(
        path=path,
        action_id=action_id,
        version=version,
        archive=Path("/tmp/none.tar.gz"),
        packed=PackedSource(
            sha256=sha,
            size=1,
            metadata=meta(action_id, version),
            metadata_yaml="apiVersion: ...",
            logo=logo,
            logo_media_type="image/png" if logo else "",
        ),
    )


def invalid(path: str) -> FoundAction:
    return FoundAction(
        path=path,
        errors=(
            Issue(file=f"{path}/ryax_metadata.yaml", line=3, field="kind", message="kind: bad"),
            Issue(
                file=f"{path}/ryax_metadata.yaml", line=7, field="spec.id", message="spec.id: bad"
            ),
        ),
    )


async def add_repo(world: World, project: ProjectId = P1, name: str = "actions") -> GitRepository:
    return await world.uc.add_repository(
        project,
        name=name,
        url="https://github.com/org/actions.git",
        branch=None,
        credentials=Credentials(),
    )


# ---- repositories --------------------------------------------------------------------------


async def test_add_repository_encrypts_credentials(world: World) -> None:
    repo = await world.uc.add_repository(
        P1,
        name="private",
        url="https://github.com/org/private.git",
        branch="dev",
        credentials=Credentials(username="bot", password="s3cret-token"),
    )
    stored = world.store.repositories[repo.id]
    assert stored.auth.value == "password"
    assert stored.encrypted_credentials and "s3cret-token" not in stored.encrypted_credentials
    assert stored.branch == "dev"


async def test_local_paths_are_refused_unless_allowed(world: World, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="RYAX_REPOSITORY_ALLOW_LOCAL=true"):
        await world.uc.add_repository(
            P1, name="l", url="/srv/actions", branch=None, credentials=Credentials()
        )
    allowed = make_world(tmp_path, allow_local=True)
    repo = await allowed.uc.add_repository(
        P1, name="l", url="/srv/actions", branch=None, credentials=Credentials()
    )
    assert repo.url == "/srv/actions"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://internal.corp/repo.git", "resolves to 10.0.0.5, which is a private"),
        ("https://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("https://127.0.0.1/repo.git", "loopback"),
        ("ssh://git@[::1]/repo.git", "loopback"),
        ("git@10.1.1.1:repo.git", "private"),
        ("file:///etc", "local paths and file:// URLs are refused"),
        ("https://nowhere.invalid/x", "cannot be resolved"),
    ],
)
async def test_internal_locations_are_refused(world: World, url: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await world.uc.add_repository(P1, name="x", url=url, branch=None, credentials=Credentials())
    assert words in caught.value.detail
    assert world.store.repositories == {}


async def test_repository_names_are_unique_per_project(world: World) -> None:
    await add_repo(world)
    with pytest.raises(AlreadyExists):
        await add_repo(world)
    await add_repo(world, P2)  # another project may use the name


async def test_another_projects_repository_is_not_found(world: World) -> None:
    repo = await add_repo(world)
    with pytest.raises(NotFound):
        await world.uc.get_repository(P2, repo.id)
    with pytest.raises(NotFound):
        await world.uc.scan_repository(P2, repo.id)
    with pytest.raises(NotFound):
        await world.uc.delete_repository(P2, repo.id)
    assert await world.uc.list_repositories(P2) == []


async def test_scan_pins_the_checked_address_and_passes_decrypted_credentials(
    world: World,
) -> None:
    repo = await world.uc.add_repository(
        P1,
        name="private",
        url="https://github.com/org/private.git",
        branch=None,
        credentials=Credentials(username="bot", password="tok"),
    )
    await world.uc.scan_repository(P1, repo.id)
    [(_, branch, creds, pinned)] = world.git.calls
    assert branch is None and pinned == "140.82.121.3"
    assert creds is not None and creds.password == "tok"


async def test_a_host_that_turned_internal_is_refused_at_scan(world: World) -> None:
    repo = await add_repo(world)
    world.resolver.hosts["github.com"] = ["192.168.0.10"]
    with pytest.raises(InvalidInput, match="private"):
        await world.uc.scan_repository(P1, repo.id)
    assert world.git.calls == []


async def test_delete_keeps_recorded_versions_and_drops_the_clone(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64), invalid("bad")))
    await world.uc.scan_repository(P1, repo.id)
    await world.uc.delete_repository(P1, repo.id)
    states = sorted(s.state.value for s in world.store.sources.values())
    assert states == ["valid"]
    assert world.git.forgotten == [repo.id]


# ---- scans ---------------------------------------------------------------------------------


async def test_scan_records_valid_actions_and_reports_every_error(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(
        actions=(
            found("demo", "1" * 64),
            invalid("broken"),
            found("other", "2" * 64, action_id="other"),
        ),
        warnings=(Issue(file="link", message="link: symbolic link ... ignored"),),
    )
    report = await world.uc.scan_repository(P1, repo.id)
    statuses = {a.path: a.status for a in report.actions}
    assert statuses == {
        "demo": FindingStatus.NEW,
        "broken": FindingStatus.INVALID,
        "other": FindingStatus.NEW,
    }
    assert [e.field for e in report.all_errors] == ["kind", "spec.id"]
    assert [w.file for w in report.all_warnings] == ["link"]
    assert report.commit == "a" * 40
    assert set(world.filestore.objects) == {
        f"sources/{'1' * 64}.tar.gz",
        f"sources/{'2' * 64}.tar.gz",
    }
    assert set(world.filestore.content_types.values()) == {"application/gzip"}
    views = await world.uc.list_actions(P1)
    assert sorted((v.source.action_id or "?", v.source.state.value) for v in views) == [
        ("?", "invalid"),
        ("demo", "valid"),
        ("other", "valid"),
    ]
    assert world.store.repositories[repo.id].last_scan_id == report.id
    assert (await world.uc.get_scan(P1, report.id)).id == report.id
    with pytest.raises(NotFound):
        await world.uc.get_scan(P2, report.id)


async def test_changed_content_under_the_same_version_is_reported_and_not_applied(
    world: World,
) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64),))
    await world.uc.scan_repository(P1, repo.id)
    world.git.commit = "b" * 40
    world.scanner.findings = ScanFindings(actions=(found("demo", "9" * 64),))
    report = await world.uc.scan_repository(P1, repo.id)
    [action] = report.actions
    assert action.status is FindingStatus.CHANGED_SAME_VERSION
    assert action.recorded_sha256 == "1" * 64 and action.sha256 == "9" * 64
    assert "the recorded source is kept" in action.message
    assert "Bump spec.version" in action.message and "?force=true" in action.message
    view = await world.uc.get_action(P1, "demo", "1.0")
    assert view.source.packed is not None and view.source.packed.sha256 == "1" * 64
    assert view.source.origin.commit == "a" * 40
    assert view.source.pending_change is not None
    assert view.source.pending_change.sha256 == "9" * 64


async def test_force_replaces_and_a_version_bump_adds(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64),))
    await world.uc.scan_repository(P1, repo.id)
    world.scanner.findings = ScanFindings(actions=(found("demo", "9" * 64),))
    report = await world.uc.scan_repository(P1, repo.id, force=True)
    assert report.actions[0].status is FindingStatus.REPLACED
    view = await world.uc.get_action(P1, "demo", "1.0")
    assert view.source.packed is not None and view.source.packed.sha256 == "9" * 64
    world.scanner.findings = ScanFindings(actions=(found("demo", "8" * 64, version="1.1"),))
    report = await world.uc.scan_repository(P1, repo.id)
    assert report.actions[0].status is FindingStatus.NEW
    versions = sorted(v.source.version or "" for v in await world.uc.list_actions(P1))
    assert versions == ["1.0", "1.1"]


async def test_unchanged_content_follows_the_new_commit(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64),))
    await world.uc.scan_repository(P1, repo.id)
    world.git.commit = "c" * 40
    report = await world.uc.scan_repository(P1, repo.id)
    assert report.actions[0].status is FindingStatus.UNCHANGED
    view = await world.uc.get_action(P1, "demo", "1.0")
    assert view.source.origin.commit == "c" * 40


async def test_the_same_version_twice_in_one_scan_is_an_error(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("a", "1" * 64), found("b", "2" * 64)))
    report = await world.uc.scan_repository(P1, repo.id)
    assert [a.status for a in report.actions] == [FindingStatus.NEW, FindingStatus.INVALID]
    [problem] = report.actions[1].errors
    assert "also defined in folder a" in problem.message


async def test_a_vanished_action_is_kept_with_a_warning(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64),))
    await world.uc.scan_repository(P1, repo.id)
    world.scanner.findings = ScanFindings(actions=())
    report = await world.uc.scan_repository(P1, repo.id)
    assert any("was not found at this commit" in w.message for w in report.warnings)
    assert (await world.uc.get_action(P1, "demo", "1.0")).source.state is SourceState.VALID


async def test_scan_with_build_requests_every_buildable_action(world: World) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(
        actions=(
            found("a", "1" * 64, action_id="a"),
            found("b", "2" * 64, action_id="b"),
            invalid("c"),
        )
    )
    report = await world.uc.scan_repository(P1, repo.id, build=True)
    assert len(report.build_ids) == 2
    requested = [e for e in world.store.published if isinstance(e, ActionBuildRequested)]
    assert sorted(e.action_id for e in requested) == ["a", "b"]
    again = await world.uc.scan_repository(P1, repo.id, build=True)
    assert again.build_ids == ()  # already building


async def test_a_failing_fetch_records_nothing(world: World) -> None:
    repo = await add_repo(world)
    world.git.fail = "authentication failed: check the repository's credentials"
    with pytest.raises(ScanFailed, match="authentication failed"):
        await world.uc.scan_repository(P1, repo.id)
    assert world.store.scans == {} and world.store.sources == {}


async def test_upload_is_scanned_like_a_repository_but_keeps_no_invalid_folder(
    world: World,
    tmp_path: Path,
) -> None:
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64), invalid("bad")))
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK")
    report = await world.uc.upload_archive(P1, archive, "a.zip")
    assert report.origin_kind == "upload" and report.origin_name == "a.zip"
    assert [a.status for a in report.actions] == [FindingStatus.INVALID, FindingStatus.NEW]
    assert [s.state for s in world.store.sources.values()] == [SourceState.VALID]
    [source] = world.store.sources.values()
    assert source.origin.upload_id == report.id


# ---- builds --------------------------------------------------------------------------------


async def scanned(world: World, logo: bytes | None = None) -> None:
    repo = await add_repo(world)
    world.scanner.findings = ScanFindings(actions=(found("demo", "1" * 64, logo=logo),))
    await world.uc.scan_repository(P1, repo.id)


async def test_build_emits_the_request_in_the_same_commit(world: World) -> None:
    await scanned(world)
    commits = world.store.commits
    build = await world.uc.build_action(P1, "demo", "1.0")
    assert world.store.commits == commits + 1
    [event] = world.store.published
    assert isinstance(event, ActionBuildRequested)
    assert event.build_id == build.id and event.source_sha256 == "1" * 64
    assert event.project_id == P1
    with pytest.raises(Conflict, match="already being built"):
        await world.uc.build_action(P1, "demo", "1.0")
    await world.uc.build_action(P1, "demo", "1.0", force=True)


async def test_build_of_unknown_or_foreign_action_is_not_found(world: World) -> None:
    await scanned(world)
    with pytest.raises(NotFound):
        await world.uc.build_action(P2, "demo", "1.0")
    with pytest.raises(NotFound):
        await world.uc.build_action(P1, "demo", "9.9")


async def test_build_needs_the_stored_source(world: World) -> None:
    await scanned(world)
    world.filestore.objects.clear()
    with pytest.raises(ScanFailed, match="missing from the filestore"):
        await world.uc.build_action(P1, "demo", "1.0")


async def test_built_makes_the_action_ready_once(world: World) -> None:
    await scanned(world, logo=b"\x89PNG")
    build = await world.uc.build_action(P1, "demo", "1.0")
    world.store.published.clear()
    built = RecordBuildSucceeded(
        build_id=build.id,
        project_id=P1,
        artefact_key="artefacts/x.tar.gz",
        artefact_sha256="x" * 64,
        log="all good",
        cached=False,
        duration_seconds=3.0,
    )
    await world.uc.record_build_succeeded(built, "msg-1")
    await world.uc.record_build_succeeded(built, "msg-1")  # redelivered
    await world.uc.record_build_succeeded(built, "msg-2")  # same outcome sent twice
    [ready] = world.store.published
    assert isinstance(ready, ActionReady)
    assert ready.logo == b"\x89PNG" and ready.artefact_sha256 == "x" * 64
    view = await world.uc.get_action(P1, "demo", "1.0")
    assert view.source.state is SourceState.BUILT
    assert view.last_build is not None and view.last_build.log == "all good"
    got = await world.uc.get_build(P1, build.id)
    assert got.state is BuildState.SUCCEEDED
    with pytest.raises(NotFound):
        await world.uc.get_build(P2, build.id)


ARTEFACT = "artefacts/demo.tar.gz"


async def built(world: World) -> Build:
    """demo 1.0 scanned, built and ready, its artefact in the filestore."""
    await scanned(world)
    build = await world.uc.build_action(P1, "demo", "1.0")
    await world.uc.record_build_succeeded(
        RecordBuildSucceeded(
            build_id=build.id,
            project_id=P1,
            artefact_key=ARTEFACT,
            artefact_sha256="a" * 64,
            log="",
            cached=False,
            duration_seconds=1.0,
        ),
        f"built-{build.id}",
    )
    world.filestore.objects[ARTEFACT] = b"artefact"
    world.store.published.clear()
    assert (await world.uc.get_action(P1, "demo", "1.0")).source.state is SourceState.BUILT
    return build


async def test_a_built_action_with_its_artefact_is_not_built_again_by_a_scan(
    world: World,
) -> None:
    await built(world)
    [repo] = world.store.repositories.values()
    report = await world.uc.scan_repository(P1, repo.id, build=True)
    assert report.build_ids == () and world.store.published == []
    assert (await world.uc.get_action(P1, "demo", "1.0")).source.state is SourceState.BUILT


@pytest.mark.parametrize("build_flag", [False, True])
async def test_a_built_action_whose_artefact_is_missing_is_built_again_by_a_scan(
    world: World, caplog: pytest.LogCaptureFixture, build_flag: bool
) -> None:
    """The recorded build is not trusted when its artefact is gone (another checkout's
    filestore, deleted data): a new build is requested, so the builder really builds."""
    lost = await built(world)
    del world.filestore.objects[ARTEFACT]
    [repo] = world.store.repositories.values()
    with caplog.at_level(logging.WARNING, "ryax_repository"):
        report = await world.uc.scan_repository(P1, repo.id, build=build_flag)
    [new_id] = report.build_ids
    assert new_id != lost.id
    [requested] = world.store.published
    assert isinstance(requested, ActionBuildRequested) and requested.build_id == new_id
    [action] = report.actions
    assert action.status is FindingStatus.UNCHANGED and action.state is SourceState.BUILDING
    assert f"the artefact of build {lost.id} ({ARTEFACT}) is missing" in action.message
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.build_id == lost.id and record.artefact_key == ARTEFACT  # type: ignore[attr-defined]
    assert record.new_build_id == new_id  # type: ignore[attr-defined]


async def test_a_missing_artefact_is_rebuilt_under_a_changed_same_version(world: World) -> None:
    """The recorded source is kept (not the changed one) and its artefact built again."""
    await built(world)
    del world.filestore.objects[ARTEFACT]
    [repo] = world.store.repositories.values()
    world.scanner.findings = ScanFindings(actions=(found("demo", "9" * 64),))
    report = await world.uc.scan_repository(P1, repo.id)
    [action] = report.actions
    assert action.status is FindingStatus.CHANGED_SAME_VERSION
    assert len(report.build_ids) == 1
    [requested] = world.store.published
    assert isinstance(requested, ActionBuildRequested)
    assert requested.source_sha256 == "1" * 64


async def test_build_of_an_action_whose_artefact_is_missing_is_a_new_build(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    lost = await built(world)
    del world.filestore.objects[ARTEFACT]
    with caplog.at_level(logging.WARNING, "ryax_repository"):
        build = await world.uc.build_action(P1, "demo", "1.0")
    assert build.id != lost.id and build.state is BuildState.REQUESTED
    [requested] = world.store.published
    assert isinstance(requested, ActionBuildRequested) and requested.build_id == build.id
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert record.build_id == lost.id and record.artefact_key == ARTEFACT  # type: ignore[attr-defined]


async def test_failed_build_is_recorded_with_its_log(world: World) -> None:
    await scanned(world)
    build = await world.uc.build_action(P1, "demo", "1.0")
    await world.uc.record_build_failed(
        RecordBuildFailed(
            build_id=build.id,
            project_id=P1,
            reason="no matching distribution",
            log="pip says no",
            duration_seconds=2.0,
        ),
        "msg-3",
    )
    got = await world.uc.get_build(P1, build.id)
    assert (got.state, got.reason, got.log) == (
        BuildState.FAILED,
        "no matching distribution",
        "pip says no",
    )
    view = await world.uc.get_action(P1, "demo", "1.0")
    assert view.source.state is SourceState.BUILD_FAILED
    rebuilt = await world.uc.build_action(P1, "demo", "1.0")  # a failed build may be retried
    assert rebuilt.id != build.id
    assert [b.id for b in await world.uc.list_builds(P1, "demo", "1.0")] == [build.id, rebuilt.id]


async def test_results_for_unknown_or_foreign_builds_are_ignored(world: World) -> None:
    await scanned(world)
    build = await world.uc.build_action(P1, "demo", "1.0")
    world.store.published.clear()
    await world.uc.record_build_succeeded(
        RecordBuildSucceeded(
            build_id="nope",
            project_id=P1,
            artefact_key="k",
            artefact_sha256="s",
            log="",
            cached=False,
            duration_seconds=0,
        ),
        "m1",
    )
    await world.uc.record_build_succeeded(
        RecordBuildSucceeded(
            build_id=build.id,
            project_id=P2,
            artefact_key="k",
            artefact_sha256="s",
            log="",
            cached=False,
            duration_seconds=0,
        ),
        "m2",
    )
    assert world.store.published == []
    assert (await world.uc.get_build(P1, build.id)).state is BuildState.REQUESTED
