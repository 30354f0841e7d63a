"""Run the runner in-process (real HTTP, gRPC, PostgreSQL, RabbitMQ) with a fake authorization
service, and build studio events."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from aiohttp import web

from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import Env
from ryax_runner.app import STARTED, create_app
from ryax_runner.container import Container
from ryax_runner.infrastructure.proto import studio_events_pb2 as spb
from ryax_runner.settings import Settings

SECRET = "x" * 40
#: The service credential the runner presents to the (fake) studio.
INTERNAL_TOKEN = "internal-token-" + "i" * 30


# -- fake authorization ------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    user_id: str
    username: str
    projects: dict[str, str]  # project id -> name
    is_admin: bool = False


def fake_authz_app(tokens: dict[str, Member]) -> web.Application:
    async def me(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        member = tokens.get(header.removeprefix("Bearer ").strip())
        if member is None:
            return web.json_response(
                {"error": "unauthenticated", "detail": "bad token"}, status=401
            )
        return web.json_response(
            {
                "id": member.user_id,
                "username": member.username,
                "is_admin": member.is_admin,
                "projects": [],
            }
        )

    async def authorize(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        member = tokens.get(header.removeprefix("Bearer ").strip())
        if member is None:
            return web.json_response(
                {"error": "unauthenticated", "detail": "bad token"}, status=401
            )
        project = request.query["project"]
        for pid, name in member.projects.items():
            if project in (pid, name):
                return web.json_response(
                    {
                        "user_id": member.user_id,
                        "username": member.username,
                        "is_admin": False,
                        "project_id": pid,
                        "project_name": name,
                        "role": "developer",
                    }
                )
        return web.json_response({"error": "forbidden", "detail": "not a member"}, status=403)

    app = web.Application()
    app.router.add_get("/authorization/v1/authorize", authorize)
    app.router.add_get("/authorization/v1/me", me)
    return app


# -- fake studio (its internal route only) ----------------------------------------------------


@dataclass
class FakeStudio:
    """The studio's internal route: deployment id -> {(step id, input): value}."""

    values: dict[str, dict[tuple[str, str], Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (deployment id, auth header)
    #: Answer this status instead (e.g. 503 while "down").
    status: int = 200

    def app(self) -> web.Application:
        async def values(request: web.Request) -> web.Response:
            deployment_id = request.match_info["deployment_id"]
            header = request.headers.get("Authorization", "")
            self.calls.append((deployment_id, header))
            if header != f"Bearer {INTERNAL_TOKEN}":
                return web.json_response({"error": "unauthenticated"}, status=401)
            if self.status != 200:
                return web.json_response({"error": "unavailable"}, status=self.status)
            if deployment_id not in self.values:
                return web.json_response({"error": "not_found"}, status=404)
            return web.json_response(
                {
                    "deployment_id": deployment_id,
                    "values": [
                        {"step_id": s, "input": n, "value": v}
                        for (s, n), v in self.values[deployment_id].items()
                    ],
                }
            )

        app = web.Application()
        app.router.add_get("/studio/internal/v1/deployments/{deployment_id}/values", values)
        return app


#: Credentials issued by `RunningRunner.credential`, by (database URL, site name).
CREDENTIALS: dict[tuple[str, str], str] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def serve(app: web.Application, port: int | None = None) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = port or free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class RunningRunner:
    container: Container
    runner: web.AppRunner
    url: str
    grpc_address: str
    app: web.Application
    #: (reason, exit status) each time the app would have exited the process.
    exits: list[tuple[str, int]] = field(default_factory=list)

    async def started(self, seconds: float = 30.0) -> None:
        """Wait until this runner holds the lease and every part is started."""
        await asyncio.wait_for(self.app[STARTED].wait(), seconds)

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def credential(self, site: str = "site-1", kind: str = "local") -> str:
        """The credential of `site`, created the first time as an admin would (through the
        engine, in-process), recorded before this returns. The same credential for the same
        database across runner restarts."""
        key = (self.container.settings().database_url, site)
        if key not in CREDENTIALS:
            engine = self.container.engine()
            _, CREDENTIALS[key] = engine.create_site(site, kind, "tests")
            await engine.durable()
        return CREDENTIALS[key]


async def start_runner(
    database_url: str,
    amqp_url: str,
    filestore: Path | FilestoreSettings,
    authz_url: str,
    grpc_port: int | None = None,
    wait: bool = True,
    filestore_env: dict[str, str] | None = None,
    **overrides: Any,
) -> RunningRunner:
    """A runner serving HTTP (its filestore: a directory, the settings given, or the directory
    `filestore` unless `filestore_env` has RYAX_S3_* variables for an S3 one); with `wait`, once
    it leads and is started (else at once: it may be waiting for another runner's lease). It
    never exits the process: `exits` tells when it would have."""
    grpc_address = f"127.0.0.1:{grpc_port or free_port()}"
    overrides.setdefault("internal_token", INTERNAL_TOKEN)
    settings = Settings(
        database_url=database_url,
        amqp_url=amqp_url,
        secret_key=SECRET,
        grpc_address=grpc_address,
        authorization_url=authz_url,
        filestore=filestore
        if isinstance(filestore, FilestoreSettings)
        else FilestoreSettings.read(Env(filestore_env or {}), default_dir=filestore),
        **overrides,
    )
    container = Container(settings=settings)
    exits: list[tuple[str, int]] = []
    app = create_app(container, stop_now=lambda reason, status: exits.append((reason, status)))
    runner, url = await serve(app)
    running = RunningRunner(
        container=container,
        runner=runner,
        url=url,
        grpc_address=grpc_address,
        app=app,
        exits=exits,
    )
    if wait:
        await running.started()
    return running


# -- studio events -------------------------------------------------------------------------------


def io(name: str, type_: str = "string", optional: bool = False, default: Any = None) -> spb.IO:
    msg = spb.IO(name=name, type=type_, optional=optional)
    if default is not None:
        msg.default_value = json.dumps(default)
    return msg


def step(
    step_id: str,
    *,
    kind: str = "processor",
    parents: tuple[str, ...] = (),
    inputs: dict[str, Any] | None = None,
    outputs: tuple[str, ...] = ("out",),
    input_types: dict[str, str] | None = None,
    retries: int = 0,
    timeout: float = 0,
    site_name: str = "",
    labels: dict[str, str] | None = None,
) -> spb.Step:
    """`inputs`: name -> ("ref", step, output) | ("secret", name) | ("sensitive",) | static
    value. A secret's (or a sensitive value's) value is not in the event: the fake studio
    serves it (`FakeStudio.values`)."""
    s = spb.Step(
        step_id=step_id,
        action_id=f"action-{step_id}",
        action_version="1.0",
        action_kind=kind,
        parent_step_ids=list(parents),
        artefact_key=f"artefacts/{step_id}.tar.gz",
        artefact_sha256="0" * 64,
    )
    types = input_types or {}
    for name, value in (inputs or {}).items():
        s.inputs.append(io(name, types.get(name, "string")))
        iv = s.input_values.add(input_name=name)
        if isinstance(value, tuple) and value[0] == "ref":
            iv.reference.step_id, iv.reference.output_name = value[1], value[2]
        elif isinstance(value, tuple) and value[0] == "secret":
            iv.secret.name = value[1]
        elif isinstance(value, tuple) and value[0] == "sensitive":
            iv.sensitive.SetInParent()
        else:
            iv.static_json = json.dumps(value)
    for o in outputs:
        s.outputs.append(io(o))
    s.settings.retries, s.settings.timeout_seconds = retries, timeout
    s.settings.site_name = site_name
    for k, v in (labels or {}).items():
        s.settings.labels[k] = v
    return s


def deploy_request(
    steps: list[spb.Step],
    *,
    project_id: str = "proj-a",
    workflow_name: str = "wf",
    http_endpoint: bool = True,
    fields: list[spb.IO] | None = None,
    results: list[tuple[str, str, str]] | None = None,
    deployment_id: str | None = None,
) -> spb.WorkflowDeployRequested:
    snapshot = spb.WorkflowSnapshot(description=f"workflow {workflow_name}")
    snapshot.steps.extend(steps)
    snapshot.trigger.step_id = steps[0].step_id
    snapshot.trigger.http_endpoint = http_endpoint
    snapshot.trigger.fields.extend(fields or [])
    for key, step_id, output in results or []:
        snapshot.results.add(key=key, step_id=step_id, output_name=output)
    return spb.WorkflowDeployRequested(
        event_id=str(uuid.uuid4()),
        deployment_id=deployment_id or str(uuid.uuid4()),
        project_id=project_id,
        workflow_id=f"wfid-{workflow_name}",
        workflow_name=workflow_name,
        snapshot_id=str(uuid.uuid4()),
        snapshot=snapshot,
        requested_by="alice",
    )


async def publish(amqp_url: str, message: Any, message_id: str | None = None) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            "ryax.studio", aio_pika.ExchangeType.TOPIC, durable=True
        )
        name = type(message).DESCRIPTOR.name
        await exchange.publish(
            aio_pika.Message(
                body=message.SerializeToString(),
                message_id=message_id or message.event_id,
                type=name,
            ),
            routing_key=name,
        )
    finally:
        await connection.close()
