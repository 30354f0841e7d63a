"""Git repositories, scans, action sources and builds (the repository service)."""

from __future__ import annotations

import builtins
import io
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import BuildFailed, ConflictError, RyaxError, WaitTimeout
from ..models import (
    ACTIONS,
    REPOSITORIES,
    STORE_ACTIONS,
    Action,
    Build,
    Repository,
    ScanResult,
    StoreAction,
)
from ._base import Group, project_path, resolve, seg

SERVICE = "repository"
BuildProgress = Callable[[Build], None]


class Repositories(Group):
    def list(self, project: str) -> builtins.list[Repository]:
        return REPOSITORIES.read(self._http.get(project_path(SERVICE, project, "repositories")))

    def add(
        self,
        project: str,
        name: str,
        url: str,
        *,
        branch: str | None = None,
        **extra: Any,
    ) -> Repository:
        """Register a git repository (URL, or a local path where the server allows it).

        `extra` goes into the body as is (credentials of a private repository, for example).
        """
        body: dict[str, Any] = {"name": name, "url": url, **extra}
        if branch:
            body["branch"] = branch
        return Repository.from_json(
            self._http.post(project_path(SERVICE, project, "repositories"), body)
        )

    def get(self, project: str, repository: str) -> Repository:
        """A repository by id or name."""
        return resolve(
            self.list(project),
            repository,
            kind="repository",
            project=project,
            keys=lambda r: (r.id, r.name),
        )

    def delete(self, project: str, repository: str) -> None:
        repo = self.get(project, repository)
        self._http.delete(project_path(SERVICE, project, "repositories", seg(repo.id)))

    def scan(
        self, project: str, repository: str, *, force: bool = False, build: bool = False
    ) -> ScanResult:
        """Fetch the branch and scan it; the answer lists every action found and every error.

        `force` replaces recorded sources whose content changed under the same version;
        `build` requests a build of every valid action found that is not built yet.
        """
        repo = self.get(project, repository)
        body = self._http.post(
            project_path(SERVICE, project, "repositories", seg(repo.id), "scan"),
            params={"force": force or None, "build": build or None},
        )
        return ScanResult.from_json(body)

    def upload(
        self, project: str, source: Path, *, name: str | None = None, build: bool = False
    ) -> ScanResult:
        """Upload an action folder (packed here) or a .tar.gz/.zip archive, and scan it."""
        if source.is_dir():
            data, filename = _pack(source), f"{source.name}.tar.gz"
            content_type = "application/gzip"
        else:
            data, filename = source.read_bytes(), source.name
            content_type = "application/zip" if source.suffix == ".zip" else "application/gzip"
        if name:
            filename = name if name.endswith((".zip", ".tar.gz", ".tgz", ".tar")) else filename
        body = self._http.post(
            project_path(SERVICE, project, "uploads"),
            files={"archive": (filename, data, content_type)},
            params={"build": build or None},
        )
        return ScanResult.from_json(body)


class Actions(Group):
    def list(self, project: str) -> builtins.list[Action]:
        """Action sources found by scans, with their build state."""
        return ACTIONS.read(self._http.get(project_path(SERVICE, project, "actions")))

    def store(self, project: str) -> builtins.list[StoreAction]:
        """Built actions available to workflows (the studio's action store)."""
        return STORE_ACTIONS.read(self._http.get(project_path("studio", project, "actions")))

    def show(self, project: str, action: str, version: str | None = None) -> Action:
        """One action (its `spec.id`, or the source id), the latest version unless `version`."""
        if version is not None:
            path = project_path(SERVICE, project, "actions", seg(action), seg(version))
            return Action.from_json(self._http.get(path))
        matches = [a for a in self.list(project) if action in (a.id, a.action_id)]
        if not matches:
            return resolve([], action, kind="action", project=project, keys=lambda a: (a.id,))
        return max(matches, key=lambda a: _version_key(a.version))

    def build(
        self,
        project: str,
        action: str,
        version: str | None = None,
        *,
        wait: bool = True,
        timeout: float = 900.0,
        force: bool = False,
        on_progress: BuildProgress | None = None,
    ) -> Build:
        """Request a build; with `wait`, poll until it is built (or raise `BuildFailed`).

        An action already being built is not built twice: its current build is followed
        (unless `force`).
        """
        target = self.show(project, action, version)
        build = self._start(project, target, force=force)
        if on_progress:
            on_progress(build)
        if not wait:
            return build
        return self.wait(project, build, timeout=timeout, on_progress=on_progress)

    def _start(self, project: str, target: Action, *, force: bool) -> Build:
        if not force and (target.build_state or "") == "building" and target.last_build_id:
            return self.get_build(project, target.last_build_id)
        path = project_path(
            SERVICE, project, "actions", seg(target.action_id), seg(target.version), "build"
        )
        try:
            body = self._http.post(path, params={"force": force or None})
        except ConflictError:
            fresh = self.show(project, target.action_id, target.version)
            if (fresh.build_state or "") != "building" or not fresh.last_build_id:
                raise
            return self.get_build(project, fresh.last_build_id)
        return _build_of(body, target)

    def get_build(self, project: str, build_id: str) -> Build:
        return Build.from_json(
            self._http.get(project_path(SERVICE, project, "builds", seg(build_id)))
        )

    def wait(
        self,
        project: str,
        build: Build,
        *,
        timeout: float = 900.0,
        on_progress: BuildProgress | None = None,
    ) -> Build:
        deadline = self._waiting.clock() + timeout
        while not build.done:
            if not build.id:
                raise RyaxError(
                    f"the server started a build of {build.action_id} {build.version} "
                    "without a build id to follow"
                )
            if self._waiting.clock() >= deadline:
                raise WaitTimeout(
                    f"build of {build.action_id} {build.version} still {build.state} "
                    f"after {timeout:.0f} s (build {build.id})"
                )
            self._waiting.sleep(self._waiting.interval)
            fresh = self.get_build(project, build.id)
            build = replace(
                fresh,
                id=fresh.id or build.id,
                action_id=fresh.action_id or build.action_id,
                version=fresh.version or build.version,
            )
            if on_progress:
                on_progress(build)
        if build.failed:
            raise BuildFailed(
                f"build of {build.action_id} {build.version} {build.state}"
                + (f": {build.error}" if build.error else f" (build {build.id})"),
                detail=build.raw,
                log=build.log,
            )
        return build


def _build_of(body: Any, target: Action) -> Build:
    build = Build.from_json(body)
    return replace(
        build,
        action_id=build.action_id or target.action_id,
        version=build.version or target.version,
    )


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    parts: list[tuple[int, int | str]] = []
    for part in version.replace("-", ".").split("."):
        parts.append((1, int(part)) if part.isdigit() else (0, part))
    return tuple(parts)


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part in (".git", "__pycache__") for part in rel.parts):
                continue
            tar.add(path, arcname=str(rel), recursive=False)
    return buffer.getvalue()
