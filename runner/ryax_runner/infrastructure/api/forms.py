"""The form portal (`postgw`) on the user API: `GET /user-api/<project><path>` shows the form
of the workflow's fields, `POST` (multipart/form-data or url-encoded) checks it and starts a run.

- A bad submission shows the form again (400) with each error next to its field; uploaded
  files are stored in the filestore only once the whole submission is valid.
- A valid one starts a run (origin `form`) and waits up to the trigger's `timeout`: the page of
  the run (its results, files as download links, or its error); past the timeout a 202 page
  that reloads itself until the run ended. `?run=<id>` on the form's path is that page,
  `?run=<id>&file=<key>` downloads a result file.
- Who may: as on the user API, `Authorization: Bearer <token or project API key>`; or, for a
  browser, a sign-in page (`/user-api/<project>/_login`) that keeps the key or token in a
  cookie of this project's user API: HttpOnly, SameSite=Strict, Secure behind HTTPS, sent for
  forms only (an API route refuses it). No key in a URL: URLs end up in access logs and
  browser histories. A POST carrying an Origin of another site is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import os
import tempfile
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ryax_kit.authz import AUTHZ, Access, Operation, require
from ryax_kit.filestore import FilestoreError, encode_segment
from ryax_kit.web import HttpError

from ...application.engine import Engine
from ...domain.deployment import Deployment, DeploymentState
from ...domain.errors import DomainError, InvalidInput, NotFound, TooLarge, Unavailable
from ...domain.forms import Submission, read_submission
from ...domain.run import MASK, Run, RunId, RunState, execution_id_for
from ...domain.user_api import Route
from ...domain.values import FileRef, to_json
from .endpoints import (
    ENDPOINT_SETTINGS,
    MAX_TEXT_PART_BYTES,
    _append,
    _next_part,
    drop_uploads,
    stored_uploads,
)
from .form_pages import (
    PAGE_HEADERS,
    FormPage,
    RunView,
    error_page,
    form_page,
    login_page,
    page,
    run_page,
)
from .routes import ENGINE, ERRORS, FILESTORE, QUERIES, present, stream_run_file

PREFIX = "/user-api"
COOKIE = "ryax_user_api"
LOGIN, LOGOUT = "/_login", "/_logout"
ORIGIN = "form"


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def project_root(request: web.Request) -> str:
    """`/user-api/<project>` as the caller wrote it (the cookie's path)."""
    return f"{PREFIX}/{request.rel_url.raw_path.split('/')[2]}"


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _secure(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def _check_origin(request: web.Request) -> None:
    """A POST a browser sends from another site's page is refused (the cookie is SameSite
    already; this holds for browsers that send no SameSite)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    host = urllib.parse.urlsplit(origin).netloc.lower() if origin != "null" else ""
    forwarded = request.headers.get("X-Forwarded-Host", "").split(",")[0].strip().lower()
    if not host or host not in {request.host.lower(), forwarded}:
        raise HttpError(403, "forbidden", "a form is sent from its own page only (Origin)")


@dataclass(frozen=True)
class Caller:
    access: Access
    #: Signed in by the cookie (a browser): forms only.
    by_cookie: bool


async def authorize(request: web.Request) -> Caller | web.Response:
    """The caller of a user API route: `Authorization` as always; else the sign-in cookie;
    else, for a browser asking a page, the sign-in page (401) to answer."""
    if request.headers.get("Authorization", "").strip():
        return Caller(await require(request, Operation.TRIGGER), by_cookie=False)
    token = request.cookies.get(COOKIE, "").strip()
    if token:
        try:
            access = await request.app[AUTHZ].check(
                token, request.match_info["project"], Operation.TRIGGER
            )
        except HttpError as exc:
            if exc.status not in (401, 403) or not _wants_html(request):
                raise
            return _to_login(request, exc.status, "Your key or token was refused: sign in again.")
        return Caller(access, by_cookie=True)
    if request.method == "GET" and _wants_html(request):
        return _to_login(request, 401, "")
    return Caller(await require(request, Operation.TRIGGER), by_cookie=False)


def _to_login(request: web.Request, status: int, problem: str) -> web.Response:
    root = project_root(request)
    text = login_page("Sign in", root + LOGIN, request.rel_url.path_qs, problem)
    answer = _html(text, status)
    if problem:
        answer.del_cookie(COOKIE, path=root)
    return answer


def _next_path(request: web.Request, given: str) -> str:
    """Where to go after signing in: a page of this project's user API, nothing else."""
    root = project_root(request)
    if (
        given.startswith(root + "/")
        and given.isprintable()  # no CR/LF into the Location header
        and "//" not in given
        and "\\" not in given
        and not given.startswith(root + LOGIN)
    ):
        return given
    return root + LOGIN + "?signed_in=1"


async def login(request: web.Request) -> web.StreamResponse:
    """GET: the sign-in page. POST `key`, `next`: checked with the authorization service, then
    kept in the cookie; 303 to `next`."""
    root = project_root(request)
    if request.method == "GET":
        if request.query.get("signed_in"):
            body = (
                "<h1>Signed in</h1><p>Open the address of a form of this project.</p>"
                f'<form method="post" action="{html.escape(root + LOGOUT)}">'
                '<button type="submit">Sign out</button></form>'
            )
            return _html(page("Signed in", body))
        return _html(login_page("Sign in", root + LOGIN, request.query.get("next", "")))
    if request.method != "POST":
        raise HttpError(
            405, "method_not_allowed", f"{LOGIN} answers GET and POST", {"Allow": "GET, POST"}
        )
    _check_origin(request)
    form = await request.post()
    key = str(form.get("key") or "").strip()
    next_path = _next_path(request, str(form.get("next") or ""))
    if not key:
        return _html(login_page("Sign in", root + LOGIN, next_path, "Give a key or a token."), 400)
    try:
        await request.app[AUTHZ].check(key, request.match_info["project"], Operation.TRIGGER)
    except HttpError as exc:
        if exc.status not in (401, 403):
            raise
        problem = (
            "This key or token is not valid."
            if exc.status == 401
            else "This key or token has no access to this project's forms."
        )
        return _html(login_page("Sign in", root + LOGIN, next_path, problem), exc.status)
    answer = web.Response(status=303, headers={**PAGE_HEADERS, "Location": next_path})
    answer.set_cookie(
        COOKIE, key, path=root, httponly=True, samesite="Strict", secure=_secure(request)
    )
    return answer


async def logout(request: web.Request) -> web.StreamResponse:
    if request.method != "POST":
        raise HttpError(405, "method_not_allowed", f"{LOGOUT} answers POST", {"Allow": "POST"})
    _check_origin(request)
    root = project_root(request)
    answer = web.Response(status=303, headers={**PAGE_HEADERS, "Location": root + LOGIN})
    answer.del_cookie(COOKIE, path=root)
    return answer


# -- the form --------------------------------------------------------------------------------------


def _title(d: Deployment, route: Route) -> str:
    return route.summary or d.workflow_name


def _form_link(request: web.Request, route: Route) -> str:
    return project_root(request) + urllib.parse.quote(route.path)


async def serve_form(
    request: web.Request, caller: Caller, d: Deployment, route: Route
) -> web.StreamResponse:
    """GET the form (or a run's page), POST a submission; errors as pages, not JSON."""
    back = _form_link(request, route)
    try:
        if caller.by_cookie and request.method == "POST":
            _check_origin(request)
        if d.state is not DeploymentState.DEPLOYED:
            why = f": {d.reason}" if d.reason else ""
            return _html(
                error_page(
                    _title(d, route),
                    409,
                    f"This form is not open yet: workflow {d.workflow_name} is {d.state}{why}.",
                ),
                409,
            )
        if request.method == "GET":
            if "run" in request.query:
                return await _run_page(request, caller.access, d, route)
            return _html(form_page(_page(request, d, route)))
        return await _submit(request, d, route)
    except (DomainError, HttpError) as exc:
        status = exc.status if isinstance(exc, HttpError) else ERRORS.status_of(exc)
        headers = exc.headers if isinstance(exc, HttpError) else {}
        return _html(error_page(_title(d, route), status, exc.detail, back), status, headers)


def _page(
    request: web.Request,
    d: Deployment,
    route: Route,
    given: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> FormPage:
    return FormPage(
        title=_title(d, route),
        description=route.description or d.definition.description,
        action=_form_link(request, route),
        logout_action=project_root(request) + LOGOUT,
        fields=route.fields,
        given=given or {},
        errors=errors or {},
    )


@dataclass
class _Upload:
    name: str
    filename: str
    path: Path
    size: int
    sha256: str


async def _submit(request: web.Request, d: Deployment, route: Route) -> web.Response:
    engine: Engine = request.app[ENGINE]
    settings = request.app[ENDPOINT_SETTINGS]
    run_id = RunId(str(uuid.uuid4()))
    execution = execution_id_for(run_id, d.definition.trigger.step_id, (), 1)
    uploads: list[_Upload] = []
    try:
        texts = await _read(request, uploads, settings)
        files: dict[str, list[FileRef]] = {}
        for up in uploads:
            key = f"runs/{run_id}/{execution}/{up.name}/{encode_segment(up.filename)}"
            files.setdefault(up.name, []).append(
                FileRef(key=key, name=up.filename, size=up.size, sha256=up.sha256)
            )
        submission = read_submission(route.fields, texts, files, int(settings["max_inline_bytes"]))
        if not submission.ok:
            return _again(request, d, route, texts, submission)
        store = request.app[FILESTORE]
        for up in uploads:
            ref = submission.values.get(up.name)
            if isinstance(ref, FileRef):
                try:
                    await store.put_file(ref.key, up.path)
                except FilestoreError as exc:
                    raise Unavailable(f"{up.name}: the file cannot be stored: {exc}") from exc
                stored_uploads(request).append(ref.key)
        # The page is answered once the run is recorded or ended: unannounced till then.
        run = engine.start_run(d, submission.values, origin=ORIGIN, run_id=run_id, unannounced=True)
    except BaseException:
        drop_uploads(request)  # stored, but no run will refer to them
        raise
    finally:
        for up in uploads:
            await asyncio.to_thread(up.path.unlink, True)
    timeout = min(float(route.timeout_seconds), float(settings["sync_timeout_max"]))
    if timeout > 0:
        with contextlib.suppress(TimeoutError):
            run = await asyncio.wait_for(asyncio.shield(engine.wait_for(run)), timeout=timeout)
    if not run.state.is_terminal:
        await engine.durable(run)  # the page names a recorded run
    view = _view_of_run(request, route, run)
    return _run_answer(request, d, route, view, _status_of(run))


def _again(
    request: web.Request, d: Deployment, route: Route, texts: dict[str, list[str]], sub: Submission
) -> web.Response:
    given = {
        name: values[-1]
        for name, values in texts.items()
        if values and not any(io.name == name and io.type == "password" for io in route.fields)
    }
    return _html(form_page(_page(request, d, route, given, sub.errors)), 400)


async def _read(
    request: web.Request, uploads: list[_Upload], settings: dict[str, Any]
) -> dict[str, list[str]]:
    """The text parts by name; file parts (with a file chosen) to temporary files."""
    texts: dict[str, list[str]] = {}
    content_type = request.content_type
    if content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        for name, value in form.items():
            if not isinstance(value, str):
                raise InvalidInput(name, "files are sent as multipart/form-data")
            texts.setdefault(name, []).append(value)
        return texts
    if content_type != "multipart/form-data":
        raise HttpError(
            415,
            "unsupported_media_type",
            "send the form as multipart/form-data or application/x-www-form-urlencoded",
        )
    try:
        reader = await request.multipart()
    except ValueError as exc:
        raise InvalidInput("Content-Type", f"not a readable multipart body ({exc})") from exc
    limit = int(settings["max_upload_bytes"])
    total_limit = int(settings["max_upload_total_bytes"])
    total = 0
    while True:
        part = await _next_part(reader)
        if part is None:
            return texts
        if not isinstance(part, aiohttp.BodyPartReader):
            raise InvalidInput("body", "nested multipart is not supported")
        name = part.name or ""
        if part.filename is not None:
            filename = Path(part.filename).name
            fd, tmp_name = tempfile.mkstemp(prefix="ryax-form-")
            up = _Upload(name, filename or name, Path(tmp_name), 0, "")
            uploads.append(up)
            digest = hashlib.sha256()
            out = await asyncio.to_thread(os.fdopen, fd, "wb")
            try:
                while chunk := await part.read_chunk(256 * 1024):
                    up.size += len(chunk)
                    total += len(chunk)
                    if up.size > limit:
                        raise TooLarge(
                            f"file field `{name}`: more than the {limit} bytes a file may hold"
                        )
                    if total > total_limit:
                        raise TooLarge(f"the form is more than the {total_limit} bytes it may hold")
                    await asyncio.to_thread(_append, out, digest, chunk)
            finally:
                await asyncio.to_thread(out.close)
            up.sha256 = digest.hexdigest()
            if not filename and up.size == 0:  # a file input left empty
                uploads.remove(up)
                await asyncio.to_thread(up.path.unlink, True)
            continue
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data += chunk
            total += len(chunk)
            if len(data) > MAX_TEXT_PART_BYTES or total > total_limit:
                raise TooLarge(f"field `{name}`: more than {MAX_TEXT_PART_BYTES} bytes of text")
        try:
            texts.setdefault(name, []).append(data.decode(part.get_charset(default="utf-8")))
        except (UnicodeDecodeError, LookupError) as exc:
            raise InvalidInput(name, f"not valid text: {exc}") from exc


def _status_of(run: Run) -> int:
    if run.state is RunState.COMPLETED:
        return 200
    if run.state is RunState.FAILED:
        status = run.http_status
        return status if status is not None and 400 <= status <= 599 else 500
    if run.state is RunState.CANCELLED:
        return 409
    return 202


def _links(request: web.Request, route: Route, run_id: str) -> tuple[str, str]:
    run_link = f"{_form_link(request, route)}?run={run_id}"
    project = urllib.parse.quote(request.match_info["project"], safe="")
    return run_link, f"/runner/v1/projects/{project}/results/{run_id}"


def _file_link(request: web.Request, route: Route, run_id: str) -> Any:
    run_link, _ = _links(request, route, run_id)

    def link(key: str) -> str:
        return f"{run_link}&file={urllib.parse.quote(key, safe='')}"

    return link


def _view_of_run(request: web.Request, route: Route, run: Run) -> RunView:
    view = RunView(run_id=run.id, state=str(run.state))
    if run.state is RunState.COMPLETED:
        hidden = run.definition.sensitive_results
        results = {k: MASK if k in hidden else to_json(v) for k, v in (run.results or {}).items()}
        view.results = present(results, _file_link(request, route, run.id))
    elif run.state is RunState.FAILED:
        failed = [e for e in run.executions.values() if e.step_id == run.failed_step_id and e.error]
        view.error = failed[-1].error if failed else run.reason
        view.step_id = run.failed_step_id or None
    elif run.state is RunState.CANCELLED:
        view.error = run.reason
    return view


def _run_answer(
    request: web.Request, d: Deployment, route: Route, view: RunView, status: int
) -> web.Response:
    run_link, result_link = _links(request, route, view.run_id)
    text = run_page(
        _title(d, route),
        view,
        run_link,
        _form_link(request, route),
        result_link,
        project_root(request) + LOGOUT,
    )
    return _html(text, status, {"Ryax-Run-Id": view.run_id})


async def _run_page(
    request: web.Request, access: Access, d: Deployment, route: Route
) -> web.StreamResponse:
    """`?run=<id>`: the page of a run this form started; `&file=<key>`: a result file."""
    run_id = request.query.get("run", "")
    try:
        uuid.UUID(run_id)
    except ValueError:
        raise NotFound(f"run {run_id!r} not found") from None
    doc = await request.app[QUERIES].get_run(access.project_id, run_id)
    if doc is None or doc.get("origin") != ORIGIN or doc.get("workflow_id") != d.workflow_id:
        raise NotFound(f"run {run_id} not found among the runs of this form")
    key = request.query.get("file")
    if key is not None:
        if key not in result_file_keys(doc.get("results")):
            raise NotFound(f"no file {key} in the results of run {run_id}")
        return await stream_run_file(request, access.project_id, run_id, key)
    state = str(doc["state"])
    view = RunView(run_id=run_id, state=state)
    if state == RunState.COMPLETED:
        view.results = present(doc.get("results") or {}, _file_link(request, route, run_id))
    elif state == RunState.FAILED:
        step_id = doc.get("failed_step_id")
        errors = [s.get("error") for s in doc.get("steps", []) if s["step_id"] == step_id]
        errors = [e for e in errors if e]
        view.error = errors[-1] if errors else doc.get("reason")
        view.step_id = step_id
    elif state == RunState.CANCELLED:
        view.error = doc.get("reason")
    return _run_answer(request, d, route, view, 200)


def result_file_keys(value: Any) -> set[str]:
    """The filestore keys of the files among a run's stored results."""
    if isinstance(value, dict):
        if len(value) == 1 and "$file" in value and isinstance(value["$file"], dict):
            return {str(value["$file"].get("key"))}
        return {k for v in value.values() for k in result_file_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in result_file_keys(v)}
    return set()
