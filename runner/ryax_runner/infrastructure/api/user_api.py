"""The user API, as published Ryax serves it: every deployed HTTP API trigger at
`/user-api/<project id or name><path>` (the gateway routes `/user-api` to the runner).

- The trigger's `method` and `path` (a `{name}` segment is a path parameter) select the
  workflow (`domain/user_api.py`); each field comes from where its `origin` says: the body (a
  JSON object, a url-encoded form or multipart with file parts, as the endpoint by name), a
  path parameter, a query parameter or a header (name with `-` for `_`, any case), as text
  parsed by the field's type. A bad or missing field is a 400 naming the field and where it was
  looked for.
- The caller waits up to the trigger's `timeout` (seconds, at most an hour):
  the run's results with the trigger's `success_code` (200 or 201), a failed run with its
  action's HTTP status (else 500), a cancelled run 409. Past the timeout, or at once with
  timeout 0: 202 `{"workflow_run_id", "result_link", "run_id", "state"}` once the run is
  recorded; the result link
  (`GET /runner/v1/projects/<project>/results/<run id>`) answers like the call would have.
- Authorised by a user token (a developer of the project) or a project API key of that project
  (`Authorization: Bearer ryaxpk_...`); an API key reaches the user API, its result links and
  their files, nothing else.
- `GET /user-api/<project>/openapi.json`: the project's deployed paths with their fields and
  answers; `GET /user-api/<project>/docs`: a page to read and try them (it asks for a token).
- A form portal (`postgw`) is served on the same table of paths: GET shows its form, POST
  submits it (`forms.py`, which also serves `/_login` and `/_logout`, the sign-in of browsers).
"""

from __future__ import annotations

import asyncio
import html
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ryax_kit.authz import Access, Operation, require
from ryax_kit.web import HttpError

from ...application.engine import Engine
from ...domain.deployment import Deployment, DeploymentState
from ...domain.errors import InvalidInput, NotDeployed, NotFound
from ...domain.forms import FORM_TRIGGER
from ...domain.run import MASK, Run, RunId, RunState, execution_id_for
from ...domain.user_api import (
    METHODS,
    Match,
    Route,
    RouteRefused,
    RouteTable,
    header_name,
    pick_headers,
    route_of,
    serves,
    text_value,
)
from ...domain.values import FILE_TYPES, Value, check_inline_size, to_json
from ...domain.workflow import IO
from . import forms
from .endpoints import (
    ENDPOINT_SETTINGS,
    FILE_OUT,
    _schema,
    drop_uploads,
    read_body,
)
from .routes import ENGINE, QUERIES, P, api, present, stream_run_file

PREFIX = "/user-api"
PROJECT_ROOT = PREFIX + "/{project}"
ROUTE = PROJECT_ROOT + "/{path:.*}"
RESULTS = P + "/results/{run_id}"
#: (method, route) of the user API routes that take a body: the app gives them the endpoint
#: trigger's upload limit (app.py).
BODY_ROUTES = tuple((m, r) for m in METHODS for r in (ROUTE, PROJECT_ROOT))
ROUTES_CACHE = web.AppKey("user_api_routes", dict)


def setup(app: web.Application) -> None:
    """Serve the user API on `app` (the runner's; its result links are routes of `api`)."""
    app[ROUTES_CACHE] = {}
    app.router.add_route("*", PROJECT_ROOT, call_user_api)
    app.router.add_route("*", ROUTE, call_user_api)


# -- routes of a project ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    route: Route | None


def _route(app: web.Application, d: Deployment) -> Route | None:
    """The deployment's route (definitions never change: parsed once per deployment)."""
    cache: dict[str, _Parsed] = app[ROUTES_CACHE]
    parsed = cache.get(d.id)
    if parsed is None:
        try:
            parsed = _Parsed(route_of(d.definition))
        except RouteRefused:
            parsed = _Parsed(None)
        if len(cache) > 10_000:
            cache.clear()
        cache[d.id] = parsed
    return parsed.route


