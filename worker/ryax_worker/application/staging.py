"""Moving an execution's files: filestore -> local input directory, local outputs -> filestore.

A file published here is also kept on the site's disk (SiteFiles, by sha256): a later step of
the same site that takes it as input copies it from there instead of downloading it (checked
against the FileRef's sha256 like a download; any doubt and it is downloaded). The upload still
happens: the filestore holds the reference copy (other sites, users' downloads, a lost disk).
With RYAX_SITE_FILES=hold (HeldFiles) an execution's output is not uploaded: it is held on the
site's disk (durably, pinned for its run) and its FileRef says so (`held_by`); the runner has it
published when something outside the site needs it (held.py).

Layout of one execution on disk (removed after the execution):
    <root>/<deployment>/<step>/<execution_id>/inputs/<input name>/<file name>
                                                    (a directory input: extracted there)
    <root>/<deployment>/<step>/<execution_id>/work/ (the action's current directory)
`<root>/<deployment>/<step>/` is all the step's sandbox sees of the worker's disk.

An execution that moves no file (no file or directory among its inputs, none among its step's
outputs) on a backend that does not follow executions by their folder gets a reusable workspace
instead: a work directory that an earlier execution of the step left as it was given (empty,
same mode) is taken again, else a new one is made (named after the execution that made it, no
inputs folder). Making and removing a workspace per execution showed in the hop-path profile.
A directory travels as an uncompressed tar of its contents (members relative to the directory).

An output is published only if it resolves inside the execution's work directory (links
followed), and what is read is checked, not the name: each file is opened without following a
final link, relative to an already checked directory, and the opened file's own path is checked
again, so an action swapping a file for a link while the worker reads cannot lead it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..domain.errors import FileTransferFailed, OutputRefused
from ..domain.model import (
    FileRef,
    StepRef,
    Values,
    input_path_parts,
    safe_file_name,
    step_dir_parts,
)
from .held import HeldFiles
from .ports import FileStore, SiteFiles

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Workspace:
    root: Path
    #: Made for executions of this step that move no file: taken back after its execution when
    #: left as it was given (None: removed after its execution).
    reusable_by: StepRef | None = None
    #: It served an earlier execution of the step, which left it empty: what was done to it for
    #: that one (given to the action's user) still holds.
    reused: bool = False
    #: The mode of its work directory when made (a reusable one must keep it).
    work_mode: int = 0

    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"


def sha256_of(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _opened_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@contextlib.contextmanager
def open_inside(output: str, path: Path, root: Path, *, directory: bool) -> Iterator[int]:
    """A descriptor on the output at `path`, which must resolve inside `root` (OutputRefused
    naming the output otherwise). The check is made on what was opened."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    if not _inside(real, top):
        raise OutputRefused(output, str(path), f"it leads to {real}" if real != str(path) else "")
    try:
        fd = os.open(real, _OPEN_DIR if directory else _OPEN_FILE)
    except OSError as error:
        raise OutputRefused(output, str(path), f"cannot open it: {error.strerror}") from error
    try:
        opened = _opened_path(fd)
        if not _inside(opened, top):
            raise OutputRefused(output, str(path), f"it leads to {opened}")
        if not directory and not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputRefused(output, str(path), "not a regular file")
        yield fd
    finally:
        os.close(fd)


def tar_directory(
    directory: Path, destination: Path, root: Path | None = None, output: str = ""
) -> None:
    """Tar the contents of `directory` (members relative to it). Entries are opened relative to
    their parent's descriptor without following links; links are stored as links (the reader's
    extraction refuses those leading out). `root`: where it must resolve (default: itself)."""
    with (
        open_inside(output, directory, root or directory, directory=True) as top,
        tarfile.open(destination, "w") as archive,
    ):
        _tar_children(archive, top, "")


def _tar_children(archive: tarfile.TarFile, dir_fd: int, prefix: str) -> None:
    for name in sorted(os.listdir(dir_fd)):
        arcname = f"{prefix}{name}"
        info = tarfile.TarInfo(arcname)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        info.mtime, info.mode = int(st.st_mtime), stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
            archive.addfile(info)
        elif stat.S_ISDIR(st.st_mode):
            child = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
            try:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
                _tar_children(archive, child, f"{arcname}/")
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
            with os.fdopen(fd, "rb") as stream:
                opened = os.fstat(stream.fileno())
                if not stat.S_ISREG(opened.st_mode):
                    continue
                info.size = opened.st_size
                archive.addfile(info, stream)
        # sockets, pipes and devices are left out


