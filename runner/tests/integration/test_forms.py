"""The form portal (`postgw`) through the runner's HTTP API, with real deployments (studio
events over RabbitMQ), PostgreSQL, an S3 filestore (SeaweedFS), the fake worker and a fake
authorization service that knows users and project API keys: the sign-in page and its cookie,
the form, a bad submission shown again with its errors (and no file stored), a good one with a
file (in S3) giving the run's results, the 202 page and the run's page, a result file, and what
the cookie may not do."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from minio import Minio
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import (
    RunningRunner,
    deploy_request,
    io,
    publish,
    serve,
    start_runner,
    step,
)

from ryax_runner.domain.values import FileRef, Value
from ryax_runner.infrastructure.proto import studio_events_pb2 as spb

from .test_flow import deployed, until
from .test_user_api import fake_authorization

pytestmark = pytest.mark.integration
KEY_A = "ryaxpk_alpha"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture
async def authz_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/authorization/v1/authorize", fake_authorization)
    runner, url = await serve(app)
    yield url
    await runner.cleanup()


@pytest.fixture
async def runner(
    db_url: str, amqp_url: str, authz_url: str, tmp_path: Path, s3_env: dict[str, str]
) -> AsyncIterator[RunningRunner]:
    running = await start_runner(
        db_url,
        amqp_url,
        tmp_path / "unused",
        authz_url,
        filestore_env=s3_env,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=2.0,
    )
    yield running
    await running.stop()


@pytest.fixture
async def worker(runner: RunningRunner) -> AsyncIterator[FakeWorker]:
    store = runner.container.filestore()

    async def work(step_id: str, inputs: dict[str, Value]) -> dict[str, Value]:
        """Reads the uploaded file back from the filestore; writes a report file."""
        if inputs.get("wait"):
            await asyncio.sleep(float(inputs["wait"]))  # type: ignore[arg-type]
        doc = inputs.get("doc")
        content = b""
        if isinstance(doc, FileRef):
            async for chunk in store.read(doc.key):
                content += chunk
        echo = {k: (v.name if isinstance(v, FileRef) else v) for k, v in inputs.items()}
        report = Path(tempfile.mkdtemp()) / "report.txt"
        report.write_text(f"<report> {echo.get('text')}")
        key = f"runs/test/{uuid.uuid4()}/report/report.txt"
        await store.put_file(key, report)
        return {
            "echo": json.dumps(echo, sort_keys=True),
            "content": content.decode(),
            "report": FileRef(key=key, name="report<1>.txt", size=len("<report> ") + 5),
        }

    w = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=work)
    await w.start()
    yield w
    await w.stop()


def field(name: str, type_: str, **kwargs: Any) -> spb.IO:
    enum_values = kwargs.pop("enum_values", ())
    human_name = kwargs.pop("human_name", "")
    f = io(name, type_, **kwargs)
    f.enum_values.extend(enum_values)
    f.human_name = human_name
    return f


FIELDS = [
    field("text", "string", human_name="Your <text>"),
    field("mode", "enum", enum_values=("fast", "slow")),
    field("count", "integer", default=2),
    field("doc", "file", optional=True),
    field("wait", "float", optional=True),
]


def form_workflow(name: str, path: str, **settings: Any) -> spb.WorkflowDeployRequested:
    names = tuple(f.name for f in FIELDS)
    request = deploy_request(
        [
            step(
                "ask",
                kind="trigger",
                outputs=names,
                inputs={"path": path, **settings},
                input_types={"timeout": "integer"},
            ),
            step(
                "work",
                parents=("ask",),
                inputs={n: ("ref", "ask", n) for n in names},
                outputs=("echo", "content", "report"),
            ),
        ],
        workflow_name=name,
        http_endpoint=False,
        fields=FIELDS,
        results=[
            ("echo", "work", "echo"),
            ("content", "work", "content"),
            ("report", "work", "report"),
        ],
    )
    ask = request.snapshot.steps[0]
    ask.action_id, ask.action_version, ask.artefact_key, ask.artefact_sha256 = (
        "postgw",
        "1.5",
        "",
        "",
    )
    request.snapshot.steps[1].outputs[2].type = "file"
    request.snapshot.trigger.builtin = "postgw"
    return request


async def fetch(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str, dict[str, str]]:
    async with session.request(method, url, allow_redirects=False, **kwargs) as r:
        return r.status, await r.text(), dict(r.headers)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    for name, (filename, content) in files.items():
        data.add_field(name, content, filename=filename, content_type="application/octet-stream")
    return data


def s3_keys(runner: RunningRunner, s3_env: dict[str, str]) -> list[str]:
    """Every object key in the test's bucket."""
    client = Minio(
        s3_env["RYAX_S3_ENDPOINT"],
        access_key=s3_env["RYAX_S3_ACCESS_KEY"],
        secret_key=s3_env["RYAX_S3_SECRET_KEY"],
        secure=False,
        region=s3_env["RYAX_S3_REGION"],
    )
    objects = client.list_objects(s3_env["RYAX_S3_BUCKET"], recursive=True)
    return [str(o.object_name) for o in objects]


