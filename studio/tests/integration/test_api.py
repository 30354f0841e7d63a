"""The HTTP API on the real PostgreSQL, with a fake authorization service."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_studio.infrastructure.api.routes import api
from ryax_studio.infrastructure.proto import studio_events_pb2 as pb

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"
A = "/studio/v1/projects/proj-a"
B = "/studio/v1/projects/proj-b"


async def json_of(response: Any, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


async def import_example(
    studio: Any, name: str, project: str = A, token: str = "token-a", **query: str
) -> Any:
    data = (EXAMPLES / f"{name}.yaml").read_bytes()
    return await studio.call(
        "POST",
        f"{project}/workflows/import",
        token,
        data=data,
        params=query,
        headers={"Content-Type": "application/yaml"},
    )


async def outbox_rows(db_url: str) -> list[Any]:
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT type, routing_key, exchange, event_id, body FROM outbox ORDER BY id"
                )
            )
        ).all()
    await engine.dispose()
    return list(rows)


# ---- operational routes ------------------------------------------------------------------------
async def test_health_ready_metrics_openapi(studio: Any) -> None:
    c = studio.client
    assert (await c.get("/healthz")).status == 200
    assert (await c.get("/studio/readyz")).status == 200
    metrics = await (await c.get("/metrics")).text()
    assert "ryax_http_requests_total" in metrics
    spec = await (await c.get("/studio/openapi.json")).json()
    assert "/studio/v1/projects/{project}/workflows/{workflow}/deploy" in spec["paths"]
    imp = spec["paths"]["/studio/v1/projects/{project}/workflows/import"]["post"]
    assert "application/yaml" in imp["requestBody"]["content"]
    assert "422" in imp["responses"] and "413" in imp["responses"]


# ---- authorization -----------------------------------------------------------------------------
async def test_a_token_is_required_and_a_viewer_cannot_write(studio: Any) -> None:
    response = await studio.client.get(f"{A}/workflows")
    assert response.status == 401
    response = await studio.call("GET", f"{A}/workflows", "bogus")
    assert response.status == 401
    assert (await studio.call("GET", f"{A}/workflows", "viewer-a")).status == 200
    response = await studio.call("POST", f"{A}/workflows", "viewer-a", json={"name": "x"})
    assert response.status == 403
    # The project may be named by id too.
    assert (await studio.call("GET", "/studio/v1/projects/pa-id/workflows")).status == 200


async def test_a_user_of_project_a_gets_nothing_from_project_b(
    studio: Any, fill_store: Any
) -> None:
    """Every project-scoped route, with project B's real ids, answers 403 to a user of A."""
    await fill_store(studio, "pb-id")
    created = await json_of(await import_example(studio, "demo", B, "token-b"), 201)
    deployment = await json_of(
        await studio.call("POST", f"{B}/workflows/{created['id']}/deploy", "token-b"), 202
    )
    await studio.call("POST", f"{B}/secrets", "token-b", json={"name": "k", "value": "v"})
    values = {
        "project": "proj-b",
        "workflow": created["id"],
        "step": "report",
        "input": "title",
        "action_id": "uppercase",
        "version": "1.0",
        "name": "k",
        "snapshot": deployment["snapshot_id"],
        "from": "api",
        "to": "report",
    }
    checked = 0
    for route in api.docs:
        if "{project}" not in route.path:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)
        response = await studio.call(route.method.upper(), path, "token-a", json={})
        assert response.status in (403, 404), (route.method, route.path, response.status)
        checked += 1
    assert checked >= 30
    # Nothing was changed in project B.
    again = await json_of(
        await studio.call("GET", f"{B}/workflows/{created['id']}", "token-b"), 200
    )
    assert again["name"] == "Word count demo" and again["deployment"]["state"] == "requested"


