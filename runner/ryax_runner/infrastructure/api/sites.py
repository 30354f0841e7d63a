"""HTTP API of the sites (prefix /runner): the project-scoped list every member sees, and the
platform-wide administration of sites, for admins (`require_admin`: the authorization service's
`/v1/me` says `is_admin`).

    GET    /v1/projects/{project}/sites       sites (not archived), for any project member
    GET    /v1/sites[?archived=true]           every site, for admins
    POST   /v1/sites                           create a site: answers its credential, once
    GET    /v1/sites/{site}                    one site (name or id)
    POST   /v1/sites/{site}/credential         rotate: a new credential, the old one stops
                                               working and its worker is cut off
    DELETE /v1/sites/{site}/credential         revoke: no credential works; worker cut off
    POST   /v1/sites/{site}/archive            archive: revoked, offline for good, kept

A credential is shown in the answer that issues it and never again (only its salted hash is
kept). The answers carrying one are not cached (`Cache-Control: no-store`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ryax_kit.authz import Operation, require, require_admin
from ryax_kit.web import Param, read_json

from ...application.engine import Engine
from ...application.queries import Document, site_document
from ...domain.errors import NotFound, Unavailable
from ...domain.site import SITE_KINDS, Site, SiteId
from .routes import ENGINE, QUERIES, P, api

S = "/v1/sites"
NO_STORE = {"Cache-Control": "no-store"}


class NodePoolOut(BaseModel):
    name: str
    cpu: float
    memory_bytes: int
    gpu: int
    max_time_seconds: float = Field(
        description="longest an execution may run on the pool (seconds); 0: not declared"
    )


class SiteOut(BaseModel):
    id: str
    name: str
    worker_id: str = Field(description="the worker serving (or that last served) the site")
    backend_kind: str = Field(description="the site's type: local, slurm or kubernetes")
    state: str = Field(description="online or offline")
    state_reason: str | None
    node_pools: list[NodePoolOut] = Field(description="as the worker registered them")
    labels: dict[str, str]
    version: str = Field(description="the worker's version")
    worker_address: str = Field(description="where the worker connected from")
    connected: bool = Field(description="the worker's stream is open now")
    registered_at: datetime = Field(
        description="when the worker (re)connected: connected since (the creation if none did)"
    )
    last_seen_at: datetime = Field(description="the worker's last heartbeat")
    credential: str = Field(
        description="active, revoked, or none (a site of before credentials: refused until one "
        "is issued)"
    )
    credential_issued_at: datetime | None
    created_at: datetime | None = Field(description="null for a site its worker created")
    created_by: str
    archived_at: datetime | None


class SitesOut(BaseModel):
    sites: list[SiteOut]


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, description="the worker's RYAX_SITE_NAME; unique"
    )
    type: str = Field(description=f"one of {', '.join(SITE_KINDS)}")


class SiteCredentialOut(BaseModel):
    site: SiteOut
    credential: str = Field(
        description="the worker's RYAX_SITE_CREDENTIAL: shown this once, never again"
    )


def _engine(request: web.Request) -> Engine:
    """The engine, once it leads and is started (site changes go through it)."""
    engine = request.app[ENGINE]
    if not engine.started:
        raise Unavailable("the runner is not started yet (or another runner leads): try again")
    return engine


def _connected(engine: Engine, site_id: str) -> bool:
    link = engine.links.get(SiteId(site_id))
    return link is not None and link.channel is not None


def _document(engine: Engine, site: Site) -> Document:
    return site_document(site, connected=_connected(engine, site.id))


async def _documents(request: web.Request, include_archived: bool) -> list[Document]:
    engine = request.app[ENGINE]
    if engine.started:
        await engine.durable()  # what the engine knows (a registration, a heartbeat) is read
    docs = await request.app[QUERIES].list_sites(include_archived)
    for doc in docs:
        doc["connected"] = _connected(engine, doc["id"])
    return docs


def _with_credential(engine: Engine, site: Site, credential: str, status: int) -> web.Response:
    body: dict[str, Any] = {"site": _document(engine, site), "credential": credential}
    return web.json_response(body, status=status, headers=NO_STORE)


@api.route(
    "GET",
    P + "/sites",
    summary="Sites (workers) of the platform and their state",
    tag="sites",
    response=SitesOut,
)
async def list_sites(request: web.Request) -> web.Response:
    await require(request, Operation.READ)
    return web.json_response({"sites": await _documents(request, include_archived=False)})


@api.route(
    "GET",
    S,
    summary="Every site, archived ones with ?archived=true (admins)",
    tag="sites",
    response=SitesOut,
    query=(Param("archived", "true: archived sites too", enum=("true", "false")),),
    errors={403: "not an admin"},
)
async def admin_list_sites(request: web.Request) -> web.Response:
    await require_admin(request)
    archived = request.query.get("archived", "false").lower() == "true"
    return web.json_response({"sites": await _documents(request, include_archived=archived)})


@api.route(
    "POST",
    S,
    summary="Create a site and issue its credential, shown once (admins)",
    tag="sites",
    body=SiteIn,
    response=SiteCredentialOut,
    status=201,
    errors={403: "not an admin", 409: "a site of that name exists (archived ones included)"},
)
async def create_site(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    body = await read_json(request, SiteIn)
    engine = _engine(request)
    site, credential = engine.create_site(body.name, body.type, caller.username)
    await engine.durable()
    return _with_credential(engine, site, credential, 201)


@api.route(
    "GET",
    S + "/{site}",
    summary="A site (name or id), archived or not (admins)",
    tag="sites",
    response=SiteOut,
    errors={403: "not an admin", 404: "no such site"},
)
async def show_site(request: web.Request) -> web.Response:
    await require_admin(request)
    ref = request.match_info["site"]
    for doc in await _documents(request, include_archived=True):
        if ref in (doc["name"], doc["id"]):
            return web.json_response(doc)
    raise NotFound(f"site {ref!r} not found")


@api.route(
    "POST",
    S + "/{site}/credential",
    summary="Rotate the site's credential: a new one, shown once; the old one stops working "
    "and the connected worker is cut off (admins)",
    tag="sites",
    response=SiteCredentialOut,
    errors={403: "not an admin", 404: "no such site", 409: "the site is archived"},
)
async def rotate_credential(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    engine = _engine(request)
    site, credential = engine.rotate_site_credential(request.match_info["site"], caller.username)
    await engine.durable()
    return _with_credential(engine, site, credential, 200)


@api.route(
    "DELETE",
    S + "/{site}/credential",
    summary="Revoke the site's credential: no worker can connect until a new one is issued; "
    "the connected worker is cut off (admins)",
    tag="sites",
    response=SiteOut,
    errors={403: "not an admin", 404: "no such site"},
)
async def revoke_credential(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    engine = _engine(request)
    site = engine.revoke_site_credential(request.match_info["site"], caller.username)
    await engine.durable()
    return web.json_response(_document(engine, site))


@api.route(
    "POST",
    S + "/{site}/archive",
    summary="Archive the site: credential revoked, offline now (its executions run again "
    "elsewhere, its steps are placed again), kept in the record with its name (admins)",
    tag="sites",
    response=SiteOut,
    errors={403: "not an admin", 404: "no such site"},
)
async def archive_site(request: web.Request) -> web.Response:
    caller = await require_admin(request)
    engine = _engine(request)
    site = engine.archive_site(request.match_info["site"], caller.username)
    await engine.durable()
    return web.json_response(_document(engine, site))
