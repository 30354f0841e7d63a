"""The studio's security suite (real PostgreSQL and RabbitMQ):
- a deployed secret and a password-type value are in no event (the message on the broker, as a
  consumer or a dead-letter queue would hold it), no outbox row, no row in clear, no log line,
  no API answer: the runner fetches them on the internal route, which only the service token
  opens and which refuses what came through the gateway;
- static values of password-type inputs are sealed at rest, shown as `***` (exports too), and
  `***` given back keeps the value;
- bodies over their route's limit refused with 413; the size of a workflow capped (inputs per
  step, a static value, the whole definition), each a clear 4xx."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from ryax_studio.domain.actions import IO, ActionKind, ActionVersion, IOType, ProjectId
from ryax_studio.domain.workflow import StaticValue, WorkflowId
from ryax_studio.infrastructure.database.tables import metadata
from ryax_studio.infrastructure.proto import studio_events_pb2 as pb

pytestmark = pytest.mark.integration

A = "/studio/v1/projects/proj-a"
SECRET_VALUE = "s3cr3t-vault-key-91ab"
PASSWORD_DEFAULT = "default-login-pw-5511"
PASSWORD_STATIC = "typed-in-the-editor-pw-73"


def login_action() -> ActionVersion:
    """An action whose password input has a default (a password-type value without a secret)."""
    return ActionVersion(
        project_id=ProjectId("pa-id"),
        action_id="login",
        version="1.0",
        kind=ActionKind.PROCESSOR,
        human_name="Login",
        type="python3",
        inputs=(
            IO(name="user", type=IOType.STRING),
            IO(name="password", type=IOType.PASSWORD, has_default=True, default=PASSWORD_DEFAULT),
        ),
        outputs=(IO(name="ok", type=IOType.STRING),),
        artefact_key="artefacts/login.tar.gz",
        artefact_sha256="ef" * 32,
    )


async def ok(response: Any, status: int) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


async def build(studio: Any, fill_store: Callable[..., Any]) -> str:
    """api (http endpoint) -> store (vault: a secret), login (its password's default)."""
    await fill_store(studio)
    await studio.container.actions().register("ready-login", login_action())
    await ok(
        await studio.call(
            "POST", f"{A}/secrets", json={"name": "vault_key", "value": SECRET_VALUE}
        ),
        201,
    )
    wf = await ok(await studio.call("POST", f"{A}/workflows", json={"name": "vault"}), 201)
    w = f"{A}/workflows/{wf['id']}"
    for step in (
        {"id": "api", "action_id": "httpapijson", "version": "1.0"},
        {"id": "store", "action_id": "vault", "version": "1.0"},
        {"id": "login", "action_id": "login", "version": "1.0"},
    ):
        await ok(await studio.call("POST", f"{w}/steps", json=step), 201)
    for target in ("store", "login"):
        await ok(await studio.call("POST", f"{w}/links", json={"from": "api", "to": target}), 201)
    for step, name, value in (
        ("api", "path", {"static": "/vault"}),
        ("api", "summary", {"static": "Vault"}),
        ("store", "password", {"secret": "vault_key"}),
        ("login", "user", {"static": "bob"}),
    ):
        await ok(await studio.call("PUT", f"{w}/steps/{step}/inputs/{name}", json=value), 200)
    view = await ok(await studio.call("GET", w), 200)
    assert view["valid"], view["problems"]
    return w


async def database_text(db_url: str, skip: tuple[str, ...] = ()) -> str:
    engine = create_async_engine(db_url)
    parts = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in skip:
                continue
            for row in (await conn.execute(sa.select(table))).all():
                parts.append(repr(tuple(row)))
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).decode("utf-8", "replace"))
    await engine.dispose()
    return "\n".join(parts)


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield await connection.channel()
    await connection.close()