async def test_ids_of_project_b_are_not_found_through_project_a(
    studio: Any, fill_store: Any
) -> None:
    await fill_store(studio, "pb-id")
    created = await json_of(await import_example(studio, "demo", B, "token-b"), 201)
    wid = created["id"]
    for method, path in (
        ("GET", f"{A}/workflows/{wid}"),
        ("DELETE", f"{A}/workflows/{wid}"),
        ("POST", f"{A}/workflows/{wid}/deploy"),
        ("GET", f"{A}/workflows/{wid}/export"),
        ("GET", f"{A}/actions/uppercase/versions/1.0"),
    ):
        assert (await studio.call(method, path)).status == 404, path


# ---- action store ------------------------------------------------------------------------------
async def test_action_store(studio: Any, fill_store: Any) -> None:
    body = await json_of(await studio.call("GET", f"{A}/actions"), 200)
    builtins = ["httpapijson", "postgw", "emitgw", "crongw", "runonce"]
    assert [a["action_id"] for a in body["actions"]] == builtins
    await fill_store(studio)
    body = await json_of(await studio.call("GET", f"{A}/actions", params={"kind": "trigger"}), 200)
    assert [a["action_id"] for a in body["actions"]] == [*builtins, "timer"]
    every = await json_of(await studio.call("GET", f"{A}/actions/emitgw/versions/1.2"), 200)
    assert every["builtin"] and [(i["name"], i["type"]) for i in every["inputs"]] == [
        ("time", "integer")
    ]
    cron = await json_of(await studio.call("GET", f"{A}/actions/crongw/versions/1.0"), 200)
    assert [i["name"] for i in cron["inputs"]] == ["cron", "timezone"]
    assert (await studio.call("DELETE", f"{A}/actions/emitgw/versions/1.2")).status == 409
    body = await json_of(await studio.call("GET", f"{A}/actions", params={"q": "report"}), 200)
    assert [a["action_id"] for a in body["actions"]] == ["make-report"]
    body = await json_of(await studio.call("GET", f"{A}/actions", params={"category": "text"}), 200)
    assert "uppercase" in [a["action_id"] for a in body["actions"]]
    assert (await studio.call("GET", f"{A}/actions", params={"kind": "x"})).status == 400
    one = await json_of(await studio.call("GET", f"{A}/actions/word-count/versions/1.0"), 200)
    assert one["inputs"][0]["type"] == "file" and one["artefact_key"].startswith("artefacts/")
    http = await json_of(await studio.call("GET", f"{A}/actions/httpapijson/versions/1.0"), 200)
    assert http["builtin"] and http["dynamic_outputs"]
    assert [i["name"] for i in http["inputs"]] == [
        "path",
        "method",
        "summary",
        "description",
        "tags",
        "success_code",
        "timeout",
    ]
    versions = await json_of(await studio.call("GET", f"{A}/actions/uppercase"), 200)
    assert [a["version"] for a in versions["actions"]] == ["1.0"]
    assert (await studio.call("DELETE", f"{A}/actions/httpapijson/versions/1.0")).status == 409
    assert (await studio.call("DELETE", f"{A}/actions/concat/versions/1.0")).status == 204
    assert (await studio.call("GET", f"{A}/actions/concat/versions/1.0")).status == 404


async def test_a_version_used_by_a_deployed_workflow_cannot_be_deleted(
    studio: Any, fill_store: Any
) -> None:
    await fill_store(studio)
    created = await json_of(await import_example(studio, "timer-to-log"), 201)
    await json_of(await studio.call("POST", f"{A}/workflows/{created['id']}/deploy"), 202)
    response = await studio.call("DELETE", f"{A}/actions/uppercase/versions/1.0")
    body = await json_of(response, 409)
    assert "Shouting clock" in body["detail"]


