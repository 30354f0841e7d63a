"""Build an artefact with pip: `python -m pip install --target` of the action's requirements,
next to a cached layer holding the wrapper's runtime dependencies, packed with the code, the
wrapper and run.sh.

Layout of the artefact (.tar.gz):
  manifest.json  what was built, from what, for which Python and wrapper
  code/          the action folder as it came from the source archive
  deps/          the wrapper's runtime dependencies + the action's requirements
  wrapper/       the ryax_action_wrapper package source
  run.sh         exec python3 -m ryax_action_wrapper "$@" with PYTHONPATH=wrapper:deps:code

pip runs in a sandbox (sandbox.py): the build's folders writable, the interpreter and the
wrapper layer read-only, nothing else of the machine; with a clean environment. Sandboxed, pip's
cache is the build's own (a shared cache written by one build's setup.py could poison the next
builds): downloads are not shared between builds; the wrapper layer is still built once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import tarfile
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ..application.build_log import BuildLog
from ..domain.errors import BuildRefused
from ..domain.model import BuildPlan, PythonPackage, normalize_requirements, pip_failure_reason
from .sandbox import PipSandbox
from .wrapper_source import WrapperSource

log = logging.getLogger(__name__)

RUN_SH = """#!/bin/sh
# Start the Ryax action wrapper around this action. Relocatable: paths are relative to this
# file. RYAX_PYTHON picks the interpreter (default python3, of the version in manifest.json).
here="$(cd "$(dirname "$0")" && pwd)"
PYTHONPATH="$here/wrapper:$here/deps:$here/code"
PYTHONNOUSERSITE=1
export PYTHONPATH PYTHONNOUSERSITE
exec "${RYAX_PYTHON:-python3}" -m ryax_action_wrapper "$@"
"""
_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.dist-info$")


class PipBuildTool:
    def __init__(
        self,
        *,
        python: str,
        cache_dir: Path,
        wrapper: WrapperSource,
        pip_timeout_seconds: float = 900.0,
        compress_level: int = 6,
        sandbox: PipSandbox | None = None,
    ) -> None:
        self._python = python
        self._cache_dir = cache_dir
        self._wrapper = wrapper
        self._pip_timeout = pip_timeout_seconds
        self._compress_level = compress_level
        self.sandbox = sandbox or PipSandbox()
        #: The interpreter's installation (its prefix, its venv): read-only in the sandbox.
        self._python_roots: list[Path] = []
        self._python_version = ""
        self._layer: Path | None = None
        self._layer_lock = asyncio.Lock()

    @property
    def python_version(self) -> str:
        if not self._python_version:
            raise RuntimeError("PipBuildTool.start() was not called")
        return self._python_version

    @property
    def wrapper_version(self) -> str:
        return self._wrapper.fingerprint

    @property
    def ready(self) -> bool:
        return self._layer is not None

    @property
    def pip_cache(self) -> Path:
        return self._cache_dir / "pip"

    async def start(self) -> None:
        """Find the interpreter's version and installation, check pip runs in the sandbox and
        prepare the wrapper layer (slow only once per cache directory)."""
        code, output = await self._run(
            [
                self._python,
                "-c",
                "import sys; print(sys.prefix); print(sys.base_prefix); "
                "print('%d.%d' % sys.version_info[:2])",
            ],
            cwd=None,
            limit=60,
            sandboxed=False,
        )
        if code != 0:
            raise RuntimeError(f"{self._python} does not run: {output}")
        *prefixes, self._python_version = output.strip().splitlines()[-3:]
        self._python_roots = await asyncio.to_thread(_interpreter_roots, prefixes, self._python)
        code, output = await self._run([self._python, "-m", "pip", "--version"], cwd=None, limit=60)
        if code != 0:
            where = " in its sandbox" if self.sandbox.active else ""
            raise RuntimeError(f"{self._python} has no pip{where}: {output}")
        await self.wrapper_layer(BuildLog())

    async def wrapper_layer(self, build_log: BuildLog) -> Path:
        """A folder of the wrapper's runtime dependencies (site/) and the constraints that pin
        them (constraints.txt), built once per (python, requirements) and reused."""
        async with self._layer_lock:
            if self._layer is not None:
                return self._layer
            requirements = sorted(self._wrapper.runtime_requirements)
            key = hashlib.sha256(
                json.dumps([self.python_version, requirements, os.uname().machine]).encode()
            ).hexdigest()[:16]
            layer = self._cache_dir / "layers" / f"wrapper-{key}"
            if not await asyncio.to_thread((layer / "constraints.txt").is_file):
                build_log.add(f"preparing the wrapper layer: {' '.join(requirements)}")
                started = time.monotonic()
                tmp = layer.with_name(f"{layer.name}.{uuid.uuid4().hex}.tmp")
                layer.parent.mkdir(parents=True, exist_ok=True)
                scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=layer.parent))
                try:
                    await self._pip_install(
                        tmp / "site", ["--", *requirements], None, build_log, scratch=scratch
                    )
                    await asyncio.to_thread(_finish_layer, tmp, layer)
                finally:
                    await asyncio.to_thread(shutil.rmtree, tmp, ignore_errors=True)
                    await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
                log.info(
                    "wrapper layer ready",
                    extra={"layer": str(layer), "seconds": round(time.monotonic() - started, 1)},
                )
            self._layer = layer
            return layer

    async def build(
        self, plan: BuildPlan, source_dir: Path, work_dir: Path, log: BuildLog, built_at: datetime
    ) -> Path:
        await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
        layer = await self.wrapper_layer(log)
        log.add(f"wrapper layer {layer.name} (cached)")
        action_deps = work_dir / "deps"
        arguments = ["--constraint", str(layer / "constraints.txt")]
        command = "pip install --target deps"
        if normalize_requirements(plan.requirements):
            arguments += ["-r", "requirements.txt"]
            command += " -r requirements.txt"
        for package in plan.python_packages:
            log.add(
                f"spec.dependencies: {package.dependency} -> PyPI {package.requirement} "
                "(installed with requirements.txt, in the same pip run)"
            )
        if plan.python_requirements:
            # Names checked by the domain (PEP 508, no leading dash); `--` ends pip's options.
            arguments += ["--", *plan.python_requirements]
            command += " " + " ".join(plan.python_requirements)
        if normalize_requirements(plan.requirements) or plan.python_requirements:
            log.add(command)
            await self._pip_install(
                action_deps,
                arguments,
                source_dir,
                log,
                plan.python_packages,
                scratch=work_dir / "scratch",
                read_only=(layer,),
            )
        else:
            log.add("no requirements.txt (or it is empty): no dependencies to install")
        artefact = work_dir / "artefact.tar.gz"
        log.add("packing the artefact")
        started = time.monotonic()
        await asyncio.to_thread(
            self._pack,
            artefact,
            plan.manifest(built_at),
            source_dir,
            layer / "site",
            action_deps,
        )
        log.add(f"packed in {time.monotonic() - started:.1f}s")
        return artefact

    async def _pip_install(
        self,
        target: Path,
        arguments: Sequence[str],
        cwd: Path | None,
        log: BuildLog,
        python_packages: tuple[PythonPackage, ...] = (),
        *,
        scratch: Path,
        read_only: Sequence[Path] = (),
    ) -> None:
        cache = scratch / "pip-cache" if self.sandbox.active else self.pip_cache
        command = [
            self._python,
            "-m",
            "pip",
            "install",
            "--target",
            str(target),
            "--cache-dir",
            str(cache),
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
            "--no-warn-script-location",
            "--no-warn-conflicts",
            *arguments,
        ]
        # Writable: the build's own folders only (its source: pip may build a local package
        # in place).
        writable = [folder for folder in (target.parent, scratch, cwd) if folder is not None]
        code, output = await self._run(
            command,
            cwd=cwd,
            limit=self._pip_timeout,
            scratch=scratch,
            writable=writable,
            read_only=read_only,
        )
        log.add_output(output)
        if code == -signal.SIGKILL:
            source = (
                "requirements.txt and spec.dependencies"
                if python_packages
                else ("requirements.txt")
            )
            raise BuildRefused(f"{source}: pip install did not finish in {self._pip_timeout:.0f}s")
        if code != 0:
            log.add(f"pip exited with status {code}")
            raise BuildRefused(pip_failure_reason(output, python_packages))

    async def _run(
        self,
        command: Sequence[str],
        *,
        cwd: Path | None,
        limit: float,
        sandboxed: bool = True,
        scratch: Path | None = None,
        writable: Sequence[Path] = (),
        read_only: Sequence[Path] = (),
    ) -> tuple[int, str]:
        """Exit code and output (stdout and stderr merged); -SIGKILL after `limit` seconds.
        In the sandbox unless `sandboxed` is False (the builder's own checks of the
        interpreter); always with a clean environment."""
        sandbox = self.sandbox if sandboxed else PipSandbox()
        env = sandbox.environment(scratch, self._python)
        await asyncio.to_thread(sandbox.prepare, writable, scratch)
        argv = sandbox.command(
            command, writable=writable, read_only=[*self._python_roots, *read_only], cwd=cwd
        )
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            stdout, _ = await asyncio.wait_for(process.communicate(), limit)
        except TimeoutError:
            _kill(process)
            await process.wait()
            return -signal.SIGKILL, ""
        except asyncio.CancelledError:
            # Shutdown or a lost broker connection: pip must not outlive the build.
            _kill(process)
            await process.wait()
            raise
        assert process.returncode is not None
        code = process.returncode
        if sandbox.active and code > 128 and code - 128 == signal.SIGKILL:
            code = -signal.SIGKILL  # bwrap exits with 128 + the signal of its command
        return code, stdout.decode("utf-8", errors="replace")

    def _pack(
        self,
        artefact: Path,
        manifest: dict[str, object],
        source_dir: Path,
        layer_site: Path,
        action_deps: Path,
    ) -> None:
        with tarfile.open(artefact, "w:gz", compresslevel=self._compress_level) as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode(), 0o644)
            _add_bytes(tar, "run.sh", RUN_SH.encode(), 0o755)
            tar.add(source_dir, "code", filter=_normalized)
            tar.add(
                self._wrapper.package_dir,
                f"wrapper/{self._wrapper.package_dir.name}",
                filter=_without_bytecode,
            )
            tar.add(layer_site, "deps", filter=_normalized)
            if action_deps.is_dir():
                _add_missing(tar, action_deps, layer_site)


def _add_missing(tar: tarfile.TarFile, action_deps: Path, layer_site: Path) -> None:
    """The action's own dependencies; those the layer holds already (same versions: pinned by
    the constraints) are not added twice."""
    for folder, dirs, files in os.walk(action_deps):
        dirs.sort()
        relative = Path(folder).relative_to(action_deps)
        for name in [*dirs, *sorted(files)]:
            rel = relative / name
            if (layer_site / rel).exists():
                continue
            path = action_deps / rel
            if path.is_dir() and not path.is_symlink():
                info = tar.gettarinfo(str(path), f"deps/{rel.as_posix()}")
                tar.addfile(_normalized(info))
            else:
                tar.add(path, f"deps/{rel.as_posix()}", recursive=False, filter=_normalized)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _without_bytecode(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if "__pycache__" in info.name.split("/"):
        return None
    return _normalized(info)


def _interpreter_roots(prefixes: Sequence[str], python: str) -> list[Path]:
    """What of the machine the interpreter needs besides /usr: its installation and venv."""
    roots = {Path(os.path.realpath(prefix)) for prefix in prefixes}
    roots.add(Path(os.path.dirname(os.path.abspath(python))))
    return sorted(root for root in roots if not root.is_relative_to("/usr"))


def _finish_layer(tmp: Path, layer: Path) -> None:
    # pip ran as the sandbox's user: the layer becomes the builder's again, read-only to others.
    for folder, dirs, files in os.walk(tmp):
        for name in (*dirs, *files):
            os.chown(os.path.join(folder, name), os.geteuid(), os.getegid(), follow_symlinks=False)
    os.chown(tmp, os.geteuid(), os.getegid())
    (tmp / "constraints.txt").write_text(_freeze(tmp / "site"))
    layer.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, layer)
    except OSError:
        # Another builder sharing the cache directory made it first: use theirs.
        if not (layer / "constraints.txt").is_file():
            raise


def _freeze(site: Path) -> str:
    """name==version of every distribution in `site`, for pip's --constraint."""
    pins = []
    for entry in sorted(site.iterdir()):
        match = _DIST_INFO.match(entry.name)
        if match and entry.is_dir():
            pins.append(f"{match['name']}=={match['version']}")
    return "\n".join(pins) + "\n"


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
