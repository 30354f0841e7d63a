"""Built actions, fetched from the filestore once, verified, unpacked into the worker's cache.

<cache>/artefacts/<sha256>/      the unpacked artefact (manifest.json, code/, deps/, wrapper/,
                                 run.sh) plus `.ryax-complete` once fully unpacked
<cache>/artefacts/.tmp-*/        downloads in progress (removed on failure and at start)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

from ...application.ports import FileStore
from ...application.staging import sha256_of
from ...domain.errors import DeploymentFailed, FileTransferFailed

COMPLETE = ".ryax-complete"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtefactCache:
    def __init__(self, store: FileStore, root: Path) -> None:
        self._store = store
        self._root = root / "artefacts"
        self._locks: dict[str, asyncio.Lock] = {}

    def clean_partial(self) -> None:
        """Remove what an interrupted fetch left behind (called at start)."""
        if self._root.is_dir():
            for leftover in self._root.glob(".tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)

    async def get(self, key: str, sha256: str) -> Path:
        """The unpacked artefact; fetched, checked and unpacked on first use only."""
        digest = sha256.strip().lower()
        if not _SHA256.match(digest):
            raise DeploymentFailed(f"artefact {key!r}: invalid sha256 {sha256!r}")
        target = self._root / digest
        if _is_complete(target):
            return target
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if _is_complete(target):
                return target
            await self._fetch(key, digest, target)
        return target

    async def _fetch(self, key: str, digest: str, target: Path) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self._root))
        try:
            archive = temp / "artefact.tar.gz"
            try:
                await self._store.download(key, archive)
            except FileTransferFailed as error:
                raise DeploymentFailed(
                    f"cannot fetch the action artefact: {error.detail}"
                ) from error
            actual, _ = await asyncio.to_thread(sha256_of, archive)
            if actual != digest:
                raise DeploymentFailed(
                    f"artefact {key} has sha256 {actual}, expected {digest}: refusing to run it"
                )
            tree = temp / "tree"
            try:
                await asyncio.to_thread(_unpack, archive, tree)
            except (tarfile.TarError, OSError) as error:
                raise DeploymentFailed(f"artefact {key} cannot be unpacked: {error}") from error
            await asyncio.to_thread(_install, tree, target)
        finally:
            shutil.rmtree(temp, ignore_errors=True)


def _is_complete(target: Path) -> bool:
    return (target / COMPLETE).is_file()


def _install(tree: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    tree.rename(target)


def _unpack(archive: Path, tree: Path) -> None:
    tree.mkdir()
    with tarfile.open(archive, "r:*") as opened:
        opened.extractall(tree, filter="data")
    run_sh = tree / "run.sh"
    if not run_sh.is_file():
        raise tarfile.TarError("no run.sh at the root of the artefact")
    # Read-only for everyone: the sandboxed action's user reads it, nobody writes it.
    for folder, dirs, files in os.walk(tree):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)
    tree.chmod(0o755)
    run_sh.chmod(0o755)
    manifest = tree / "manifest.json"
    if manifest.is_file():
        try:
            json.loads(manifest.read_text(encoding="utf-8"))
        except ValueError as error:
            raise tarfile.TarError(f"manifest.json is not valid JSON: {error}") from error
    (tree / COMPLETE).write_text("unpacked\n", encoding="utf-8")


def read_manifest(artefact_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((artefact_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