# ---- secrets -----------------------------------------------------------------------------------
async def test_secrets_are_never_returned_and_stored_encrypted(studio: Any, db_url: str) -> None:
    created = await json_of(
        await studio.call("POST", f"{A}/secrets", json={"name": "db_pass", "value": "hunter2!"}),
        201,
    )
    assert set(created) == {"name", "created_at", "updated_at"}
    assert (
        await studio.call("POST", f"{A}/secrets", json={"name": "db_pass", "value": "x"})
    ).status == 409
    listed = await (await studio.call("GET", f"{A}/secrets")).text()
    assert "hunter2" not in listed and "db_pass" in listed
    assert (await studio.call("PUT", f"{A}/secrets/db_pass", json={"value": "new"})).status == 200
    assert (await studio.call("PUT", f"{A}/secrets/other", json={"value": "v"})).status == 201
    assert (
        await studio.call("POST", f"{A}/secrets", json={"name": "bad name", "value": "x"})
    ).status == 400
    engine = create_async_engine(db_url)
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.text("SELECT ciphertext FROM secrets"))).scalars().all()
    await engine.dispose()
    assert stored and all(b"hunter2" not in s and b"new" not in s for s in stored)
    assert (await studio.call("DELETE", f"{A}/secrets/db_pass")).status == 204
    assert (await studio.call("DELETE", f"{A}/secrets/db_pass")).status == 404


async def test_text_no_database_keeps_is_a_400_naming_its_field(studio: Any) -> None:
    """Found by the OpenAPI fuzzing (tests/fuzz): a NUL in a workflow's description reached
    PostgreSQL (which refuses it in text): a 500. And PUT /secrets/{name} answered an
    undocumented 201 when it created the secret."""
    for body, detail in (
        (
            {"name": "w", "description": "a\u0000b"},
            "description: contains a NUL character (U+0000), which cannot be stored",
        ),
        (
            '{"name": "\\ud800"}',
            "name: contains a lone surrogate (U+D800 to U+DFFF), which is not text",
        ),
    ):
        kwargs: dict[str, Any] = (
            {"data": body, "headers": {"Content-Type": "application/json"}}
            if isinstance(body, str)
            else {"json": body}
        )
        problem = await json_of(await studio.call("POST", f"{A}/workflows", **kwargs), 400)
        assert problem == {"error": "invalid_input", "detail": detail}
    document = await json_of(await studio.call("GET", "/studio/openapi.json"), 200)
    put = document["paths"]["/studio/v1/projects/{project}/secrets/{name}"]["put"]
    assert {"200", "201"} <= set(put["responses"])


