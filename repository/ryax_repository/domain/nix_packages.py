"""Python packages declared the Nix way in `spec.dependencies`, installed from PyPI instead.

Published Ryax builds actions with Nix: `spec.dependencies` lists nixpkgs attributes, and actions
written for it declare Python packages there (`pythonPackages.pandas`, `python3Packages.numpy`,
`python311Packages.opencv4`). This platform has no Nix, so a Python package set attribute
(`pythonPackages.X`, `python3Packages.X`, `python3NNPackages.X`, `python3.pkgs.X`) is installed
from PyPI, in the same pip run as `requirements.txt`; any other Nix package is reported, never
installed. docs/reference/FORMAT-NOTES.md gives the sources of the table below.

Standard library only. The repository is the only owner of this table: the scan shows what
the build installs, and the build request (ActionBuildRequested.python_packages) carries each
declared Python package with its requirement, which the action builder installs as given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

#: Nix attribute (after `python3Packages.`) -> PyPI requirement, where they are not the same
#: project. Any other attribute installs the PyPI project of its own name: nixpkgs names its
#: Python attributes after the PyPI project, lowercased (pip compares names ignoring case and
#: treating `-`, `_` and `.` alike), so `pyyaml`, `pillow`, `beautifulsoup4`, `jinja2`,
#: `scikit-learn`, `torch` need no entry.
PYPI_REQUIREMENTS: Final[Mapping[str, str]] = {
    # Old attribute names that nixpkgs keeps as aliases (pkgs/top-level/python-aliases.nix).
    "cchardet": "faust-cchardet",
    "dateutil": "python-dateutil",
    "dns": "dnspython",
    "ldap": "python-ldap",
    "memcached": "python-memcached",
    "pam": "python-pam",
    "pathpy": "path",
    "pdfminer": "pdfminer.six",
    "pymc3": "pymc",
    "pyreadability": "readability-lxml",
    "python-igraph": "igraph",
    "python-lz4": "lz4",
    "pytorch": "torch",
    "pytorch-bin": "torch",
    "pytorchWithCuda": "torch",
    "pytorchWithoutCuda": "torch",
    "retworkx": "rustworkx",
    "scikitimage": "scikit-image",
    "scikitlearn": "scikit-learn",
    "slackclient": "slack-sdk",
    "tensorflow-tensorboard": "tensorboard",
    "z3": "z3-solver",
    # One PyPI project built several ways in nixpkgs (prebuilt binaries, with or without CUDA).
    "jaxlib-bin": "jaxlib",
    "jaxlibWithCuda": "jaxlib",
    "tensorflow-bin": "tensorflow",
    "tensorflow-build": "tensorflow",
    "tensorflow-estimator-bin": "tensorflow-estimator",
    "tensorflowWithCuda": "tensorflow",
    "tensorflowWithoutCuda": "tensorflow",
    "torch-bin": "torch",
    "torchWithCuda": "torch",
    "torchWithoutCuda": "torch",
    "torchWithRocm": "torch",
    "torchaudio-bin": "torchaudio",
    "torchvision-bin": "torchvision",
    # Major versions kept side by side in nixpkgs.
    "numpy_1": "numpy<2",
    "numpy_2": "numpy>=2,<3",
    # Python bindings that nixpkgs builds from a C/C++ library; on PyPI, the self-contained
    # wheel with the same import name (`cv2`, `psycopg2`, `psycopg`). OpenCV without its GUI
    # part: the GUI build needs libGL and X11 libraries that workers do not have.
    "opencv": "opencv-python-headless",
    "opencv3": "opencv-python-headless",
    "opencv4": "opencv-python-headless",
    "opencv4Full": "opencv-contrib-python-headless",
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
}

#: Attributes of the Python package sets that are not PyPI projects.
NOT_ON_PYPI: Final[Mapping[str, str]] = {
    "python": "it is the interpreter itself, which the platform provides "
    "(spec.options.python.version chooses its version)",
    "tkinter": "it is part of Python's standard library, not a PyPI project",
}

_PYTHON3_SET: Final = re.compile(
    r"(?P<set>python(?P<version>3[0-9]{0,2})?(?:Packages|\.pkgs))\.(?P<attribute>.+)"
)
_PYTHON2_SET: Final = re.compile(r"python2[0-9]?(?:Packages|\.pkgs)\..+")
_ATTRIBUTE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
_PYPI_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_REQUIREMENT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
INSTEAD: Final = (
    "if the code needs it, add a PyPI package that ships it to requirements.txt, or have it "
    "installed on the workers (docs/reference/actions.md, Dependencies)"
)


@dataclass(frozen=True)
class PythonPackage:
    """A Python package set attribute of `spec.dependencies` and what pip installs for it."""

    dependency: str  # as written: python311Packages.opencv4
    attribute: str  # opencv4
    requirement: str  # opencv-python-headless
    python_version: str | None = None  # "3.11" for python311Packages, None for any Python 3

    @property
    def renamed(self) -> bool:
        return canonical_name(self.requirement) != canonical_name(self.attribute)


@dataclass(frozen=True)
class NotInstalled:
    """A dependency this platform does not install, and why (a complete sentence)."""

    dependency: str
    reason: str


def canonical_name(requirement: str) -> str:
    """The project name of a requirement, normalised as pip compares them (PEP 503)."""
    match = _REQUIREMENT_NAME.match(requirement.strip())
    name = match.group(0) if match else requirement.strip()
    return re.sub(r"[-_.]+", "-", name).lower()


def classify_dependency(dependency: str) -> PythonPackage | NotInstalled:
    """A Python package installed from PyPI, or the reason the dependency is not installed."""
    value = dependency.strip()
    if _PYTHON2_SET.fullmatch(value):
        return NotInstalled(
            dependency,
            f"{value} is a Python 2 package and actions run on Python 3; declare it as "
            "python3Packages.<name> or list it in requirements.txt",
        )
    match = _PYTHON3_SET.fullmatch(value)
    if match is None:
        return NotInstalled(
            dependency, f"Nix package {value} is not installed by this platform; {INSTEAD}"
        )
    attribute = match["attribute"]
    if _ATTRIBUTE.fullmatch(attribute) is None:
        return NotInstalled(
            dependency,
            f"{value} is not a package of {match['set']} that can be installed from PyPI "
            "(expected one attribute name, such as pandas); list what the code needs in "
            "requirements.txt",
        )
    if attribute in NOT_ON_PYPI:
        return NotInstalled(dependency, f"{value} is not installed: {NOT_ON_PYPI[attribute]}")
    requirement = PYPI_REQUIREMENTS.get(attribute, attribute)
    if requirement == attribute and _PYPI_NAME.fullmatch(attribute) is None:
        return NotInstalled(
            dependency,
            f"{value} has no PyPI equivalent ({attribute!r} is not a valid PyPI project name); "
            "list what the code needs in requirements.txt",
        )
    version = match["version"]
    python_version = f"3.{version[1:]}" if version and len(version) > 1 else None
    return PythonPackage(value, attribute, requirement, python_version)


def declared_python_packages(dependencies: Iterable[str]) -> tuple[PythonPackage, ...]:
    """Every dependency that is a Python package, in order (two may install the same
    requirement: `python3Packages.torch` and `python3Packages.pytorch`)."""
    found = (classify_dependency(dependency) for dependency in dependencies)
    return tuple(package for package in found if isinstance(package, PythonPackage))


def python_packages(dependencies: Iterable[str]) -> tuple[PythonPackage, ...]:
    """The dependencies that are Python packages, in order, one per PyPI requirement."""
    found: dict[str, PythonPackage] = {}
    for package in declared_python_packages(dependencies):
        found.setdefault(package.requirement, package)
    return tuple(found.values())
