"""Content addressing, archive safety and build plans (pure domain)."""

from __future__ import annotations

from typing import Any

import pytest

from ryax_action_builder.domain.errors import BuildRefused, UnsafeArchive
from ryax_action_builder.domain.model import (
    ActionKind,
    ArchiveLimits,
    ArchiveMember,
    BuildId,
    BuildOrder,
    MemberType,
    SourceEntry,
    check_archive,
    check_member,
    content_address,
    outcome_event_id,
    pip_failure_reason,
    plan_build,
    source_digest,
)

BASE = {
    "source_digest": "ab" * 32,
    "requirements": "python-slugify==9.0.0\n",
    "python_version": "3.11",
    "wrapper_version": "0.1.0+abc",
}


class TestContentAddress:
    def test_same_inputs_same_address(self) -> None:
        assert content_address(**BASE) == content_address(**BASE)
        assert len(content_address(**BASE)) == 64

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("source_digest", "cd" * 32),
            ("requirements", "python-slugify==9.0.1"),
            ("python_version", "3.12"),
            ("wrapper_version", "0.1.0+def"),
        ],
    )
    def test_each_input_changes_it(self, field: str, value: str) -> None:
        assert content_address(**{**BASE, field: value}) != content_address(**BASE)

    def test_requirements_comments_blank_lines_and_line_endings_do_not_matter(self) -> None:
        noisy = "# pinned\r\n\r\npython-slugify==9.0.0   \r\n"
        assert content_address(**{**BASE, "requirements": noisy}) == content_address(**BASE)

    def test_source_digest_case_does_not_matter(self) -> None:
        upper = {**BASE, "source_digest": "AB" * 32}
        assert content_address(**upper) == content_address(**BASE)


def member(
    name: str, type_: MemberType = MemberType.FILE, link: str = "", size: int = 1
) -> ArchiveMember:
    return ArchiveMember(name=name, type=type_, link=link, size=size)


class TestArchiveSafety:
    @pytest.mark.parametrize(
        "safe",
        [
            member("ryax_handler.py"),
            member("./lib/util.py"),
            member("lib", MemberType.DIRECTORY),
            member("a/../b.py"),
            member("lib/link.py", MemberType.SYMLINK, "../ryax_handler.py"),
            member("lib/hard.py", MemberType.HARDLINK, "ryax_handler.py"),
        ],
    )
    def test_safe_members(self, safe: ArchiveMember) -> None:
        check_member(safe)

    @pytest.mark.parametrize(
        ("unsafe", "message"),
        [
            (member("/etc/passwd"), "absolute path"),
            (member("../outside.py"), "escapes the archive root"),
            (member("a/../../outside.py"), "escapes the archive root"),
            (member("..", MemberType.DIRECTORY), "escapes the archive root"),
            (member("C:evil.py"), "absolute path"),
            (member("link", MemberType.SYMLINK, "/etc/passwd"), "absolute path"),
            (member("lib/link", MemberType.SYMLINK, "../../etc/passwd"), "points outside"),
            (member("link", MemberType.SYMLINK, ".."), "points outside"),
            (member("hard", MemberType.HARDLINK, "../../etc/passwd"), "points outside"),
            (member("hard", MemberType.HARDLINK, "/etc/passwd"), "points outside"),
            (member("dev", MemberType.OTHER), "device or fifo"),
        ],
    )
    def test_unsafe_members(self, unsafe: ArchiveMember, message: str) -> None:
        with pytest.raises(UnsafeArchive, match=message):
            check_member(unsafe)

    def test_limits(self) -> None:
        limits = ArchiveLimits(max_total_bytes=100, max_members=3)
        check_archive([member("a", size=50), member("b", size=50)], limits)
        with pytest.raises(UnsafeArchive, match=r"more than"):
            check_archive([member("a", size=60), member("b", size=60)], limits)
        with pytest.raises(UnsafeArchive, match="more than 3 entries"):
            check_archive([member(str(i), size=0) for i in range(4)], limits)