async def test_a_browser_signs_in_fills_the_form_and_sees_the_result(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker, s3_env: dict[str, str]
) -> None:
    await deployed(runner, amqp_url, form_workflow("shout", "/shout", title="Shout <it>"))
    form_url = f"{runner.url}/user-api/alpha/shout"
    jar = aiohttp.CookieJar(unsafe=True)  # the runner listens on 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        # No credential: a browser gets the sign-in page, a program the JSON 401.
        status, page, _ = await fetch(browser, "GET", form_url, headers=HTML)
        assert status == 401 and 'name="key"' in page and 'value="/user-api/alpha/shout"' in page
        status, body, _ = await fetch(browser, "GET", form_url)
        assert status == 401 and json.loads(body)["error"] == "unauthenticated"
        # A wrong key is refused on the page; the right one becomes a cookie of this project.
        login = f"{runner.url}/user-api/alpha/_login"
        status, page, _ = await fetch(
            browser, "POST", login, data={"key": "ryaxpk_nope", "next": "/user-api/alpha/shout"}
        )
        assert status == 401 and "This key or token is not valid." in page
        # Only a page of this project's user API is where a sign-in goes on to.
        for elsewhere in ("https://evil.example/", "/user-api/alpha//evil", "/runner/v1/x"):
            data = {"key": KEY_A, "next": elsewhere}
            status, _, headers = await fetch(browser, "POST", login, data=data)
            assert status == 303 and headers["Location"] == "/user-api/alpha/_login?signed_in=1"
        status, _, headers = await fetch(
            browser,
            "POST",
            login,
            data={"key": KEY_A, "next": "/user-api/alpha/x\r\nSet-Cookie: a=b"},
        )
        assert status == 303 and headers["Location"] == "/user-api/alpha/_login?signed_in=1"
        status, _, headers = await fetch(
            browser, "POST", login, data={"key": KEY_A, "next": "/user-api/alpha/shout"}
        )
        assert status == 303 and headers["Location"] == "/user-api/alpha/shout"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Path=/user-api/alpha" in cookie
        # The form: labelled, escaped, with its file input.
        status, page, headers = await fetch(browser, "GET", form_url, headers=HTML)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "<h1>Shout &lt;it&gt;</h1>" in page and "Your &lt;text&gt;" in page
        assert 'enctype="multipart/form-data"' in page and 'type="file"' in page
        assert "default-src 'none'" in headers["Content-Security-Policy"]

        # A bad submission: the form again (400), each error by its field; its file not stored.
        bad = multipart({"text": "", "mode": "medium", "count": "x"}, {"doc": ("a.txt", b"abc")})
        status, page, _ = await fetch(browser, "POST", form_url, data=bad)
        assert status == 400
        assert '<p class="error" id="field-text-error">Error: required</p>' in page
        assert "Error: expected one of fast, slow" in page
        assert 'aria-invalid="true" type="number" step="1" value="x"' in page
        assert [k for k in s3_keys(runner, s3_env) if k.startswith("runs/")] == []

        # A good one: the run's results on the page, the file read from S3 by the step.
        good = multipart(
            {"text": "hi <there>", "mode": "slow", "count": ""}, {"doc": ("d.txt", b"DATA")}
        )
        status, page, headers = await fetch(
            browser, "POST", form_url, data=good, headers={"Origin": runner.url}
        )
        assert status == 200, page
        run_id = headers["Ryax-Run-Id"]
        assert "the run completed" in page and run_id in page
        assert "&quot;text&quot;: &quot;hi &lt;there&gt;&quot;" in page  # the echo, escaped
        assert "&quot;count&quot;: 2" in page and "&quot;doc&quot;: &quot;d.txt&quot;" in page
        assert "<dt>content</dt><dd>DATA</dd>" in page
        uploads = [k for k in s3_keys(runner, s3_env) if k.startswith(f"runs/{run_id}/")]
        assert len(uploads) == 1 and uploads[0].endswith("/doc/d.txt")

        # The result file downloads through the form's run page.
        link = re.search(r'<a href="([^"]+)" download>report&lt;1&gt;.txt</a>', page)
        assert link is not None
        status, content, _ = await fetch(
            browser, "GET", runner.url + link.group(1).replace("&amp;", "&")
        )
        assert status == 200 and content == "<report> hi <there>"
        # The run page; another workflow's (or an unknown) run is not shown there.
        status, page, _ = await fetch(browser, "GET", f"{form_url}?run={run_id}", headers=HTML)
        assert status == 200 and "the run completed" in page
        status, page, _ = await fetch(browser, "GET", f"{form_url}?run={uuid.uuid4()}")
        assert status == 404 and "not found among the runs of this form" in page

        # The run is recorded with origin "form".
        engine = runner.container.engine()
        await engine.durable()
        doc = await runner.container.queries().get_run("proj-a", run_id)
        assert doc is not None and doc["origin"] == "form"

        # A page of another site cannot post with the cookie; the cookie is for forms only.
        status, page, _ = await fetch(
            browser,
            "POST",
            form_url,
            data={"text": "x", "mode": "fast"},
            headers={"Origin": "https://evil.example"},
        )
        assert status == 403 and "from its own page only" in page
        status, page, _ = await fetch(browser, "GET", f"{runner.url}/user-api/alpha/openapi.json")
        assert status == 401  # the cookie is not a credential of the JSON routes

        # Signing out clears the cookie: the sign-in page again.
        status, _, headers = await fetch(browser, "POST", f"{runner.url}/user-api/alpha/_logout")
        assert status == 303 and headers["Location"] == "/user-api/alpha/_login"
        status, page, _ = await fetch(browser, "GET", form_url, headers=HTML)
        assert status == 401 and 'name="key"' in page


