"""The platform the OpenAPI fuzz tests call: authorization, repository, studio and runner in this
process, each app built from its container as its own integration tests do (a fresh database
each, one RabbitMQ vhost, local filestores), served on free loopback ports by an event loop in a
thread of its own (the fuzz tests are synchronous: schemathesis sends with `requests`). A fake
worker (runner/tests/runner_testkit, a real gRPC client), connected with the credential of a site
the admin created, places steps and runs them.

Before the fuzzing, real data is made through the APIs: an admin, a user owning a project, a
repository of examples/actions scanned (and a build), the example actions in the studio's store,
secrets, a workflow started by an HTTP endpoint deployed on the runner, runs (one with a file
input, one still running) ... `FuzzPlatform.ids` names them, so that path parameters get real
ids and calls get past the 404s. The same again in the project of another user
(`FuzzPlatform.foreign_ids`), which the fuzz user must never reach.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
import requests
import yaml
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ACTIONS = REPO / "examples" / "actions"
T = TypeVar("T")

ADMIN = ("admin", "admin password for the fuzz tests")
USER = ("fuzzer", "fuzzer password for the fuzz tests")
EXTRA = ("extra", "extra password for the fuzz tests")
THROWAWAY = ("throwaway", "throwaway password for the fuzz tests")
#: The owner of another project (FOREIGN), whose data the fuzz user must not reach.
STRANGER = ("stranger", "stranger password for the fuzz tests")
PROJECT = "fuzz"
FOREIGN = "foreign"
#: The value of every workflow secret: no answer may show it.
SECRET_VALUE = "the value of a workflow secret, 7c1e9a"
SECRET_KEY = "the fuzz tests' data key, more than 32 characters long"
INTERNAL_TOKEN = "the fuzz tests' internal token, more than 32 characters"
ENDPOINT_WORKFLOW = "fuzz-endpoint"
#: A run whose text is this stays running (the fake worker waits): `cancel` finds it running.
SLOW_TEXT = "stay running"

WORKFLOW_YAML = f"""\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: {ENDPOINT_WORKFLOW}
  description: "HTTP -> uppercase, with an optional file field."
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    position: {{x: 0, y: 0}}
    inputs_values:
      path: /fuzz
      method: POST
      summary: Uppercase a text
    outputs:
    - name: text
      human_name: Text
      help: The text.
      type: string
      origin: body
    - name: doc
      human_name: Document
      help: An optional file.
      type: file
      optional: true
      origin: body
    streams_to: [shout, spare]
  - id: shout
    from: uppercase
    version: "1.0"
    position: {{x: 0, y: 1}}
    inputs_values:
      text:
        reference_value: api.text
    streams_to: []
  - id: spare
    from: uppercase
    version: "1.0"
    position: {{x: 1, y: 1}}
    inputs_values:
      text:
        reference_value: api.text
    streams_to: []
  results:
  - key: upper
    reference_value: shout.upper
"""


def _load_by_path(name: str, path: Path) -> ModuleType:
    # runner/tests is not on sys.path here (one pytest per test folder): load the kit by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---- an event loop in a thread ----------------------------------------------------------------


class LoopThread:
    """Runs coroutines on an event loop of its own thread (the services live there)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---- the platform -------------------------------------------------------------------------------


@dataclass
class FuzzPlatform:
    urls: dict[str, str]
    admin_token: str
    user_token: str
    #: Real ids, by service then path parameter name (see test_openapi_fuzz.real_value).
    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The same for the project of another user (STRANGER), which the fuzz user is not in.
    foreign_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    #: A fresh access token of a user of its own (for logout: it revokes the token it carries).
    fresh_token: Callable[[], str] = lambda: ""
    #: What no answer may contain: the values, by what they are.
    secrets: dict[str, list[str]] = field(default_factory=dict)