def project_routes(
    app: web.Application, project_id: str
) -> tuple[RouteTable, dict[str, Deployment]]:
    """The routes the project's deployments serve: per workflow the deployed deployment, else
    the most recent one still coming (a call to it answers 409 with its state)."""
    engine: Engine = app[ENGINE]
    best: dict[str, Deployment] = {}
    for d in engine.deployments.values():
        trigger = d.definition.trigger
        served = trigger.http_endpoint or trigger.builtin == FORM_TRIGGER
        if d.project_id != project_id or not served or not serves(d):
            continue
        current = best.get(d.workflow_id)
        if current is None or _preferred(d) > _preferred(current):
            best[d.workflow_id] = d
    table = RouteTable()
    by_id: dict[str, Deployment] = {}
    for d in best.values():
        route = _route(app, d)
        if route is not None:
            table.routes[d.id] = route
            by_id[d.id] = d
    return table, by_id


def _preferred(d: Deployment) -> tuple[bool, Any]:
    return (d.state is DeploymentState.DEPLOYED, d.created_at)


# -- the call --------------------------------------------------------------------------------------


def _rest(request: web.Request) -> str:
    """The path after /user-api/<project>, still percent-encoded."""
    parts = request.rel_url.raw_path.split("/")  # "", "user-api", project, ...
    return "/" + "/".join(parts[3:])


async def call_user_api(request: web.Request) -> web.StreamResponse:
    rest = _rest(request)
    if request.method == "GET" and rest in ("/openapi.json", "/docs"):
        return await (project_openapi if rest == "/openapi.json" else docs_page)(request)
    if rest in (forms.LOGIN, forms.LOGOUT):
        return await (forms.login if rest == forms.LOGIN else forms.logout)(request)
    caller = await forms.authorize(request)
    if isinstance(caller, web.Response):  # a browser without credentials: the sign-in page
        return caller
    access = caller.access
    table, deployments = project_routes(request.app, access.project_id)
    found = table.match(request.method, rest)
    if found is None:
        raise NotFound(
            f"no endpoint {request.method} {urllib.parse.unquote(rest)} in project "
            f"{access.project_name} (its endpoints: GET {PREFIX}/"
            f"{request.match_info['project']}/openapi.json)"
        )
    if isinstance(found, list):
        raise HttpError(
            405,
            "method_not_allowed",
            f"{urllib.parse.unquote(rest)} answers {', '.join(found)}, not {request.method}",
            {"Allow": ", ".join(found)},
        )
    d = deployments[found.route_key]
    if found.route.form:
        return await forms.serve_form(request, caller, d, found.route)
    if caller.by_cookie:
        raise HttpError(
            401,
            "unauthenticated",
            "the sign-in cookie is for forms: call the user API with an Authorization header",
            {"WWW-Authenticate": 'Bearer realm="ryax"'},
        )
    if d.state is not DeploymentState.DEPLOYED:
        why = f": {d.reason}" if d.reason else ""
        raise NotDeployed(f"workflow {d.workflow_name} is not deployed yet ({d.state}{why})")
    return await _run(request, access, d, found)


async def _run(request: web.Request, access: Access, d: Deployment, found: Match) -> web.Response:
    engine: Engine = request.app[ENGINE]
    settings = request.app[ENDPOINT_SETTINGS]
    run_id = RunId(str(uuid.uuid4()))
    try:
        inputs = await read_inputs(request, d, found, run_id, settings["max_inline_bytes"])
        # The caller is answered once the run is recorded (202) or ended: unannounced till
        # then.
        run = engine.start_run(d, inputs, origin="user_api", run_id=run_id, unannounced=True)
    except BaseException:
        drop_uploads(request)
        raise
    project = request.match_info["project"]
    headers = {"Ryax-Run-Id": run.id}
    timeout = min(float(found.route.timeout_seconds), float(settings["sync_timeout_max"]))
    if timeout > 0:
        try:
            ended = await asyncio.wait_for(asyncio.shield(engine.wait_for(run)), timeout=timeout)
        except TimeoutError:
            pass
        else:
            status, body = outcome(project, ended, found.route.success_code)
            return web.json_response(body, status=status, headers=headers)
    await engine.durable(run)  # a 202 always names a recorded run
    link = result_link(project, run.id)
    return web.json_response(
        {
            "workflow_run_id": run.id,
            "result_link": link,
            "run_id": run.id,
            "state": str(run.state),
        },
        status=202,
        headers={**headers, "Location": link},
    )


