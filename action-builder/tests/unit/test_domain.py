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
    PythonPackage,
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


def order(
    kind: ActionKind = ActionKind.PROCESSOR, python_packages: tuple[PythonPackage, ...] = ()
) -> BuildOrder:
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
        python_packages=python_packages,
    )


def plan(
    metadata: dict[str, Any],
    files: set[str] | None = None,
    kind: ActionKind = ActionKind.PROCESSOR,
    python_packages: tuple[PythonPackage, ...] = (),
) -> Any:
    return plan_build(
        order(kind, python_packages),
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

    def test_other_nix_dependencies_are_warnings(self) -> None:
        p = plan(
            {"spec": {"type": "python3", "dependencies": ["git", "opencv"]}},
            files={"ryax_handler.py", "overlays.nix"},
        )
        assert p.warnings == (
            "spec.dependencies: Nix package git is not installed by this platform; if the code "
            "needs it, add a PyPI package that ships it to requirements.txt, or have it "
            "installed on the workers (docs/reference/actions.md, Dependencies)",
            "spec.dependencies: Nix package opencv is not installed by this platform; if the "
            "code needs it, add a PyPI package that ships it to requirements.txt, or have it "
            "installed on the workers (docs/reference/actions.md, Dependencies)",
            "overlays.nix is ignored: this platform has no Nix",
        )
        assert p.python_packages == ()
        assert p.address == plan({"spec": {"type": "python3"}}, files={"ryax_handler.py"}).address

    def test_python_packages_declared_the_nix_way_are_installed_from_pypi(self) -> None:
        """The order carries them, as the repository mapped them: no table here."""
        mapped = (
            PythonPackage("pythonPackages.tabulate", "tabulate"),
            PythonPackage("python3Packages.dateutil", "python-dateutil"),
            PythonPackage("python311Packages.opencv4", "opencv-python-headless"),
            PythonPackage("python310Packages.six", "six"),
            PythonPackage("python3Packages.pytorch", "torch"),
            PythonPackage("python3Packages.torch", "torch"),
        )
        spec = {
            "type": "python3",
            "dependencies": [p.dependency for p in mapped] + ["ffmpeg"],
        }
        p = plan({"spec": spec}, python_packages=mapped)
        assert p.python_requirements == (
            "tabulate",
            "python-dateutil",
            "opencv-python-headless",
            "six",
            "torch",
        )
        assert p.warnings == (
            "spec.dependencies: Nix package ffmpeg is not installed by this platform; if the "
            "code needs it, add a PyPI package that ships it to requirements.txt, or have it "
            "installed on the workers (docs/reference/actions.md, Dependencies)",
        )
        manifest = p.manifest(__import__("datetime").datetime(2026, 1, 1))
        assert manifest["python_packages"][:2] == [
            {"dependency": "pythonPackages.tabulate", "requirement": "tabulate"},
            {"dependency": "python3Packages.dateutil", "requirement": "python-dateutil"},
        ]
        # What gets installed is part of the address: another table, another artefact.
        assert p.address == content_address(
            source_digest="cd" * 32,
            requirements="",
            python_version="3.11",
            wrapper_version="w",
            python_packages=p.python_requirements,
        )
        assert p.address != plan({"spec": {"type": "python3"}}).address

    def test_an_order_without_python_packages_installs_none(self) -> None:
        """An order sent before the repository mapped them: every dependency is a warning."""
        p = plan({"spec": {"type": "python3", "dependencies": ["pythonPackages.six"]}})
        assert p.python_packages == ()
        assert p.warnings[0].startswith(
            "spec.dependencies: Nix package pythonPackages.six is not installed by this platform"
        )
        assert p.address == plan({"spec": {"type": "python3"}}).address

    def test_a_dependencies_value_that_is_not_a_list_installs_nothing(self) -> None:
        assert plan({"spec": {"dependencies": "pythonPackages.six"}}).python_packages == ()

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


TABULATE = (
    PythonPackage("pythonPackages.tabulate", "tabulate"),
    PythonPackage("python3Packages.dateutil", "python-dateutil"),
)


def test_a_missing_pypi_project_names_the_nix_dependency_it_came_from() -> None:
    log = "ERROR: No matching distribution found for python-dateutil\n"
    assert pip_failure_reason(log, TABULATE) == (
        "spec.dependencies: python3Packages.dateutil is installed from PyPI as python-dateutil, "
        "and No matching distribution found for python-dateutil"
    )
    other = "ERROR: No matching distribution found for nope==9.9\n"
    assert pip_failure_reason(other, TABULATE) == (
        "requirements.txt: No matching distribution found for nope==9.9"
    )
    assert pip_failure_reason("Killed", TABULATE) == (
        "requirements.txt and spec.dependencies: pip install failed (see the build log)"
    )


# pip 26's own words for each kind of conflict.
DIRECT_CONFLICT = """\
Collecting tabulate==0.8.10 (from -r requirements.txt (line 1))
ERROR: Cannot install -r requirements.txt (line 1) and tabulate because these package versions \
have conflicting dependencies.

The conflict is caused by:
    The user requested tabulate==0.8.10
    The user requested tabulate>=0.9

To fix this you could try to:
1. loosen the range of package versions you've specified

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-\
resolution/#dealing-with-dependency-conflicts
"""
TRANSITIVE_CONFLICT = """\
ERROR: Cannot install -r requirements.txt (line 1) and python-dateutil because these package \
versions have conflicting dependencies.

The conflict is caused by:
    The user requested six==1.4.1
    python-dateutil 2.9.0 depends on six>=1.5

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-\
resolution/#dealing-with-dependency-conflicts
"""


def test_a_conflict_between_requirements_and_dependencies_names_both() -> None:
    reason = pip_failure_reason(TRANSITIVE_CONFLICT, TABULATE)
    assert reason.startswith(
        "requirements.txt and spec.dependencies conflict: requirements.txt asks for six==1.4.1; "
        "python-dateutil 2.9.0 from spec.dependencies (python3Packages.dateutil) needs six>=1.5 "
        "(Cannot install -r requirements.txt (line 1) and python-dateutil because"
    )
    pinned = (PythonPackage("python3Packages.tabulate", "tabulate>=0.9"),)
    assert pip_failure_reason(DIRECT_CONFLICT, pinned).startswith(
        "requirements.txt and spec.dependencies conflict: requirements.txt asks for "
        "tabulate==0.8.10; spec.dependencies asks for tabulate>=0.9 (python3Packages.tabulate)"
    )


def test_a_conflict_within_requirements_txt_names_only_it() -> None:
    assert pip_failure_reason(TRANSITIVE_CONFLICT).startswith(
        "requirements.txt: Cannot install -r requirements.txt (line 1) and python-dateutil"
    )
    only = (PythonPackage("pythonPackages.numpy", "numpy"),)
    assert pip_failure_reason(TRANSITIVE_CONFLICT, only).startswith(
        "requirements.txt conflict: requirements.txt asks for six==1.4.1; python-dateutil "
        "2.9.0 needs six>=1.5"
    )
