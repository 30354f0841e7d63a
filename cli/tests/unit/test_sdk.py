"""The SDK over httpx.MockTransport: headers, error mapping, waits, multipart, SSE."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ryax_cli._http import parse_sse
from ryax_cli.api.studio import check_yaml
from ryax_cli.errors import (
    ApiError,
    AuthenticationError,
    BuildFailed,
    ConflictError,
    DeploymentFailed,
    DeploymentOutdated,
    InvalidRequest,
    InvalidWorkflowFile,
    NotFoundError,
    PermissionDenied,
    RunFailed,
    RyaxError,
    ServerError,
    ServerUnreachable,
    WaitTimeout,
)
from ryax_cli.models import FileRef
from ryax_cli.sdk import Client

Route = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Route, token: str | None = "tok") -> Client:
    client = Client("http://ryax.test/", token, transport=httpx.MockTransport(handler))
    client.waiting.interval = 0
    return client


def error(status: int, code: str, detail: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "detail": detail})


def test_login_sets_the_bearer_token_for_later_calls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/authorization/v1/login":
            assert json.loads(request.content) == {"username": "a", "password": "p"}
            return httpx.Response(
                200,
                json={
                    "access_token": "new",
                    "expires_at": "2030-01-01T00:00:00Z",
                    "user": {"id": "u1", "username": "a", "is_admin": False},
                },
            )
        return httpx.Response(200, json={"projects": [{"id": "p1", "name": "demo"}]})

    client = client_for(handler, token=None)
    session = client.login("a", "p")
    assert session.user.username == "a" and session.expires_at is not None
    assert "authorization" not in seen[0].headers
    projects = client.projects.list()
    assert [p.name for p in projects] == ["demo"]
    assert seen[1].headers["authorization"] == "Bearer new"
    assert client.url == "http://ryax.test"


@pytest.mark.parametrize(
    ("status", "cls", "message"),
    [
        (400, InvalidRequest, "name: too short"),
        (401, AuthenticationError, "authentication failed: name: too short"),
        (403, PermissionDenied, "permission denied: name: too short"),
        (404, NotFoundError, "not found: name: too short"),
        (409, ConflictError, "name: too short"),
        (422, InvalidRequest, "name: too short"),
        (500, ServerError, "server error (HTTP 500): name: too short"),
    ],
)
def test_error_statuses_map_to_exceptions(status: int, cls: type[ApiError], message: str) -> None:
    client = client_for(lambda r: error(status, "code", "name: too short"))
    with pytest.raises(cls) as info:
        client.projects.list()
    assert str(info.value) == message
    assert info.value.status == status and info.value.error == "code"


def test_structured_details_become_one_line() -> None:
    detail = [
        {"step": "count", "message": "input document: type mismatch"},
        {"message": "a cycle:\n a -> b -> a"},
    ]
    client = client_for(lambda r: error(400, "invalid_workflow", detail))
    with pytest.raises(InvalidRequest) as info:
        client.workflows.create("demo", "x")
    assert str(info.value) == "count: input document: type mismatch; a cycle: a -> b -> a"
    assert info.value.detail == detail


def test_gateway_errors_without_json_say_which_service() -> None:
    client = client_for(lambda r: httpx.Response(502, text="Bad Gateway"))
    with pytest.raises(ServerError) as info:
        client.workflows.list("demo")
    assert "could not reach the service behind /studio/v1/projects/demo/workflows" in str(
        info.value
    )


def test_not_found_without_detail_names_the_call() -> None:
    client = client_for(lambda r: httpx.Response(404, text=""))
    with pytest.raises(NotFoundError, match="not found: GET /runner/v1/projects/demo/runs/r1"):
        client.runs.show("demo", "r1")


def test_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = client_for(handler)
    with pytest.raises(ServerUnreachable) as info:
        client.me()
    assert str(info.value) == (
        "cannot reach the Ryax server at http://ryax.test: "
        "connection refused (is the platform running?)"
    )


def test_timeouts_are_unreachable_too() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ServerUnreachable, match="no answer in time"):
        client_for(handler).me()


def test_names_are_escaped_in_paths() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"id": "p", "name": "a b/c"})

    client_for(handler).projects.get("a b/c")
    assert paths == ["/authorization/v1/projects/a%20b%2Fc"]


def _action(state: str = "valid", last_build: str | None = None) -> dict[str, Any]:
    return {
        "id": "src-1",
        "action_id": "count",
        "version": "1.0",
        "state": state,
        "last_build": {"id": last_build} if last_build else None,
    }


def test_build_waits_and_reports_progress() -> None:
    polls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/actions/count/1.0"):
            return httpx.Response(200, json=_action())
        if path.endswith("/build"):
            return httpx.Response(202, json={"id": "b1", "state": "requested", "log": ""})
        if path.endswith("/builds/b1"):
            polls["n"] += 1
            state = "succeeded" if polls["n"] >= 3 else "requested"
            return httpx.Response(200, json={"id": "b1", "state": state, "log": "ok"})
        raise AssertionError(path)

    seen: list[str] = []
    build = client_for(handler).actions.build(
        "demo", "count", "1.0", on_progress=lambda b: seen.append(b.state)
    )
    assert build.succeeded and build.action_id == "count" and build.version == "1.0"
    assert seen == ["requested", "requested", "requested", "succeeded"]


def test_build_failure_raises_with_the_log() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/actions/count/1.0"):
            return httpx.Response(200, json=_action())
        if request.url.path.endswith("/build"):
            return httpx.Response(202, json={"id": "b1", "state": "requested"})
        return httpx.Response(
            200, json={"id": "b1", "state": "failed", "reason": "no wheel", "log": "pip: error"}
        )

    with pytest.raises(BuildFailed) as info:
        client_for(handler).actions.build("demo", "count", "1.0")
    assert str(info.value) == "build of count 1.0 failed: no wheel"
    assert info.value.log == "pip: error"


def test_build_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/actions/count/1.0"):
            return httpx.Response(200, json=_action())
        return httpx.Response(202, json={"id": "b1", "state": "requested"})

    client = client_for(handler)
    ticks = iter(range(1000))
    client.waiting.clock = lambda: float(next(ticks))
    with pytest.raises(WaitTimeout, match=r"build of count 1\.0 still requested after 5 s"):
        client.actions.build("demo", "count", "1.0", timeout=5)


def test_build_of_an_action_being_built_follows_its_build() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/actions/count/1.0"):
            return httpx.Response(200, json=_action("building", "b7"))
        if request.url.path.endswith("/builds/b7"):
            return httpx.Response(200, json={"id": "b7", "state": "succeeded"})
        raise AssertionError(f"unexpected {request.method} {request.url.path}")

    assert client_for(handler).actions.build("demo", "count", "1.0").id == "b7"


def test_show_without_version_picks_the_latest() -> None:
    actions = [
        {**_action(), "id": "a", "version": "1.9"},
        {**_action(), "id": "b", "version": "1.10"},
        {**_action(), "id": "c", "action_id": "other", "version": "9.0"},
    ]
    client = client_for(lambda r: httpx.Response(200, json={"actions": actions}))
    assert client.actions.show("demo", "count").id == "b"


def _deployments(*states: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "deployments": [
                {
                    "id": f"d{i}",
                    "workflow_id": "w1",
                    "state": s,
                    "reason": "no site has a pool for step count"
                    if s == "waiting_for_site"
                    else "",
                }
                for i, s in enumerate(states)
            ]
        },
    )


def test_deploy_waits_until_deployed() -> None:
    states = iter(["requested", "waiting_for_site", "deploying", "deployed"])

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/studio/v1/projects/demo/workflows/Word count/deploy":
            return httpx.Response(202, json={"id": "d0", "workflow_id": "w1", "state": "requested"})
        if path == "/studio/v1/projects/demo/workflows/Word count/deployments":
            return _deployments(next(states))
        raise AssertionError(path)

    seen: list[str] = []
    d = client_for(handler).workflows.deploy(
        "demo", "Word count", on_progress=lambda x: seen.append(f"{x.state} {x.reason or ''}")
    )
    assert d.running
    assert seen == [
        "requested ",
        "requested ",
        "waiting_for_site no site has a pool for step count",
        "deploying ",
        "deployed ",
    ]


def test_deploy_failure_carries_the_reason() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/deploy"):
            return httpx.Response(202, json={"state": "requested"})
        return httpx.Response(
            200, json={"deployments": [{"state": "failed", "reason": "the trigger crashed"}]}
        )

    with pytest.raises(DeploymentFailed, match="w1 failed: the trigger crashed"):
        client_for(handler).workflows.deploy("demo", "w1")


class _Deployed:
    """The studio of a workflow `w1` deployed (deployment d0 asked for at 10:00), changed at
    `changed`; a deploy of it is refused (409) while it is deployed."""

    def __init__(self, changed: str) -> None:
        self.changed = changed
        self.current = {
            "id": "d0",
            "workflow_id": "w1",
            "state": "deployed",
            "requested_at": "2026-12-06T10:00:00+00:00",
        }
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/studio/v1/projects/demo/workflows/w1")
        self.calls.append(f"{request.method} {path}")
        if path == "/deploy":
            if self.current["state"] == "deployed":
                return error(409, "conflict", "already deployed: undeploy it first")
            self.current = {
                **self.current,
                "id": "d1",
                "state": "deployed",
                "requested_at": "2026-12-06T11:00:00+00:00",
            }
            return httpx.Response(202, json={**self.current, "state": "requested"})
        if path == "/undeploy":
            self.current = {**self.current, "state": "undeployed"}
            return httpx.Response(202, json={**self.current, "state": "undeploying"})
        if path == "/deployments":
            return httpx.Response(200, json={"deployments": [self.current]})
        if path == "":
            body = {"id": "w1", "name": "w1", "updated_at": self.changed, "steps": []}
            return httpx.Response(200, json=body)
        raise AssertionError(path)


def test_deploy_when_already_deployed_and_unchanged_follows_the_deployment() -> None:
    studio = _Deployed(changed="2026-12-06T09:59:00+00:00")
    assert client_for(studio).workflows.deploy("demo", "w1").id == "d0"
    assert "POST /undeploy" not in studio.calls


def test_deploy_of_a_workflow_changed_since_its_deployment_says_so_and_does_nothing() -> None:
    studio = _Deployed(changed="2026-12-06T10:05:00+00:00")
    with pytest.raises(DeploymentOutdated) as info:
        client_for(studio).workflows.deploy("demo", "w1")
    message = str(info.value)
    assert "deployment d0" in message and "10:00:00" in message and "10:05:00" in message
    assert "--redeploy" in message
    assert studio.calls.count("POST /deploy") == 1  # refused, not tried again
    assert "POST /undeploy" not in studio.calls


def test_redeploy_undeploys_then_deploys_again() -> None:
    studio = _Deployed(changed="2026-12-06T10:05:00+00:00")
    d = client_for(studio).workflows.deploy("demo", "w1", redeploy=True)
    posts = [c for c in studio.calls if c.startswith("POST")]
    assert posts == ["POST /deploy", "POST /undeploy", "POST /deploy"]
    assert d.running and d.id == "d1"


def test_deploy_of_an_invalid_workflow_lists_its_problems() -> None:
    problems = [
        {
            "code": "type",
            "message": "expects a file",
            "step_id": "count",
            "input": "document",
            "line": None,
            "path": None,
        },
        {
            "code": "cycle",
            "message": "a cycle a -> b -> a",
            "step_id": None,
            "input": None,
            "line": 12,
            "path": "spec.functions[1] (b).streams_to",
        },
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            json={
                "error": "invalid_workflow",
                "detail": "the workflow is not valid: 2 problem(s)",
                "problems": problems,
            },
        )

    with pytest.raises(InvalidRequest) as info:
        client_for(handler).workflows.deploy("demo", "w1")
    assert str(info.value) == "the workflow is not valid: 2 problem(s)"
    assert info.value.problems == [
        "step count, input document: expects a file",
        "line 12, spec.functions[1] (b).streams_to: a cycle a -> b -> a",
    ]


def test_undeploy_of_a_workflow_that_is_not_deployed_is_a_no_op() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/undeploy"):
            return error(409, "conflict", "not deployed")
        return _deployments("undeployed")

    d = client_for(handler).workflows.undeploy("demo", "w1")
    assert d is not None and d.gone


def test_import_sends_yaml_and_checks_it_first() -> None:
    bodies: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request)
        return httpx.Response(201, json={"id": "w1", "name": "Demo", "valid": True, "problems": []})

    client = client_for(handler)
    wf = client.workflows.import_yaml("demo", "kind: Workflows\nspec: {}\n")
    assert wf.id == "w1" and wf.valid
    assert bodies[0].headers["content-type"] == "application/yaml"
    with pytest.raises(InvalidWorkflowFile, match="line 2, column"):
        client.workflows.import_yaml("demo", "a: [\nb: c")
    with pytest.raises(InvalidWorkflowFile, match="not a workflow"):
        check_yaml("- just\n- a list\n")
    assert len(bodies) == 1


def test_trigger_sync_returns_outputs_and_file_refs(tmp_path: Path) -> None:
    report = {
        "type": "file",
        "name": "r.txt",
        "size": 6,
        "key": "runs/run-9/x/report/r.txt",
        "download_url": "/runner/v1/projects/demo/runs/run-9/files/runs/run-9/x/report/r.txt",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/runner/v1/projects/demo/endpoints/Word count":
            assert request.url.params["mode"] == "sync"
            assert request.url.params["timeout"] == "60"
            assert json.loads(request.content) == {"text": "a b c"}
            return httpx.Response(
                200, json={"words": 3, "report": report}, headers={"Ryax-Run-Id": "run-9"}
            )
        if request.url.path == report["download_url"]:
            assert request.headers["authorization"] == "Bearer tok"
            return httpx.Response(200, content=b"REPORT")
        raise AssertionError(request.url.path)

    run = client_for(handler).runs.trigger("demo", "Word count", {"text": "a b c"}, timeout=60)
    assert run.id == "run-9" and run.done and run.succeeded
    assert run.outputs["words"] == 3
    assert isinstance(run.outputs["report"], FileRef)
    saved = run.download("report", tmp_path)
    assert saved == tmp_path / "r.txt" and saved.read_bytes() == b"REPORT"
    assert not list(tmp_path.glob("*.part"))


def test_trigger_with_a_path_uploads_multipart(tmp_path: Path) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("hello file")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client_for(handler).runs.trigger("demo", "wf", {"doc": doc, "n": 2, "s": "t"})
    body = seen[0].content
    assert seen[0].headers["content-type"].startswith("multipart/form-data")
    assert b'name="doc"; filename="doc.txt"' in body and b"hello file" in body
    assert b'name="n"\r\n\r\n2' in body and b'name="s"\r\n\r\nt' in body


def test_trigger_of_a_failing_run_returns_the_failed_run() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                409,
                json={
                    "error": "run_failed",
                    "detail": "ValueError: boom",
                    "run_id": "r1",
                    "step_id": "count",
                },
            )
        return httpx.Response(
            200, json={"id": "r1", "state": "failed", "failed_step_id": "count", "reason": ""}
        )

    run = client_for(handler).runs.trigger("demo", "wf", {})
    assert run.state == "failed" and run.error == "ValueError: boom"
    assert run.info.failed_step == "count"


def test_trigger_errors_without_a_run_are_raised() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(409, "not_deployed", "workflow wf is not deployed (undeployed)")

    with pytest.raises(ConflictError, match="is not deployed"):
        client_for(handler).runs.trigger("demo", "wf", {})


def test_async_trigger_then_wait() -> None:
    states = iter(["running", "completed"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.url.params["mode"] == "async"
            return httpx.Response(202, json={"run_id": "r1", "state": "pending"})
        state = next(states)
        results = {"words": 2} if state == "completed" else None
        return httpx.Response(200, json={"id": "r1", "state": state, "results": results})

    run = client_for(handler).runs.trigger("demo", "wf", {"text": "a b"}, wait=False)
    assert run.id == "r1" and not run.done
    assert run.wait(10).outputs == {"words": 2}


def test_sync_trigger_that_times_out_is_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                504, json={"error": "timeout", "detail": "did not end", "run_id": "r2"}
            )
        return httpx.Response(200, json={"id": "r2", "state": "running"})

    run = client_for(handler).runs.trigger("demo", "wf", {})
    assert run.id == "r2" and run.state == "running"


def test_run_failure_can_raise() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "id": "r1",
                "state": "failed",
                "failed_step_id": "count",
                "reason": "count: boom",
            },
        )

    run = client_for(handler).runs.show("demo", "r1")
    assert run.wait(1).error == "count: boom" and run.info.failed_step == "count"
    with pytest.raises(RunFailed, match="run r1 failed: count: boom"):
        run.wait(1, raise_on_failure=True)


def test_logs_follow_reads_server_sent_events() -> None:
    stream = (
        b": keep-alive\n\n"
        b'event: log\ndata: {"id": 1, "seq": 1, "step_id": "a", "line": "one"}\n\n'
        b'event: log\ndata: {"id": 2, "seq": 2, "step_id": "b", "line": "two"}\n\n'
        b'event: end\ndata: {"run_id": "r1"}\n\n'
        b'event: log\ndata: {"id": 3, "line": "never"}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/runner/v1/projects/demo/runs/r1/logs/stream"
        assert request.headers["accept"] == "text/event-stream"
        return httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    lines = list(client_for(handler).runs.logs("demo", "r1", follow=True))
    assert [(line.seq, line.step, line.message) for line in lines] == [
        (1, "a", "one"),
        (2, "b", "two"),
    ]


def test_logs_are_read_page_by_page() -> None:
    afters: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        after = int(request.url.params["after_id"])
        afters.append(str(after))
        lines = [
            {"id": i, "line": f"l{i}", "at": "2026-01-01T00:00:00Z"}
            for i in range(after + 1, min(after + 3, 6))
        ]
        return httpx.Response(200, json={"lines": lines})

    lines = list(client_for(handler).runs.logs("demo", "r1", page_size=2))
    assert [line.message for line in lines] == ["l1", "l2", "l3", "l4", "l5"]
    assert afters == ["0", "2", "4"]
    assert lines[0].time is not None


def test_parse_sse_multiline_data() -> None:
    events = list(parse_sse(iter(["id: 4", "data: a", "data: b", "", "data: c"])))
    assert [(e.id, e.data) for e in events] == [("4", "a\nb"), ("4", "c")]  # the id persists


def test_sites_of_a_project() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        site = {"name": "local", "backend_kind": "local", "state_reason": None}
        return httpx.Response(200, json={"sites": [site]})

    sites = client_for(handler).sites.list("demo")
    assert sites[0].name == "local" and sites[0].backend == "local"
    assert paths == ["/runner/v1/projects/demo/sites"]


def test_sites_without_a_project_go_through_the_first_one() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/authorization/v1/projects":
            return httpx.Response(200, json={"projects": [{"id": "p", "name": "first"}]})
        assert request.url.path == "/runner/v1/projects/first/sites"
        return httpx.Response(200, json={"sites": [{"name": "hpc", "backend_kind": "slurm"}]})

    assert [s.backend for s in client_for(handler).sites.list()] == ["slurm"]
    nothing = client_for(lambda r: httpx.Response(200, json={"projects": []}))
    with pytest.raises(RyaxError, match="you belong to none"):
        nothing.sites.list()


def test_step_file_outputs_are_downloadable(tmp_path: Path) -> None:
    counts = {
        "type": "file",
        "name": "counts.tsv",
        "key": "runs/r1/e/counts/counts.tsv",
        "download_url": "/runner/v1/projects/demo/runs/r1/files/runs/r1/e/counts/counts.tsv",
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/runner/v1/projects/demo/runs/r1":
            return httpx.Response(
                200,
                json={
                    "id": "r1",
                    "state": "completed",
                    "results": {"total": 3},
                    "steps": [{"step_id": "count", "outputs": {"total": 3, "counts": counts}}],
                },
            )
        assert request.url.path == counts["download_url"]
        return httpx.Response(200, content=b"a\t3\n")

    run = client_for(handler).runs.show("demo", "r1")
    assert set(run.files) == {"count.counts"}
    assert run.download("count.counts", tmp_path).read_bytes() == b"a\t3\n"
    with pytest.raises(RyaxError, match=r"no file 'total' \(its files: count.counts\)"):
        run.download("total", tmp_path)