def extract_tar(archive_path: Path, destination: Path) -> None:
    """Extract refusing absolute paths, '..', devices and links out of the destination."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:*") as archive:
        archive.extractall(destination, filter="data")


def _left_as_given(space: Workspace) -> bool:
    """Nothing but its work directory in the workspace, nothing in that, its mode unchanged."""
    try:
        with os.scandir(space.root) as entries:
            if [entry.name for entry in entries] != ["work"]:
                return False
        st = os.stat(space.work_dir, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) != space.work_mode:
            return False
        with os.scandir(space.work_dir) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _kind_of(path: Path) -> str | None:
    if path.is_dir():
        return "directory"
    return "file" if path.is_file() else None


class FileStaging:
    """Fetches input files of an execution and publishes its output files."""

    def __init__(
        self,
        store: FileStore,
        root: Path,
        site_files: SiteFiles | None = None,
        held: HeldFiles | None = None,
    ) -> None:
        self._store = store
        self._root = root
        self._site_files = site_files
        self._held = held
        self._idle: dict[StepRef, list[Workspace]] = {}

    def step_dir(self, ref: StepRef) -> Path:
        """Where the executions of a step live (the only part of this disk its sandbox sees)."""
        return self._root.joinpath(*step_dir_parts(ref))

    def workspace(self, ref: StepRef, execution_id: str) -> Workspace:
        space = Workspace(self.step_dir(ref) / safe_file_name(execution_id))
        if space.root.exists():
            shutil.rmtree(space.root, ignore_errors=True)
        space.inputs_dir.mkdir(parents=True)
        space.work_dir.mkdir(parents=True)
        return space

    def reusable_workspace(self, ref: StepRef, execution_id: str) -> Workspace:
        """A work directory for an execution that moves no file: one an earlier execution of
        the step left empty, else a new one (without inputs folder: nothing to fetch)."""
        idle = self._idle.get(ref)
        while idle:
            space = idle.pop()
            # The step's folders go when it is undeployed or deployed anew.
            if os.path.isdir(space.work_dir):
                return replace(space, reused=True)
        root = self.step_dir(ref) / safe_file_name(execution_id)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        work = root / "work"
        os.makedirs(work)
        return Workspace(root, reusable_by=ref, work_mode=stat.S_IMODE(os.stat(work).st_mode))

    def release(self, space: Workspace, *, reusable: bool = True) -> None:
        """After its execution: a reusable workspace left as it was given waits for the next
        execution of its step (unless `reusable` is False); any other is removed."""
        if reusable and space.reusable_by is not None and _left_as_given(space):
            self._idle.setdefault(space.reusable_by, []).append(replace(space, reused=False))
            return
        self.cleanup(space.root)

    def forget_step(self, ref: StepRef) -> None:
        """The step is undeployed: its workspaces go with its folders."""
        self._idle.pop(ref, None)

    def trigger_dir(self, ref: StepRef, name: str) -> Path:
        path = self.step_dir(ref) / safe_file_name(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cleanup(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def remove(self, path: Path, within: Path) -> None:
        """Delete a file or directory an action handed over (already published); nothing
        outside `within` (its work directory), whatever links the action made."""
        with (
            contextlib.suppress(OutputRefused, OSError),
            open_inside("", path.parent, within, directory=True) as parent,
        ):
            if stat.S_ISDIR(os.stat(path.name, dir_fd=parent, follow_symlinks=False).st_mode):
                shutil.rmtree(path.name, dir_fd=parent, ignore_errors=True)
            else:
                os.unlink(path.name, dir_fd=parent)

    async def fetch_inputs(self, values: Values, inputs_dir: Path) -> Values:
        """The values with every file or directory replaced by its local copy."""
        local: Values = dict(values)
        for name, value in values.items():
            if isinstance(value, FileRef):
                local[name] = await self._fetch(name, value, inputs_dir)
        return local

    async def _fetch(self, input_name: str, ref: FileRef, inputs_dir: Path) -> FileRef:
        folder, file_name = input_path_parts(input_name, ref)
        target = inputs_dir / folder / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        download = target if not ref.is_directory else inputs_dir / folder / f".{file_name}.tar"
        digest, size = await self._local_copy(ref, download)
        if not digest and ref.held_by:
            # Held by a site, never published: only that site's disk has it.
            here = self._held is not None and self._held.site_id == ref.held_by
            where = "this site, which no longer has it" if here else "another site"
            raise FileTransferFailed(
                f"input {input_name}: {ref.key} (sha256 {ref.sha256}) is held by {where} "
                f"({ref.held_by}) and is not in the filestore"
            )
        if not digest:
            try:
                await self._store.download(ref.key, download)
            except FileTransferFailed as error:
                raise FileTransferFailed(f"input {input_name}: {error.detail}") from error
            digest, size = await asyncio.to_thread(sha256_of, download)
        if ref.sha256 and digest != ref.sha256.lower():
            raise FileTransferFailed(
                f"input {input_name}: {ref.key} has sha256 {digest}, expected {ref.sha256}"
            )
        if ref.is_directory:
            try:
                await asyncio.to_thread(extract_tar, download, target)
            except (tarfile.TarError, OSError) as error:
                raise FileTransferFailed(
                    f"input {input_name}: {ref.key} is not a readable tar: {error}"
                ) from error
            finally:
                download.unlink(missing_ok=True)
            return FileRef(key=str(target), name=file_name, size=0, sha256="", is_directory=True)
        return FileRef(key=str(target), name=file_name, size=size, sha256=digest)

    async def _local_copy(self, ref: FileRef, download: Path) -> tuple[str, int]:
        """(sha256, size) of the copy this site kept of the file (published by one of its
        steps), written to `download`; ("", 0) when there is none or it is not that file."""
        expected = ref.sha256.lower()
        if self._site_files is None or not expected:
            return "", 0
        if not await self._site_files.copy_to(expected, download):
            return "", 0
        digest, size = await asyncio.to_thread(sha256_of, download)
        if digest != expected:
            self._site_files.forget(expected)
            await asyncio.to_thread(download.unlink, missing_ok=True)
            return "", 0
        return digest, size

    async def publish_outputs(
        self,
        values: Values,
        key_for: Callable[[str, str], str],
        within: Path,
        run_id: str = "",
    ) -> Values:
        """The values with every local file or directory replaced by its filestore copy;
        `key_for(output name, object name)` places them. Each must resolve inside `within`
        (the execution's work directory): OutputRefused naming the output otherwise. With
        `run_id` on a site that holds files, they are held for the run instead (not
        uploaded)."""
        published: Values = dict(values)
        for name, value in values.items():
            if isinstance(value, FileRef):
                published[name] = await self._publish(name, value, key_for, within, run_id)
        return published

    async def _publish(
        self,
        output: str,
        ref: FileRef,
        key_for: Callable[[str, str], str],
        within: Path,
        run_id: str = "",
    ) -> FileRef:
        path = Path(ref.key)
        found = await asyncio.to_thread(_kind_of, path) if ref.key else None
        if found is None:
            kind = "directory" if ref.is_directory else "file"
            raise FileTransferFailed(f"output {output}: the {kind} {ref.key!r} does not exist")
        name = safe_file_name(ref.name or path.name)
        if found == "directory":
            with tempfile.TemporaryDirectory(prefix="ryax-out-") as temp:
                archive = Path(temp) / f"{name}.tar"
                await asyncio.to_thread(tar_directory, path, archive, within, output)
                return await self._upload(
                    output,
                    archive,
                    key_for(output, f"{name}.tar"),
                    name,
                    is_directory=True,
                    run_id=run_id,
                )
        with open_inside(output, path, within, directory=False) as fd:
            # The descriptor, not the name: the file read is the one checked.
            return await self._upload(
                output,
                Path(f"/proc/self/fd/{fd}"),
                key_for(output, name),
                name,
                is_directory=False,
                run_id=run_id,
            )

    async def _upload(
        self,
        output: str,
        path: Path,
        key: str,
        name: str,
        *,
        is_directory: bool,
        run_id: str = "",
    ) -> FileRef:
        digest, size = await asyncio.to_thread(sha256_of, path)
        ref = replace(
            FileRef(key=key, name=name), size=size, sha256=digest, is_directory=is_directory
        )
        if run_id and self._held is not None and self._held.holding:
            try:
                await self._held.hold(digest, path, run_id)
            except OSError as error:
                raise FileTransferFailed(
                    f"output {output}: cannot hold it on this site's disk: {error}"
                ) from error
            return replace(ref, held_by=self._held.site_id)
        try:
            await self._store.upload(key, path)
        except FileTransferFailed as error:
            raise FileTransferFailed(f"output {output}: {error.detail}") from error
        if self._site_files is not None:
            await self._site_files.keep(digest, path)
        return ref
