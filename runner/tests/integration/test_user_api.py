"""The user API through the runner's HTTP API, with real deployments (studio events), the fake
worker and a fake authorization service that knows users and project API keys: method, path
parameters, query and header fields, success code, sync answers, 202 after the timeout or at once
(timeout 0) with a result link, the per-project OpenAPI, conflicts at deploy, and what an API key
may (and may not) reach."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from runner_testkit.fake_worker import ActionError, FakeWorker
from runner_testkit.harness import RunningRunner, deploy_request, io, publish, serve, step

from ryax_runner.domain.values import Value
from ryax_runner.infrastructure.proto import studio_events_pb2 as spb

from .test_flow import deployed, until

pytestmark = pytest.mark.integration
ALICE = {"Authorization": "Bearer token-alice"}
BOB = {"Authorization": "Bearer token-bob"}
KEY_A = {"Authorization": "Bearer ryaxpk_alpha"}
KEY_B = {"Authorization": "Bearer ryaxpk_beta"}
REVOKED = {"Authorization": "Bearer ryaxpk_revoked"}
PROJECTS = {"proj-a": "alpha", "proj-b": "beta"}


async def fake_authorization(request: web.Request) -> web.Response:
    """Users are members (developers) of one project; a project API key is answered for its
    project, for any operation: the runner (the kit's `require`) must still keep it to the user
    API. A revoked key is refused (401)."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    callers = {
        "token-alice": ("u-alice", "alice", "proj-a", ""),
        "token-bob": ("u-bob", "bob", "proj-b", ""),
        "ryaxpk_alpha": ("api-key:k-a", "api-key:ci", "proj-a", "k-a"),
        "ryaxpk_beta": ("api-key:k-b", "api-key:ci", "proj-b", "k-b"),
    }
    if token not in callers:
        return web.json_response({"error": "unauthenticated", "detail": "bad token"}, status=401)
    user_id, username, project_id, key_id = callers[token]
    if request.query["project"] not in (project_id, PROJECTS[project_id]):
        return web.json_response({"error": "forbidden", "detail": "not a member"}, status=403)
    return web.json_response(
        {
            "user_id": user_id,
            "username": username,
            "is_admin": False,
            "project_id": project_id,
            "project_name": PROJECTS[project_id],
            "role": "developer",
            "api_key_id": key_id or None,
        }
    )


@pytest.fixture
async def authz_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/authorization/v1/authorize", fake_authorization)
    runner, url = await serve(app)
    yield url
    await runner.cleanup()


async def work(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
    """Echoes its inputs; sleeps `sleep` seconds; fails with `fail` as the HTTP status."""
    if inputs.get("sleep"):
        await asyncio.sleep(float(inputs["sleep"]))  # type: ignore[arg-type]
    if inputs.get("fail"):
        raise ActionError(int(inputs["fail"]), "asked to fail")  # type: ignore[call-overload]
    return {"echo": json.dumps(inputs, sort_keys=True)}


@pytest.fixture
async def worker(runner: RunningRunner) -> AsyncIterator[FakeWorker]:
    w = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=work)
    await w.start()
    yield w
    await w.stop()


def field(name: str, type_: str, origin: str, **kwargs: Any) -> spb.IO:
    f = io(name, type_, **kwargs)
    f.origin = origin
    return f


def api_workflow(
    name: str,
    path: str,
    method: str,
    fields: list[spb.IO],
    *,
    project_id: str = "proj-a",
    **settings: Any,
) -> spb.WorkflowDeployRequested:
    names = tuple(f.name for f in fields)
    return deploy_request(
        [
            step(
                "api",
                kind="trigger",
                outputs=names,
                inputs={"path": path, "method": method, **settings},
                input_types={"timeout": "integer"},
            ),
            step(
                "work",
                parents=("api",),
                inputs={n: ("ref", "api", n) for n in names},
                outputs=("echo",),
            ),
        ],
        project_id=project_id,
        workflow_name=name,
        fields=fields,
        results=[("echo", "work", "echo")],
    )


ITEM_FIELDS = [
    field("id", "integer", "path"),
    field("verbose", "boolean", "query", optional=True),
    field("limit", "integer", "query", default=10),
    field("x_tenant", "string", "header"),
]


