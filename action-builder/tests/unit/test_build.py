"""ActionBuilder (the use case) with fakes: no filestore, broker, pip or tar."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest

from ryax_action_builder.application.build_log import BuildLog
from ryax_action_builder.application.ports import ObjectNotFound
from ryax_action_builder.application.use_cases import ActionBuilder, BuildSettings
from ryax_action_builder.domain.errors import BuildRefused
from ryax_action_builder.domain.model import (
    ActionBuildFailed,
    ActionBuilt,
    ActionKind,
    ArchiveLimits,
    BuildId,
    BuildOrder,
    BuildOutcome,
    BuildPlan,
    PythonPackage,
    UnpackedSource,
    outcome_event_id,
)
from ryax_action_builder.infrastructure.metadata import parse_metadata
from ryax_kit.messaging import Unroutable, is_transient
from ryax_kit.testing import FakeClock, FakeTimers


class FakeFilestore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def download(self, key: str, destination: Path) -> None:
        if key not in self.objects:
            raise ObjectNotFound(key)
        destination.write_bytes(self.objects[key])  # noqa: ASYNC240 - a fake, tiny files

    async def upload(self, key: str, source: Path, content_type: str) -> None:
        self.objects[key] = source.read_bytes()  # noqa: ASYNC240 - a fake, tiny files

    async def read_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise ObjectNotFound(key)
        return self.objects[key]

    async def write_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data


class FakeUnpacker:
    """A 'source archive' here is JSON {path: text}."""

    def unpack(self, archive: Path, destination: Path, limits: ArchiveLimits) -> UnpackedSource:
        files: dict[str, str] = json.loads(archive.read_bytes())
        for name, text in files.items():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            (destination / name).write_text(text)
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        return UnpackedSource(files=frozenset(files), digest=digest)


class FakeBuildTool:
    python_version = "3.11"
    wrapper_version = "0.1.0+test"

    def __init__(self) -> None:
        self.built: list[BuildPlan] = []
        self.refuse: str = ""
        self.crash: Exception | None = None

    async def build(
        self, plan: BuildPlan, source_dir: Path, work_dir: Path, log: BuildLog, built_at: datetime
    ) -> Path:
        self.built.append(plan)
        log.add("fake build")
        if self.crash is not None:
            raise self.crash
        if self.refuse:
            log.add_output("ERROR: " + self.refuse)
            raise BuildRefused(f"requirements.txt: {self.refuse}")
        work_dir.mkdir(parents=True)  # noqa: ASYNC240 - a fake
        artefact = work_dir / "artefact.tar.gz"
        artefact.write_bytes(b"artefact of " + plan.address.encode())
        return artefact


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[BuildOutcome] = []
        self.fail: Exception | None = None

    async def publish(self, event: BuildOutcome) -> None:
        if self.fail is not None:
            raise self.fail
        self.published.append(event)


METADATA = (
    'apiVersion: "ryax.tech/v2.0"\nkind: Processor\nspec: {id: a, version: "1", type: python3}\n'
)


class World:
    def __init__(self) -> None:
        self.filestore = FakeFilestore()
        self.tool = FakeBuildTool()
        self.publisher = FakePublisher()
        self.builder = ActionBuilder(
            filestore=self.filestore,
            unpacker=FakeUnpacker(),
            build_tool=self.tool,
            parse_metadata=parse_metadata,
            publisher=self.publisher,
            clock=FakeClock(),
            timers=FakeTimers(),
            settings=BuildSettings(),
        )

    def source(self, files: dict[str, str]) -> tuple[str, str]:
        data = json.dumps(files).encode()
        sha = hashlib.sha256(data).hexdigest()
        key = f"sources/{sha}.tar.gz"
        self.filestore.objects[key] = data
        return key, sha

    def order(
        self,
        build_id: str,
        files: dict[str, str] | None = None,
        metadata: str = METADATA,
        python_packages: tuple[PythonPackage, ...] = (),
    ) -> BuildOrder:
        key, sha = self.source(
            files
            or {
                "ryax_handler.py": "def handle(r): return {}",
                "requirements.txt": "python-slugify==9.0.0\n",
            }
        )
        return BuildOrder(
            event_id=f"ev-{build_id}",
            build_id=BuildId(build_id),
            project_id="p",
            action_id="a",
            action_version="1",
            kind=ActionKind.PROCESSOR,
            source_key=key,
            source_sha256=sha,
            metadata_yaml=metadata,
            trace_context={"traceparent": "00-x"},
            python_packages=python_packages,
        )


async def test_build_stores_the_artefact_and_publishes_action_built() -> None:
    w = World()
    outcome = await w.builder.handle(w.order("b-1"))
    assert isinstance(outcome, ActionBuilt)
    assert w.publisher.published == [outcome]
    assert not outcome.cached
    assert outcome.event_id == outcome_event_id("b-1", "ActionBuilt")
    assert outcome.trace_context == {"traceparent": "00-x"}
    plan = w.tool.built[0]
    assert plan.requirements == "python-slugify==9.0.0\n"
    stored = w.filestore.objects[outcome.artefact_key]
    assert outcome.artefact_key == f"artefacts/{plan.address}.tar.gz"
    assert outcome.artefact_sha256 == hashlib.sha256(stored).hexdigest()
    info = json.loads(w.filestore.objects[f"artefacts/{plan.address}.json"])
    assert info["artefact_sha256"] == outcome.artefact_sha256
    assert "fake build" in outcome.build_log and "content address" in outcome.build_log


async def test_unchanged_action_is_not_rebuilt() -> None:
    w = World()
    first = await w.builder.handle(w.order("b-1"))
    second = await w.builder.handle(w.order("b-2"))
    assert isinstance(first, ActionBuilt) and isinstance(second, ActionBuilt)
    assert second.cached and len(w.tool.built) == 1
    assert (second.artefact_key, second.artefact_sha256) == (
        first.artefact_key,
        first.artefact_sha256,
    )
    assert "log of the build that made this artefact" in second.build_log
    assert second.event_id == outcome_event_id("b-2", "ActionBuilt")


async def test_artefact_without_sidecar_is_still_a_cache_hit() -> None:
    w = World()
    first = await w.builder.handle(w.order("b-1"))
    assert isinstance(first, ActionBuilt)
    del w.filestore.objects[first.artefact_key.replace(".tar.gz", ".json")]
    second = await w.builder.handle(w.order("b-2"))
    assert isinstance(second, ActionBuilt) and second.cached
    assert second.artefact_sha256 == first.artefact_sha256


async def test_sidecar_without_its_artefact_is_a_real_build() -> None:
    """The cache hit needs the artefact itself: a sidecar left alone (artefact deleted, or
    another filestore) never announces it; the action is built and stored again."""
    w = World()
    first = await w.builder.handle(w.order("b-1"))
    assert isinstance(first, ActionBuilt)
    sidecar = first.artefact_key.replace(".tar.gz", ".json")
    del w.filestore.objects[first.artefact_key]
    assert sidecar in w.filestore.objects
    second = await w.builder.handle(w.order("b-2"))
    assert isinstance(second, ActionBuilt) and not second.cached
    assert len(w.tool.built) == 2
    assert second.artefact_key == first.artefact_key
    assert first.artefact_key in w.filestore.objects
    info = json.loads(w.filestore.objects[sidecar])
    assert info["build_id"] == "b-2" and info["artefact_sha256"] == second.artefact_sha256


async def test_redelivered_order_answers_with_the_same_event_id() -> None:
    w = World()
    order = w.order("b-1")
    first = await w.builder.handle(order)
    again = await w.builder.handle(order)
    assert first.event_id == again.event_id


async def test_pip_failure_is_action_build_failed_with_the_log() -> None:
    w = World()
    w.tool.refuse = "No matching distribution found for nope==9.9"
    outcome = await w.builder.handle(w.order("b-1"))
    assert isinstance(outcome, ActionBuildFailed)
    assert outcome.reason == "requirements.txt: No matching distribution found for nope==9.9"
    assert "ERROR: No matching distribution found for nope==9.9" in outcome.build_log
    assert outcome.event_id == outcome_event_id("b-1", "ActionBuildFailed")
    assert not any(k.startswith("artefacts/") for k in w.filestore.objects)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("sha", "has sha256"),
        ("missing", "is not in the filestore"),
        ("yaml", "ryax_metadata.yaml:2:1: YAML syntax error"),
        ("entry", "ryax_handler.py is missing"),
    ],
)
async def test_refusals(change: str, reason: str) -> None:
    w = World()
    order = w.order("b-1")
    if change == "sha":
        order = BuildOrder(**{**order.__dict__, "source_sha256": "00" * 32})
    elif change == "missing":
        order = BuildOrder(**{**order.__dict__, "source_key": "sources/nope.tar.gz"})
    elif change == "yaml":
        order = w.order("b-1", metadata="spec: [unclosed")
    elif change == "entry":
        order = w.order("b-1", files={"other.py": ""})
    outcome = await w.builder.handle(order)
    assert isinstance(outcome, ActionBuildFailed)
    assert reason in outcome.reason
    assert not w.tool.built


async def test_nix_dependencies_are_built_without_them_and_said_in_the_log() -> None:
    w = World()
    outcome = await w.builder.handle(
        w.order("b-1", metadata="spec: {type: python3, dependencies: [ffmpeg]}")
    )
    assert isinstance(outcome, ActionBuilt)
    assert (
        "WARNING: spec.dependencies: Nix package ffmpeg is not installed by this platform"
        in outcome.build_log
    )
    assert w.tool.built[0].python_packages == ()


async def test_python_packages_declared_the_nix_way_go_to_the_build_tool() -> None:
    w = World()
    metadata = (
        "spec:\n  type: python3\n  dependencies:\n  - pythonPackages.tabulate\n"
        "  - python3Packages.scikitlearn\n  - gcc\n"
    )
    # As the repository maps them (it owns the table): the builder installs what it is given.
    mapped = (
        PythonPackage("pythonPackages.tabulate", "tabulate"),
        PythonPackage("python3Packages.scikitlearn", "scikit-learn"),
    )
    outcome = await w.builder.handle(w.order("b-1", metadata=metadata, python_packages=mapped))
    assert isinstance(outcome, ActionBuilt)
    [plan] = w.tool.built
    assert plan.python_requirements == ("tabulate", "scikit-learn")
    assert plan.requirements == "python-slugify==9.0.0\n"
    assert "WARNING: spec.dependencies: Nix package gcc" in outcome.build_log
    # The same source and requirements with other dependencies is another artefact.
    other = await w.builder.handle(w.order("b-2"))
    assert isinstance(other, ActionBuilt) and not other.cached
    assert other.artefact_key != outcome.artefact_key


async def test_unexpected_error_still_answers() -> None:
    w = World()
    w.tool.crash = OSError("disk full")
    outcome = await w.builder.handle(w.order("b-1"))
    assert isinstance(outcome, ActionBuildFailed)
    assert outcome.reason == "internal error in the action builder: OSError: disk full"


async def test_publish_failure_propagates_so_the_order_is_retried() -> None:
    w = World()
    w.publisher.fail = ConnectionError("broker gone")
    with pytest.raises(ConnectionError):
        await w.builder.handle(w.order("b-1"))


async def test_answer_with_no_queue_bound_yet_propagates_as_transient() -> None:
    """The repository's queue does not exist yet: the answer cannot be published, the order
    must be tried again later (the kit's consumer retries transient errors for ever)."""
    w = World()
    w.publisher.fail = Unroutable("no queue is bound to 'ryax.action-builder' yet")
    with pytest.raises(Unroutable) as raised:
        await w.builder.handle(w.order("b-1"))
    assert is_transient(raised.value)
    w.publisher.fail = None
    again = await w.builder.handle(w.order("b-1"))  # the redelivery: answered from the cache
    assert isinstance(again, ActionBuilt) and again.cached
    assert w.publisher.published == [again]
    assert again.event_id == outcome_event_id("b-1", "ActionBuilt")


def test_metadata_empty_is_a_mapping_and_problems_say_where() -> None:
    assert parse_metadata("") == {} and parse_metadata("  \n") == {}
    assert parse_metadata("spec: {type: python3}") == {"spec": {"type": "python3"}}
    with pytest.raises(BuildRefused) as duplicate:
        parse_metadata("spec: 1\nspec: 2\n")
    assert duplicate.value.detail == (
        "ryax_metadata.yaml:2:1: spec: duplicate key 'spec' (first given on line 1)"
    )
    with pytest.raises(BuildRefused, match="expected a mapping at the top level"):
        parse_metadata("- a\n- b\n")
