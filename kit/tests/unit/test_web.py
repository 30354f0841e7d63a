"""The HTTP side every service gets: one error shape, limits, bearer tokens, OpenAPI, ops routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from ryax_kit.web import (
    Api,
    ErrorMapping,
    HttpError,
    Metrics,
    Param,
    bearer_token,
    create_web_app,
    openapi_path,
    read_json,
    read_raw,
)


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    code = "not_found"


class Locked(DomainError):
    code = "locked"


class ThingIn(BaseModel):
    name: str = Field(min_length=1)
    size: int = 0


class ThingOut(BaseModel):
    name: str
    size: int


api = Api(title="Things", prefix="/things")


@api.route("POST", "/v1/things", summary="Create", tag="things", body=ThingIn, response=ThingOut)
async def create(request: web.Request) -> web.Response:
    body = await read_json(request, ThingIn)
    return web.json_response(ThingOut(name=body.name, size=body.size).model_dump(), status=201)


@api.route(
    "GET",
    "/v1/things/{name}",
    summary="Get",
    tag="things",
    response=ThingOut,
    query=(Param("verbose", "more detail", type="boolean", default=False),),
    errors={404: "no such thing"},
)
async def get(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == "missing":
        raise NotFound(f"thing {name} does not exist")
    if name == "locked":
        raise Locked("try later")
    if name == "bug":
        raise RuntimeError("secret internal state")
    return web.json_response({"name": name, "size": 1})


@api.route("GET", "/v1/files/{key:.+}", summary="A file", tag="files", auth=False)
async def file(request: web.Request) -> web.Response:
    return web.Response(text=request.match_info["key"])


@api.route("PUT", "/v1/raw", summary="Raw", tag="raw", body_media="application/yaml")
async def raw(request: web.Request) -> web.Response:
    data = await read_raw(request, limit=10)
    return web.Response(text=str(len(data)))


@api.route("GET", "/v1/me", summary="Who", tag="auth")
async def me(request: web.Request) -> web.Response:
    return web.json_response({"token": bearer_token(request)})


READY = {"database": True, "broker": True}


async def ready() -> Mapping[str, bool]:
    return READY


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    errors = ErrorMapping(
        base=DomainError,
        statuses={NotFound: 404, Locked: 423},
        headers=lambda exc: {"Retry-After": "5"} if isinstance(exc, Locked) else None,
        extra=lambda exc: {"hint": "check the name"} if isinstance(exc, NotFound) else None,
    )
    app = create_web_app(
        metrics=Metrics("things"),
        ready=ready,
        prefix="/things",
        api=api,
        errors=errors,
        client_max_size=2048,
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_a_domain_error_becomes_its_status_with_code_detail_and_extras(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/things/v1/things/missing")
    assert resp.status == 404
    assert await resp.json() == {
        "error": "not_found",
        "detail": "thing missing does not exist",
        "hint": "check the name",
    }
    locked = await client.get("/things/v1/things/locked")
    assert locked.status == 423
    assert locked.headers["Retry-After"] == "5"


async def test_a_bug_is_a_500_that_leaks_nothing(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/things/v1/things/bug")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == "internal_error"
    assert "secret" not in await resp.text()


async def test_a_nul_character_in_a_path_or_query_parameter_is_a_400_naming_it(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Found by the OpenAPI fuzzing (tests/fuzz): a NUL in a query parameter reached PostgreSQL
    (which refuses it in text) and the runner answered 500."""
    for url, detail in (
        ("/things/v1/things/a%00b", "name: a NUL character in a path parameter"),
        ("/things/v1/things/ok?verbose=%00", "verbose: a NUL character in a query parameter"),
        ("/things/v1/things/ok?x%00y=1", "x\\0y: a NUL character in a query parameter"),
    ):
        resp = await client.get(url)
        assert resp.status == 400, url
        assert await resp.json() == {"error": "invalid_input", "detail": detail}
    assert (await client.get("/things/v1/things/ok?verbose=true")).status == 200


