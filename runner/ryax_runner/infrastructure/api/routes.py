"""HTTP API of the runner (prefix /runner): deployments, runs, logs, files, sites.

Every route is project-scoped (`{project}` = project id or name) and checked with the
authorization contract first; an object of another project answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from ryax_kit.authz import Operation, require
from ryax_kit.filestore import FilestoreError, ObjectNotFound
from ryax_kit.web import Api, ErrorMapping, Param

from ...application.engine import Engine
from ...application.ports import Filestore
from ...application.queries import RunFilter, RunnerQueries
from ...domain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    Unavailable,
)
from ...domain.run import MASK, RunState
from ...domain.values import FileRef
from ..database.serialization import is_sealed

api = Api(title="Ryax runner", prefix="/runner")
ENGINE = web.AppKey("engine", Engine)
QUERIES = web.AppKey("queries", RunnerQueries)
FILESTORE = web.AppKey("filestore", Filestore)
P = "/v1/projects/{project}"

#: The domain errors the runner raises -> HTTP statuses, with the kit's body `{"error": code,
#: "detail": ...}`: by their code (ryax_kit.web.STATUS_BY_CODE: not_found 404, too_large 413,
#: unavailable 503...), any other 400. Conflict is listed for its subclasses with codes of their
#: own (NotDeployed, SiteTaken): they answer 409 too.
ERRORS = ErrorMapping(base=DomainError, statuses={Conflict: 409})

# -- query parameters (documented where a route reads them) -------------------------------------

AFTER_ID = Param("after_id", "only lines after this line id (paging)", type="integer", default=0)
LINES_LIMIT = Param("limit", "at most this many lines", type="integer", default=1000)
STEP_ID = Param("step_id", "only the lines of this step")
RUN_STATES = tuple(s.value for s in RunState)


# -- response models (documentation) -------------------------------------------------------------


class StepPlacementOut(BaseModel):
    step_id: str
    site_id: str | None
    site_name: str | None
    node_pool: str
    state: str
    reason: str


class DeploymentOut(BaseModel):
    id: str
    project_id: str
    workflow_id: str
    workflow_name: str
    snapshot_id: str
    state: str = Field(
        description="deploying, waiting_for_site, deployed, undeploying, undeployed, failed"
    )
    reason: str
    state_seq: int
    requested_by: str
    created_at: datetime
    updated_at: datetime
    http_endpoint: bool
    steps: list[StepPlacementOut]


class DeploymentsOut(BaseModel):
    deployments: list[DeploymentOut]


class RunOut(BaseModel):
    id: str
    project_id: str
    deployment_id: str
    workflow_id: str
    workflow_name: str
    origin: str = Field(
        description="http (endpoint call by workflow name), user_api (/user-api/...), form "
        "(a form portal's submission), timer (a built-in timer) or trigger"
    )
    state: str = Field(description="pending, running, completed, failed, cancelled")
    reason: str
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    failed_step_id: str | None
    http_status: int | None
    results: dict[str, Any] | None


class RunsOut(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class ExecutionOut(BaseModel):
    execution_id: str
    step_id: str
    branch: str = Field(description="fan-out path, e.g. 'split:2' ('' for the main branch)")
    attempt: int
    state: str = Field(
        description="waiting, dispatched, running, completed, failed, cancelled, or lost "
        "(lost with its worker: the next attempt runs again, or the run failed)"
    )
    infra_retries: int = Field(
        description="attempts before this one lost with their worker (not counted by the "
        "step's retries)"
    )
    retry_of: str | None = Field(description="the execution id of the attempt this one replaces")
    is_trigger: bool
    site_id: str | None
    site_name: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    outputs_list: list[dict[str, Any]] | None
    error: str | None
    traceback: str | None
    http_status: int | None
    created_at: datetime
    dispatched_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_seconds: float | None
    log_count: int
    progress: float


class RunDetailOut(RunOut):
    steps: list[ExecutionOut]


class LogLineOut(BaseModel):
    id: int
    execution_id: str | None
    step_id: str
    seq: int
    stream: str
    line: str
    at: datetime


class LogsOut(BaseModel):
    lines: list[LogLineOut]


#: One server-sent event of a run's log stream: `log` (a LogLineOut as JSON), then `end`.
LOG_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["log", "end"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "log: a log line (id, execution_id, step_id, seq, stream, line, at); "
            "end: {run_id}",
        },
    },
}


# -- helpers -------------------------------------------------------------------------------------


def file_link(request: web.Request, project: str, run_id: str, key: str) -> str:
    return (
        f"/runner/v1/projects/{urllib.parse.quote(project)}/runs/{run_id}/files/"
        f"{urllib.parse.quote(key)}"
    )


def present(value: Any, link: Any) -> Any:
    """Stored values -> API values: files become objects with a download link; a sealed value
    (a password-type output) is shown as `***`."""
    if is_sealed(value):
        return MASK
    if isinstance(value, dict):
        if len(value) == 1 and "$file" in value:
            f = value["$file"]
            return {
                "type": "directory" if f.get("directory") else "file",
                "name": f["name"],
                "size": f.get("size", 0),
                "sha256": f.get("sha256", ""),
                "key": f["key"],
                "download_url": link(f["key"]),
                # Held by a site (its id), not in the filestore yet: a download publishes it.
                **({"held_by": f["held_by"]} if f.get("held_by") else {}),
            }
        return {k: present(v, link) for k, v in value.items()}
    if isinstance(value, list):
        return [present(v, link) for v in value]
    return value


def _query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidInput(name, "expected an ISO 8601 date-time") from exc
    if value.tzinfo is None:
        raise InvalidInput(name, "the date-time needs a time zone (e.g. Z or +00:00)")
    return value


def _query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput(name, "expected an integer") from exc
    if not -(2**63) <= value < 2**63:  # compared with a BIGINT column (ids)
        raise InvalidInput(name, "out of range (a 64-bit integer)")
    return value


# -- deployments ---------------------------------------------------------------------------------


@api.route(
    "GET",
    P + "/deployments",
    summary="List deployments (filter by workflow_id, state)",
    tag="deployments",
    response=DeploymentsOut,
    query=(
        Param("workflow_id", "only the deployments of this workflow"),
        Param("state", "only the deployments in this state (e.g. deployed, failed)"),
    ),
)
async def list_deployments(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    docs = await request.app[QUERIES].list_deployments(
        access.project_id, request.query.get("workflow_id"), request.query.get("state")
    )
    return web.json_response({"deployments": docs})


@api.route(
    "GET",
    P + "/deployments/{deployment_id}",
    summary="A deployment and its steps",
    tag="deployments",
    response=DeploymentOut,
    errors={404: "no such deployment in this project"},
)
async def get_deployment(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    doc = await request.app[QUERIES].get_deployment(
        access.project_id, request.match_info["deployment_id"]
    )
    if doc is None:
        raise NotFound(f"deployment {request.match_info['deployment_id']} not found")
    return web.json_response(doc)


@api.route(
    "GET",
    P + "/deployments/{deployment_id}/logs",
    summary="Log lines of a deployment's steps (a trigger's process; ?step_id=)",
    tag="deployments",
    response=LogsOut,
    query=(STEP_ID, AFTER_ID, LINES_LIMIT),
    errors={404: "no such deployment in this project"},
)
async def deployment_logs(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    queries = request.app[QUERIES]
    deployment_id = request.match_info["deployment_id"]
    if await queries.get_deployment(access.project_id, deployment_id) is None:
        raise NotFound(f"deployment {deployment_id} not found")
    lines = await queries.logs(
        access.project_id,
        deployment_id=deployment_id,
        step_id=request.query.get("step_id"),
        after_id=_query_int(request, "after_id", 0),
        limit=_query_int(request, "limit", 1000),
    )
    return web.json_response({"lines": lines})


# -- runs ------------------------------------------------------------------------------------------


@api.route(
    "GET",
    P + "/runs",
    summary="List runs, newest first (filters: workflow_id, deployment_id, state, since, "
    "until; pagination: limit, cursor)",
    tag="runs",
    response=RunsOut,
    query=(
        Param("workflow_id", "only the runs of this workflow"),
        Param("deployment_id", "only the runs of this deployment"),
        Param("state", "only the runs in this state", enum=RUN_STATES),
        Param("since", "only runs created at or after this ISO 8601 date-time (with a zone)"),
        Param("until", "only runs created before this ISO 8601 date-time (with a zone)"),
        Param("limit", "page size, 1 to 500", type="integer", default=50),
        Param("cursor", "the next_cursor of the previous page"),
    ),
)
async def list_runs(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    state = request.query.get("state")
    if state is not None and state not in RUN_STATES:
        raise InvalidInput("state", f"one of {', '.join(RUN_STATES)}")
    limit = _query_int(request, "limit", 50)
    if not 1 <= limit <= 500:
        raise InvalidInput("limit", "between 1 and 500")
    docs, cursor = await request.app[QUERIES].list_runs(
        access.project_id,
        RunFilter(
            workflow_id=request.query.get("workflow_id"),
            deployment_id=request.query.get("deployment_id"),
            state=state,
            since=_query_time(request, "since"),
            until=_query_time(request, "until"),
            limit=limit,
            cursor=request.query.get("cursor"),
        ),
    )
    project = request.match_info["project"]
    for d in docs:
        d["results"] = present(d["results"], lambda k, r=d["id"]: file_link(request, project, r, k))
    return web.json_response({"runs": docs, "next_cursor": cursor})


@api.route(
    "GET",
    P + "/runs/{run_id}",
    summary="A run with its steps: inputs, outputs (files as links), timings, errors",
    tag="runs",
    response=RunDetailOut,
    errors={404: "no such run in this project"},
)
async def get_run(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    run_id = request.match_info["run_id"]
    doc = await request.app[QUERIES].get_run(access.project_id, run_id)
    if doc is None:
        raise NotFound(f"run {run_id} not found")
    project = request.match_info["project"]
    return web.json_response(present(doc, lambda k: file_link(request, project, run_id, k)))


@api.route(
    "POST",
    P + "/runs/{run_id}/cancel",
    summary="Cancel a run",
    tag="runs",
    response=RunOut,
    errors={404: "no such run in this project", 409: "the run already ended"},
)
async def cancel_run(request: web.Request) -> web.Response:
    access = await require(request, Operation.WRITE)
    run_id = request.match_info["run_id"]
    engine = request.app[ENGINE]
    try:
        engine.cancel_run(access.project_id, run_id, f"cancelled by {access.username}")
    except NotFound:
        doc = await request.app[QUERIES].get_run(access.project_id, run_id)
        if doc is None:
            raise
        raise Conflict(f"run {run_id} already ended ({doc['state']})") from None
    await engine.durable()
    doc = await request.app[QUERIES].get_run(access.project_id, run_id)
    assert doc is not None
    doc.pop("steps", None)
    return web.json_response(doc)


@api.route(
    "GET",
    P + "/runs/{run_id}/logs",
    summary="Log lines of a run (?execution_id=, ?step_id=, ?after_id=, ?limit=)",
    tag="runs",
    response=LogsOut,
    query=(
        Param("execution_id", "only the lines of this execution"),
        STEP_ID,
        AFTER_ID,
        LINES_LIMIT,
    ),
    errors={404: "no such run in this project"},
)
async def run_logs(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    run_id = request.match_info["run_id"]
    queries = request.app[QUERIES]
    if await queries.get_run(access.project_id, run_id) is None:
        raise NotFound(f"run {run_id} not found")
    lines = await queries.logs(
        access.project_id,
        run_id=run_id,
        execution_id=request.query.get("execution_id"),
        step_id=request.query.get("step_id"),
        after_id=_query_int(request, "after_id", 0),
        limit=_query_int(request, "limit", 1000),
    )
    return web.json_response({"lines": lines})


@api.route(
    "GET",
    P + "/runs/{run_id}/logs/stream",
    summary="Live log lines of a run (server-sent events `log`, then `end`)",
    tag="runs",
    response_media="text/event-stream",
    response_schema=LOG_EVENT,
    errors={404: "no such run in this project"},
)
async def stream_logs(request: web.Request) -> web.StreamResponse:
    access = await require(request, Operation.READ)
    run_id = request.match_info["run_id"]
    engine, queries = request.app[ENGINE], request.app[QUERIES]
    queue = engine.subscribe_logs(run_id)
    try:
        # Lines published before the subscription are read from the database: wait until they
        # are committed (the later ones come through the queue).
        await engine.durable()
        if await queries.get_run(access.project_id, run_id) is None:
            raise NotFound(f"run {run_id} not found")
        running = engine.is_running(run_id)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        seen: set[tuple[str, int]] = set()
        after = 0
        while True:
            page = await queries.logs(
                access.project_id, run_id=run_id, after_id=after, limit=10_000
            )
            for line in page:
                seen.add((line["execution_id"] or "", line["seq"]))
                after = max(after, line["id"])
                await response.write(_sse("log", line))
            if len(page) < 10_000:
                break
        if not running:
            await response.write(_sse("end", {"run_id": run_id}))
            return response
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:
                await response.write(_sse("end", {"run_id": run_id}))
                return response
            if (item.execution_id, item.seq) in seen:
                continue
            seen.add((item.execution_id, item.seq))
            await response.write(
                _sse(
                    "log",
                    {
                        "execution_id": item.execution_id or None,
                        "step_id": item.step_id,
                        "seq": item.seq,
                        "stream": item.stream,
                        "line": item.line,
                        "at": item.at.isoformat(),
                    },
                )
            )
    finally:
        engine.unsubscribe_logs(run_id, queue)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@api.route(
    "GET",
    P + "/runs/{run_id}/files/{key:.+}",
    summary="Download a file input or output of a run",
    tag="runs",
    response_media="application/octet-stream",
    errors={
        404: "no such file in this run, or no longer in the filestore (or held by a site that "
        "lost it or was archived)",
        503: "the filestore cannot be reached, or the file is held by a site that is offline or "
        "did not publish it within RYAX_RUNNER_PUBLISH_WAIT_SECONDS",
    },
)
async def download_file(request: web.Request) -> web.StreamResponse:
    access = await require(request, Operation.READ)
    return await stream_run_file(
        request, access.project_id, request.match_info["run_id"], request.match_info["key"]
    )


def held_ref(found: dict[str, Any], key: str) -> FileRef:
    """The FileRef of a run's file as recorded (a document of the run's values)."""
    return FileRef(
        key=key,
        name=str(found.get("name") or ""),
        size=int(found.get("size") or 0),
        sha256=str(found.get("sha256") or ""),
        is_directory=bool(found.get("directory")),
        held_by=str(found.get("held_by") or ""),
    )


async def stream_run_file(
    request: web.Request, project_id: str, run_id: str, key: str
) -> web.StreamResponse:
    """Stream a file input or output of a run of the project (also the user API's result
    files, user_api.py)."""
    found = await request.app[QUERIES].run_file(project_id, run_id, key)
    if found is None:
        raise NotFound(f"no file {key} in run {run_id}")
    name = str(found.get("name") or key.rsplit("/", 1)[-1])
    if found.get("directory"):
        name += ".tar"
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename*=UTF-8''{urllib.parse.quote(name)}",
        }
    )
    held_by = str(found.get("held_by") or "")
    for attempt in (1, 2):
        async with contextlib.aclosing(request.app[FILESTORE].read(key)) as chunks:
            try:  # the first chunk before answering: a missing file is still a 404
                first = await anext(chunks, b"")
            except ObjectNotFound:
                if held_by and attempt == 1:
                    # Held by a site, not published yet: ask the site, wait (bounded), again.
                    await request.app[ENGINE].publish_held(held_ref(found, key), run_id)
                    continue
                raise NotFound(f"file {key} is not in the filestore any more") from None
            except FilestoreError as exc:
                raise Unavailable(f"the filestore cannot be read: {exc}") from exc
            await response.prepare(request)
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
        break
    await response.write_eof()
    return response


# -- sites: sites.py ------------------------------------------------------------------------------
