"""The built-in HTTP endpoint trigger.

`POST /runner/v1/projects/{project}/endpoints/{endpoint}` starts a run of the project's
deployed workflow whose trigger is the HTTP endpoint; `{endpoint}` is the workflow's name, its
workflow id or the deployment id. The body is a JSON object of the endpoint's fields, or
multipart/form-data (file fields as file parts, stored in the filestore and passed as file
references; other fields as text parts, parsed by their type).

Sync (default): waits for the run (`?timeout=` seconds, default RYAX_RUNNER_SYNC_TIMEOUT) and
answers 200 with the workflow's results (files as download links), or, when the run failed, the
HTTP status the action's exception carried (else 500) with its message; 504 (with the run id)
when the run did not end in time (it goes on). Async (`?mode=async` or `Prefer: respond-async`):
answers 202 with the run id once the run is recorded; with `?callback_url=` (or the header
`Ryax-Callback-Url`) the final result is POSTed there as JSON once the run ended: the callback is
recorded with the run and delivered with retries, also after a restart (`callbacks.py`).

`GET /runner/v1/projects/{project}/endpoints/openapi.json`: an OpenAPI document with one
operation per endpoint of the project, built from the endpoint's fields and the workflow's
results.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from pydantic import BaseModel

from ryax_kit.authz import Operation, require
from ryax_kit.filestore import FilestoreError, encode_segment
from ryax_kit.net import DnsResolver, OutboundAllow, OutboundRefused, Resolver, check_outbound_url
from ryax_kit.web import HttpError, Param, read_raw

from ...application.engine import Engine
from ...application.ports import Filestore, StateStore
from ...domain.deployment import Deployment, DeploymentState
from ...domain.errors import (
    Conflict,
    InvalidInput,
    NotDeployed,
    NotFound,
    TooLarge,
    Unavailable,
)
from ...domain.run import MASK, Run, RunId, RunState, execution_id_for
from ...domain.values import (
    FILE_TYPES,
    FileRef,
    Value,
    check_inline_size,
    coerce,
    parse_text,
    to_json,
)
from ...domain.workflow import IO
from ..database.recorder import SqlRecorder
from .callbacks import CallbackSender
from .routes import ENGINE, FILESTORE, P, api, file_link, present

log = logging.getLogger(__name__)
STORE = web.AppKey("state_store", StateStore)
RECORDER = web.AppKey("recorder", SqlRecorder)
CALLBACKS = web.AppKey("callbacks", CallbackSender)
ENDPOINT_SETTINGS = web.AppKey("endpoint_settings", dict)
#: A text part of a multipart body is read up to this (an inline value is at most 64 KiB).
MAX_TEXT_PART_BYTES = 1024 * 1024
_tasks: set[asyncio.Task[None]] = set()
#: The filestore keys a request stored before its run started (`stored_uploads`).
_UPLOADS = "ryax.uploads"


def stored_uploads(request: web.Request) -> list[str]:
    """The keys of the files this request stored so far (its uploads)."""
    keys: list[str] = request.setdefault(_UPLOADS, [])
    return keys


def drop_uploads(request: web.Request) -> None:
    """Called when a request failed between reading its inputs and starting its run (a later
    part refused, an input missing, the runner stopping...): the files it stored already are
    deleted, in the background: no run will ever refer to them."""
    keys = list(request.get(_UPLOADS, ()))
    if keys:
        _spawn(_drop_uploads(request.app[FILESTORE], keys))


async def _drop_uploads(store: Filestore, keys: list[str]) -> None:
    for key in keys:
        try:
            await store.delete(key)
        except Exception as exc:  # noqa: BLE001 - logged; the others are still deleted
            log.warning(
                "the file of a refused request could not be deleted",
                extra={"key": key, "reason": f"{type(exc).__name__}: {exc}"},
            )


class RunAccepted(BaseModel):
    """The answer of an async call (202; also its Location header: status_url)."""

    run_id: str
    state: str
    status_url: str


def _settings(request: web.Request) -> dict[str, Any]:
    return request.app[ENDPOINT_SETTINGS]


async def _resolve(request: web.Request, project_id: str, endpoint: str) -> Deployment:
    engine = request.app[ENGINE]
    d = engine.find_endpoint(project_id, endpoint)
    if d is None:
        past = await request.app[STORE].last_deployment_for(project_id, endpoint)
        if past is None:
            raise NotFound(f"no deployed workflow {endpoint!r} in this project")
        raise NotDeployed(f"workflow {past.workflow_name} is not deployed (it is {past.state})")
    if not d.definition.trigger.http_endpoint:
        raise Conflict(f"workflow {d.workflow_name} is not started by an HTTP endpoint")
    if d.state is not DeploymentState.DEPLOYED:
        why = f": {d.reason}" if d.reason else ""
        raise NotDeployed(f"workflow {d.workflow_name} is not deployed yet ({d.state}{why})")
    return d


async def _read_inputs(
    request: web.Request, d: Deployment, run_id: RunId, max_inline: int
) -> dict[str, Value]:
    fields = {f.name: f for f in d.definition.trigger.fields}
    trigger_execution = execution_id_for(run_id, d.definition.trigger.step_id, (), 1)
    given = await read_body(request, fields, run_id, trigger_execution)
    inputs: dict[str, Value] = {}
    for name, io in fields.items():
        if name in given and given[name] is not None:
            check_inline_size(name, given[name], max_inline)
            inputs[name] = given[name]
        elif io.default_json is not None:
            inputs[name] = io.default()
        elif io.optional:
            inputs[name] = None
        else:
            raise InvalidInput(name, "missing input")
    return inputs


async def read_body(
    request: web.Request, fields: dict[str, IO], run_id: str, trigger_execution: str
) -> dict[str, Value]:
    """The fields given in the body: a JSON object, a url-encoded form or multipart/form-data
    (file parts stored in the filestore under the run's trigger execution); a field not in
    `fields` is a 400 naming it. Also the user API's (user_api.py)."""
    given: dict[str, Value] = {}
    content_type = request.content_type
    if content_type.startswith("multipart/"):
        given = await _read_multipart(request, fields, run_id, trigger_execution)
    elif content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        for name, text in form.items():
            io = fields.get(name)
            if io is None:
                raise InvalidInput(name, f"unknown input (expected: {', '.join(fields)})")
            if not isinstance(text, str):
                raise InvalidInput(name, "files must be sent as multipart/form-data")
            given[name] = parse_text(io.type, name, text, io.enum_values)
    else:
        raw = await read_raw(request, int(_settings(request)["max_json_bytes"]))
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise InvalidInput("body", "expected a JSON object of the endpoint's fields")
            for name, value in body.items():
                io = fields.get(name)
                if io is None:
                    raise InvalidInput(name, f"unknown input (expected: {', '.join(fields)})")
                given[name] = coerce(io.type, name, value, io.enum_values)
    return given


async def _read_multipart(
    request: web.Request, fields: dict[str, IO], run_id: str, execution_id: str
) -> dict[str, Value]:
    try:
        reader = await request.multipart()
    except ValueError as exc:  # e.g. no boundary: aiohttp cannot split the parts
        raise InvalidInput("Content-Type", f"not a readable multipart body ({exc})") from exc
    store: Filestore = request.app[FILESTORE]
    given: dict[str, Value] = {}
    limit = int(_settings(request)["max_upload_bytes"])
    total_limit = int(_settings(request)["max_upload_total_bytes"])
    total = 0

    def count(size: int) -> None:
        if size > total_limit:
            raise TooLarge(
                f"the request is more than the {total_limit} bytes an upload may hold "
                "(RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES)"
            )

    while True:
        part = await _next_part(reader)
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            raise InvalidInput("body", "nested multipart is not supported")
        name = part.name or ""
        io = fields.get(name)
        if io is None:
            raise InvalidInput(name or "part", f"unknown input (expected: {', '.join(fields)})")
        if io.type in FILE_TYPES:
            # The name the user gave is kept in the FileRef; the key holds it encoded (any
            # text: spaces, unicode, a leading dot...).
            filename = Path(part.filename or name).name or name
            key = f"runs/{run_id}/{execution_id}/{name}/{encode_segment(filename)}"
            fd, tmp_name = tempfile.mkstemp(prefix="ryax-upload-")
            tmp = Path(tmp_name)
            digest = hashlib.sha256()
            size = 0
            try:
                out = await asyncio.to_thread(os.fdopen, fd, "wb")
                try:
                    while chunk := await part.read_chunk(256 * 1024):
                        size += len(chunk)
                        total += len(chunk)
                        if size > limit:
                            raise TooLarge(
                                f"file field `{name}`: more than the {limit} bytes a file may "
                                "hold (RYAX_RUNNER_MAX_UPLOAD_BYTES)"
                            )
                        count(total)
                        await asyncio.to_thread(_append, out, digest, chunk)
                finally:
                    await asyncio.to_thread(out.close)
                await store.put_file(key, tmp)
                stored_uploads(request).append(key)
            except FilestoreError as exc:
                raise Unavailable(f"{name}: the file cannot be stored: {exc}") from exc
            finally:
                await asyncio.to_thread(tmp.unlink, True)
            given[name] = FileRef(
                key=key,
                name=filename,
                size=size,
                sha256=digest.hexdigest(),
                is_directory=io.type == "directory",
            )
        else:
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                total += len(chunk)
                count(total)
                if len(data) > MAX_TEXT_PART_BYTES:
                    raise TooLarge(
                        f"field `{name}`: more than {MAX_TEXT_PART_BYTES} bytes of text "
                        "(send a file)"
                    )
            try:
                text = data.decode(part.get_charset(default="utf-8"))
            except (UnicodeDecodeError, LookupError) as exc:
                raise InvalidInput(name, f"not valid text: {exc}") from exc
            given[name] = parse_text(io.type, name, text, io.enum_values)
    return given


async def _next_part(reader: aiohttp.MultipartReader) -> Any:
    try:
        return await reader.next()
    except (ValueError, BadHttpMessage) as exc:  # a part's headers unreadable, no boundary...
        raise InvalidInput("body", f"not a readable multipart body ({exc})") from exc


def _append(out: BinaryIO, digest: Any, chunk: bytes) -> None:
    """Write a chunk of an upload and hash it on the way (one pass over the data)."""
    out.write(chunk)
    digest.update(chunk)


def _is_async(request: web.Request) -> bool:
    mode = request.query.get("mode", "sync")
    if mode not in ("sync", "async"):
        raise InvalidInput("mode", "sync or async")
    prefer = request.headers.get("Prefer", "").lower()
    return mode == "async" or "respond-async" in prefer


def _outcome(request: web.Request, run: Run) -> tuple[int, dict[str, Any]]:
    project = request.match_info["project"]

    def link(key: str) -> str:
        return file_link(request, project, run.id, key)

    if run.state is RunState.COMPLETED:
        hidden = run.definition.sensitive_results
        results = {k: MASK if k in hidden else to_json(v) for k, v in (run.results or {}).items()}
        return 200, present(results, link)
    if run.state is RunState.FAILED:
        failed = [e for e in run.executions.values() if e.step_id == run.failed_step_id and e.error]
        detail = failed[-1].error if failed else run.reason
        status = run.http_status if 400 <= run.http_status <= 599 else 500
        return status, {
            "error": "run_failed",
            "detail": detail,
            "run_id": run.id,
            "step_id": run.failed_step_id or None,
        }
    return 409, {"error": "run_cancelled", "detail": run.reason, "run_id": run.id}


@api.route(
    "POST",
    P + "/endpoints/{endpoint}",
    summary="Call a workflow's HTTP endpoint: starts a run (sync: answers its results; "
    "?mode=async or Prefer: respond-async: 202 with the run id; ?callback_url=)",
    tag="endpoints",
    status=200,
    query=(
        Param(
            "mode",
            "sync: answer the run's results; async: answer 202 with the run id at once",
            default="sync",
            enum=("sync", "async"),
        ),
        Param(
            "timeout",
            "sync: seconds to wait for the run (default RYAX_RUNNER_SYNC_TIMEOUT)",
            type="number",
        ),
        Param(
            "callback_url",
            "an http(s) URL the final result is POSTed to (as JSON); its host must resolve to "
            "public addresses only (unless allowed by RYAX_OUTBOUND_ALLOW); redirects are not "
            "followed",
        ),
    ),
    body_content={
        media: {"schema": {"type": "object", "description": "the endpoint's fields"}}
        for media in (
            "application/json",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
        )
    },
    body_required=False,  # an empty body: every field takes its default
    more_responses={202: ("async: the run is recorded, follow it at status_url", RunAccepted)},
    errors={
        404: "no deployed workflow of this name or id in the project",
        409: "the workflow is not deployed (any more, or not yet), or the run was cancelled",
        413: "a JSON body over RYAX_RUNNER_MAX_JSON_BYTES, a file over "
        "RYAX_RUNNER_MAX_UPLOAD_BYTES, or a multipart body over "
        "RYAX_RUNNER_MAX_UPLOAD_TOTAL_BYTES",
        503: "the runner is shutting down or the filestore cannot be reached",
        504: "sync: the run did not end in time (it goes on)",
    },
)
async def call_endpoint(request: web.Request) -> web.Response:
    access = await require(request, Operation.WRITE)
    engine: Engine = request.app[ENGINE]
    settings = _settings(request)
    d = await _resolve(request, access.project_id, request.match_info["endpoint"])
    asynchronous = _is_async(request)
    callback = request.query.get("callback_url") or request.headers.get("Ryax-Callback-Url")
    if callback:
        await check_callback(request, callback)
    timeout = settings["sync_timeout"]
    if "timeout" in request.query:
        try:
            asked = float(request.query["timeout"])
        except ValueError as exc:
            raise InvalidInput("timeout", "a number of seconds") from exc
        if not math.isfinite(asked) or asked < 0:  # NaN would never fire (nor compare)
            raise InvalidInput("timeout", "a number of seconds, 0 or more")
        timeout = min(asked, settings["sync_timeout_max"])
    run_id = RunId(str(uuid.uuid4()))
    try:
        inputs = await _read_inputs(request, d, run_id, settings["max_inline_bytes"])
        # The caller is answered once the run is recorded (202) or ended: unannounced till
        # then.
        run = engine.start_run(d, inputs, origin="http", run_id=run_id, unannounced=True)
    except BaseException:
        drop_uploads(request)
        raise
    headers = {"Ryax-Run-Id": run.id}
    if callback:
        # Recorded with the run (same batch): delivered once the run ended, even after a
        # restart of the runner.
        request.app[RECORDER].callback(
            run.id, request.match_info["project"], callback, datetime.now(UTC)
        )
        request.app[RECORDER].run(run)  # not lazily: the callback's row is not without its run
        _spawn(_wake_callbacks_on_end(request.app, run))
    if asynchronous:
        await engine.durable(run)
        status_url = f"/runner/v1/projects/{request.match_info['project']}/runs/{run.id}"
        return web.json_response(
            {"run_id": run.id, "state": str(run.state), "status_url": status_url},
            status=202,
            headers={**headers, "Location": status_url},
        )
    future = engine.wait_for(run)
    try:
        ended = await asyncio.wait_for(asyncio.shield(future), timeout=timeout)
    except TimeoutError:
        await engine.durable(run)  # the answer names the run: recorded first
        return web.json_response(
            {
                "error": "timeout",
                "run_id": run.id,
                "detail": f"the run did not end within {timeout:g} s; it goes on: follow it at "
                f"/runner/v1/projects/{request.match_info['project']}/runs/{run.id}",
            },
            status=504,
            headers=headers,
        )
    status, body = _outcome(request, ended)
    return web.json_response(body, status=status, headers=headers)


async def check_callback(request: web.Request, url: str) -> None:
    """An http(s) URL whose host resolves to public addresses only (every address checked;
    RYAX_OUTBOUND_ALLOW lets chosen internal ones through). Checked again at each delivery,
    and when connecting (callbacks.py)."""
    allow: OutboundAllow = _settings(request)["outbound_allow"]
    resolver: Resolver = _settings(request).get("outbound_resolver") or DnsResolver()
    try:
        await check_outbound_url(url, allow, resolver=resolver)
    except OutboundRefused as exc:
        raise InvalidInput("callback_url", f"refused: {exc}") from exc


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _wake_callbacks_on_end(app: web.Application, run: Run) -> None:
    """Deliver the run's callback as soon as its end is recorded (the sender also looks at
    the database on its own: this only saves the wait)."""
    await app[ENGINE].wait_for(run)
    app[CALLBACKS].wake()


# -- per-project OpenAPI -------------------------------------------------------------------------


def _schema(io: IO) -> dict[str, Any]:
    t = io.type
    schema: dict[str, Any]
    if t in ("string", "longstring"):
        schema = {"type": "string"}
    elif t == "password":
        schema = {"type": "string", "format": "password"}
    elif t == "enum":
        schema = {"type": "string", "enum": list(io.enum_values)}
    elif t == "integer":
        schema = {"type": "integer"}
    elif t == "float":
        schema = {"type": "number"}
    elif t == "boolean":
        schema = {"type": "boolean"}
    elif t in FILE_TYPES:
        schema = {"type": "string", "format": "binary"}
    else:
        schema = {}
    if io.human_name or io.help:
        schema["description"] = " - ".join(p for p in (io.human_name, io.help) if p)
    if io.default_json is not None:
        schema["default"] = io.default()
    return schema


#: A file or directory output as `present` (routes.py) shows it.
FILE_OUT = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["file", "directory"]},
        "name": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string"},
        "key": {"type": "string", "description": "the file's key in the run's files"},
        "download_url": {"type": "string"},
        "held_by": {
            "type": "string",
            "description": "present while the file is held by a site (its id), not in the "
            "filestore yet: a download publishes it",
        },
    },
    "required": ["type", "name", "size", "sha256", "key", "download_url"],
}