async def read_inputs(
    request: web.Request, d: Deployment, found: Match, run_id: RunId, max_inline: int
) -> dict[str, Value]:
    """Each field from its origin; defaults for the others; a missing one is a 400."""
    route = found.route
    given: dict[str, Value] = {}
    for io in route.of_origin("path"):
        given[io.name] = text_value(io, "path", found.params[io.name])
    for io in route.of_origin("query"):
        texts = request.query.getall(io.name, [])
        if len(texts) > 1:
            raise InvalidInput(f"{io.name} (from the query)", "given more than once")
        if texts:
            given[io.name] = text_value(io, "query", texts[0])
    by_name = {io.name: io for io in route.fields}
    for name, text in pick_headers(route, request.headers).items():
        given[name] = text_value(by_name[name], "header", text)
    body_fields = {io.name: io for io in route.of_origin("body")}
    if request.body_exists:
        trigger_execution = execution_id_for(run_id, d.definition.trigger.step_id, (), 1)
        try:
            given.update(await read_body(request, body_fields, run_id, trigger_execution))
        except InvalidInput as exc:
            other = by_name.get(exc.field)
            if other is not None and other.name not in body_fields:
                where = route.origin(other)
                hint = f" (header {header_name(other.name)})" if where == "header" else ""
                raise InvalidInput(
                    f"{other.name} (from the body)", f"is read from the {where}{hint}"
                ) from exc
            raise
    inputs: dict[str, Value] = {}
    for io in route.fields:
        value = given.get(io.name)
        label = f"{io.name} (from the {route.origin(io)})"
        if value is not None:
            check_inline_size(label, value, max_inline)
            inputs[io.name] = value
        elif io.default_json is not None:
            inputs[io.name] = io.default()
        elif io.optional:
            inputs[io.name] = None
        else:
            raise InvalidInput(label, "missing")
    return inputs


def result_link(project: str, run_id: str) -> str:
    return f"/runner/v1/projects/{urllib.parse.quote(project, safe='')}/results/{run_id}"


def _file_link(project: str, run_id: str) -> Any:
    def link(key: str) -> str:
        return f"{result_link(project, run_id)}/files/{urllib.parse.quote(key)}"

    return link


def outcome(project: str, run: Run, success_code: int) -> tuple[int, dict[str, Any]]:
    """A run that ended -> the answer of the user API (from the run in memory)."""
    if run.state is RunState.COMPLETED:
        hidden = run.definition.sensitive_results
        results = {k: MASK if k in hidden else to_json(v) for k, v in (run.results or {}).items()}
        return success_code, present(results, _file_link(project, run.id))
    if run.state is RunState.FAILED:
        failed = [e for e in run.executions.values() if e.step_id == run.failed_step_id and e.error]
        return _failed(
            run.id,
            run.http_status,
            failed[-1].error if failed else run.reason,
            run.failed_step_id or None,
        )
    return 409, {"error": "run_cancelled", "detail": run.reason, "run_id": run.id}


def _failed(
    run_id: str, http_status: int | None, detail: str | None, step_id: str | None
) -> tuple[int, dict[str, Any]]:
    status = http_status if http_status is not None and 400 <= http_status <= 599 else 500
    return status, {"error": "run_failed", "detail": detail, "run_id": run_id, "step_id": step_id}


# -- result links ----------------------------------------------------------------------------------


async def _reader(request: web.Request) -> Access:
    """A member who may read the project, or (refused that) a caller who may trigger it: a
    project API key reads what its calls started."""
    try:
        return await require(request, Operation.READ)
    except HttpError as exc:
        if exc.status != 403:
            raise
    return await require(request, Operation.TRIGGER)


async def _run_doc(request: web.Request, access: Access) -> dict[str, Any]:
    run_id = request.match_info["run_id"]
    doc = await request.app[QUERIES].get_run(access.project_id, run_id)
    if doc is None or (access.api_key_id and doc.get("origin") not in ("user_api", forms.ORIGIN)):
        raise NotFound(f"run {run_id} not found")
    return doc