# ---- building, validating and deploying a workflow ---------------------------------------------
async def test_build_validate_deploy_undeploy(studio: Any, fill_store: Any, db_url: str) -> None:
    await fill_store(studio)
    wf = await json_of(await studio.call("POST", f"{A}/workflows", json={"name": "vault"}), 201)
    w = f"{A}/workflows/{wf['id']}"
    assert wf["valid"] is False and wf["problems"][0]["code"] == "no_trigger"
    for step in (
        {"id": "store", "action_id": "vault", "version": "1.0"},
        {"id": "api", "action_id": "httpapijson", "version": "1.0"},
    ):
        await json_of(await studio.call("POST", f"{w}/steps", json=step), 201)
    assert (
        await studio.call(
            "POST", f"{w}/steps", json={"id": "api", "action_id": "uppercase", "version": "1.0"}
        )
    ).status == 409
    assert (
        await studio.call(
            "POST", f"{w}/steps", json={"id": "x", "action_id": "uppercase", "version": "9"}
        )
    ).status == 404
    assert (
        await studio.call(
            "POST",
            f"{w}/steps",
            json={"id": "x", "action_id": "uppercase", "version": "1.0", "extra": 1},
        )
    ).status == 400
    await json_of(
        await studio.call(
            "PUT",
            f"{w}/steps/api/outputs",
            json={
                "outputs": [
                    {"name": "who", "type": "string", "human_name": "Who", "origin": "body"}
                ]
            },
        ),
        200,
    )
    await json_of(await studio.call("POST", f"{w}/links", json={"from": "api", "to": "store"}), 201)
    assert (
        await studio.call("POST", f"{w}/links", json={"from": "store", "to": "api"})
    ).status == 400  # a cycle
    body = await json_of(await studio.call("GET", f"{w}/errors"), 200)
    assert [(p["code"], p["step_id"], p["input"]) for p in body["problems"]] == [
        ("missing_input", "api", "path"),
        ("missing_input", "api", "summary"),
        ("missing_input", "store", "password"),
    ]
    # A password input takes a secret only.
    view = await json_of(
        await studio.call("PUT", f"{w}/steps/store/inputs/password", json={"static": "plain"}), 200
    )
    assert "password_needs_secret" in [p["code"] for p in view["problems"]]
    view = await json_of(
        await studio.call("PUT", f"{w}/steps/store/inputs/password", json={"secret": "vault_key"}),
        200,
    )
    assert "unknown_secret" in [p["code"] for p in view["problems"]]
    await studio.call("POST", f"{A}/secrets", json={"name": "vault_key", "value": "s3cr3t"})
    assert (
        await studio.call(
            "PUT", f"{w}/steps/store/inputs/password", json={"static": 1, "secret": "x"}
        )
    ).status == 400
    for name, value in (("path", "/store"), ("summary", "Store it")):
        await json_of(
            await studio.call("PUT", f"{w}/steps/api/inputs/{name}", json={"static": value}), 200
        )
    await json_of(
        await studio.call(
            "PUT",
            f"{w}/steps/store/settings",
            json={
                "timeout_seconds": 30,
                "retries": 2,
                "site_name": "hpc",
                "node_pool": "gpu",
                "labels": {"zone": "eu"},
                "resources": {"cpu": 1.5, "memory_bytes": 1073741824},
            },
        ),
        200,
    )
    await json_of(
        await studio.call(
            "PUT",
            f"{w}/results",
            json={"results": [{"key": "ok", "step": "store", "output": "ok"}]},
        ),
        200,
    )
    view = await json_of(await studio.call("GET", w), 200)
    assert view["valid"] is True, view["problems"]
    assert view["steps"][0]["id"] == "api"  # the trigger went first

    deployment = await json_of(await studio.call("POST", f"{w}/deploy"), 202)
    assert deployment["state"] == "requested" and deployment["requested_by"] == "alice"
    again = await json_of(await studio.call("POST", f"{w}/deploy"), 409)
    assert "already deployed" in again["detail"]
    assert (await studio.call("DELETE", w)).status == 409

    [row] = await outbox_rows(db_url)
    assert (row.type, row.routing_key, row.exchange) == (
        "WorkflowDeployRequested",
        "WorkflowDeployRequested",
        "ryax.studio",
    )
    message = pb.WorkflowDeployRequested.FromString(row.body)
    assert message.deployment_id == deployment["id"]
    assert message.snapshot_id == deployment["snapshot_id"]
    assert message.snapshot.trigger.http_endpoint and message.snapshot.trigger.step_id == "api"
    assert message.snapshot.trigger.builtin == "httpapijson"
    assert [f.name for f in message.snapshot.trigger.fields] == ["who"]
    api_step, store = message.snapshot.steps
    assert api_step.artefact_key == "" and store.artefact_key == "artefacts/vault.tar.gz"
    assert list(store.parent_step_ids) == ["api"]
    [password] = store.input_values
    # The secret is named, never carried: the runner fetches its value on the internal route.
    assert password.secret.name == "vault_key" and b"s3cr3t" not in row.body
    internal = f"/studio/internal/v1/deployments/{deployment['id']}/values"
    token = studio.container.settings().internal_token
    answer = await studio.client.get(internal, headers={"Authorization": f"Bearer {token}"})
    assert (await json_of(answer, 200))["values"] == [
        {"step_id": "store", "input": "password", "value": "s3cr3t"}
    ]
    values = {v.input_name: v.static_json for v in api_step.input_values}
    assert values == {
        "path": '"/store"',
        "method": '"POST"',
        "summary": '"Store it"',
        "success_code": '"200"',
        "timeout": "60",
    }
    assert store.settings.retries == 2 and dict(store.settings.labels) == {"zone": "eu"}
    assert store.settings.resources.memory_bytes == 1073741824
    assert [(r.key, r.step_id, r.output_name) for r in message.snapshot.results] == [
        ("ok", "store", "ok")
    ]

    # Editing afterwards never rewrites the deployed snapshot.
    await json_of(
        await studio.call("PUT", f"{w}/steps/api/inputs/summary", json={"static": "changed"}), 200
    )
    snapshot = await json_of(
        await studio.call("GET", f"{A}/snapshots/{deployment['snapshot_id']}"), 200
    )
    assert snapshot["steps"][0]["inputs"]["summary"] == {
        "static": "Store it",
        "secret": None,
        "reference": None,
        "file": None,
    }
    exported = await (
        await studio.call("GET", f"{A}/snapshots/{deployment['snapshot_id']}/export")
    ).text()
    assert "summary: Store it" in exported

    undeploying = await json_of(await studio.call("POST", f"{w}/undeploy"), 202)
    assert undeploying["state"] == "undeploying"
    assert (await studio.call("POST", f"{w}/undeploy")).status == 409
    rows = await outbox_rows(db_url)
    assert [r.type for r in rows] == ["WorkflowDeployRequested", "WorkflowUndeployRequested"]
    history = await json_of(await studio.call("GET", f"{w}/deployments"), 200)
    assert [d["state"] for d in history["deployments"]] == ["undeploying"]