def _write_signing_key(path: Path) -> Path:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def _git_repository(path: Path) -> Path:
    """examples/actions as a git repository of its own (what the repository service clones)."""
    shutil.copytree(EXAMPLE_ACTIONS, path)
    env = {
        "PATH": "/usr/bin:/bin",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Fuzz",
        "GIT_AUTHOR_EMAIL": "fuzz@example.org",
        "GIT_COMMITTER_NAME": "Fuzz",
        "GIT_COMMITTER_EMAIL": "fuzz@example.org",
    }
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "actions"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, env=env, capture_output=True)
    return path


def _studio_actions(project_id: str) -> list[Any]:
    """The example actions as the studio's store holds them once built (ActionReady)."""
    from ryax_studio.domain.actions import IO, ActionKind, ActionVersion, IOType, ProjectId

    actions = []
    for meta_file in sorted(EXAMPLE_ACTIONS.glob("*/ryax_metadata.yaml")):
        doc = yaml.safe_load(meta_file.read_text())
        spec = doc["spec"]

        def ios(items: list[dict[str, Any]]) -> tuple[IO, ...]:
            return tuple(
                IO(
                    name=i["name"],
                    type=IOType(i["type"]),
                    human_name=i.get("human_name", i["name"]),
                    help=i.get("help", ""),
                    optional=bool(i.get("optional", False)),
                    enum_values=tuple(i.get("enum_values", ())),
                    has_default="default_value" in i,
                    default=i.get("default_value"),
                )
                for i in items or []
            )

        for version in (str(spec["version"]), "0.9"):  # 0.9: a version the fuzzing may delete
            actions.append(
                ActionVersion(
                    project_id=ProjectId(project_id),
                    action_id=spec["id"],
                    version=version,
                    kind=ActionKind(doc["kind"].lower()),
                    human_name=spec.get("human_name", ""),
                    description=spec.get("description", ""),
                    type=spec.get("type", "python3"),
                    categories=tuple(spec.get("categories", ())),
                    inputs=ios(spec.get("inputs", [])),
                    outputs=ios(spec.get("outputs", [])),
                    artefact_key=f"artefacts/{spec['id']}-{version}.tar.gz",
                    artefact_sha256="ab" * 32,
                    logo=b"\x89PNG\r\n\x1a\n" if spec["id"] == "uppercase" else None,
                    logo_media_type="image/png" if spec["id"] == "uppercase" else "",
                )
            )
    return actions


