"""Moving an execution's files: filestore -> local input directory, local outputs -> filestore.

Layout of one execution on disk (removed after the execution):
    <root>/<execution_id>/inputs/<input name>/<file name>   (a directory input: extracted there)
    <root>/<execution_id>/work/                              (the action's current directory)
A directory travels as an uncompressed tar of its contents (members relative to the directory).
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..domain.errors import FileTransferFailed
from ..domain.model import FileRef, Values, input_path_parts, safe_file_name
from .ports import FileStore

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Workspace:
    root: Path

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


def tar_directory(directory: Path, destination: Path) -> None:
    with tarfile.open(destination, "w") as archive:
        for child in sorted(directory.iterdir()):
            archive.add(child, arcname=child.name)


def extract_tar(archive_path: Path, destination: Path) -> None:
    """Extract refusing absolute paths, '..', devices and links out of the destination."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:*") as archive:
        archive.extractall(destination, filter="data")


def _kind_of(path: Path) -> str | None:
    if path.is_dir():
        return "directory"
    return "file" if path.is_file() else None


class FileStaging:
    """Fetches input files of an execution and publishes its output files."""

    def __init__(self, store: FileStore, root: Path) -> None:
        self._store = store
        self._root = root

    def workspace(self, execution_id: str) -> Workspace:
        space = Workspace(self._root / safe_file_name(execution_id))
        if space.root.exists():
            shutil.rmtree(space.root, ignore_errors=True)
        space.inputs_dir.mkdir(parents=True)
        space.work_dir.mkdir(parents=True)
        return space

    def trigger_dir(self, name: str) -> Path:
        path = self._root / safe_file_name(name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def cleanup(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def remove(self, path: Path) -> None:
        """Delete a file or directory an action handed over (already published)."""
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

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

    async def publish_outputs(self, values: Values, key_for: Callable[[str, str], str]) -> Values:
        """The values with every local file or directory replaced by its filestore copy;
        `key_for(output name, object name)` places them."""
        published: Values = dict(values)
        for name, value in values.items():
            if isinstance(value, FileRef):
                published[name] = await self._publish(name, value, key_for)
        return published

    async def _publish(
        self, output: str, ref: FileRef, key_for: Callable[[str, str], str]
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
                await asyncio.to_thread(tar_directory, path, archive)
                return await self._upload(
                    output, archive, key_for(output, f"{name}.tar"), name, is_directory=True
                )
        return await self._upload(output, path, key_for(output, name), name, is_directory=False)

    async def _upload(
        self, output: str, path: Path, key: str, name: str, *, is_directory: bool
    ) -> FileRef:
        digest, size = await asyncio.to_thread(sha256_of, path)
        try:
            await self._store.upload(key, path)
        except FileTransferFailed as error:
            raise FileTransferFailed(f"output {output}: {error.detail}") from error
        return replace(
            FileRef(key=key, name=name), size=size, sha256=digest, is_directory=is_directory
        )