async def call(
    method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> tuple[int, Any, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, headers=headers, **kwargs) as r,
    ):
        text = await r.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return r.status, body, dict(r.headers)


async def test_get_with_path_query_and_header_fields_and_a_success_code(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    request = api_workflow("items", "/items/{id}", "GET", ITEM_FIELDS, success_code="201")
    await deployed(runner, amqp_url, request)
    base = f"{runner.url}/user-api/alpha"
    status, body, headers = await call(
        "GET", f"{base}/items/42?verbose=true", {**ALICE, "X-Tenant": "acme"}
    )
    assert status == 201, body
    assert json.loads(body["echo"]) == {"id": 42, "limit": 10, "verbose": True, "x_tenant": "acme"}
    run_id = headers["Ryax-Run-Id"]
    status, run, _ = await call(
        "GET", f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}", ALICE
    )
    assert run["origin"] == "user_api" and run["workflow_name"] == "items"
    # The project's id works as well as its name; a trailing slash too.
    status, body, _ = await call(
        "GET", f"{runner.url}/user-api/proj-a/items/7/?limit=3", {**ALICE, "x-tenant": "t"}
    )
    assert status == 201 and json.loads(body["echo"])["limit"] == 3

    # Every bad field is a 400 naming the field and where it was read; never a 500.
    cases = [
        ("/items/abc", {"X-Tenant": "t"}, "id (from the path): expected an integer, got 'abc'"),
        ("/items/1?limit=many", {"X-Tenant": "t"}, "limit (from the query): expected an integer"),
        ("/items/1?verbose=perhaps", {"X-Tenant": "t"}, "verbose (from the query): expected true"),
        ("/items/1?limit=1&limit=2", {"X-Tenant": "t"}, "limit (from the query): given more"),
        ("/items/1", {}, "x_tenant (from the header): missing"),
    ]
    for path, extra, detail in cases:
        status, body, _ = await call("GET", base + path, {**ALICE, **extra})
        assert status == 400 and body["detail"].startswith(detail), (path, body)
    status, body, headers = await call("DELETE", f"{base}/items/1", ALICE)
    assert status == 405 and headers["Allow"] == "GET", body
    status, body, _ = await call("GET", f"{base}/nothing/here", ALICE)
    assert status == 404 and "no endpoint GET /nothing/here in project alpha" in body["detail"]
    # A body field sent for a path field is named with where it is read.
    status, body, _ = await call(
        "GET", f"{base}/items/1", {**ALICE, "X-Tenant": "t"}, json={"limit": 3}
    )
    assert status == 400 and body["detail"] == "limit (from the body): is read from the query"