async def test_an_invalid_workflow_is_not_deployed(studio: Any, fill_store: Any) -> None:
    await fill_store(studio)
    wf = await json_of(await import_example(studio, "timer-to-log"), 201)
    await json_of(
        await studio.call("DELETE", f"{A}/workflows/{wf['id']}/steps/shout/inputs/text"), 200
    )
    body = await json_of(await studio.call("POST", f"{A}/workflows/{wf['id']}/deploy"), 422)
    assert body["error"] == "invalid_workflow"
    assert [(p["code"], p["step_id"], p["input"]) for p in body["problems"]] == [
        ("missing_input", "shout", "text")
    ]
    assert (await json_of(await studio.call("GET", f"{A}/workflows/{wf['id']}/snapshots"), 200))[
        "snapshots"
    ] == []


async def test_workflow_crud(studio: Any, fill_store: Any) -> None:
    await fill_store(studio)
    wf = await json_of(await import_example(studio, "demo"), 201)
    w = f"{A}/workflows/{wf['id']}"
    renamed = await json_of(await studio.call("PATCH", w, json={"name": "Renamed"}), 200)
    assert renamed["name"] == "Renamed"
    by_name = await json_of(await studio.call("GET", f"{A}/workflows/Renamed"), 200)
    assert by_name["id"] == wf["id"]
    copy = await json_of(await studio.call("POST", f"{w}/copy", json={"name": "Copy"}), 201)
    assert copy["id"] != wf["id"] and copy["valid"]
    assert (await studio.call("POST", f"{w}/copy", json={"name": "Copy"})).status == 409
    listed = await json_of(await studio.call("GET", f"{A}/workflows"), 200)
    assert [x["name"] for x in listed["workflows"]] == ["Copy", "Renamed"]
    view = await json_of(
        await studio.call(
            "PATCH",
            f"{w}/steps/shout",
            json={"human_name": "Shout", "position": {"x": 5, "y": 6.5}},
        ),
        200,
    )
    shout = next(s for s in view["steps"] if s["id"] == "shout")
    assert shout["human_name"] == "Shout" and shout["position"] == {"x": 5, "y": 6.5}
    view = await json_of(await studio.call("DELETE", f"{w}/links/shout/join"), 200)
    assert "not_connected" not in [p["code"] for p in view["problems"]]
    assert "reference_not_upstream" in [p["code"] for p in view["problems"]]
    view = await json_of(await studio.call("DELETE", f"{w}/steps/shout"), 200)
    assert "shout" not in [s["id"] for s in view["steps"]]
    assert (await studio.call("DELETE", f"{A}/workflows/Copy")).status == 204
    assert (await studio.call("GET", f"{A}/workflows/Copy")).status == 404