async def test_a_program_posts_with_a_key_and_follows_a_late_run(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    await deployed(runner, amqp_url, form_workflow("late", "/late", timeout=0))
    form_url = f"{runner.url}/user-api/proj-a/late"
    auth = {"Authorization": f"Bearer {KEY_A}"}
    async with aiohttp.ClientSession() as s:
        status, page, headers = await fetch(
            s,
            "POST",
            form_url,
            data={"text": "slowly", "mode": "fast", "wait": "0.3"},
            headers=auth,
        )
        assert status == 202 and 'http-equiv="refresh"' in page and "the run goes on" in page
        run_id = headers["Ryax-Run-Id"]
        assert f'href="/user-api/proj-a/late?run={run_id}"' in page

        async def completed() -> bool:
            status, page, _ = await fetch(s, "GET", f"{form_url}?run={run_id}", headers=auth)
            return status == 200 and "the run completed" in page

        await until(completed)
        # An url-encoded submission with a bad field: 400, the page names it.
        status, page, _ = await fetch(
            s, "POST", form_url, data={"text": "t", "mode": "fast", "sneaky": "1"}, headers=auth
        )
        assert status == 400 and "not fields of this form: sneaky" in page
        # Another media type is refused with a page saying what to send.
        status, page, _ = await fetch(s, "POST", form_url, json={"text": "t"}, headers=auth)
        assert status == 415 and "multipart/form-data or application/x-www-form-urlencoded" in page
        # Another project's key: 403.
        status, _, _ = await fetch(
            s, "GET", form_url, headers={"Authorization": "Bearer ryaxpk_beta"}
        )
        assert status == 403


async def test_a_form_and_an_api_route_cannot_share_a_path(
    runner: RunningRunner, amqp_url: str, worker: FakeWorker
) -> None:
    await deployed(runner, amqp_url, form_workflow("first", "/shared"))
    api = deploy_request(
        [
            step("api", kind="trigger", outputs=(), inputs={"path": "/shared", "method": "GET"}),
            step("work", parents=("api",), outputs=("echo",)),
        ],
        workflow_name="second",
    )
    await publish(amqp_url, api)
    engine = runner.container.engine()
    await until(lambda: engine.deployments.get(api.deployment_id) is not None)
    d = engine.deployments[api.deployment_id]
    await until(lambda: d.state == "failed")
    assert "GET /shared is already served by workflow first" in d.reason
    assert "(the form /shared)" in d.reason