def order(kind: ActionKind = ActionKind.PROCESSOR) -> BuildOrder:
    return BuildOrder(
        event_id="e",
        build_id=BuildId("b-1"),
        project_id="p",
        action_id="a",
        action_version="1.0",
        kind=kind,
        source_key="sources/x.tar.gz",
        source_sha256="ab" * 32,
        metadata_yaml="",
    )


def plan(
    metadata: dict[str, Any], files: set[str] | None = None, kind: ActionKind = ActionKind.PROCESSOR
) -> Any:
    return plan_build(
        order(kind),
        metadata=metadata,
        source_files=frozenset(files if files is not None else {"ryax_handler.py"}),
        source_digest="cd" * 32,
        requirements="",
        python_version="3.11",
        wrapper_version="w",
    )


class TestBuildPlan:
    def test_plain_python_action(self) -> None:
        p = plan({"spec": {"type": "python3", "options": {"python": {"version": "3.11"}}}})
        assert p.artefact_key == f"artefacts/{p.address}.tar.gz"
        assert p.info_key == f"artefacts/{p.address}.json"
        manifest = p.manifest(__import__("datetime").datetime(2026, 1, 1))
        assert manifest["kind"] == "processor" and manifest["python"] == "3.11"
        assert manifest["entry"] == "ryax_handler.py"

    def test_binary_dependencies_are_a_warning(self) -> None:
        p = plan(
            {"spec": {"type": "python3", "dependencies": ["git", "opencv"]}},
            files={"ryax_handler.py", "overlays.nix"},
        )
        assert p.warnings == (
            "binary dependencies (Nix) are not supported by this platform and were not "
            "installed: git, opencv",
            "overlays.nix is ignored: this platform has no Nix",
        )

    def test_other_runtimes_are_refused(self) -> None:
        with pytest.raises(BuildRefused, match="type 'nodejs' cannot be built here"):
            plan({"spec": {"type": "nodejs"}})

    def test_python_version_must_match(self) -> None:
        with pytest.raises(BuildRefused, match=r"Python 3\.12 requested"):
            plan({"spec": {"options": {"python": {"version": "3.12"}}}})

    def test_entry_file_must_exist(self) -> None:
        with pytest.raises(BuildRefused, match=r"ryax_run\.py is missing"):
            plan({"spec": {}}, files={"ryax_handler.py"}, kind=ActionKind.TRIGGER)


def test_source_digest_ignores_order_but_not_content_or_modes() -> None:
    a = SourceEntry(path="a.py", type=MemberType.FILE, content="1")
    b = SourceEntry(path="b", type=MemberType.SYMLINK, content="a.py")
    assert source_digest([a, b]) == source_digest([b, a])
    assert source_digest([a]) != source_digest(
        [SourceEntry(path="a.py", type=MemberType.FILE, content="2")]
    )
    assert source_digest([a]) != source_digest(
        [SourceEntry(path="a.py", type=MemberType.FILE, content="1", executable=True)]
    )


def test_event_ids_are_deterministic_per_build_and_outcome() -> None:
    assert outcome_event_id("b-1", "ActionBuilt") == outcome_event_id("b-1", "ActionBuilt")
    assert outcome_event_id("b-1", "ActionBuilt") != outcome_event_id("b-1", "ActionBuildFailed")
    assert outcome_event_id("b-1", "ActionBuilt") != outcome_event_id("b-2", "ActionBuilt")


def test_pip_failure_reason_keeps_the_useful_error() -> None:
    log = (
        "Collecting nope==9.9\n"
        "ERROR: Could not find a version that satisfies the requirement nope==9.9 (from versions: "
        "none)\nERROR: No matching distribution found for nope==9.9\n"
    )
    assert (
        pip_failure_reason(log) == "requirements.txt: No matching distribution found for nope==9.9"
    )
    assert "see the build log" in pip_failure_reason("Traceback...")