async def _worker_handler(step_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    text = inputs.get("text")
    if text == SLOW_TEXT:
        await asyncio.sleep(3600)
    return {"upper": str(text).upper()}


class _Api:
    """Plain HTTP calls for the set-up (failing loudly: the set-up must work)."""

    def __init__(self) -> None:
        self.session = requests.Session()

    def call(
        self, method: str, url: str, token: str | None = None, expect: int = 200, **kw: Any
    ) -> Any:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.session.request(method, url, headers=headers, timeout=60, **kw)
        assert response.status_code == expect, (
            f"{method} {url}: {response.status_code} {response.text[:2000]}"
        )
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.json()
        return response.text


def _until(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"the fuzz set-up waited in vain for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def fuzz_platform(
    pg_server_dsn: str, vhost_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzPlatform]:
    from ryax_kit.filestore import FilestoreSettings
    from ryax_kit.settings import Env

    devlib = sys.modules["ryax_devlib"]  # loaded by the root conftest.py
    tmp = tmp_path_factory.mktemp("fuzz")
    databases = {
        s: devlib.create_database(pg_server_dsn) for s in ("authz", "repo", "studio", "run")
    }
    vhost_context = devlib.temporary_vhost(vhost_admin)
    amqp_url: str = vhost_context.__enter__()
    loop = LoopThread()
    runners: list[web.AppRunner] = []
    worker: Any = None
    try:
        from ryax_authorization.app import create_app as authorization_app
        from ryax_authorization.container import Container as AuthorizationContainer
        from ryax_authorization.settings import Settings as AuthorizationSettings
        from ryax_repository.app import create_app as repository_app
        from ryax_repository.container import Container as RepositoryContainer
        from ryax_repository.settings import Settings as RepositorySettings
        from ryax_runner.app import create_app as runner_app
        from ryax_runner.container import Container as RunnerContainer
        from ryax_runner.settings import Settings as RunnerSettings
        from ryax_studio.app import create_app as studio_app
        from ryax_studio.container import Container as StudioContainer
        from ryax_studio.settings import Settings as StudioSettings

        urls: dict[str, str] = {}

        def start(app: web.Application) -> str:
            runner, url = loop.run(_serve(app))
            runners.append(runner)
            return url

        urls["authorization"] = start(
            authorization_app(
                AuthorizationContainer(
                    settings=AuthorizationSettings(
                        database_url=databases["authz"],
                        signing_key_file=_write_signing_key(tmp / "signing-key.pem"),
                        admin_user=ADMIN[0],
                        admin_password=ADMIN[1],
                    )
                )
            )
        )
        urls["repository"] = start(
            repository_app(
                RepositoryContainer(
                    settings=RepositorySettings(
                        database_url=databases["repo"],
                        amqp_url=None,
                        authorization_url=urls["authorization"],
                        secret_key=SECRET_KEY,
                        filestore=FilestoreSettings.read(Env({}), default_dir=tmp / "repo-files"),
                        work_dir=tmp / "repo-work",
                        allow_local=True,
                        git_timeout_seconds=60.0,
                    )
                )
            )
        )
        studio_container = StudioContainer(
            settings=StudioSettings(
                database_url=databases["studio"],
                amqp_url=amqp_url,
                authorization_url=urls["authorization"],
                secret_key=SECRET_KEY,
                authz_cache_seconds=10.0,
                internal_token=INTERNAL_TOKEN,
                # static files of step inputs and file variables: the runner's filestore
                filestore=FilestoreSettings.read(Env({}), default_dir=tmp / "run-files"),
            )
        )
        urls["studio"] = start(studio_app(studio_container, messaging=True))
        grpc_address = f"127.0.0.1:{_free_port()}"
        runner_container = RunnerContainer(
            settings=RunnerSettings(
                database_url=databases["run"],
                amqp_url=amqp_url,
                secret_key=SECRET_KEY,
                grpc_address=grpc_address,
                authorization_url=urls["authorization"],
                studio_url=urls["studio"],
                internal_token=INTERNAL_TOKEN,
                filestore=FilestoreSettings.read(Env({}), default_dir=tmp / "run-files"),
                # A sync call waits for its run at most this long (a 504 after): short, as
                # calls that ask ?timeout= wait it out.
                sync_timeout_seconds=2.0,
                sync_timeout_max_seconds=2.0,
                retry_backoff_seconds=0.05,
            )
        )
        exits: list[tuple[str, int]] = []
        run_app = runner_app(
            runner_container, stop_now=lambda reason, status: exits.append((reason, status))
        )
        urls["runner"] = start(run_app)

        from ryax_runner.app import STARTED

        loop.run(asyncio.wait_for(run_app[STARTED].wait(), 60))
        fake_worker = _load_by_path(
            "ryax_fuzz_fake_worker", REPO / "runner/tests/runner_testkit/fake_worker.py"
        )

        def start_worker(credential: str) -> None:
            nonlocal worker
            worker = fake_worker.FakeWorker(
                grpc_address, handler=_worker_handler, credential=credential
            )
            loop.run(worker.start())

        platform = _make_data(urls, loop, studio_container, tmp, start_worker)
        yield platform
        assert not exits, f"the runner would have exited: {exits}"
    finally:
        if worker is not None:
            loop.run(worker.stop())
        for runner in reversed(runners):
            loop.run(runner.cleanup())
        loop.close()
        vhost_context.__exit__(None, None, None)
        for database in databases.values():
            devlib.drop_database(pg_server_dsn, database.name)


def _make_data(
    urls: dict[str, str],
    loop: LoopThread,
    studio_container: Any,
    tmp: Path,
    start_worker: Callable[[str], None],
) -> FuzzPlatform:
    api = _Api()
    authz = urls["authorization"] + "/authorization/v1"

    def login(user: tuple[str, str]) -> str:
        body = {"username": user[0], "password": user[1]}
        token: str = api.call("POST", f"{authz}/login", json=body)["access_token"]
        return token

    admin = login(ADMIN)
    users = {}
    for name, password in (USER, EXTRA, THROWAWAY, STRANGER):
        users[name] = api.call(
            "POST",
            f"{authz}/users",
            admin,
            201,
            json={"username": name, "password": password},
        )["id"]

    def project(name: str, owner: str) -> str:
        body = {"name": name, "owner_id": users[owner]}
        project_id: str = api.call("POST", f"{authz}/projects", admin, 201, json=body)["id"]
        return project_id

    project_id, foreign_project_id = project(PROJECT, USER[0]), project(FOREIGN, STRANGER[0])
    api.call(
        "PUT",
        f"{authz}/projects/{project_id}/members/{users[EXTRA[0]]}",
        admin,
        json={"role": "viewer"},
    )
    machine = api.call("POST", f"{authz}/tokens", admin, 201, json={"name": "doomed"})
    user, stranger = login(USER), login(STRANGER)

    # -- runner: a site created by the admin, its worker (the fake one) connected with its
    # credential
    site = api.call(
        "POST",
        f"{urls['runner']}/runner/v1/sites",
        admin,
        201,
        json={"name": "site-1", "type": "local"},
    )
    start_worker(site["credential"])
    api.call(
        "POST",
        f"{urls['runner']}/runner/v1/sites",
        admin,
        201,
        json={"name": "spare", "type": "slurm"},
    )

    ids = _project_data(api, urls, loop, studio_container, tmp, user, project_id, "")
    ids["authorization"].update(user=users[EXTRA[0]], token_id=machine["id"])
    ids["runner"]["site"] = "spare"
    foreign = _project_data(
        api, urls, loop, studio_container, tmp, stranger, foreign_project_id, "foreign-"
    )

    def fresh_token() -> str:
        return login(THROWAWAY)

    signing_key = (tmp / "signing-key.pem").read_text()
    secrets = {
        "a password": [p for _, p in (ADMIN, USER, EXTRA, THROWAWAY, STRANGER)],
        "a data key": [SECRET_KEY],
        "the internal token": [INTERNAL_TOKEN],
        "a workflow secret's value": [SECRET_VALUE],
        "the site's credential": [site["credential"]],
        "a machine token": [machine["token"]],
        # The PEM's base64 lines (the whole private key, or a line of it).
        "the token-signing key": [line for line in signing_key.splitlines() if "-----" not in line],
        # Any argon2 hash (how passwords are kept).
        "a password hash": ["$argon2"],
    }
    return FuzzPlatform(
        urls=urls,
        admin_token=admin,
        user_token=user,
        ids=ids,
        foreign_ids=foreign,
        fresh_token=fresh_token,
        secrets=secrets,
    )


def _project_data(
    api: _Api,
    urls: dict[str, str],
    loop: LoopThread,
    studio_container: Any,
    tmp: Path,
    token: str,
    project_id: str,
    prefix: str,
) -> dict[str, dict[str, str]]:
    """A project's data in every service, made by its owner (`token`); object names start with
    `prefix`, so that those of two projects differ. Returns its ids by service."""
    # -- repository: a scanned repository of the example actions, and a build
    repo = f"{urls['repository']}/repository/v1/projects/{project_id}"
    origin = _git_repository(tmp / f"{prefix}actions-origin")
    repository = api.call(
        "POST", f"{repo}/repositories", token, 201, json={"name": "examples", "url": str(origin)}
    )
    doomed_repository = api.call(
        "POST", f"{repo}/repositories", token, 201, json={"name": "doomed", "url": str(origin)}
    )
    scan = api.call("POST", f"{repo}/repositories/{repository['id']}/scan", token)
    assert scan["counts"]["invalid"] == 0, scan
    build = api.call("POST", f"{repo}/actions/uppercase/1.0/build", token, 202)

    # -- studio: the actions in its store, secrets, workflows, a deployment
    for i, action in enumerate(_studio_actions(project_id)):
        loop.run(studio_container.actions().register(f"fuzz-ready-{prefix}{i}", action))
    studio = f"{urls['studio']}/studio/v1/projects/{project_id}"
    for name in ("api-key", "doomed"):
        body = {"name": prefix + name, "value": SECRET_VALUE}
        api.call("POST", f"{studio}/secrets", token, 201, json=body)

    def import_workflow(name: str) -> Any:
        return api.call(
            "POST",
            f"{studio}/workflows/import",
            token,
            201,
            data=WORKFLOW_YAML.encode(),
            params={"name": prefix + name},
            headers={"Content-Type": "application/yaml"},
        )

    workflow = import_workflow(ENDPOINT_WORKFLOW)
    scratch = import_workflow("scratch")
    doomed_workflow = import_workflow("doomed")
    assert workflow["valid"], workflow["problems"]
    deployment = api.call("POST", f"{studio}/workflows/{workflow['id']}/deploy", token, 202)
    snapshot_id = deployment["snapshot_id"]

    # -- runner: the deployment deployed on the fake worker, runs
    runner = f"{urls['runner']}/runner/v1/projects/{project_id}"

    def deployed() -> Any:
        found = api.call("GET", f"{runner}/deployments", token)["deployments"]
        return [d for d in found if d["state"] == "deployed"]

    [runner_deployment] = _until(deployed, "the deployment on the runner")
    endpoint = f"{runner}/endpoints/{workflow['id']}"
    done = api.call(
        "POST",
        endpoint,
        token,
        files={"text": (None, "hello"), "doc": ("notes.txt", b"some notes\n", "text/plain")},
    )
    assert done == {"upper": "HELLO"}, done
    [completed] = api.call("GET", f"{runner}/runs", token)["runs"]
    detail = api.call("GET", f"{runner}/runs/{completed['id']}", token)
    trigger = next(s for s in detail["steps"] if s["is_trigger"])
    file_key = trigger["outputs"]["doc"]["key"]
    slow = api.call(
        "POST", endpoint, token, 202, params={"mode": "async"}, json={"text": SLOW_TEXT}
    )
    return {
        "authorization": {"project": project_id},
        "repository": {
            "project": project_id,
            "repository_id": repository["id"],
            "repository_id:delete": doomed_repository["id"],
            "scan_id": scan["id"],
            "action_id": "uppercase",
            "version": "1.0",
            "action_id:logo": "word-count",  # it has one
            "build_id": build["id"],
        },
        "studio": {
            "project": project_id,
            "action_id": "uppercase",
            "version": "1.0",
            "version:delete": "0.9",
            "name": prefix + "api-key",
            "name:delete": prefix + "doomed",
            "workflow": workflow["id"],
            "workflow:write": scratch["id"],
            "workflow:delete": doomed_workflow["id"],
            "step": "shout",
            "step:delete": "spare",
            "step:outputs": "api",
            "input": "text",
            "from": "api",
            "to": "shout",
            "snapshot": snapshot_id,
        },
        "runner": {
            "project": project_id,
            "deployment_id": runner_deployment["id"],
            "run_id": completed["id"],
            "run_id:cancel": slow["run_id"],
            "workflow_id": workflow["id"],
            "step_id": "shout",
            "key": file_key,
            "endpoint": workflow["id"],
        },
    }