@api.route(
    "GET",
    RESULTS,
    summary="The result of a user API call (its 202's result_link): the workflow's results, "
    "or 202 while the run goes on (also with a project API key, for the runs of the user API)",
    tag="user-api",
    errors={
        404: "no such run in this project",
        409: "the run was cancelled",
        500: "the run failed (or the HTTP status its action raised): {error, detail, run_id, "
        "step_id}",
    },
)
async def get_result(request: web.Request) -> web.Response:
    access = await _reader(request)
    doc = await _run_doc(request, access)
    project = request.match_info["project"]
    run_id = str(doc["id"])
    state = str(doc["state"])
    if state == RunState.COMPLETED:
        results = present(doc.get("results") or {}, _file_link(project, run_id))
        return web.json_response(results, headers={"Ryax-Run-Id": run_id})
    if state == RunState.FAILED:
        step_id = doc.get("failed_step_id")
        errors = [s.get("error") for s in doc.get("steps", []) if s["step_id"] == step_id]
        errors = [e for e in errors if e]
        status, body = _failed(
            run_id, doc.get("http_status"), errors[-1] if errors else doc.get("reason"), step_id
        )
        return web.json_response(body, status=status, headers={"Ryax-Run-Id": run_id})
    if state == RunState.CANCELLED:
        return web.json_response(
            {"error": "run_cancelled", "detail": doc.get("reason"), "run_id": run_id},
            status=409,
            headers={"Ryax-Run-Id": run_id},
        )
    link = result_link(project, run_id)
    return web.json_response(
        {"workflow_run_id": run_id, "result_link": link, "run_id": run_id, "state": state},
        status=202,
        headers={"Ryax-Run-Id": run_id, "Retry-After": "1"},
    )


@api.route(
    "GET",
    RESULTS + "/files/{key:.+}",
    summary="Download a file of a user API call's results (a project API key may too)",
    tag="user-api",
    response_media="application/octet-stream",
    errors={404: "no such file in the run's results", 503: "the filestore cannot be reached"},
)
async def get_result_file(request: web.Request) -> web.StreamResponse:
    access = await _reader(request)
    doc = await _run_doc(request, access)
    key = request.match_info["key"]
    if access.api_key_id and key not in forms.result_file_keys(doc.get("results")):
        raise NotFound(f"no file {key} in the results of run {doc['id']}")
    return await stream_run_file(request, access.project_id, str(doc["id"]), key)


# -- the project's OpenAPI -------------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "detail": {},
        "run_id": {"type": "string"},
        "step_id": {"type": ["string", "null"]},
    },
}
ACCEPTED_SCHEMA = {
    "type": "object",
    "properties": {
        "workflow_run_id": {"type": "string"},
        "result_link": {"type": "string", "description": "GET it for the results"},
        "run_id": {"type": "string"},
        "state": {"type": "string"},
    },
}


def _result_schema(d: Deployment) -> dict[str, Any]:
    definition = d.definition
    props: dict[str, Any] = {}
    for key, step_id, output_name in definition.result_specs:
        out = definition.step(step_id).output(output_name)
        if out is None:
            props[key] = {}
        else:
            props[key] = FILE_OUT if out.type in FILE_TYPES else _schema(out)
    return {"type": "object", "properties": props}


def _parameter(io: IO, where: str, required: bool) -> dict[str, Any]:
    schema = _schema(io)
    doc: dict[str, Any] = {
        "name": header_name(io.name) if where == "header" else io.name,
        "in": where,
        "required": required,
        "schema": {k: v for k, v in schema.items() if k != "description"},
    }
    if "description" in schema:
        doc["description"] = schema["description"]
    return doc