async def test_security_a_deployed_secret_is_in_no_event_row_log_or_answer(
    live: Any,
    channel: Any,
    fill_store: Callable[..., Any],
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    exchange = await channel.declare_exchange(
        "ryax.studio", aio_pika.ExchangeType.TOPIC, durable=True
    )
    copies = await channel.declare_queue(exclusive=True)
    await copies.bind(exchange, routing_key="#")
    w = await build(live, fill_store)
    deployment = await ok(await live.call("POST", f"{w}/deploy"), 202)

    message = None
    for _ in range(200):
        message = await copies.get(no_ack=True, fail=False)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None, "the deploy request was not published"
    request = pb.WorkflowDeployRequested.FromString(message.body)
    steps = {s.step_id: s for s in request.snapshot.steps}
    [secret] = steps["store"].input_values
    assert secret.WhichOneof("source") == "secret" and secret.secret.name == "vault_key"
    login = {v.input_name: v for v in steps["login"].input_values}
    assert login["password"].WhichOneof("source") == "sensitive"
    assert not steps["login"].inputs[1].HasField("default_value")  # the password's default

    snapshot = await ok(await live.call("GET", f"{A}/snapshots/{deployment['snapshot_id']}"), 200)
    exported = await (
        await live.call("GET", f"{A}/snapshots/{deployment['snapshot_id']}/export")
    ).text()
    assert snapshot["steps"][2]["inputs"]["password"]["static"] == "***"
    action = await ok(await live.call("GET", f"{A}/actions/login/versions/1.0"), 200)
    assert action["inputs"][1]["default"] == "***"
    answers = str(snapshot) + exported + str(action) + str(await ok(await live.call("GET", w), 200))

    # Published: the outbox row is there until purged; no row holds a value in clear (the
    # action's own default is in its metadata, the `actions` table, like its code).
    stored = await database_text(db_url, skip=("actions",))
    assert "WorkflowDeployRequested" in stored
    for value in (SECRET_VALUE, PASSWORD_DEFAULT):
        assert value.encode() not in message.body
        assert value not in stored, f"{value} in the studio's database"
        assert value not in caplog.text, f"{value} in the logs"
        assert value not in answers, f"{value} in an API answer"

    # The runner's route gives them, to the service token only.
    route = f"/studio/internal/v1/deployments/{deployment['id']}/values"
    token = live.container.settings().internal_token
    values = await ok(
        await live.client.get(route, headers={"Authorization": f"Bearer {token}"}), 200
    )
    assert sorted((v["step_id"], v["input"], v["value"]) for v in values["values"]) == [
        ("login", "password", PASSWORD_DEFAULT),
        ("store", "password", SECRET_VALUE),
    ]
    assert SECRET_VALUE not in caplog.text  # giving them logs the count only


async def test_security_the_internal_route_opens_to_the_service_token_only(
    studio: Any, fill_store: Callable[..., Any], db_url: str, fake_authz: Any
) -> None:
    w = await build(studio, fill_store)
    deployment = await ok(await studio.call("POST", f"{w}/deploy"), 202)
    route = f"/studio/internal/v1/deployments/{deployment['id']}/values"
    token = studio.container.settings().internal_token
    good = {"Authorization": f"Bearer {token}"}
    c = studio.client
    assert (await c.get(route)).status == 401
    assert (await c.get(route, headers={"Authorization": "Bearer token-a"})).status == 401
    assert (await c.get(route, headers={"Authorization": f"Bearer {token}x"})).status == 401
    # A user's token is no service credential, and the gateway's requests are not answered.
    for proxied in ("X-Forwarded-For", "Forwarded", "X-Real-Ip"):
        answer = await c.get(route, headers={**good, proxied: "203.0.113.7"})
        assert answer.status == 404, proxied
    unknown = "/studio/internal/v1/deployments/00000000-0000-0000-0000-000000000000/values"
    assert (await c.get(unknown, headers=good)).status == 404
    assert (await c.get(route, headers=good)).status == 200
    # Not in the OpenAPI document.
    document = await ok(await c.get("/studio/openapi.json"), 200)
    assert not [p for p in document["paths"] if "internal" in p]
    # Undeployed: no longer given.
    await ok(await studio.call("POST", f"{w}/undeploy"), 202)
    await studio.container.deployments().apply_state(
        "m-undeployed",
        deployment_id=deployment["id"],
        project_id="pa-id",
        state="undeployed",
        reason="",
        seq=9,
        at=None,
    )
    assert (await c.get(route, headers=good)).status == 409


async def test_security_without_a_service_token_the_internal_route_is_closed(
    db_url: str, fake_authz: Any
) -> None:
    from dataclasses import replace

    from .conftest import make_settings, start_studio  # type: ignore[import-not-found]

    settings = replace(make_settings(db_url, fake_authz.url), internal_token="")
    s = await start_studio(settings, messaging=False)
    try:
        route = "/studio/internal/v1/deployments/x/values"
        answer = await s.client.get(route, headers={"Authorization": "Bearer "})
        assert answer.status == 503
    finally:
        await s.client.close()


async def test_security_password_values_are_sealed_at_rest_and_masked(
    studio: Any, fill_store: Callable[..., Any], db_url: str
) -> None:
    w = await build(studio, fill_store)
    set_password = f"{w}/steps/login/inputs/password"
    view = await ok(await studio.call("PUT", set_password, json={"static": PASSWORD_STATIC}), 200)
    login = next(s for s in view["steps"] if s["id"] == "login")
    assert login["inputs"]["password"]["static"] == "***"
    exported = await (await studio.call("GET", f"{w}/export")).text()
    assert "password: '***'" in exported and PASSWORD_STATIC not in exported
    assert PASSWORD_STATIC not in await database_text(db_url)

    async def stored() -> Any:
        shown = await studio.container.workflows().show(ProjectId("pa-id"), WorkflowId(view["id"]))
        step = next(s for s in shown.workflow.steps if s.id == "login")
        return step.inputs["password"]

    assert await stored() == StaticValue(value=PASSWORD_STATIC, sensitive=True)
    # What is shown, given back, keeps the value: an input set to `***`, a document re-imported.
    await ok(await studio.call("PUT", set_password, json={"static": "***"}), 200)
    await ok(
        await studio.call(
            "PUT",
            f"{w}/yaml",
            data=exported,
            params={"draft": "true"},  # a static password is a problem, kept in a draft
            headers={"Content-Type": "application/yaml"},
        ),
        200,
    )
    assert await stored() == StaticValue(value=PASSWORD_STATIC, sensitive=True)
    assert PASSWORD_STATIC not in await database_text(db_url)


async def test_security_oversize_bodies_and_workflows_are_refused(
    studio: Any, fill_store: Callable[..., Any]
) -> None:
    await fill_store(studio)
    big = "x" * 300_000
    answer = await studio.call("POST", f"{A}/secrets", json={"name": "big", "value": big})
    body = await ok(answer, 413)
    assert body["error"] == "body_too_large" and "262144 bytes" in body["detail"]
    answer = await studio.call("GET", f"{A}/workflows", data=b"{" + b" " * 300_000 + b"}")
    assert answer.status == 413
    document = b"apiVersion: ryax.tech/v2.0\n#" + b"x" * (1024 * 1024 + 10)
    answer = await studio.call(
        "POST", f"{A}/workflows/import", data=document, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status == 413
    assert (await studio.call("GET", "/healthz", data=b"y" * 300_000)).status == 413

    wf = await ok(await studio.call("POST", f"{A}/workflows", json={"name": "big"}), 201)
    w = f"{A}/workflows/{wf['id']}"
    await ok(
        await studio.call(
            "POST", f"{w}/steps", json={"id": "up", "action_id": "uppercase", "version": "1.0"}
        ),
        201,
    )
    # A static value over 64 KiB.
    answer = await studio.call("PUT", f"{w}/steps/up/inputs/text", json={"static": "y" * 70_000})
    body = await ok(answer, 413)
    assert "65536 bytes a static value may hold" in body["detail"]
    # More than 256 input values on a step.
    for i in range(256):
        await ok(await studio.call("PUT", f"{w}/steps/up/inputs/i{i}", json={"static": i}), 200)
    body = await ok(
        await studio.call("PUT", f"{w}/steps/up/inputs/one_more", json={"static": 1}), 400
    )
    assert "at most 256 input values" in body["detail"]
    # A definition over 4 MiB in all.
    chunk = "z" * 60_000
    status = 200
    for i in range(80):
        answer = await studio.call("PUT", f"{w}/steps/up/inputs/i{i}", json={"static": chunk})
        status = answer.status
        if status != 200:
            body = await answer.json()
            break
    assert status == 413 and "4194304 bytes a workflow may hold" in body["detail"]