# ---- import / export ---------------------------------------------------------------------------
async def test_import_export_round_trip(studio: Any, fill_store: Any) -> None:
    await fill_store(studio)
    for name in ("demo", "http-error", "timer-to-log"):
        created = await json_of(await import_example(studio, name), 201)
        assert created["valid"], created["problems"]
        response = await studio.call("GET", f"{A}/workflows/{created['id']}/export")
        assert response.status == 200 and response.content_type == "application/yaml"
        first = await response.text()
        second_wf = await json_of(
            await studio.call(
                "POST", f"{A}/workflows/import", data=first.encode(), params={"name": "again"}
            ),
            201,
        )
        second = await (await studio.call("GET", f"{A}/workflows/{second_wf['id']}/export")).text()
        assert second == first.replace(f"human_name: {created['name']}", "human_name: again", 1)
        assert second_wf["steps"] == created["steps"]
        await studio.call("DELETE", f"{A}/workflows/{second_wf['id']}")


async def test_replace_a_definition_from_yaml(studio: Any, fill_store: Any) -> None:
    await fill_store(studio)
    wf = await json_of(await import_example(studio, "timer-to-log"), 201)
    data = (EXAMPLES / "demo.yaml").read_bytes()
    view = await json_of(await studio.call("PUT", f"{A}/workflows/{wf['id']}/yaml", data=data), 200)
    assert view["id"] == wf["id"] and len(view["steps"]) == 7


CRON_WORKFLOW = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: Nightly
  functions:
  - id: tick
    from: crongw
    version: "1.0"
    inputs_values:
      cron: "30 2 * * MON-FRI"
      timezone: Europe/Paris
    streams_to: [shout]
  - id: shout
    from: uppercase
    version: "1.0"
    inputs_values:
      text:
        reference_value: tick.scheduled_at
    streams_to: []
"""


async def test_a_cron_workflow_is_checked_at_its_line_and_deploys_as_a_builtin(
    studio: Any, fill_store: Any, db_url: str
) -> None:
    await fill_store(studio)
    bad = CRON_WORKFLOW.replace("30 2 * * MON-FRI", "30 25 * * MON-FRI").replace(
        "Europe/Paris", "Europe/Atlantis"
    )
    body = await json_of(await studio.call("POST", f"{A}/workflows/import", data=bad.encode()), 422)
    lines = bad.splitlines()
    assert [(p["line"], p["code"], p["path"]) for p in body["problems"]] == [
        (
            lines.index('      cron: "30 25 * * MON-FRI"') + 1,
            "invalid_cron",
            "spec.functions[0] (tick).inputs_values.cron",
        ),
        (
            lines.index("      timezone: Europe/Atlantis") + 1,
            "invalid_timezone",
            "spec.functions[0] (tick).inputs_values.timezone",
        ),
    ]
    assert "field 2 (hour) '25': 25 is out of range 0-23" in body["problems"][0]["message"]
    view = await json_of(
        await studio.call("POST", f"{A}/workflows/import", data=CRON_WORKFLOW.encode()), 201
    )
    assert view["valid"] is True, view["problems"]
    await json_of(await studio.call("POST", f"{A}/workflows/{view['id']}/deploy"), 202)
    [row] = await outbox_rows(db_url)
    message = pb.WorkflowDeployRequested.FromString(row.body)
    trigger = message.snapshot.trigger
    assert (trigger.builtin, trigger.http_endpoint, trigger.step_id) == ("crongw", False, "tick")
    assert [f.name for f in trigger.fields] == ["scheduled_at", "late_seconds", "missed"]
    tick = message.snapshot.steps[0]
    assert tick.artefact_key == ""
    assert {v.input_name: v.static_json for v in tick.input_values} == {
        "cron": '"30 2 * * MON-FRI"',
        "timezone": '"Europe/Paris"',
    }


FORM_WORKFLOW = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: Ask
  functions:
  - id: ask
    from: postgw
    version: "1.5"
    inputs_values: {path: /ask, title: Ask me}
    outputs:
    - {name: text, human_name: Text, help: Shouted., type: string}
    - {name: mode, human_name: Mode, help: How., type: enum, enum_values: [loud, quiet]}
    - {name: doc, human_name: Doc, help: A file., type: file, optional: true}
    streams_to: [shout]
  - id: shout
    from: uppercase
    version: "1.0"
    inputs_values: {text: {reference_value: ask.text}}
    streams_to: []
"""


