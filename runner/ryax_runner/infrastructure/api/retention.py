"""HTTP API of a project's run retention (prefix /runner; docs/retention.md).

GET /v1/projects/{project}/retention    the retention in force, any project member
PUT /v1/projects/{project}/retention    the project's own, or back to the default (null):
                                        project owners (`manage`)
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ryax_kit.authz import Operation, require
from ryax_kit.web import read_json

from ...domain.retention import MAX_RETENTION_DAYS, check_retention_days
from ..database.retention import SqlRunArchive
from .routes import P, api

ARCHIVE = web.AppKey("run_archive", SqlRunArchive)
DEFAULT_DAYS = web.AppKey("run_retention_default_days", int)


class RetentionOut(BaseModel):
    run_retention_days: int = Field(
        description="runs are deleted (with their logs and files) this many days after they "
        "ended; 0: kept forever"
    )
    source: str = Field(description="project (its own) or default (the runner's setting)")
    default_days: int = Field(description="the runner's default (RYAX_RUNNER_RUN_RETENTION_DAYS)")


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_retention_days: StrictInt | None = Field(
        ge=0,
        le=MAX_RETENTION_DAYS,
        description="days a run is kept once ended; 0 keeps runs forever; null: back to the "
        "runner's default",
    )


async def _answer(request: web.Request, project_id: str) -> web.Response:
    default = request.app[DEFAULT_DAYS]
    own = await request.app[ARCHIVE].project_retention(project_id)
    return web.json_response(
        {
            "run_retention_days": default if own is None else own,
            "source": "default" if own is None else "project",
            "default_days": default,
        }
    )


@api.route(
    "GET",
    P + "/retention",
    summary="How long the project's runs are kept once ended",
    tag="runs",
    response=RetentionOut,
)
async def get_retention(request: web.Request) -> web.Response:
    access = await require(request, Operation.READ)
    return await _answer(request, access.project_id)


@api.route(
    "PUT",
    P + "/retention",
    summary="Set how long the project's runs are kept once ended (project owners)",
    tag="runs",
    body=RetentionIn,
    response=RetentionOut,
)
async def put_retention(request: web.Request) -> web.Response:
    access = await require(request, Operation.MANAGE)
    body = await read_json(request, RetentionIn)
    days = body.run_retention_days
    if days is not None:
        days = check_retention_days(days)
    await request.app[ARCHIVE].set_project_retention(access.project_id, days, access.username)
    return await _answer(request, access.project_id)
