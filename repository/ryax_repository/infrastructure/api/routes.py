"""HTTP API of the repository service (prefix /repository). Every route is project-scoped and
starts with `await require(...)`: READ for GETs, WRITE otherwise. Lookups use the project id
the authorization service answered, so a resource of another project is never found."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage
from pydantic import BaseModel, ConfigDict, Field

from ryax_kit.authz import Operation, require
from ryax_kit.web import UNTRUSTED_CONTENT_HEADERS, Api, ErrorMapping, HttpError, Param, read_json

from ...application.use_cases import ActionView, RepositoryUseCases
from ...domain.action_metadata import ActionIO
from ...domain.errors import (
    CredentialsUnreadable,
    DomainError,
    ScanFailed,
    UnsafeArchive,
)
from ...domain.model import (
    ActionSource,
    Build,
    BuildId,
    Credentials,
    GitRepository,
    Issue,
    ProjectId,
    RepositoryId,
    ScanId,
    ScannedAction,
    ScanReport,
    SourceState,
)

api = Api(title="Ryax repository", prefix="/repository")
#: Domain errors -> HTTP answers `{"error": code, "detail": ...}`: by their code
#: (ryax_kit.web.STATUS_BY_CODE: not_found 404, too_large 413...) except those listed here;
#: 400 for any other.
ERRORS = ErrorMapping(
    base=DomainError,
    statuses={CredentialsUnreadable: 409, UnsafeArchive: 400, ScanFailed: 422},
)
USE_CASES = web.AppKey("use_cases", RepositoryUseCases)


@dataclass(frozen=True, kw_only=True)
class UploadLimits:
    scratch_dir: Path
    max_bytes: int


UPLOAD_LIMITS = web.AppKey("upload_limits", UploadLimits)
P = "/v1/projects/{project}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- schemas -------------------------------------------------------------------------------


class RepositoryIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(
        min_length=1,
        max_length=2048,
        description=(
            "https://host/path, ssh://[user@]host/path, user@host:path; an absolute path or "
            "file:// URL only when RYAX_REPOSITORY_ALLOW_LOCAL=true"
        ),
    )
    branch: str | None = Field(
        default=None,
        max_length=200,
        description="default: the remote's default branch, main or master",
    )
    username: str | None = Field(default=None, max_length=200)
    password: str | None = Field(
        default=None, max_length=4096, description="stored encrypted, never returned"
    )
    ssh_key: str | None = Field(
        default=None,
        max_length=16384,
        description="a private key; stored encrypted, never returned",
    )


class IssueOut(BaseModel):
    file: str
    line: int
    field: str
    message: str = Field(
        description="self-contained: it starts with `<field>: ` when the issue has a field"
    )


class ScannedActionOut(BaseModel):
    path: str
    status: str = Field(
        description=(
            "new, unchanged, changed_same_version (content differs from the recorded source of "
            "this id and version: kept, not replaced), replaced (forced) or invalid"
        )
    )
    action_id: str | None
    version: str | None
    kind: str | None
    source_id: str | None
    state: str | None
    sha256: str | None
    recorded_sha256: str | None
    message: str
    errors: list[IssueOut]
    warnings: list[IssueOut]


class ScanCounts(BaseModel):
    found: int
    new: int
    unchanged: int
    changed_same_version: int
    replaced: int
    invalid: int
    errors: int
    warnings: int


class ScanOut(BaseModel):
    id: str
    origin: str = Field(description="git or upload")
    name: str
    repository_id: str | None
    commit: str | None
    branch: str | None
    started_at: datetime
    finished_at: datetime
    forced: bool
    counts: ScanCounts
    actions: list[ScannedActionOut]
    errors: list[IssueOut] = Field(description="every error of the scan, all files at once")
    warnings: list[IssueOut] = Field(
        description=(
            "every warning: ignored links and files, changed_same_version, unsupported fields"
        )
    )
    build_ids: list[str]


class ScanSummaryOut(BaseModel):
    id: str
    commit: str | None
    branch: str | None
    finished_at: datetime | None


class RepositoryOut(BaseModel):
    id: str
    project_id: str
    name: str
    url: str
    branch: str | None
    auth: str = Field(description="none, password or ssh_key; credentials are never returned")
    created_at: datetime
    last_scan: ScanSummaryOut | None


class RepositoriesOut(BaseModel):
    repositories: list[RepositoryOut]


class IOOut(BaseModel):
    name: str
    human_name: str
    help: str
    type: str
    optional: bool
    enum_values: list[str]
    default_value: str | int | float | bool | None


class ResourcesOut(BaseModel):
    cpu: float | None
    memory: int | None
    time: float | None
    gpu: int | None


class BuildSummaryOut(BaseModel):
    id: str
    state: str
    requested_at: datetime
    finished_at: datetime | None
    source_sha256: str
    artefact_key: str | None
    artefact_sha256: str | None
    cached: bool
    duration_seconds: float | None
    reason: str


class BuildOut(BuildSummaryOut):
    action_id: str
    version: str
    log: str


class BuildsOut(BaseModel):
    builds: list[BuildSummaryOut]


class OriginOut(BaseModel):
    kind: str = Field(description="git or upload")
    repository_id: str | None
    upload_id: str | None
    name: str
    path: str
    commit: str | None


class PendingChangeOut(BaseModel):
    sha256: str
    origin: OriginOut
    seen_at: datetime


class PythonPackageOut(BaseModel):
    dependency: str = Field(description="as written in spec.dependencies: python3Packages.numpy")
    requirement: str = Field(description="what pip installs from PyPI: numpy")


class ActionOut(BaseModel):
    id: str = Field(description="the source id")
    action_id: str | None
    version: str | None
    state: str = Field(description="valid, invalid, building, built or build_failed")
    kind: str | None
    human_name: str | None
    description: str | None
    type: str | None
    categories: list[str]
    inputs: list[IOOut]
    outputs: list[IOOut]
    resources: ResourcesOut | None
    dependencies: list[str] = Field(
        description="spec.dependencies as written (Nix package names in published Ryax)"
    )
    python_packages: list[PythonPackageOut] = Field(
        description=(
            "the dependencies that are Python packages (pythonPackages.X, python3Packages.X, "
            "python3NNPackages.X): the build installs these PyPI requirements with "
            "requirements.txt, in the same pip run; the others are not installed (a warning)"
        )
    )
    has_logo: bool
    logo_media_type: str | None = Field(
        description="the logo's real type (image/png...), whatever its file name says"
    )
    source_sha256: str | None
    source_key: str | None
    origin: OriginOut
    errors: list[IssueOut]
    warnings: list[IssueOut]
    pending_change: PendingChangeOut | None = Field(
        description=(
            "different content seen under this id and version and not applied "
            "(changed_same_version): bump the version or scan with ?force=true"
        )
    )
    last_build: BuildSummaryOut | None
    updated_at: datetime


class ActionsOut(BaseModel):
    actions: list[ActionOut]


# ---- mapping -------------------------------------------------------------------------------


def _issue(i: Issue) -> IssueOut:
    return IssueOut(file=i.file, line=i.line, field=i.field, message=i.message)


def _scanned(a: ScannedAction) -> ScannedActionOut:
    return ScannedActionOut(
        path=a.path or ".",
        status=a.status.value,
        action_id=a.action_id,
        version=a.version,
        kind=a.kind,
        source_id=a.source_id,
        state=a.state.value if a.state else None,
        sha256=a.sha256,
        recorded_sha256=a.recorded_sha256,
        message=a.message,
        errors=[_issue(e) for e in a.errors],
        warnings=[_issue(w) for w in a.warnings],
    )


def _scan(r: ScanReport) -> ScanOut:
    changed = [
        Issue(file=a.path or ".", field="spec.version", message=f"spec.version: {a.message}")
        for a in r.actions
        if a.status.value == "changed_same_version"
    ]
    errors = r.all_errors
    warnings = tuple(changed) + r.all_warnings
    return ScanOut(
        id=r.id,
        origin=r.origin_kind,
        name=r.origin_name,
        repository_id=r.repository_id,
        commit=r.commit,
        branch=r.branch,
        started_at=r.started_at,
        finished_at=r.finished_at,
        forced=r.forced,
        counts=ScanCounts(
            found=len(r.actions),
            new=_count(r, "new"),
            unchanged=_count(r, "unchanged"),
            changed_same_version=_count(r, "changed_same_version"),
            replaced=_count(r, "replaced"),
            invalid=_count(r, "invalid"),
            errors=len(errors),
            warnings=len(warnings),
        ),
        actions=[_scanned(a) for a in r.actions],
        errors=[_issue(e) for e in errors],
        warnings=[_issue(w) for w in warnings],
        build_ids=list(r.build_ids),
    )


def _count(r: ScanReport, status: str) -> int:
    return sum(1 for a in r.actions if a.status.value == status)


def _repository(r: GitRepository) -> RepositoryOut:
    last = (
        ScanSummaryOut(
            id=r.last_scan_id,
            commit=r.last_commit,
            branch=r.resolved_branch,
            finished_at=r.last_scanned_at,
        )
        if r.last_scan_id
        else None
    )
    return RepositoryOut(
        id=r.id,
        project_id=r.project_id,
        name=r.name,
        url=r.url,
        branch=r.branch,
        auth=r.auth.value,
        created_at=r.created_at,
        last_scan=last,
    )


def _io(io: ActionIO) -> IOOut:
    return IOOut(
        name=io.name,
        human_name=io.human_name,
        help=io.help,
        type=io.type.value,
        optional=io.optional,
        enum_values=list(io.enum_values),
        default_value=io.default_value,
    )


def _build_summary(b: Build) -> BuildSummaryOut:
    return BuildSummaryOut(
        id=b.id,
        state=b.state.value,
        requested_at=b.requested_at,
        finished_at=b.finished_at,
        source_sha256=b.source_sha256,
        artefact_key=b.artefact_key,
        artefact_sha256=b.artefact_sha256,
        cached=b.cached,
        duration_seconds=b.duration_seconds,
        reason=b.reason,
    )


def _build(b: Build) -> BuildOut:
    return BuildOut(
        **_build_summary(b).model_dump(), action_id=b.action_id, version=b.version, log=b.log
    )


def _origin(s: ActionSource) -> OriginOut:
    o = s.origin
    return OriginOut(
        kind="upload" if o.upload_id else "git",
        repository_id=o.repository_id,
        upload_id=o.upload_id,
        name=o.name,
        path=o.path or ".",
        commit=o.commit,
    )


def _action(view: ActionView) -> ActionOut:
    s, meta = view.source, view.source.metadata
    pending = None
    if s.pending_change is not None:
        po = s.pending_change.origin
        pending = PendingChangeOut(
            sha256=s.pending_change.sha256,
            seen_at=s.pending_change.seen_at,
            origin=OriginOut(
                kind="upload" if po.upload_id else "git",
                repository_id=po.repository_id,
                upload_id=po.upload_id,
                name=po.name,
                path=po.path or ".",
                commit=po.commit,
            ),
        )
    return ActionOut(
        id=s.id,
        action_id=s.action_id,
        version=s.version,
        state=s.state.value,
        kind=meta.kind.value if meta else None,
        human_name=meta.human_name if meta else None,
        description=meta.description if meta else None,
        type=meta.type if meta else None,
        categories=list(meta.categories) if meta else [],
        inputs=[_io(i) for i in meta.inputs] if meta else [],
        outputs=[_io(o) for o in meta.outputs] if meta else [],
        resources=ResourcesOut(
            cpu=meta.resources.cpu,
            memory=meta.resources.memory,
            time=meta.resources.time,
            gpu=meta.resources.gpu,
        )
        if meta
        else None,
        dependencies=list(meta.dependencies) if meta else [],
        python_packages=[
            PythonPackageOut(dependency=p.dependency, requirement=p.requirement)
            for p in meta.python_packages
        ]
        if meta
        else [],
        has_logo=bool(s.packed and s.packed.logo),
        logo_media_type=(s.packed.logo_media_type or None) if s.packed and s.packed.logo else None,
        source_sha256=s.packed.sha256 if s.packed else None,
        source_key=s.packed.key if s.packed else None,
        origin=_origin(s),
        errors=[_issue(e) for e in s.errors],
        warnings=[_issue(w) for w in s.warnings],
        pending_change=pending,
        last_build=_build_summary(view.last_build) if view.last_build else None,
        updated_at=s.updated_at,
    )


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "false").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise HttpError(400, "invalid_input", f"{name}: expected true or false")


async def _project(request: web.Request, operation: Operation) -> ProjectId:
    access = await require(request, operation)
    return ProjectId(access.project_id)


def _uc(request: web.Request) -> RepositoryUseCases:
    return request.app[USE_CASES]


SCAN_QUERY = (
    Param(
        "force",
        "replace recorded sources whose content changed under the same (id, version)",
        type="boolean",
        default=False,
    ),
    Param(
        "build",
        "request a build of every valid action found that is not built yet",
        type="boolean",
        default=False,
    ),
)


# ---- repositories --------------------------------------------------------------------------


@api.route(
    "POST",
    P + "/repositories",
    summary="Add a git repository",
    tag="repositories",
    body=RepositoryIn,
    response=RepositoryOut,
    status=201,
    errors={409: "a repository with this name exists in the project"},
)
async def add_repository(request: web.Request) -> web.Response:
    project = await _project(request, Operation.WRITE)
    body = await read_json(request, RepositoryIn)
    repository = await _uc(request).add_repository(
        project,
        name=body.name,
        url=body.url,
        branch=body.branch,
        credentials=Credentials(
            username=body.username, password=body.password, ssh_key=body.ssh_key
        ),
    )
    return _json(_repository(repository), 201)


@api.route(
    "GET",
    P + "/repositories",
    summary="The project's repositories",
    tag="repositories",
    response=RepositoriesOut,
)
async def list_repositories(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    repositories = await _uc(request).list_repositories(project)
    return _json(RepositoriesOut(repositories=[_repository(r) for r in repositories]))


@api.route(
    "GET",
    P + "/repositories/{repository_id}",
    summary="A repository",
    tag="repositories",
    response=RepositoryOut,
    errors={404: "no such repository"},
)
async def get_repository(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    repository = await _uc(request).get_repository(
        project, RepositoryId(request.match_info["repository_id"])
    )
    return _json(_repository(repository))


@api.route(
    "DELETE",
    P + "/repositories/{repository_id}",
    summary="Delete a repository (its recorded action versions stay)",
    tag="repositories",
    status=204,
    errors={404: "no such repository"},
)
async def delete_repository(request: web.Request) -> web.Response:
    project = await _project(request, Operation.WRITE)
    await _uc(request).delete_repository(project, RepositoryId(request.match_info["repository_id"]))
    return web.Response(status=204)


@api.route(
    "POST",
    P + "/repositories/{repository_id}/scan",
    summary="Fetch the branch and scan it: every action found, every error at once",
    tag="repositories",
    response=ScanOut,
    query=SCAN_QUERY,
    errors={
        404: "no such repository",
        413: "repository too large",
        422: "the repository could not be fetched (reason in detail)",
    },
)
async def scan_repository(request: web.Request) -> web.Response:
    project = await _project(request, Operation.WRITE)
    force, build = _flag(request, "force"), _flag(request, "build")
    report = await _uc(request).scan_repository(
        project, RepositoryId(request.match_info["repository_id"]), force=force, build=build
    )
    return _json(_scan(report))


@api.route(
    "GET",
    P + "/scans/{scan_id}",
    summary="The result of a scan or upload",
    tag="repositories",
    response=ScanOut,
    errors={404: "no such scan"},
)
async def get_scan(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    report = await _uc(request).get_scan(project, ScanId(request.match_info["scan_id"]))
    return _json(_scan(report))


# ---- uploads -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _received(request: web.Request) -> AsyncIterator[tuple[Path, str]]:
    """Stream the archive to a private file, refusing it as soon as it exceeds the limit."""
    limits = request.app[UPLOAD_LIMITS]
    if request.content_length is not None and request.content_length > limits.max_bytes + 65536:
        raise HttpError(
            413,
            "too_large",
            f"the upload exceeds {limits.max_bytes} bytes (RYAX_REPOSITORY_MAX_UPLOAD_BYTES)",
        )
    limits.scratch_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=limits.scratch_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            filename = await _write_body(request, out, limits.max_bytes)
            empty = out.tell() == 0
        if empty:
            raise HttpError(400, "invalid_input", "archive: the upload is empty")
        yield path, filename
    finally:
        await asyncio.to_thread(path.unlink, True)


async def _write_body(request: web.Request, out: Any, limit: int) -> str:
    written = 0

    def take(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)
        if written > limit:
            raise HttpError(
                413,
                "too_large",
                f"the upload exceeds {limit} bytes (RYAX_REPOSITORY_MAX_UPLOAD_BYTES)",
            )
        out.write(chunk)

    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name in ("archive", "file"):
                    while chunk := await part.read_chunk(65536):
                        take(chunk)
                    return _safe_name(part.filename or "upload")
                if isinstance(part, BodyPartReader):
                    await part.release()
        except (ValueError, BadHttpMessage) as exc:  # no boundary, a part's headers unreadable
            raise HttpError(
                400, "invalid_input", f"archive: not a readable multipart body ({exc})"
            ) from exc
        raise HttpError(
            400,
            "invalid_input",
            "archive: expected a multipart field named 'archive' holding the file",
        )
    async for chunk in request.content.iter_chunked(65536):
        take(chunk)
    return _safe_name(request.query.get("name") or "upload")


def _safe_name(name: str) -> str:
    base = PurePosixPath(unquote(name).replace("\\", "/")).name
    cleaned = "".join(c for c in base if c.isprintable())[:200]
    return cleaned or "upload"


@api.route(
    "POST",
    P + "/uploads",
    summary=(
        "Upload an action folder (or several) as a .zip or .tar(.gz) archive instead "
        "of git: multipart field 'archive', or the raw archive as the body "
        "(?name=file.zip)"
    ),
    tag="repositories",
    response=ScanOut,
    query=(
        *SCAN_QUERY,
        Param("name", "the archive's file name, for a raw body (default: upload)"),
    ),
    body_content={
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"archive": {"type": "string", "format": "binary"}},
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
    errors={413: "archive too large", 400: "unsafe or unreadable archive"},
)
async def upload(request: web.Request) -> web.Response:
    project = await _project(request, Operation.WRITE)
    force, build = _flag(request, "force"), _flag(request, "build")
    async with _received(request) as (path, name):
        report = await _uc(request).upload_archive(project, path, name, force=force, build=build)
    return _json(_scan(report))


# ---- actions and builds --------------------------------------------------------------------


@api.route(
    "GET",
    P + "/actions",
    summary="Action sources with their state (valid, invalid, building, built, "
    "build_failed) and last build",
    tag="actions",
    response=ActionsOut,
    query=(
        Param(
            "state",
            "only the sources in this state",
            enum=tuple(state.value for state in SourceState),
        ),
    ),
)
async def list_actions(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    views = await _uc(request).list_actions(project)
    state = request.query.get("state")
    return _json(
        ActionsOut(
            actions=[_action(v) for v in views if state is None or v.source.state.value == state]
        )
    )


@api.route(
    "GET",
    P + "/actions/{action_id}/{version}",
    summary="One action version",
    tag="actions",
    response=ActionOut,
    errors={404: "no such action version"},
)
async def get_action(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    view = await _uc(request).get_action(
        project, request.match_info["action_id"], request.match_info["version"]
    )
    return _json(_action(view))


LOGO_HEADERS = UNTRUSTED_CONTENT_HEADERS


@api.route(
    "GET",
    P + "/actions/{action_id}/{version}/logo",
    summary="The action's logo, with the media type of what the file really holds",
    tag="actions",
    response_media="image/*",
    errors={404: "no such action version, or it has no logo"},
)
async def action_logo(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    view = await _uc(request).get_action(
        project, request.match_info["action_id"], request.match_info["version"]
    )
    packed = view.source.packed
    if packed is None or not packed.logo:
        raise HttpError(404, "not_found", "this action version has no logo")
    return web.Response(
        body=packed.logo,
        content_type=packed.logo_media_type or "application/octet-stream",
        headers=LOGO_HEADERS,
    )


@api.route(
    "POST",
    P + "/actions/{action_id}/{version}/build",
    summary="Request a build of an action version (answers at once; follow the build)",
    tag="actions",
    response=BuildOut,
    status=202,
    query=(
        Param(
            "force",
            "request a build even when one is in progress",
            type="boolean",
            default=False,
        ),
    ),
    errors={404: "no such action version", 409: "invalid, or a build is in progress"},
)
async def build_action(request: web.Request) -> web.Response:
    project = await _project(request, Operation.WRITE)
    build = await _uc(request).build_action(
        project,
        request.match_info["action_id"],
        request.match_info["version"],
        force=_flag(request, "force"),
    )
    return _json(_build(build), 202)


@api.route(
    "GET",
    P + "/actions/{action_id}/{version}/builds",
    summary="The builds of an action version, newest first",
    tag="actions",
    response=BuildsOut,
    errors={404: "no such action version"},
)
async def list_builds(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    builds = await _uc(request).list_builds(
        project, request.match_info["action_id"], request.match_info["version"]
    )
    return _json(BuildsOut(builds=[_build_summary(b) for b in builds]))


@api.route(
    "GET",
    P + "/builds/{build_id}",
    summary="A build: state, reason and build log",
    tag="actions",
    response=BuildOut,
    errors={404: "no such build"},
)
async def get_build(request: web.Request) -> web.Response:
    project = await _project(request, Operation.READ)
    build = await _uc(request).get_build(project, BuildId(request.match_info["build_id"]))
    return _json(_build(build))