async def test_a_form_workflow_deploys_as_the_builtin_form_with_its_fields(
    studio: Any, fill_store: Any, db_url: str
) -> None:
    await fill_store(studio)
    bad = FORM_WORKFLOW.replace("type: file, optional: true", "type: directory").replace(
        "path: /ask", 'path: "/ask/{id}"'
    )
    body = await json_of(await studio.call("POST", f"{A}/workflows/import", data=bad.encode()), 422)
    found = sorted((p["code"], p["path"]) for p in body["problems"])
    assert found == [
        ("invalid_output", "spec.functions[0] (ask).outputs[2]"),
        ("invalid_path", "spec.functions[0] (ask).inputs_values.path"),
    ], body
    view = await json_of(
        await studio.call("POST", f"{A}/workflows/import", data=FORM_WORKFLOW.encode()), 201
    )
    assert view["valid"] is True, view["problems"]
    await json_of(await studio.call("POST", f"{A}/workflows/{view['id']}/deploy"), 202)
    [row] = await outbox_rows(db_url)
    trigger = pb.WorkflowDeployRequested.FromString(row.body).snapshot.trigger
    assert (trigger.builtin, trigger.http_endpoint, trigger.step_id) == ("postgw", False, "ask")
    assert [(f.name, f.type, list(f.enum_values)) for f in trigger.fields] == [
        ("text", "string", []),
        ("mode", "enum", ["loud", "quiet"]),
        ("doc", "file", []),
    ]
    assert trigger.fields[2].optional and not trigger.fields[1].optional


async def test_import_reports_every_problem_with_its_line_and_saves_nothing(
    studio: Any, fill_store: Any
) -> None:
    await fill_store(studio)
    text = (EXAMPLES / "demo.yaml").read_text()
    text = text.replace("    from: uppercase\n", "    from: uppercase\n    colour: red\n")
    text = text.replace("reference_value: report.report", "reference_value: report.nothing")
    text = text.replace(
        'version: "1.0"\n    position: {x: 1, y: 3}', 'version: "9.9"\n    position: {x: 1, y: 3}'
    )
    body = await json_of(
        await studio.call("POST", f"{A}/workflows/import", data=text.encode()), 422
    )
    lines = text.splitlines()
    found = [(p["line"], p["code"]) for p in body["problems"]]
    assert found == [  # in line order
        (lines.index("      document:") + 1, "unknown_output"),
        (lines.index("    colour: red") + 1, "invalid_document"),
        (lines.index("    from: slugify-text") + 1, "unknown_action"),
    ]
    assert "unknown field 'colour'" in body["problems"][1]["message"]
    assert body["problems"][0]["path"] == "spec.functions[2] (count).inputs_values.document"
    listed = await json_of(await studio.call("GET", f"{A}/workflows"), 200)
    assert listed["workflows"] == []


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"spec: [unclosed", 400, "invalid_yaml"),
        (b"a: &a [1]\nb: *a\n", 400, "invalid_document"),
        (b"- just\n- a list\n", 422, "invalid_workflow"),
        (b"\xff\xfe", 400, "invalid_document"),
    ],
)
async def test_bad_documents_get_a_clear_4xx_fast(
    studio: Any, body: bytes, status: int, error: str
) -> None:
    start = time.perf_counter()
    answer = await json_of(await studio.call("POST", f"{A}/workflows/import", data=body), status)
    assert time.perf_counter() - start < 1.0
    assert answer["error"] == error and answer["problems"][0]["message"]


