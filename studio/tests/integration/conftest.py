"""Integration fixtures: the studio app on a fresh PostgreSQL database (and RabbitMQ vhost),
behind a fake authorization service that speaks the real contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ryax_studio.app import create_app
from ryax_studio.container import Container
from ryax_studio.domain.actions import IO, ActionKind, ActionVersion, IOType, ProjectId
from ryax_studio.settings import Settings

SECRET_KEY = "an integration test key of more than 32 characters"
INTERNAL_TOKEN = "the internal token shared with the runner, 32+ chars"


@pytest.fixture
def db_url(fresh_database: str) -> str:
    return fresh_database


@pytest.fixture
def amqp_url(fresh_vhost: str) -> str:
    return fresh_vhost


# ---- a fake authorization service --------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    user_id: str
    username: str
    project_id: str
    project_name: str
    role: str  # owner, developer, viewer


#: token -> membership. Projects: "proj-a" (id pa-id) and "proj-b" (id pb-id).
MEMBERS = {
    "token-a": Member("u-alice", "alice", "pa-id", "proj-a", "developer"),
    "token-b": Member("u-bob", "bob", "pb-id", "proj-b", "developer"),
    "viewer-a": Member("u-vera", "vera", "pa-id", "proj-a", "viewer"),
}
RANK = {"viewer": 1, "developer": 2, "owner": 3}
NEEDED = {"read": 1, "write": 2, "manage": 3}


@dataclass
class FakeAuthz:
    url: str
    calls: list[tuple[str, str, str]]


@pytest.fixture
async def fake_authz() -> AsyncIterator[FakeAuthz]:
    calls: list[tuple[str, str, str]] = []

    async def authorize(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        project = request.query.get("project", "")
        operation = request.query.get("operation", "read")
        calls.append((token, project, operation))
        member = MEMBERS.get(token)
        if member is None:
            return web.json_response(
                {"error": "unauthenticated", "detail": "invalid token"}, status=401
            )
        if project not in (member.project_id, member.project_name):
            return web.json_response(
                {"error": "forbidden", "detail": f"no access to project {project}"}, status=403
            )
        if RANK[member.role] < NEEDED[operation]:
            return web.json_response({"error": "forbidden", "detail": "role too low"}, status=403)
        return web.json_response(
            {
                "user_id": member.user_id,
                "username": member.username,
                "is_admin": False,
                "project_id": member.project_id,
                "project_name": member.project_name,
                "role": member.role,
            }
        )

    app = web.Application()
    app.router.add_get("/authorization/v1/authorize", authorize)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield FakeAuthz(url=str(server.make_url("")).rstrip("/"), calls=calls)
    await server.close()


# ---- the studio --------------------------------------------------------------------------------
@dataclass
class Studio:
    client: TestClient[Any, Any]
    container: Container

    def headers(self, token: str = "token-a") -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, token: str = "token-a", **kw: Any) -> Any:
        headers = {**self.headers(token), **kw.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kw)


def make_settings(db_url: str, authz_url: str, amqp_url: str = "amqp://unused/") -> Settings:
    return Settings(
        database_url=db_url,
        amqp_url=amqp_url,
        authorization_url=authz_url,
        secret_key=SECRET_KEY,
        authz_cache_seconds=0.0,
        outbox_retention_seconds=300,
        internal_token=INTERNAL_TOKEN,
    )


async def start_studio(settings: Settings, messaging: bool) -> Studio:
    container = Container(settings=settings)
    app = create_app(container, messaging=messaging)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return Studio(client=client, container=container)


@pytest.fixture
async def studio(db_url: str, fake_authz: FakeAuthz) -> AsyncIterator[Studio]:
    """The HTTP API on a fresh database, without RabbitMQ (outbox rows stay in the table)."""
    s = await start_studio(make_settings(db_url, fake_authz.url), messaging=False)
    yield s
    await s.client.close()


@pytest.fixture
async def live(db_url: str, amqp_url: str, fake_authz: FakeAuthz) -> AsyncIterator[Studio]:
    """The whole studio: HTTP, the consumer and the outbox relay, on a vhost of its own."""
    s = await start_studio(make_settings(db_url, fake_authz.url, amqp_url), messaging=True)
    yield s
    await s.client.close()


def _io(name: str, type_: IOType = IOType.STRING, **kw: Any) -> IO:
    kw.setdefault("human_name", name.title())
    kw.setdefault("help", f"the {name}")
    return IO(name=name, type=type_, **kw)


def example_actions(project: str) -> list[ActionVersion]:
    """The actions of examples/actions, as ActionReady would describe them."""
    p = ProjectId(project)

    def a(action_id: str, kind: ActionKind, inputs: list[IO], outputs: list[IO]) -> ActionVersion:
        return ActionVersion(
            project_id=p,
            action_id=action_id,
            version="1.0",
            kind=kind,
            human_name=action_id.replace("-", " ").title(),
            type="python3",
            categories=("Text",),
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            artefact_key=f"artefacts/{action_id}.tar.gz",
            artefact_sha256="cd" * 32,
        )

    return [
        a(
            "timer",
            ActionKind.TRIGGER,
            [
                _io("interval", IOType.INTEGER, has_default=True, default=60),
                _io("max_runs", IOType.INTEGER, has_default=True, default=0),
            ],
            [_io("time")],
        ),
        a(
            "make-report",
            ActionKind.PROCESSOR,
            [_io("text"), _io("title", has_default=True, default="Report")],
            [_io("report", IOType.FILE)],
        ),
        a(
            "word-count",
            ActionKind.PROCESSOR,
            [_io("document", IOType.FILE)],
            [_io("counts", IOType.FILE), _io("total", IOType.INTEGER)],
        ),
        a("uppercase", ActionKind.PROCESSOR, [_io("text")], [_io("upper")]),
        a("slugify-text", ActionKind.PROCESSOR, [_io("text")], [_io("slug")]),
        a(
            "concat",
            ActionKind.PROCESSOR,
            [_io("left"), _io("right"), _io("separator", has_default=True, default=" ")],
            [_io("text")],
        ),
        a(
            "fail-on-purpose",
            ActionKind.PROCESSOR,
            [
                _io("message", has_default=True, default="failing on purpose"),
                _io("code", IOType.INTEGER, has_default=True, default=422),
            ],
            [],
        ),
        a(
            "print-publisher",
            ActionKind.PUBLISHER,
            [
                _io("text", optional=True),
                _io("total", IOType.INTEGER, optional=True),
                _io("report", IOType.FILE, optional=True),
            ],
            [],
        ),
        a("vault", ActionKind.PROCESSOR, [_io("password", IOType.PASSWORD)], [_io("ok")]),
    ]


@pytest.fixture
def fill_store() -> Callable[[Studio, str], Any]:
    async def fill(studio: Studio, project: str = "pa-id") -> None:
        for i, action in enumerate(example_actions(project)):
            await studio.container.actions().register(f"ready-{project}-{i}", action)

    return fill
