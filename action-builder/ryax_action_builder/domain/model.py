"""Build orders, their outcome events, and the rules of a build: content addressing, archive
safety, what an action needs (runtime, Python version, dependencies)."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, NewType

from .errors import BuildRefused, UnsafeArchive

BuildId = NewType("BuildId", str)

#: Bump when the artefact layout changes: every content address changes with it.
ARTEFACT_FORMAT: Final = 1
SUPPORTED_TYPES: Final = ("python3", "python3-cuda")
#: What to do about a dependency of spec.dependencies that is not installed.
INSTEAD: Final = (
    "if the code needs it, add a PyPI package that ships it to requirements.txt, or have it "
    "installed on the workers (docs/reference/actions.md, Dependencies)"
)
_EVENT_NAMESPACE: Final = uuid.UUID("5d3b2f7e-4a7c-4f51-9b7e-6d1f3b0a9c21")
_REQUIREMENT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ActionKind(StrEnum):
    TRIGGER = "trigger"
    PROCESSOR = "processor"
    PUBLISHER = "publisher"

    @property
    def entry_file(self) -> str:
        return "ryax_run.py" if self is ActionKind.TRIGGER else "ryax_handler.py"


@dataclass(frozen=True)
class PythonPackage:
    """A Python package declared the Nix way in spec.dependencies, and the pip requirement the
    repository maps it to (it owns that table; the builder installs what the order says)."""

    dependency: str  # as written: python311Packages.opencv4
    requirement: str  # opencv-python-headless


@dataclass(frozen=True, kw_only=True)
class BuildOrder:
    """Build this action version (command; from repository's ActionBuildRequested)."""

    event_id: str
    build_id: BuildId
    project_id: str
    action_id: str
    action_version: str
    kind: ActionKind
    source_key: str
    source_sha256: str
    #: The text of ryax_metadata.yaml (already validated by repository).
    metadata_yaml: str
    repository_id: str = ""
    source_commit: str = ""
    trace_context: Mapping[str, str] = field(default_factory=dict)
    #: Every Python package of spec.dependencies, in order, with its PyPI requirement, as the
    #: repository mapped them; any other dependency is not installed. An order without them
    #: (sent before the repository mapped them) has none.
    python_packages: tuple[PythonPackage, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ActionBuilt:
    event_id: str
    build_id: BuildId
    project_id: str
    action_id: str
    action_version: str
    artefact_key: str
    artefact_sha256: str
    build_log: str
    cached: bool
    duration_seconds: float
    built_at: datetime
    trace_context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ActionBuildFailed:
    event_id: str
    build_id: BuildId
    project_id: str
    action_id: str
    action_version: str
    reason: str
    build_log: str
    duration_seconds: float
    failed_at: datetime
    trace_context: Mapping[str, str] = field(default_factory=dict)


BuildOutcome = ActionBuilt | ActionBuildFailed


def outcome_event_id(build_id: str, outcome: str) -> str:
    """Deterministic: a redelivered order answers with the same id, which consumers dedupe."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{build_id}:{outcome}"))


def content_address(
    *,
    source_digest: str,
    requirements: str,
    python_version: str,
    wrapper_version: str,
    python_packages: tuple[str, ...] = (),
) -> str:
    """sha256 of everything that makes an artefact: same inputs, same artefact.

    `source_digest` digests the unpacked source (paths, kinds, modes, bytes), not the archive:
    the same code packed twice (another mtime, another gzip) is the same artefact.
    `python_packages` are the PyPI requirements of spec.dependencies (they follow the
    repository's mapping table, not only the source); absent when there are none, so earlier
    addresses still hold.
    """
    inputs: dict[str, object] = {
        "format": ARTEFACT_FORMAT,
        "source": source_digest.lower(),
        "requirements": normalize_requirements(requirements),
        "python": python_version,
        "wrapper": wrapper_version,
    }
    if python_packages:
        inputs["python_packages"] = list(python_packages)
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def normalize_requirements(text: str) -> str:
    lines = (line.strip() for line in text.replace("\r\n", "\n").split("\n"))
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def artefact_key(address: str) -> str:
    return f"artefacts/{address}.tar.gz"


def artefact_info_key(address: str) -> str:
    """Sidecar of an artefact: its sha256 and build log (so a cache hit answers at once)."""
    return f"artefacts/{address}.json"


# --------------------------------------------------------------------------- archive safety


class MemberType(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"  # devices, fifos...


@dataclass(frozen=True, kw_only=True)
class ArchiveMember:
    name: str
    type: MemberType
    size: int = 0
    #: Target of a symlink (relative to the link's folder) or hardlink (relative to the root).
    link: str = ""


@dataclass(frozen=True, kw_only=True)
class ArchiveLimits:
    max_total_bytes: int = 256 * 1024 * 1024
    max_members: int = 20_000


def _escapes(path: str) -> bool:
    normalized = posixpath.normpath(path)
    return normalized == ".." or normalized.startswith("../")


def check_member(member: ArchiveMember) -> None:
    """Refuse a member that would land (or point) outside the extraction root."""
    name = member.name
    if not name or name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"source archive: '{name}' is an absolute path")
    if _escapes(name):
        raise UnsafeArchive(f"source archive: '{name}' escapes the archive root")
    if member.type is MemberType.OTHER:
        raise UnsafeArchive(f"source archive: '{name}' is a device or fifo")
    if member.type is MemberType.SYMLINK:
        if member.link.startswith("/"):
            raise UnsafeArchive(f"source archive: symlink '{name}' points to an absolute path")
        target = posixpath.join(posixpath.dirname(posixpath.normpath(name)), member.link)
        if _escapes(target):
            raise UnsafeArchive(f"source archive: symlink '{name}' points outside the archive")
    if member.type is MemberType.HARDLINK and (
        member.link.startswith("/") or _escapes(member.link)
    ):
        raise UnsafeArchive(f"source archive: hard link '{name}' points outside the archive")


def check_archive(members: Iterable[ArchiveMember], limits: ArchiveLimits) -> None:
    """Every member safe, and the whole within the limits (no archive bomb)."""
    total = 0
    for count, member in enumerate(members, start=1):
        check_member(member)
        total += max(member.size, 0)
        if count > limits.max_members:
            raise UnsafeArchive(f"source archive: more than {limits.max_members} entries")
        if total > limits.max_total_bytes:
            raise UnsafeArchive(
                f"source archive: more than {limits.max_total_bytes // (1024 * 1024)} MiB"
            )


@dataclass(frozen=True, kw_only=True)
class SourceEntry:
    """One entry of an unpacked source, for its digest."""

    path: str
    type: MemberType
    executable: bool = False
    #: sha256 of a file's bytes, or a symlink's target.
    content: str = ""


def source_digest(entries: Iterable[SourceEntry]) -> str:
    """Digest of a source tree, independent of how it was archived (order, mtimes, owners)."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(
            f"{entry.path}\0{entry.type.value}\0{int(entry.executable)}\0{entry.content}\n".encode()
        )
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class UnpackedSource:
    #: Relative paths of the regular files.
    files: frozenset[str]
    digest: str


# --------------------------------------------------------------------------- build plan


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """What the build of one order does, decided before any work."""

    order: BuildOrder
    address: str
    source_digest: str
    #: Said in the build log; they do not stop the build.
    warnings: tuple[str, ...] = ()
    requirements: str
    python_version: str
    wrapper_version: str
    #: Python packages declared in spec.dependencies, installed from PyPI with requirements.txt.
    python_packages: tuple[PythonPackage, ...] = ()

    @property
    def python_requirements(self) -> tuple[str, ...]:
        return tuple(p.requirement for p in self.python_packages)

    @property
    def artefact_key(self) -> str:
        return artefact_key(self.address)

    @property
    def info_key(self) -> str:
        return artefact_info_key(self.address)

    def manifest(self, built_at: datetime) -> dict[str, Any]:
        o = self.order
        return {
            "format": ARTEFACT_FORMAT,
            "action_id": o.action_id,
            "action_version": o.action_version,
            "kind": o.kind.value,
            "entry": o.kind.entry_file,
            "python": self.python_version,
            "wrapper_version": self.wrapper_version,
            "content_address": self.address,
            "source_sha256": o.source_sha256,
            "source_digest": self.source_digest,
            "requirements": [
                line for line in normalize_requirements(self.requirements).split("\n") if line
            ],
            "python_packages": [
                {"dependency": p.dependency, "requirement": p.requirement}
                for p in self.python_packages
            ],
            "build_id": o.build_id,
            "repository_id": o.repository_id,
            "source_commit": o.source_commit,
            "built_at": built_at.isoformat(),
            "layout": {"code": "code/", "deps": "deps/", "wrapper": "wrapper/", "run": "run.sh"},
        }


def plan_build(
    order: BuildOrder,
    *,
    metadata: Mapping[str, Any],
    source_files: frozenset[str],
    source_digest: str,
    requirements: str,
    python_version: str,
    wrapper_version: str,
) -> BuildPlan:
    """Check the action can be built here (runtime type, Python version, entry file present),
    note what will be ignored (Nix dependencies), and compute its content address."""
    spec = metadata.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    action_type = str(spec.get("type") or "python3")
    if action_type not in SUPPORTED_TYPES:
        raise BuildRefused(
            f"actions of type '{action_type}' cannot be built here (supported: "
            f"{', '.join(SUPPORTED_TYPES)})"
        )
    warnings: list[str] = []
    packages = _python_packages(spec, order.python_packages, warnings)
    if "overlays.nix" in source_files:
        warnings.append("overlays.nix is ignored: this platform has no Nix")
    wanted = _requested_python(spec)
    if wanted and wanted != python_version:
        raise BuildRefused(
            f"Python {wanted} requested (spec.options.python.version); this builder has "
            f"Python {python_version}"
        )
    if order.kind.entry_file not in source_files:
        raise BuildRefused(f"{order.kind.entry_file} is missing (a {order.kind} needs it)")
    address = content_address(
        source_digest=source_digest,
        requirements=requirements,
        python_version=python_version,
        wrapper_version=wrapper_version,
        python_packages=tuple(p.requirement for p in packages),
    )
    return BuildPlan(
        order=order,
        address=address,
        warnings=tuple(warnings),
        source_digest=source_digest,
        requirements=requirements,
        python_version=python_version,
        wrapper_version=wrapper_version,
        python_packages=packages,
    )


def _python_packages(
    spec: Mapping[str, Any], ordered: tuple[PythonPackage, ...], warnings: list[str]
) -> tuple[PythonPackage, ...]:
    """spec.dependencies (Nix packages in published Ryax): the Python packages the order maps to
    PyPI, one per requirement; a warning for each other dependency (it is not installed)."""
    mapped = {package.dependency for package in ordered}
    dependencies = spec.get("dependencies") or []
    for name in (str(d).strip() for d in dependencies) if isinstance(dependencies, list) else ():
        if name not in mapped:
            warnings.append(
                f"spec.dependencies: Nix package {name} is not installed by this platform; "
                f"{INSTEAD}"
            )
    found: dict[str, PythonPackage] = {}
    for package in ordered:
        found.setdefault(package.requirement, package)
    return tuple(found.values())


def _requested_python(spec: Mapping[str, Any]) -> str:
    # The published docs spell it both spec.options and spec.option.
    for key in ("options", "option"):
        options = spec.get(key)
        if isinstance(options, Mapping):
            python = options.get("python")
            if isinstance(python, Mapping) and python.get("version") is not None:
                return str(python["version"]).strip()
    return ""


def pip_failure_reason(log: str, python_packages: tuple[PythonPackage, ...] = ()) -> str:
    """One user-facing line from pip's output: its last useful ERROR line, made readable, and
    which file asked for what when requirements.txt and spec.dependencies are installed together
    (a conflict names both)."""
    errors = [line.strip() for line in log.splitlines() if line.strip().startswith("ERROR:")]
    source = "requirements.txt and spec.dependencies" if python_packages else "requirements.txt"
    if not errors:
        return f"{source}: pip install failed (see the build log)"
    # pip often ends with a generic line (ResolutionImpossible: see this URL) after the useful
    # one.
    useful = [
        e
        for e in errors
        if "No matching distribution" in e
        or ("conflict" in e.lower() and "ResolutionImpossible" not in e)
    ]
    line = (useful or errors)[-1].removeprefix("ERROR:").strip()
    if not python_packages:
        return f"{source}: {line}"
    by_name = {canonical_name(p.requirement): p for p in python_packages}
    missing = re.search(r"No matching distribution found for (\S+)", line)
    if missing is not None:
        package = by_name.get(canonical_name(missing.group(1)))
        if package is not None:
            return (
                f"spec.dependencies: {package.dependency} is installed from PyPI as "
                f"{package.requirement}, and {line}"
            )
        return f"requirements.txt: {line}"
    causes = _conflict_causes(log, by_name)
    if causes:
        sides = {side for side, _ in causes if side} or {"requirements.txt"}
        named = "requirements.txt and spec.dependencies" if len(sides) > 1 else sides.pop()
        return f"{named} conflict: " + "; ".join(text for _, text in causes) + f" ({line})"
    return f"{source}: {line}"


def _conflict_causes(log: str, by_name: Mapping[str, PythonPackage]) -> list[tuple[str, str]]:
    """pip's "The conflict is caused by:" lines, each with the file that asked for it
    (requirements.txt, spec.dependencies, or "" for a dependency of a dependency)."""
    lines = log.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if "The conflict is caused by" in line)
    except StopIteration:
        return []
    causes: list[tuple[str, str]] = []
    for raw in lines[start + 1 :]:
        text = raw.strip()
        if not text:
            break
        requested = re.fullmatch(r"The user requested (.+)", text)
        depends = re.fullmatch(r"(\S+) (\S+) depends on (.+)", text)
        if requested is not None:
            wanted = requested.group(1)
            package = by_name.get(canonical_name(wanted))
            if package is not None and _same(package.requirement, wanted):
                causes.append(
                    (
                        "spec.dependencies",
                        f"spec.dependencies asks for {wanted} ({package.dependency})",
                    )
                )
            else:
                causes.append(("requirements.txt", f"requirements.txt asks for {wanted}"))
        elif depends is not None:
            name, version, wanted = depends.groups()
            package = by_name.get(canonical_name(name))
            if package is not None:
                causes.append(
                    (
                        "spec.dependencies",
                        f"{name} {version} from spec.dependencies ({package.dependency}) needs "
                        f"{wanted}",
                    )
                )
            else:
                causes.append(("", f"{name} {version} needs {wanted}"))
    return causes


def canonical_name(requirement: str) -> str:
    """The project name of a requirement, normalised as pip compares them (PEP 503), to find
    which package pip's output speaks of."""
    match = _REQUIREMENT_NAME.match(requirement.strip())
    name = match.group(0) if match else requirement.strip()
    return re.sub(r"[-_.]+", "-", name).lower()


def _same(requirement: str, wanted: str) -> bool:
    return requirement.replace(" ", "").lower() == wanted.replace(" ", "").lower()