def operation(d: Deployment, route: Route) -> dict[str, Any]:
    """One OpenAPI operation: the route's parameters, body and answers."""

    def required(io: IO) -> bool:
        return not io.optional and io.default_json is None

    parameters = [_parameter(io, "path", True) for io in route.of_origin("path")]
    parameters += [_parameter(io, "query", required(io)) for io in route.of_origin("query")]
    parameters += [_parameter(io, "header", required(io)) for io in route.of_origin("header")]
    op: dict[str, Any] = {
        "operationId": "".join(c if c.isalnum() else "_" for c in d.workflow_name),
        "summary": route.summary or d.definition.description or f"Run {d.workflow_name}",
        "description": (route.description or d.definition.description or "")
        + f"\n\nWorkflow {d.workflow_name}; answers within {route.timeout_seconds} s, else 202.",
        "tags": list(route.tags) or [d.workflow_name],
        "parameters": parameters,
        "responses": {
            str(route.success_code): {
                "description": "the run completed: the workflow's results",
                "content": {"application/json": {"schema": _result_schema(d)}},
            },
            "202": {
                "description": "the run goes on (past the timeout, or at once with timeout 0): "
                "GET result_link for its results",
                "content": {"application/json": {"schema": ACCEPTED_SCHEMA}},
            },
            "400": {
                "description": "a missing or invalid field (named, with where it was read)",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            },
            "401": {"description": "no token or API key"},
            "403": {"description": "the token or API key has no access to this project"},
            "409": {"description": "the workflow is not deployed, or the run was cancelled"},
            "500": {
                "description": "the run failed (an action may answer another 4xx or 5xx)",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            },
        },
    }
    body = route.of_origin("body")
    if body:
        schema = {
            "type": "object",
            "properties": {f.name: _schema(f) for f in body},
            "required": [f.name for f in body if required(f)],
            "additionalProperties": False,
        }
        content: dict[str, Any] = {"multipart/form-data": {"schema": schema}}
        if not any(f.type in FILE_TYPES for f in body):
            content = {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
                **content,
            }
        op["requestBody"] = {"required": bool(schema["required"]), "content": content}
    return op


def openapi_document(
    project: str, table: RouteTable, deployments: dict[str, Deployment]
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for key, route in sorted(table.routes.items(), key=lambda kv: (kv[1].path, kv[1].method)):
        if route.form:  # a page for people, not an operation (forms.py)
            continue
        paths.setdefault(route.path, {})[route.method.lower()] = operation(deployments[key], route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"User API of project {project}",
            "version": "1.0.0",
            "description": "The project's deployed HTTP API triggers. Authenticate with a user "
            "token or a project API key: `Authorization: Bearer <token or key>`.",
        },
        "servers": [{"url": f"{PREFIX}/{urllib.parse.quote(project, safe='')}"}],
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


async def project_openapi(request: web.Request) -> web.Response:
    access = await _reader(request)
    table, deployments = project_routes(request.app, access.project_id)
    return web.json_response(openapi_document(request.match_info["project"], table, deployments))


DOCS_HTML = """<!doctype html><html><head><meta charset="utf-8"/>
<title>User API of project {title}</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"/></head>
<body>
<form id="auth" style="font-family:sans-serif;margin:1em">
<label>Token or project API key: <input id="token" type="password" size="60"
autocomplete="off"/></label> <button type="submit">Show the API</button>
<span id="problem" style="color:#b00"></span></form>
<div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
const form = document.getElementById("auth");
async function show(token) {{
  const answer = await fetch("openapi.json", {{headers: {{Authorization: "Bearer " + token}}}});
  if (!answer.ok) {{
    document.getElementById("problem").textContent = "refused: " + answer.status;
    return;
  }}
  sessionStorage.setItem("ryax-user-api-token", token);
  SwaggerUIBundle({{
    spec: await answer.json(), dom_id: "#ui",
    requestInterceptor: (r) => {{ r.headers.Authorization = "Bearer " + token; return r; }},
  }});
}}
form.addEventListener("submit", (e) => {{
  e.preventDefault(); show(document.getElementById("token").value.trim());
}});
const saved = sessionStorage.getItem("ryax-user-api-token");
if (saved) show(saved);
</script></body></html>"""


async def docs_page(request: web.Request) -> web.Response:
    """The page holds no data: it fetches openapi.json with the token the reader gives."""
    title = html.escape(request.match_info["project"])
    return web.Response(
        text=DOCS_HTML.format(title=title),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
