"""Per-route body limits: 413 naming the limit before the handler runs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel

from ryax_kit.web import Api, Metrics, create_web_app, read_json
from ryax_kit.web.limits import BODY_LIMIT, add_body_limits

api = Api(title="Limits", prefix="/lim")
handled: list[str] = []


class Body(BaseModel):
    text: str = ""


@api.route("POST", "/v1/small", summary="JSON", tag="t", body=Body)
async def small(request: web.Request) -> web.Response:
    handled.append("small")
    body = await read_json(request, Body, limit=request[BODY_LIMIT])
    return web.json_response({"len": len(body.text)})


@api.route("POST", "/v1/upload/{name:.+}", summary="Upload", tag="t", body_media="text/plain")
async def upload(request: web.Request) -> web.Response:
    handled.append("upload")
    size = 0
    async for chunk in request.content.iter_chunked(4096):
        size += len(chunk)
    return web.json_response({"size": size})


@api.route("GET", "/v1/thing", summary="Get", tag="t")
async def thing(request: web.Request) -> web.Response:
    handled.append("thing")
    return web.json_response({})


async def ready() -> Mapping[str, bool]:
    return {}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_web_app(metrics=Metrics("lim"), ready=ready, prefix="/lim", api=api)
    add_body_limits(app, default=100, routes={("POST", "/lim/v1/upload/{name:.+}"): 10_000})
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_security_oversize_bodies_are_refused_per_route(
    client: TestClient[web.Request, web.Application],
) -> None:
    handled.clear()
    ok = await client.post("/lim/v1/small", json={"text": "x" * 50})
    assert ok.status == 200
    big = await client.post("/lim/v1/small", json={"text": "x" * 200})
    assert big.status == 413
    body = await big.json()
    assert body["error"] == "body_too_large" and "100 bytes" in body["detail"]
    # A route that reads no body refuses one too, before its handler runs.
    get = await client.get("/lim/v1/thing", data=b"y" * 500)
    assert get.status == 413
    assert handled == ["small"]
    # The upload route takes more, up to its own limit.
    up = await client.post("/lim/v1/upload/a/b", data=b"z" * 5000)
    assert up.status == 200 and (await up.json())["size"] == 5000
    over = await client.post("/lim/v1/upload/a/b", data=b"z" * 20_000)
    assert over.status == 413 and "10000 bytes" in (await over.json())["detail"]


async def test_security_a_chunked_body_is_bounded_where_it_is_read(
    client: TestClient[web.Request, web.Application],
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b'{"text": "' + b"x" * 30 + b'"}'[:0]

    resp = await client.post("/lim/v1/small", data=chunks())
    assert resp.status == 413
