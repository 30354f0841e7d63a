"""Find, validate and pack the action folders of a checked-out repository or an upload.

The tree is untrusted: symbolic links are reported and never followed nor packed, special
files are skipped, every size is bounded (metadata file, action folder, number of files), and
files are opened with O_NOFOLLOW. A valid action folder is packed as a deterministic tar.gz
(sorted entries, fixed mtimes, owners and modes, no gzip name or time), so the same content
always gives the same SHA-256: the source's identity and filestore address.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ryax_kit.safe_yaml import YamlError

from ..application.ports import FoundAction, ScanFindings
from ..domain.action_metadata import (
    ActionMetadata,
    InvalidActionMetadata,
    check_entrypoint,
)
from ..domain.model import Issue, PackedSource
from .yaml_nodes import load_action_metadata, load_nodes

METADATA_NAME = "ryax_metadata.yaml"
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
SKIPPED_SUFFIXES = (".pyc",)
NIX_OVERLAYS = "overlays.nix"
MiB = 1024 * 1024


@dataclass
class _Tree:
    files: dict[str, int] = field(default_factory=dict)  # regular files -> size
    dirs: list[str] = field(default_factory=list)
    notes: list[Issue] = field(default_factory=list)  # links and special files, by path
    errors: list[Issue] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ScanLimits:
    max_metadata_bytes: int = MiB
    max_action_bytes: int = 50 * MiB
    max_action_files: int = 10_000
    max_files: int = 200_000
    max_depth: int = 64
    max_code_bytes: int = 5 * MiB
    max_logo_bytes: int = MiB


def _open(root: Path, relative: str) -> BinaryIO:
    fd = os.open(root / relative, os.O_RDONLY | os.O_NOFOLLOW)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{relative} is not a regular file")
    return os.fdopen(fd, "rb")


def read_limited(root: Path, relative: str, limit: int) -> bytes:
    with _open(root, relative) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{relative} is larger than {limit} bytes")
    return data


def _escapes(parent: str, target: str) -> bool:
    if os.path.isabs(target):
        return True
    joined = posixpath.normpath(posixpath.join(parent, target))
    return joined == ".." or joined.startswith("../")


class FolderScanner:
    def __init__(self, limits: ScanLimits | None = None) -> None:
        self.limits = limits or ScanLimits()

    def scan(self, root: Path, scratch: Path) -> ScanFindings:
        tree = self._walk(root)
        metadata_files = sorted(p for p in tree.files if posixpath.basename(p) == METADATA_NAME)
        folders = [posixpath.dirname(p) for p in metadata_files]
        notes_by_folder: dict[str, list[Issue]] = {f: [] for f in folders}
        global_notes: list[Issue] = []
        for note in tree.notes:
            owner = _deepest_folder(note.file, folders)
            (notes_by_folder[owner] if owner is not None else global_notes).append(note)
        actions = tuple(
            self._action(root, tree, meta, scratch, tuple(notes_by_folder[folder]))
            for meta, folder in zip(metadata_files, folders, strict=True)
        )
        return ScanFindings(
            actions=actions, warnings=tuple(global_notes), errors=tuple(tree.errors)
        )

    # ---- the walk --------------------------------------------------------------------------
    def _walk(self, root: Path) -> _Tree:
        tree = _Tree()
        limits = self.limits
        stack: list[tuple[str, int]] = [("", 0)]
        while stack:
            relative, depth = stack.pop()
            try:
                with os.scandir(root / relative if relative else root) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                tree.notes.append(
                    Issue(
                        file=relative or ".",
                        message=f"{relative or '.'}: cannot be read: {exc.strerror}; ignored",
                    )
                )
                continue
            for entry in entries:
                child = f"{relative}/{entry.name}" if relative else entry.name
                try:
                    child.encode("utf-8")
                except UnicodeEncodeError:
                    shown = child.encode("utf-8", "replace").decode()
                    tree.notes.append(
                        Issue(
                            file=shown, message=(f"{shown}: the name is not valid UTF-8; ignored")
                        )
                    )
                    continue
                if entry.is_symlink():
                    tree.notes.append(self._link_note(root, relative, child))
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in SKIPPED_DIRS:
                        continue
                    if depth + 1 > limits.max_depth:
                        tree.notes.append(
                            Issue(
                                file=child,
                                message=(
                                    f"{child}: folders nested more than {limits.max_depth} deep "
                                    "are "
                                    "ignored"
                                ),
                            )
                        )
                        continue
                    tree.dirs.append(child)
                    stack.append((child, depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    if child.endswith(SKIPPED_SUFFIXES):
                        continue
                    if len(tree.files) >= limits.max_files:
                        tree.errors.append(
                            Issue(
                                file=".",
                                message=(
                                    f"the source holds more than {limits.max_files} files; "
                                    "the scan "
                                    "stopped there (RYAX_REPOSITORY_MAX_FILES)"
                                ),
                            )
                        )
                        return tree
                    tree.files[child] = entry.stat(follow_symlinks=False).st_size
                else:
                    tree.notes.append(
                        Issue(
                            file=child,
                            message=(
                                f"{child}: not a regular file or folder (device, socket or pipe); "
                                "ignored"
                            ),
                        )
                    )
        return tree

    def _link_note(self, root: Path, parent: str, child: str) -> Issue:
        try:
            target = os.readlink(root / child)
        except OSError:
            target = "?"
        if _escapes(parent, target):
            message = (
                f"{child}: symbolic link to {target!r} points outside the repository; "
                "ignored (links are never followed)"
            )
        else:
            message = (
                f"{child}: symbolic link to {target!r} ignored (links are never "
                "followed nor packed; commit the file itself)"
            )
        return Issue(file=child, message=message)

    # ---- one action folder -----------------------------------------------------------------
    def _action(
        self, root: Path, tree: _Tree, meta_path: str, scratch: Path, notes: tuple[Issue, ...]
    ) -> FoundAction:
        limits = self.limits
        folder = posixpath.dirname(meta_path)
        prefix = f"{folder}/" if folder else ""
        members = {p: s for p, s in tree.files.items() if p.startswith(prefix)}
        size = members[meta_path]
        if size > limits.max_metadata_bytes:
            return FoundAction(
                path=folder,
                warnings=notes,
                errors=(
                    Issue(
                        file=meta_path,
                        message=(
                            f"the file is {size} bytes; a {METADATA_NAME} may be "
                            f"at most {limits.max_metadata_bytes} bytes"
                        ),
                    ),
                ),
            )
        try:
            data = read_limited(root, meta_path, limits.max_metadata_bytes)
        except (OSError, ValueError) as exc:
            return FoundAction(
                path=folder,
                warnings=notes,
                errors=(Issue(file=meta_path, message=f"cannot be read: {exc}"),),
            )
        try:
            metadata = load_action_metadata(data, meta_path)
        except InvalidActionMetadata as exc:
            action_id, version = _best_effort_identity(data, meta_path)
            return FoundAction(
                path=folder,
                warnings=notes,
                action_id=action_id,
                version=version,
                errors=tuple(Issue.from_metadata(e) for e in exc.errors),
            )
        warnings = notes + tuple(Issue.from_metadata(w) for w in metadata.warnings)
        errors: list[Issue] = []
        total = sum(members.values())
        if total > limits.max_action_bytes:
            errors.append(
                Issue(
                    file=folder or ".",
                    message=(
                        f"the action folder holds {total} bytes; at most "
                        f"{limits.max_action_bytes} bytes "
                        "are accepted (RYAX_REPOSITORY_MAX_ACTION_BYTES)"
                    ),
                )
            )
        if len(members) > limits.max_action_files:
            errors.append(
                Issue(
                    file=folder or ".",
                    message=(
                        f"the action folder holds {len(members)} files; at most "
                        f"{limits.max_action_files} are accepted"
                    ),
                )
            )
        errors += self._check_code(root, metadata, prefix, members)
        logo, media_type, logo_errors, logo_warnings = self._check_logo(
            root, metadata, prefix, members
        )
        errors += logo_errors
        warnings += tuple(logo_warnings)
        if prefix + NIX_OVERLAYS in members:
            warnings += (
                Issue(
                    file=prefix + NIX_OVERLAYS,
                    message=(
                        f"{NIX_OVERLAYS} is ignored: this platform has no Nix; Python packages "
                        "go in requirements.txt or spec.dependencies (python3Packages.<name>)"
                    ),
                ),
            )
        if errors:
            return FoundAction(
                path=folder,
                errors=tuple(errors),
                warnings=warnings,
                action_id=metadata.id,
                version=metadata.version,
            )
        scratch.mkdir(parents=True, exist_ok=True)
        archive = Path(_unique(scratch, metadata.id))
        dirs = [d for d in tree.dirs if d.startswith(prefix)]
        sha256, archive_size = pack_folder(root, prefix, sorted(members), dirs, archive)
        packed = PackedSource(
            sha256=sha256,
            size=archive_size,
            metadata=metadata,
            metadata_yaml=data.decode("utf-8-sig"),
            logo=logo,
            logo_media_type=media_type,
        )
        return FoundAction(
            path=folder,
            warnings=warnings,
            packed=packed,
            archive=archive,
            action_id=metadata.id,
            version=metadata.version,
        )

    def _check_code(
        self, root: Path, metadata: ActionMetadata, prefix: str, members: dict[str, int]
    ) -> list[Issue]:
        name = metadata.entrypoint_file
        path = prefix + name
        signature = (
            "async def run(service, input_values)"
            if name == "ryax_run.py"
            else "def handle(request)"
        )
        if path not in members:
            return [
                Issue(
                    file=path,
                    message=(
                        f"{name} is missing: a {metadata.kind.value} action runs {name}, "
                        "which must "
                        f"define `{signature}` (symbolic links are not followed)"
                    ),
                )
            ]
        if members[path] > self.limits.max_code_bytes:
            return []
        try:
            source = read_limited(root, path, self.limits.max_code_bytes).decode("utf-8-sig")
        except UnicodeDecodeError:
            return [Issue(file=path, message=f"{name} is not UTF-8 text")]
        except (OSError, ValueError) as exc:
            return [Issue(file=path, message=f"{name} cannot be read: {exc}")]
        problems = check_entrypoint(metadata.kind, source)
        return [Issue(file=path, line=_line_of(problem), message=problem) for problem in problems]

    def _check_logo(
        self, root: Path, metadata: ActionMetadata, prefix: str, members: dict[str, int]
    ) -> tuple[bytes | None, str, list[Issue], list[Issue]]:
        """The logo's bytes and real media type, its errors and its warnings (a name that says
        another image type than the content is only a warning)."""
        if metadata.logo is None:
            return None, "", [], []
        path = prefix + metadata.logo
        source = metadata.source_file or prefix + METADATA_NAME

        def error(message: str) -> tuple[None, str, list[Issue], list[Issue]]:
            issue = Issue(
                file=source,
                line=metadata.logo_line,
                field="spec.logo",
                message=f"spec.logo: {message}",
            )
            return None, "", [issue], []

        if path not in members:
            return error(
                f"the file {metadata.logo!r} is not in the action folder "
                "(symbolic links are not followed)"
            )
        if members[path] > self.limits.max_logo_bytes:
            return error(
                f"{metadata.logo!r} is {members[path]} bytes; at most "
                f"{self.limits.max_logo_bytes} bytes"
            )
        try:
            data = read_limited(root, path, self.limits.max_logo_bytes)
        except (OSError, ValueError) as exc:
            return error(f"{metadata.logo!r} cannot be read: {exc}")
        problems, notes, media_type = metadata.inspect_logo(data)
        warnings = [
            Issue(file=w.file or source, line=w.line, field=w.field_path, message=w.message)
            for w in notes
        ]
        if problems:
            errors = [
                Issue(file=e.file or source, line=e.line, field=e.field_path, message=e.message)
                for e in problems
            ]
            return None, "", errors, warnings
        return data, media_type, [], warnings


def _line_of(problem: str) -> int:
    head = problem.split(":", 2)
    if len(head) > 2 and head[1].isdigit():
        return int(head[1])
    return 0


def _deepest_folder(path: str, folders: list[str]) -> str | None:
    best: str | None = None
    for folder in folders:
        inside = folder == "" or path.startswith(folder + "/")
        if inside and (best is None or len(folder) > len(best)):
            best = folder
    return best


def _unique(scratch: Path, action_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in action_id)[:40]
    fd, name = tempfile.mkstemp(prefix=f"{safe}-", suffix=".tar.gz", dir=scratch)
    os.close(fd)
    return name


def _best_effort_identity(data: bytes, file: str) -> tuple[str | None, str | None]:
    """spec.id and spec.version of an invalid file, when readable, to name it in reports."""
    try:
        root = load_nodes(data, file)
    except YamlError:
        return None, None
    if not isinstance(root.value, dict) or "spec" not in root.value:
        return None, None
    spec = root.value["spec"][1]
    if not isinstance(spec.value, dict):
        return None, None

    def text(key: str) -> str | None:
        if not isinstance(spec.value, dict) or key not in spec.value:
            return None
        value = spec.value[key][1].value
        return value[:128] if isinstance(value, str) else None

    return text("id"), text("version")


# ---- the deterministic archive -------------------------------------------------------------


def _entries(prefix: str, files: list[str], dirs: list[str]) -> Iterator[tuple[str, str, bool]]:
    items = [(f[len(prefix) :], f, False) for f in files]
    items += [(d[len(prefix) :], d, True) for d in dirs]
    yield from sorted(items)


def pack_folder(
    root: Path, prefix: str, files: list[str], dirs: list[str], archive: Path
) -> tuple[str, int]:
    """Write the folder `prefix` as a reproducible tar.gz; its (sha256, size)."""
    with (
        open(archive, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, relative, is_dir in _entries(prefix, files, dirs):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if is_dir:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
                continue
            with _open(root, relative) as handle:
                st = os.fstat(handle.fileno())
                info.size = st.st_size
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                tar.addfile(info, handle)
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest(), archive.stat().st_size
