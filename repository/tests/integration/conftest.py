from __future__ import annotations

import os
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ryax_kit.database import ensure_database, migrate
from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import Env
from ryax_repository.app import create_app
from ryax_repository.container import Container
from ryax_repository.infrastructure.database import MIGRATIONS
from ryax_repository.settings import Settings

SECRET = "integration-tests-secret-key-0123456789"


@pytest.fixture
def db_url(fresh_database: str) -> str:
    return fresh_database


@pytest.fixture
def amqp_url(fresh_vhost: str) -> str:
    return fresh_vhost


# ---- a repository service wired on the real database ---------------------------------------


@pytest.fixture
def make_settings(db_url: str, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": db_url,
            "amqp_url": None,
            "secret_key": SECRET,
            "filestore": FilestoreSettings.read(Env({}), default_dir=tmp_path / "filestore"),
            "work_dir": tmp_path / "work",
            "allow_local": True,
            "git_timeout_seconds": 60.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def container(make_settings: Callable[..., Settings]) -> AsyncIterator[Container]:
    """Use cases on a migrated database, local filestore, real git; no broker."""
    settings = make_settings()
    await ensure_database(settings.database_url)
    await migrate(settings.database_url, MIGRATIONS)
    c = Container(settings=settings)
    yield c
    await c.engine().dispose()


# ---- building git repositories and action folders ------------------------------------------


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x00\x80\xff" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def metadata(
    action_id: str,
    version: str = "1.0",
    kind: str = "Processor",
    logo: str | None = None,
    extra: str = "",
) -> str:
    logo_line = f"  logo: {logo}\n" if logo else ""
    return (
        'apiVersion: "ryax.tech/v2.0"\n'
        f"kind: {kind}\n"
        "spec:\n"
        f"  id: {action_id}\n"
        f'  version: "{version}"\n'
        f"  human_name: Action {action_id}\n"
        "  type: python3\n"
        f"{logo_line}"
        "  inputs:\n"
        "    - name: text\n"
        "      human_name: Text\n"
        "      help: the text\n"
        "      type: string\n"
        "  outputs:\n"
        "    - name: result\n"
        "      human_name: Result\n"
        "      help: the result\n"
        "      type: string\n"
        f"{extra}"
    )


HANDLER = "def handle(request):\n    return {'result': request['text']}\n"
RUN = "async def run(service, input_values):\n    yield {}\n"


def action_files(
    action_id: str,
    version: str = "1.0",
    kind: str = "Processor",
    handler: str | None = None,
    logo: bytes | None = None,
) -> dict[str, bytes]:
    files = {
        "ryax_metadata.yaml": metadata(
            action_id, version, kind, "logo.png" if logo else None
        ).encode()
    }
    if kind == "Trigger":
        files["ryax_run.py"] = (handler or RUN).encode()
    else:
        files["ryax_handler.py"] = (handler or HANDLER).encode()
    if logo:
        files["logo.png"] = logo
    return files


class GitRepo:
    """A real git repository on disk, driven with the git CLI like a user would."""

    ENV = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", branch)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.path), *args],
            check=True,
            env=self.ENV,
            capture_output=True,
            text=True,
        ).stdout

    def write(self, relative: str, content: bytes | str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def add_action(self, folder: str, files: dict[str, bytes]) -> None:
        for name, content in files.items():
            self.write(f"{folder}/{name}", content)

    def symlink(self, relative: str, target: str) -> None:
        link = self.path / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def helpers() -> Any:
    class Helpers:
        GitRepo = GitRepo
        png = staticmethod(png)
        metadata = staticmethod(metadata)
        action_files = staticmethod(action_files)

    return Helpers


# ---- the authorization contract, played by a fake authorization service ---------------------

PROJECTS = {
    "project-a": "00000000-0000-4000-8000-00000000000a",
    "project-b": "00000000-0000-4000-8000-00000000000b",
}
#: token -> (user, {project name: role})
USERS = {
    "token-alice": ("alice", {"project-a": "developer"}),
    "token-victor": ("victor", {"project-a": "viewer"}),
    "token-bob": ("bob", {"project-b": "developer"}),
}
RANK = {"viewer": 1, "developer": 2, "owner": 3}
NEEDED = {"read": 1, "write": 2, "manage": 3}


def fake_authorization_app() -> web.Application:
    """Answers GET /authorization/v1/authorize like the authorization service does."""

    async def authorize(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if token not in USERS:
            return web.json_response(
                {"error": "unauthenticated", "detail": "invalid token"}, status=401
            )
        user, roles = USERS[token]
        project = request.query.get("project", "")
        name = next((n for n, i in PROJECTS.items() if project in (n, i)), None)
        role = roles.get(name) if name else None
        operation = request.query.get("operation", "read")
        if name is None or role is None or RANK[role] < NEEDED[operation]:
            return web.json_response(
                {"error": "forbidden", "detail": f"no access to {project}"}, status=403
            )
        return web.json_response(
            {
                "user_id": f"id-{user}",
                "username": user,
                "is_admin": False,
                "project_id": PROJECTS[name],
                "project_name": name,
                "role": role,
            }
        )

    app = web.Application()
    app.router.add_get("/authorization/v1/authorize", authorize)
    return app


@pytest.fixture
async def authorization_url() -> AsyncIterator[str]:
    server = TestServer(fake_authorization_app(), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def make_client(
    make_settings: Callable[..., Settings], authorization_url: str
) -> AsyncIterator[Callable[..., Any]]:
    """Start the real service app (migrations included) on a test server; closed after."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(**overrides: Any) -> TestClient[web.Request, web.Application]:
        settings = make_settings(authorization_url=authorization_url, **overrides)
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(create_app(Container(settings=settings)), host="127.0.0.1")
        )
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def messaging_client(
    make_settings: Callable[..., Settings], authorization_url: str, amqp_url: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The service with its broker on a vhost of the test's own (closed before the vhost goes)."""
    settings = make_settings(authorization_url=authorization_url, amqp_url=amqp_url)
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(create_app(Container(settings=settings)), host="127.0.0.1")
    )
    await client.start_server()
    yield client
    await client.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def as_user() -> Callable[[str], dict[str, str]]:
    return lambda user: auth(f"token-{user}")