async def test_post_body_fields_sync_failure_and_the_endpoint_by_name(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    fields = [
        field("text", "string", "body"),
        field("fail", "integer", "body", optional=True),
        field("lang", "string", "path"),
    ]
    await deployed(runner, amqp_url, api_workflow("texts", "/texts/{lang}", "POST", fields))
    url = f"{runner.url}/user-api/alpha/texts/fr"
    status, body, _ = await call("POST", url, ALICE, json={"text": "bonjour"})
    assert status == 200 and json.loads(body["echo"]) == {
        "fail": None,
        "lang": "fr",
        "text": "bonjour",
    }
    status, body, _ = await call("POST", url, ALICE, data={"text": "from a form"})
    assert status == 200 and json.loads(body["echo"])["text"] == "from a form"
    status, body, _ = await call("POST", url, ALICE, json={})
    assert status == 400 and body["detail"] == "text (from the body): missing"
    status, body, _ = await call("POST", url, ALICE, json={"text": "x", "other": 1})
    assert status == 400 and body["detail"].startswith("other: unknown input")
    status, body, _ = await call("POST", url, ALICE, json={"text": "x", "fail": 418})
    assert status == 418 and body["error"] == "run_failed" and body["step_id"] == "work"
    # The endpoint by workflow name keeps working: every field in the body.
    status, body, _ = await call(
        "POST",
        f"{runner.url}/runner/v1/projects/alpha/endpoints/texts",
        ALICE,
        json={"text": "by name", "lang": "en"},
    )
    assert status == 200 and json.loads(body["echo"])["lang"] == "en"


async def test_202_after_the_timeout_then_the_result_link(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    fields = [field("sleep", "float", "query")]
    await deployed(runner, amqp_url, api_workflow("slow", "/slow", "GET", fields, timeout=1))
    status, body, headers = await call("GET", f"{runner.url}/user-api/alpha/slow?sleep=3", ALICE)
    assert status == 202, body
    run_id = body["workflow_run_id"]
    link = f"/runner/v1/projects/alpha/results/{run_id}"
    assert body == {
        "workflow_run_id": run_id,
        "result_link": link,
        "run_id": run_id,
        "state": "running",
    }
    assert headers["Location"] == link and headers["Ryax-Run-Id"] == run_id
    status, early, _ = await call("GET", runner.url + link, ALICE)
    assert status == 202 and early["state"] in ("pending", "running")

    async def done() -> bool:
        return (await call("GET", runner.url + link, ALICE))[0] == 200

    await until(done, 15)
    status, result, _ = await call("GET", runner.url + link, ALICE)
    assert json.loads(result["echo"]) == {"sleep": 3.0}
    # Fast enough: the answer itself.
    status, body, _ = await call("GET", f"{runner.url}/user-api/alpha/slow?sleep=0", ALICE)
    assert status == 200 and json.loads(body["echo"]) == {"sleep": 0.0}


async def test_timeout_0_answers_202_at_once_and_the_link_tells_a_failure(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    fields = [field("fail", "integer", "query", default=0)]
    await deployed(runner, amqp_url, api_workflow("later", "/later", "POST", fields, timeout=0))
    status, body, _ = await call("POST", f"{runner.url}/user-api/alpha/later", ALICE)
    # The state when the run was recorded: its step left at once (an unannounced run), and this
    # fake worker answers at once, so it may have ended already.
    assert status == 202 and body["state"] in ("pending", "running", "completed"), body
    link = runner.url + body["result_link"]
    await until(lambda: _status_is(link, 200), 10)
    status, body, _ = await call("POST", f"{runner.url}/user-api/alpha/later?fail=422", ALICE)
    assert status == 202
    link = runner.url + body["result_link"]
    await until(lambda: _status_is(link, 422), 10)
    status, failed, _ = await call("GET", link, ALICE)
    assert failed["error"] == "run_failed" and failed["detail"] == "asked to fail"


async def _status_is(url: str, wanted: int) -> bool:
    return (await call("GET", url, ALICE))[0] == wanted


async def test_project_api_keys_reach_the_user_api_of_their_project_only(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    fields = [field("n", "integer", "query")]
    await deployed(runner, amqp_url, api_workflow("keyed", "/keyed", "GET", fields))
    await deployed(
        runner,
        amqp_url,
        api_workflow("later", "/later", "GET", fields, timeout=0, project_id="proj-a"),
    )
    url = f"{runner.url}/user-api/alpha/keyed?n=1"
    status, body, headers = await call("GET", url, KEY_A)
    assert status == 200 and json.loads(body["echo"]) == {"n": 1}
    run_id = headers["Ryax-Run-Id"]
    # Another project's key, a revoked or unknown key, no key.
    assert (await call("GET", url, KEY_B))[0] == 403
    assert (await call("GET", url, REVOKED))[0] == 401
    assert (await call("GET", url))[0] == 401
    # Nothing but the user API: not the runs, not the deployments, not the endpoint by name.
    base = f"{runner.url}/runner/v1/projects/alpha"
    for method, path in (
        ("GET", "/runs"),
        ("GET", f"/runs/{run_id}"),
        ("POST", f"/runs/{run_id}/cancel"),
        ("GET", "/deployments"),
        ("GET", "/endpoints/openapi.json"),
        ("POST", "/endpoints/keyed"),
    ):
        status, body, _ = await call(method, base + path, KEY_A, json={"n": 1})
        assert status == 403 and "only calls the user API" in body["detail"], (path, body)
    # ... but the result link of what it started, and the project's OpenAPI.
    status, body, _ = await call("GET", f"{runner.url}/user-api/alpha/later?n=2", KEY_A)
    assert status == 202
    link = runner.url + body["result_link"]

    async def ready() -> bool:
        return (await call("GET", link, KEY_A))[0] == 200

    await until(ready, 10)
    assert (await call("GET", link, KEY_B))[0] == 403
    status, spec, _ = await call("GET", f"{runner.url}/user-api/alpha/openapi.json", KEY_A)
    assert status == 200 and set(spec["paths"]) == {"/keyed", "/later"}
    # A run started otherwise (by name, by a user) is not the key's to read.
    status, _, headers = await call("POST", f"{base}/endpoints/keyed", ALICE, json={"n": 3})
    assert status == 200
    other = headers["Ryax-Run-Id"]
    assert (await call("GET", f"{base}/results/{other}", KEY_A))[0] == 404
    assert (await call("GET", f"{base}/results/{other}", ALICE))[0] == 200


async def test_the_project_openapi_and_its_page(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    await deployed(
        runner,
        amqp_url,
        api_workflow(
            "items",
            "/items/{id}",
            "GET",
            ITEM_FIELDS,
            success_code="201",
            summary="One item",
            tags="items",
        ),
    )
    body_fields = [field("text", "string", "body")]
    await deployed(runner, amqp_url, api_workflow("create", "/items", "POST", body_fields))
    status, spec, _ = await call("GET", f"{runner.url}/user-api/alpha/openapi.json", ALICE)
    assert status == 200
    assert spec["servers"] == [{"url": "/user-api/alpha"}]
    get = spec["paths"]["/items/{id}"]["get"]
    assert get["summary"] == "One item" and get["tags"] == ["items"]
    params = {(p["in"], p["name"]): p for p in get["parameters"]}
    assert set(params) == {
        ("path", "id"),
        ("query", "verbose"),
        ("query", "limit"),
        ("header", "x-tenant"),
    }
    assert params[("path", "id")]["schema"]["type"] == "integer"
    assert params[("query", "limit")]["required"] is False
    assert params[("header", "x-tenant")]["required"] is True
    assert {"201", "202", "400"} <= set(get["responses"])
    post = spec["paths"]["/items"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["text"] and "200" in post["responses"]
    # Only members (or the project's keys) read it; the page itself holds no data.
    assert (await call("GET", f"{runner.url}/user-api/alpha/openapi.json", BOB))[0] == 403
    status, page, headers = await call("GET", f"{runner.url}/user-api/alpha/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "openapi.json" in page and "SwaggerUIBundle" in page


async def test_a_second_workflow_claiming_a_method_and_path_fails_to_deploy(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    fields = [field("id", "integer", "path")]
    await deployed(runner, amqp_url, api_workflow("first", "/items/{id}", "GET", fields))
    key_field = [field("key", "string", "path")]
    second = api_workflow("second", "/items/{key}", "GET", key_field)
    await publish(amqp_url, second)
    engine = runner.container.engine()
    await until(lambda: second.deployment_id in engine.deployments)
    d = engine.deployments[second.deployment_id]
    await until(lambda: d.state == "failed")
    assert d.reason.startswith(
        "user API: GET /items/{key} is already served by workflow first (deployment "
    )
    # Another method on the same path, or another project, is fine; a bad path fails.
    await deployed(runner, amqp_url, api_workflow("third", "/items/{id}", "DELETE", fields))
    await deployed(
        runner, amqp_url, api_workflow("other", "/items/{id}", "GET", fields, project_id="proj-b")
    )
    bad = api_workflow("bad", "/files/{name}", "GET", [])
    await publish(amqp_url, bad)
    await until(lambda: bad.deployment_id in engine.deployments)
    await until(lambda: engine.deployments[bad.deployment_id].state == "failed")
    assert engine.deployments[bad.deployment_id].reason == (
        "user API: path: {name} is not an output of origin path of the trigger"
    )
    status, body, _ = await call("GET", f"{runner.url}/user-api/alpha/items/5", ALICE)
    assert status == 200 and json.loads(body["echo"]) == {"id": 5}