async def test_a_yaml_bomb_is_refused_fast(studio: Any) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        ref = ",".join([f"*{chr(96 + i)}"] * 9)
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{ref}]")
    start = time.perf_counter()
    body = await json_of(
        await studio.call("POST", f"{A}/workflows/import", data="\n".join(lines).encode()), 400
    )
    assert time.perf_counter() - start < 1.0
    assert "aliases" in body["problems"][0]["message"]


async def test_a_50_mb_body_is_refused_fast(studio: Any) -> None:
    start = time.perf_counter()
    response = await studio.call("POST", f"{A}/workflows/import", data=b"a" * (50 * 2**20))
    assert response.status == 413
    assert time.perf_counter() - start < 1.0
    assert (await response.json())["error"] == "body_too_large"


async def test_ten_thousand_steps_are_refused_fast(studio: Any) -> None:
    doc = (
        'apiVersion: "ryax.tech/v2.0"\nkind: Workflows\nspec:\n  human_name: big\n'
        "  functions:\n"
        + "".join(f'  - {{id: s{i}, from: uppercase, version: "1.0"}}\n' for i in range(10_000))
    )
    assert len(doc) < 2**20
    start = time.perf_counter()
    body = await json_of(await studio.call("POST", f"{A}/workflows/import", data=doc.encode()), 400)
    assert time.perf_counter() - start < 1.0
    assert body["error"] == "too_many_steps"


async def test_unknown_json_fields_are_refused(studio: Any) -> None:
    body = await json_of(
        await studio.call("POST", f"{A}/workflows", json={"name": "x", "owner": "me"}), 400
    )
    assert "owner" in body["detail"]


async def test_the_workflow_list_carries_each_trigger_and_the_categories(
    studio: Any, fill_store: Any
) -> None:
    """One request gives what a dashboard card shows: no workflow definition is read."""
    await fill_store(studio)
    await json_of(await import_example(studio, "demo"), 201)
    await json_of(await import_example(studio, "timer-to-log"), 201)
    await json_of(await studio.call("POST", f"{A}/workflows", json={"name": "empty"}), 201)
    lone = await json_of(await studio.call("POST", f"{A}/workflows", json={"name": "lone"}), 201)
    step = {"id": "shout", "action_id": "uppercase", "version": "1.0"}
    await json_of(await studio.call("POST", f"{A}/workflows/{lone['id']}/steps", json=step), 201)

    listed = await json_of(await studio.call("GET", f"{A}/workflows"), 200)
    by_name = {w["name"]: w for w in listed["workflows"]}
    assert by_name["Word count demo"]["trigger"] == {
        "step_id": "api",
        "action_id": "httpapijson",
        "version": "1.0",
        "name": "HTTP API JSON",
        "kind": "trigger",
        "builtin": True,
    }
    assert by_name["Word count demo"]["categories"] == ["HTTP", "Text", "Trigger"]
    assert by_name["Shouting clock"]["trigger"] == {
        "step_id": "tick",
        "action_id": "timer",
        "version": "1.0",
        "name": "Timer",
        "kind": "trigger",
        "builtin": False,
    }
    assert by_name["Shouting clock"]["categories"] == ["Text"]
    # Without a trigger step (empty, or processors only): null, and the processor's categories.
    assert (by_name["empty"]["trigger"], by_name["empty"]["categories"]) == (None, [])
    assert (by_name["lone"]["trigger"], by_name["lone"]["categories"]) == (None, ["Text"])

    spec = await json_of(await studio.client.get("/studio/openapi.json"), 200)
    summary = spec["components"]["schemas"]["WorkflowSummary"]
    assert {"trigger", "categories"} <= set(summary["required"])
    trigger = spec["components"]["schemas"]["TriggerOut"]
    assert set(trigger["properties"]) == {
        "step_id",
        "action_id",
        "version",
        "name",
        "kind",
        "builtin",
    }