def _result_schema(d: Deployment) -> dict[str, Any]:
    definition = d.definition
    props: dict[str, Any] = {}
    specs = [(r.key, r.step_id, r.output_name) for r in definition.results]
    if not specs:
        leaves = definition.leaves
        specs = [
            (o.name if len(leaves) == 1 else f"{leaf}.{o.name}", leaf, o.name)
            for leaf in leaves
            for o in definition.step(leaf).outputs
        ]
    for key, step_id, output_name in specs:
        out = definition.step(step_id).output(output_name)
        if out is None:
            props[key] = {}
        else:
            schema = FILE_OUT if out.type in FILE_TYPES else _schema(out)
            props[key] = schema
    return {"type": "object", "properties": props}


def project_openapi(project: str, deployments: list[Deployment]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    error = {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "detail": {"type": "string"},
            "run_id": {"type": "string"},
        },
    }
    for d in sorted(deployments, key=lambda x: x.workflow_name):
        fields = d.definition.trigger.fields
        required = [f.name for f in fields if not f.optional and f.default_json is None]
        body = {
            "type": "object",
            "properties": {f.name: _schema(f) for f in fields},
            "required": required,
            "additionalProperties": False,
        }
        content: dict[str, Any] = {"multipart/form-data": {"schema": body}}
        if not any(f.type in FILE_TYPES for f in fields):
            content = {"application/json": {"schema": body}, **content}
        path = f"/runner/v1/projects/{project}/endpoints/{d.workflow_name}"
        paths[path] = {
            "post": {
                "operationId": f"run_{d.workflow_name}".replace("-", "_"),
                "summary": d.definition.description or f"Run workflow {d.workflow_name}",
                "parameters": [
                    {"name": "mode", "in": "query", "schema": {"enum": ["sync", "async"]}},
                    {"name": "timeout", "in": "query", "schema": {"type": "number"}},
                    {"name": "callback_url", "in": "query", "schema": {"type": "string"}},
                ],
                "requestBody": {"required": bool(required), "content": content},
                "responses": {
                    "200": {
                        "description": "the run completed: the workflow's results",
                        "content": {"application/json": {"schema": _result_schema(d)}},
                    },
                    "202": {"description": "async: the run is accepted"},
                    "400": {
                        "description": "a missing or invalid input (named)",
                        "content": {"application/json": {"schema": error}},
                    },
                    "409": {"description": "the workflow is not deployed"},
                    "504": {"description": "sync: the run did not end in time"},
                },
                "security": [{"bearer": []}],
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Ryax endpoints of project {project}", "version": "1.0.0"},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


@api.route(
    "GET",
    P + "/endpoints/openapi.json",
    summary="OpenAPI document of the project's deployed HTTP endpoints",
    tag="endpoints",
)
async def endpoints_openapi(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    engine = request.app[ENGINE]
    mine = [
        d
        for d in engine.deployments.values()
        if d.project_id == access.project_id
        and d.definition.trigger.http_endpoint
        and d.state is DeploymentState.DEPLOYED
    ]
    return web.json_response(project_openapi(request.match_info["project"], mine))