async def test_json_text_no_database_keeps_is_a_400_naming_its_field(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Found by the OpenAPI fuzzing (tests/fuzz): a NUL in a JSON string reached PostgreSQL
    (which refuses it in text) and the studio and authorization answered 500."""
    nul = "contains a NUL character (U+0000), which cannot be stored"
    lone = "contains a lone surrogate (U+D800 to U+DFFF), which is not text"
    for body, detail in (
        ('{"name": "a\\u0000b"}', f"name: {nul}"),
        ('{"name": "x", "tags": [{"k": "\\udc00"}]}', f"tags.0.k: {lone}"),
        ('{"name": "x", "a\\u0000": 1}', f"a\\0: a key that {nul}"),
        ('"\\u0000"', f"body: {nul}"),
    ):
        resp = await client.post(
            "/things/v1/things", data=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status == 400, body
        assert await resp.json() == {"error": "invalid_input", "detail": detail}
    ok = await client.post("/things/v1/things", json={"name": "caf\u00e9 \U0001f600"})
    assert ok.status == 201


async def test_json_bodies_are_validated_naming_the_field(
    client: TestClient[web.Request, web.Application],
) -> None:
    ok = await client.post("/things/v1/things", json={"name": "a", "size": 2})
    assert ok.status == 201
    bad = await client.post("/things/v1/things", json={"name": "", "size": "x"})
    assert bad.status == 400
    body = await bad.json()
    assert body["error"] == "invalid_input"
    assert "name:" in body["detail"] and "size:" in body["detail"]
    garbled = await client.post("/things/v1/things", data=b"{not json")
    assert garbled.status == 400
    assert (await garbled.json())["error"] == "invalid_json"


async def test_bodies_over_the_limit_are_413(
    client: TestClient[web.Request, web.Application],
) -> None:
    small = await client.put("/things/v1/raw", data=b"12345")
    assert await small.text() == "5"
    over_route = await client.put("/things/v1/raw", data=b"x" * 11)
    assert over_route.status == 413
    assert (await over_route.json())["error"] == "body_too_large"
    over_json = await client.post("/things/v1/things", data=b"x" * (1024 * 1024 + 1))
    assert over_json.status == 413  # read_json's default limit: 1 MiB
    assert (await over_json.json())["error"] == "body_too_large"


async def test_bearer_tokens(client: TestClient[web.Request, web.Application]) -> None:
    missing = await client.get("/things/v1/me")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer abc", "bearer abc", "BEARER  abc ", "abc"):
        resp = await client.get("/things/v1/me", headers={"Authorization": header})
        assert (await resp.json()) == {"token": "abc"}, header
    empty = await client.get("/things/v1/me", headers={"Authorization": "Bearer "})
    assert empty.status == 401


async def test_unknown_routes_and_methods_answer_the_error_shape(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/things/v2/nothing")
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    wrong = await client.delete("/things/v1/things")
    assert wrong.status == 405


async def test_operational_routes(client: TestClient[web.Request, web.Application]) -> None:
    for path in ("/healthz", "/things/healthz"):
        assert (await client.get(path)).status == 200
    ok = await client.get("/readyz")
    assert await ok.json() == {"ready": True, "checks": {"database": True, "broker": True}}
    READY["broker"] = False
    try:
        down = await client.get("/things/readyz")
        assert down.status == 503
        assert (await down.json())["checks"]["broker"] is False
    finally:
        READY["broker"] = True
    await client.get("/things/v1/things/x")
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/things/v1/things/{name}"' in metrics
    assert "ryax_http_request_seconds_bucket" in metrics
    docs = await client.get("/things/docs")
    assert "redoc" in await docs.text()


async def test_the_openapi_document_describes_the_routes(
    client: TestClient[web.Request, web.Application],
) -> None:
    spec = await (await client.get("/things/openapi.json")).json()
    assert spec["openapi"] == "3.1.0"
    paths = spec["paths"]
    assert "/things/v1/files/{key}" in paths  # the router's pattern does not leak
    get_thing = paths["/things/v1/things/{name}"]["get"]
    names = {(p["name"], p["in"]) for p in get_thing["parameters"]}
    assert names == {("name", "path"), ("verbose", "query")}
    assert get_thing["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert get_thing["security"] == [{"bearer": []}]
    assert "security" not in paths["/things/v1/files/{key}"]["get"]
    create_op = paths["/things/v1/things"]["post"]
    assert create_op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ThingIn"
    }
    assert set(spec["components"]["schemas"]) >= {"ThingIn", "ThingOut", "Error"}
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert "application/yaml" in paths["/things/v1/raw"]["put"]["requestBody"]["content"]


def test_openapi_path() -> None:
    assert openapi_path("/a/{key:.+}/b/{id}") == "/a/{key}/b/{id}"
    assert openapi_path("/a/{x:[0-9]+}") == "/a/{x}"


def test_http_error_carries_headers() -> None:
    error = HttpError(429, "locked", "later", {"Retry-After": "3"})
    assert error.headers == {"Retry-After": "3"}


def test_unlisted_domain_errors_take_their_status_from_their_code() -> None:
    class Forbidden(DomainError):
        code = "forbidden"

    class Odd(DomainError):
        code = "odd"

    mapping = ErrorMapping(base=DomainError, statuses={NotFound: 404}, default_status=422)
    assert mapping.status_of(Forbidden("no")) == 403
    assert mapping.status_of(Odd("?")) == 422
    assert mapping.status_of(NotFound("x")) == 404


def test_a_request_body_is_required_unless_the_route_says_otherwise() -> None:
    optional = Api(title="Optional", prefix="/o")

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    optional.route("POST", "/json", summary="J", tag="t", body=ThingIn)(handler)
    optional.route("POST", "/maybe", summary="M", tag="t", body=ThingIn, body_required=False)(
        handler
    )
    optional.route(
        "PUT", "/text", summary="T", tag="t", body_media="text/plain", body_required=False
    )(handler)
    form = {"multipart/form-data": {"schema": {"type": "object"}}}
    optional.route("POST", "/form", summary="F", tag="t", body_content=form, body_required=False)(
        handler
    )
    optional.route("GET", "/none", summary="N", tag="t")(handler)
    paths = optional.openapi()["paths"]
    assert paths["/o/json"]["post"]["requestBody"]["required"] is True
    assert "413" in paths["/o/json"]["post"]["responses"]  # a body may be over the limit
    assert paths["/o/maybe"]["post"]["requestBody"]["required"] is False
    assert paths["/o/text"]["put"]["requestBody"]["required"] is False
    assert paths["/o/form"]["post"]["requestBody"] == {"required": False, "content": form}
    assert "requestBody" not in paths["/o/none"]["get"]


def test_a_path_naming_an_object_documents_404_and_a_media_answer_its_schema() -> None:
    docs = Api(title="Docs", prefix="/d")

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    docs.route("GET", "/v1/projects/{project}/things", summary="L", tag="t")(handler)
    docs.route("GET", "/v1/projects/{project}/things/{thing}/{part}", summary="G", tag="t")(handler)
    docs.route("DELETE", "/v1/things/{thing}", summary="D", tag="t", errors={404: "no thing here"})(
        handler
    )
    event = {"type": "object", "properties": {"event": {"type": "string"}}}
    docs.route(
        "GET",
        "/v1/events",
        summary="E",
        tag="t",
        response_media="text/event-stream",
        response_schema=event,
    )(handler)
    docs.route("GET", "/v1/raw", summary="R", tag="t", response_media="text/plain")(handler)
    docs.route(
        "POST",
        "/v1/later",
        summary="L",
        tag="t",
        response=ThingOut,
        more_responses={202: ("accepted", ThingIn), 204: ("nothing", None)},
    )(handler)
    paths = docs.openapi()["paths"]
    assert "404" not in paths["/d/v1/projects/{project}/things"]["get"]["responses"]
    assert "413" not in paths["/d/v1/projects/{project}/things"]["get"]["responses"]
    found = paths["/d/v1/projects/{project}/things/{thing}/{part}"]["get"]["responses"]["404"]
    assert found["description"] == "no such thing or part"
    assert paths["/d/v1/things/{thing}"]["delete"]["responses"]["404"]["description"] == (
        "no thing here"
    )
    assert paths["/d/v1/events"]["get"]["responses"]["200"]["content"] == {
        "text/event-stream": {"schema": event}
    }
    assert paths["/d/v1/raw"]["get"]["responses"]["200"]["content"] == {
        "text/plain": {"schema": {"type": "string"}}
    }
    later = paths["/d/v1/later"]["post"]["responses"]
    assert later["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ThingIn"
    }
    assert later["204"] == {"description": "nothing"}
