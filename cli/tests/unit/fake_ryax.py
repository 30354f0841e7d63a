"""An in-process fake of the Ryax gateway (aiohttp on a loopback port, in a thread).

It answers the routes the CLI uses with the shapes the services answer, keeps its state in
dicts, and records every request, so tests drive the real `ryax` command over real HTTP.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import MultipartReader, web

from ryax_studio.domain.errors import InvalidInput
from ryax_studio.domain.hpc import hpc_params

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOW = "2026-01-02T03:04:05+00:00"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    method: str
    path: str
    status: int
    body: Any


@dataclass
class FakeRyax:
    url: str = ""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    builds: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: by deployment id, oldest first
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: project API keys by id (with their value under "key", as no service keeps it)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    sites: list[dict[str, Any]] = field(default_factory=list)
    #: the credential last issued for each site, by site name (the runner keeps a hash only)
    site_credentials: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    #: every JSON answer, to check its shape against the services' OpenAPI
    answers: list[Answer] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    #: static files of inputs: (workflow id, step, input) -> (name, bytes)
    static_files: dict[tuple[str, str, str], tuple[str, bytes]] = field(default_factory=dict)
    #: project variables: (project id, name) -> the studio's answer, plus "secret" / "data"
    variables: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: polls of a build / deployment before it ends
    polls_to_finish: int = 2
    failing_actions: set[str] = field(default_factory=set)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    # ------------------------------------------------------------------ seeding
    def add_user(self, username: str, password: str, *, admin: bool = False) -> str:
        uid = self.new_id("user")
        self.users[username] = {
            "id": uid,
            "username": username,
            "password": password,
            "is_admin": admin,
        }
        return uid

    def add_project(self, name: str, members: dict[str, str]) -> dict[str, Any]:
        project = {"id": self.new_id("proj"), "name": name, "members": dict(members)}
        self.projects[name] = project
        return project

    def token_for(self, username: str) -> str:
        token = f"tok-{username}-{next(self.ids)}"
        self.tokens[token] = username
        return token

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]


def _err(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def build_app(fake: FakeRyax) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A multipart body stays unread: its handler streams it.
        body = b"" if request.content_type.startswith("multipart/") else await request.read()
        fake.requests.append(
            Recorded(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        try:
            response = await handler(request)
        except _Fail as exc:
            document = {"error": exc.error, "detail": exc.detail, **exc.extra}
            return web.json_response(document, status=exc.status)
        if isinstance(response, web.Response) and response.content_type == "application/json":
            assert response.text is not None
            body = json.loads(response.text)
            fake.answers.append(Answer(request.method, request.path, response.status, body))
        return response

    app = web.Application(middlewares=[record])
    r = web.RouteTableDef()

    def caller(request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise _Fail(401, "unauthenticated", "missing Authorization header")
        username = fake.tokens.get(header.removeprefix("Bearer "))
        if username is None:
            key = next(
                (k for k in fake.api_keys.values() if k["key"] == header.removeprefix("Bearer ")),
                None,
            )
            if key is not None and not key["revoked"]:
                raise _Fail(403, "forbidden", "a project API key only calls the user API")
            raise _Fail(401, "unauthenticated", "invalid or expired token")
        return fake.users[username]

    def project_of(request: web.Request, write: bool = False) -> dict[str, Any]:
        user = caller(request)
        ref = request.match_info["project"]
        project = fake.projects.get(ref) or next(
            (p for p in fake.projects.values() if p["id"] == ref), None
        )
        if project is None:
            raise _Fail(404, "not_found", f"project {ref} not found")
        role = project["members"].get(user["username"])
        if role is None and not user["is_admin"]:
            raise _Fail(403, "forbidden", f"you are not a member of project {ref}")
        if write and role == "viewer":
            raise _Fail(403, "forbidden", "viewers cannot change this project")
        return project

    # -------------------------------------------------------------- authorization
    @r.post("/authorization/v1/login")
    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        user = fake.users.get(body.get("username", ""))
        if user is None or user["password"] != body.get("password"):
            return _err(401, "unauthenticated", "invalid credentials")
        return web.json_response(
            {
                "access_token": fake.token_for(user["username"]),
                "token_type": "bearer",
                "expires_at": "2030-01-01T00:00:00+00:00",
                "user": _user(user),
            }
        )

    @r.post("/authorization/v1/logout")
    async def logout(request: web.Request) -> web.Response:
        caller(request)
        fake.tokens.pop(request.headers["Authorization"].removeprefix("Bearer "), None)
        return web.Response(status=204)

    @r.get("/authorization/v1/me")
    async def me(request: web.Request) -> web.Response:
        user = caller(request)
        return web.json_response(
            {
                "id": user["id"],
                "username": user["username"],
                "is_admin": user["is_admin"],
                "projects": _projects_of(fake, user),
            }
        )

    @r.get("/authorization/v1/users")
    async def users(request: web.Request) -> web.Response:
        user = caller(request)
        if not user["is_admin"]:
            return _err(403, "forbidden", "only administrators can list users")
        return web.json_response({"users": [_user(u) for u in fake.users.values()]})

    @r.post("/authorization/v1/users")
    async def create_user(request: web.Request) -> web.Response:
        user = caller(request)
        if not user["is_admin"]:
            return _err(403, "forbidden", "only administrators can create users")
        body = await request.json()
        if body["username"] in fake.users:
            return _err(409, "already_exists", f"user {body['username']} already exists")
        fake.add_user(body["username"], body["password"], admin=body.get("is_admin", False))
        return web.json_response(_user(fake.users[body["username"]]), status=201)

    @r.get("/authorization/v1/projects")
    async def projects(request: web.Request) -> web.Response:
        return web.json_response({"projects": _projects_of(fake, caller(request))})

    @r.post("/authorization/v1/projects")
    async def create_project(request: web.Request) -> web.Response:
        user = caller(request)
        if not user["is_admin"]:
            return _err(403, "forbidden", "only administrators can create projects")
        body = await request.json()
        if body["name"] in fake.projects:
            return _err(409, "already_exists", f"project {body['name']} already exists")
        owner = next(
            (u["username"] for u in fake.users.values() if u["id"] == body.get("owner_id")),
            user["username"],
        )
        project = fake.add_project(body["name"], {owner: "owner"})
        return web.json_response(_project(project, "owner"), status=201)

    @r.get("/authorization/v1/projects/{project}")
    async def get_project(request: web.Request) -> web.Response:
        user = caller(request)
        project = project_of(request)
        return web.json_response(
            {
                **_project(project, project["members"].get(user["username"])),
                "members": [
                    {"user_id": fake.users[n]["id"], "username": n, "role": role}
                    for n, role in project["members"].items()
                ],
            }
        )

    @r.put("/authorization/v1/projects/{project}/members/{user}")
    async def set_member(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        body = await request.json()
        name = request.match_info["user"]
        if name not in fake.users:
            return _err(404, "not_found", f"user {name} not found")
        project["members"][name] = body["role"]
        return web.json_response(_project(project, "owner"))

    # -------------------------------------------------------------- repository
    base = "/repository/v1/projects/{project}"

    @r.post(base + "/repositories")
    async def add_repository(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        body = await request.json()
        if any(
            x["name"] == body["name"] and x["project_id"] == project["id"]
            for x in fake.repositories.values()
        ):
            return _err(409, "already_exists", f"a repository named {body['name']} exists")
        repo = {
            "id": fake.new_id("repo"),
            "project_id": project["id"],
            "name": body["name"],
            "url": body["url"],
            "branch": body.get("branch"),
            "auth": "password" if body.get("password") else "none",
            "created_at": NOW,
            "last_scan": None,
        }
        fake.repositories[repo["id"]] = repo
        return web.json_response(repo, status=201)

    @r.get(base + "/repositories")
    async def list_repositories(request: web.Request) -> web.Response:
        project = project_of(request)
        return web.json_response(
            {
                "repositories": [
                    x for x in fake.repositories.values() if x["project_id"] == project["id"]
                ]
            }
        )

    @r.post(base + "/repositories/{repository_id}/scan")
    async def scan(request: web.Request) -> web.Response:
        project_of(request, write=True)
        repo = fake.repositories.get(request.match_info["repository_id"])
        if repo is None:
            return _err(404, "not_found", "repository not found")
        found = []
        for (action_id, version), action in fake.actions.items():
            found.append(
                {
                    "path": action_id,
                    "status": "new",
                    "action_id": action_id,
                    "version": version,
                    "kind": action["kind"],
                    "source_id": action["id"],
                    "state": action["state"],
                    "sha256": "0" * 64,
                    "recorded_sha256": None,
                    "message": "",
                    "errors": [],
                    "warnings": [],
                }
            )
        repo["last_scan"] = {
            "id": "scan-1",
            "commit": "abc123",
            "branch": "main",
            "finished_at": NOW,
        }
        errors = [
            {
                "file": "broken/ryax_metadata.yaml",
                "line": 3,
                "field": "spec.kind",
                # As the repository writes it: the message starts with its field.
                "message": "spec.kind: must be one of Trigger, Processor, Publisher",
            }
        ]
        return web.json_response(_scan_out("scan-1", repo, found, errors))

    @r.post(base + "/uploads")
    async def upload(request: web.Request) -> web.Response:
        project_of(request, write=True)
        reader = await request.multipart()
        part = await reader.next()
        assert part is not None and not isinstance(part, MultipartReader)
        fake.uploads[part.filename or ""] = await part.read()
        return web.json_response(_scan_out("scan-2", None, [], []))

    @r.get(base + "/actions")
    async def list_actions(request: web.Request) -> web.Response:
        project_of(request)
        return web.json_response({"actions": list(fake.actions.values())})

    @r.get(base + "/actions/{action_id}/{version}")
    async def get_action(request: web.Request) -> web.Response:
        project_of(request)
        key = (request.match_info["action_id"], request.match_info["version"])
        if key not in fake.actions:
            return _err(404, "not_found", f"action {key[0]} {key[1]} not found")
        return web.json_response(fake.actions[key])

    @r.post(base + "/actions/{action_id}/{version}/build")
    async def build(request: web.Request) -> web.Response:
        project_of(request, write=True)
        key = (request.match_info["action_id"], request.match_info["version"])
        action = fake.actions.get(key)
        if action is None:
            return _err(404, "not_found", f"action {key[0]} {key[1]} not found")
        if action["state"] == "building" and request.query.get("force") != "true":
            return _err(409, "conflict", f"{key[0]} {key[1]} is already being built")
        build_id = fake.new_id("build")
        b: dict[str, Any] = {
            "id": build_id,
            "action_id": key[0],
            "version": key[1],
            "state": "requested",
            "requested_at": NOW,
            "finished_at": None,
            "reason": "",
            "log": "",
            "polls": 0,
        }
        fake.builds[build_id] = b
        action["state"] = "building"
        action["last_build"] = {"id": build_id, "state": "requested"}
        return web.json_response(_public(b), status=202)

    @r.get(base + "/builds/{build_id}")
    async def get_build(request: web.Request) -> web.Response:
        project_of(request)
        b = fake.builds.get(request.match_info["build_id"])
        if b is None:
            return _err(404, "not_found", "build not found")
        b["polls"] += 1
        if b["state"] == "requested" and b["polls"] >= fake.polls_to_finish:
            failed = b["action_id"] in fake.failing_actions
            b["state"] = "failed" if failed else "succeeded"
            b["reason"] = "pip install failed: no matching distribution" if failed else ""
            b["log"] = "step 1\nstep 2\nERROR: boom" if failed else "step 1\nstep 2\ndone"
            action = fake.actions[(b["action_id"], b["version"])]
            action["state"] = "build_failed" if failed else "built"
        return web.json_response(_public(b))

    # -------------------------------------------------------------- studio
    sbase = "/studio/v1/projects/{project}"

    @r.get(sbase + "/actions")
    async def store(request: web.Request) -> web.Response:
        project_of(request)
        built = [_store_action(a) for a in fake.actions.values() if a["state"] == "built"]
        return web.json_response({"actions": built})

    def mine(project: dict[str, Any]) -> list[dict[str, Any]]:
        return [w for w in fake.workflows.values() if w["project"] == project["id"]]

    @r.get(sbase + "/workflows")
    async def list_workflows(request: web.Request) -> web.Response:
        project = project_of(request)
        return web.json_response({"workflows": [_summary(fake, w) for w in mine(project)]})

    @r.post(sbase + "/workflows")
    async def create_workflow(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        body = await request.json()
        if any(w["name"] == body["name"] for w in mine(project)):
            return _err(409, "already_exists", f"a workflow named {body['name']} exists")
        wf = _workflow(fake, project["id"], body["name"], body.get("description", ""), [])
        return web.json_response(_detail(fake, wf), status=201)

    def parse_document(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _Fail(400, "invalid_document", f"not YAML: {exc}") from exc
        spec = doc.get("spec") if isinstance(doc, dict) else None
        if not isinstance(spec, dict) or doc.get("kind") != "Workflows":
            raise _Fail(400, "invalid_document", "kind: expected Workflows")
        functions = spec.get("functions") or []
        problems = [
            {
                "code": "unknown_action",
                "message": f"no action {f['from']} {f['version']} in the store",
                "step_id": f["id"],
                "input": None,
                "line": 6 + 5 * i,
                "path": f"spec.functions[{i}] ({f['id']}).from",
            }
            for i, f in enumerate(functions)
            if f["from"] != "httpapijson" and (f["from"], str(f["version"])) not in fake.actions
        ]
        if problems:
            raise _Fail(
                422,
                "invalid_workflow",
                f"the document is not valid: {len(problems)} problem(s)",
                {"problems": problems},
            )
        return spec, functions

    @r.post(sbase + "/workflows/import")
    async def import_workflow(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        body = await request.read()
        files: dict[tuple[str, str], tuple[str, bytes]] = {}
        if body.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                spec, functions = parse_document(archive.read("workflow.yaml").decode())
                names = set(archive.namelist())
                problems = []
                for i, f in enumerate(functions):
                    for input_name, value in (f.get("inputs_values") or {}).items():
                        if isinstance(value, dict) and "static_file" in value:
                            path = value["static_file"]
                            if path in names:
                                files[(f["id"], input_name)] = (
                                    path.rsplit("/", 1)[-1],
                                    archive.read(path),
                                )
                                continue
                            where = f"spec.functions[{i}] ({f['id']}).inputs_values.{input_name}"
                            problems.append(
                                {
                                    "code": "missing_file",
                                    "message": f"{where}: the static file {path!r} is not in "
                                    "the zip",
                                    "step_id": f["id"],
                                    "input": input_name,
                                    "line": 9 + 5 * i,
                                    "path": where,
                                    "file": "workflow.yaml",
                                }
                            )
                if problems:
                    return web.json_response(
                        {
                            "error": "invalid_workflow",
                            "detail": f"the document cannot be imported: {len(problems)} "
                            "problem(s)",
                            "problems": problems,
                        },
                        status=422,
                    )
        else:
            spec, functions = parse_document(body.decode())
        name = request.query.get("name") or spec["human_name"]
        if any(w["name"] == name for w in mine(project)):
            return _err(409, "already_exists", f"a workflow named {name} exists")
        wf = _workflow(fake, project["id"], name, spec.get("description", ""), functions)
        for (step, input_name), found in files.items():
            fake.static_files[(wf["id"], step, input_name)] = found
        return web.json_response(_detail(fake, wf), status=201)

    def variable_out(v: dict[str, Any]) -> dict[str, Any]:
        return {k: v[k] for k in ("name", "kind", "value", "file", "created_at", "updated_at")}

    @r.get(sbase + "/variables")
    async def list_variables(request: web.Request) -> web.Response:
        project = project_of(request)
        found = [
            variable_out(v)
            for (pid, _), v in sorted(fake.variables.items())
            if pid == project["id"]
        ]
        return web.json_response({"variables": found})

    @r.put(sbase + "/variables/{name}")
    async def put_variable(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        body = await request.json()
        name = request.match_info["name"]
        created = (project["id"], name) not in fake.variables
        secret = body.get("kind") == "secret"
        v = {
            "name": name,
            "kind": "secret" if secret else "value",
            "value": None if secret else body["value"],
            "file": None,
            "secret": body["value"] if secret else None,
            "created_at": NOW,
            "updated_at": NOW,
        }
        fake.variables[(project["id"], name)] = v
        return web.json_response(variable_out(v), status=201 if created else 200)

    @r.post(sbase + "/variables/{name}/file")
    async def put_variable_file(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        name = request.match_info["name"]
        reader = await request.multipart()
        part = await reader.next()
        assert part is not None and not isinstance(part, MultipartReader)
        data = await part.read()
        directory = request.query.get("directory") in ("true", "1")
        v = {
            "name": name,
            "kind": "file",
            "value": None,
            "file": {
                "name": (part.filename or "").removesuffix(".zip") if directory else part.filename,
                "size": len(data),
                "sha256": "",
                "directory": directory,
            },
            "data": data,
            "created_at": NOW,
            "updated_at": NOW,
        }
        fake.variables[(project["id"], name)] = v
        return web.json_response(variable_out(v), status=201)

    @r.delete(sbase + "/variables/{name}")
    async def delete_variable(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        if fake.variables.pop((project["id"], request.match_info["name"]), None) is None:
            return _err(404, "not_found", "no such variable")
        return web.Response(status=204)

    @r.post(sbase + "/workflows/{workflow}/steps/{step}/inputs/{input}/file")
    async def upload_file(request: web.Request) -> web.Response:
        wf = workflow_of(request, write=True)
        reader = await request.multipart()
        part = await reader.next()
        assert part is not None and not isinstance(part, MultipartReader)
        step, input_name = request.match_info["step"], request.match_info["input"]
        fake.static_files[(wf["id"], step, input_name)] = (part.filename or "", await part.read())
        for f in wf["steps"]:
            if f["id"] == step:
                f.setdefault("inputs_values", {})[input_name] = {
                    "static_file": f"files/{step}/{input_name}/{part.filename}"
                }
        return web.json_response(_detail(fake, wf))

    def workflow_of(request: web.Request, write: bool = False) -> dict[str, Any]:
        project = project_of(request, write)
        ref = request.match_info["workflow"]
        wf = next((w for w in mine(project) if ref in (w["id"], w["name"])), None)
        if wf is None:
            raise _Fail(404, "not_found", f"workflow {ref} not found")
        return wf

    @r.get(sbase + "/workflows/{workflow}")
    async def get_workflow(request: web.Request) -> web.Response:
        return web.json_response(_detail(fake, workflow_of(request)))

    @r.put(sbase + "/workflows/{workflow}/yaml")
    async def replace_workflow(request: web.Request) -> web.Response:
        wf = workflow_of(request, write=True)
        _, functions = parse_document(await request.text())
        wf["steps"] = functions
        wf["errors"] = []
        return web.json_response(_detail(fake, wf))

    @r.put(sbase + "/workflows/{workflow}/steps/{step}/settings")
    async def set_step_settings(request: web.Request) -> web.Response:
        wf = workflow_of(request, write=True)
        step = request.match_info["step"]
        if not any(f["id"] == step for f in wf["steps"]):
            return _err(404, "not_found", f"step {step!r} not found")
        body = await request.json()
        try:  # the studio's own checks, so the messages are the ones users get
            hpc = dict(hpc_params(body.get("hpc") or {}))
        except InvalidInput as exc:
            return _err(400, "invalid_input", exc.detail)
        wf.setdefault("settings", {})[step] = {**NO_SETTINGS, **body, "hpc": hpc}
        return web.json_response(_detail(fake, wf))

    @r.get(sbase + "/workflows/{workflow}/errors")
    async def workflow_errors(request: web.Request) -> web.Response:
        wf = workflow_of(request)
        return web.json_response({"valid": not wf["errors"], "problems": wf["errors"]})

    @r.get(sbase + "/workflows/{workflow}/export")
    async def export(request: web.Request) -> web.Response:
        wf = workflow_of(request)
        doc = {
            "apiVersion": "ryax.tech/v2.0",
            "kind": "Workflows",
            "spec": {"human_name": wf["name"], "functions": wf["steps"]},
        }
        text = yaml.safe_dump(doc, sort_keys=False)
        if request.query.get("format") == "zip":
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as archive:
                archive.writestr("workflow.yaml", text)
                for (wid, step, input_name), (name, data) in fake.static_files.items():
                    if wid == wf["id"]:
                        archive.writestr(f"files/{step}/{input_name}/{name}", data)
            return web.Response(body=out.getvalue(), content_type="application/zip")
        return web.Response(text=text, content_type="application/yaml")

    @r.post(sbase + "/workflows/{workflow}/deploy")
    async def deploy(request: web.Request) -> web.Response:
        wf = workflow_of(request, write=True)
        if wf["errors"]:
            return web.json_response(
                {
                    "error": "invalid_workflow",
                    "detail": f"the workflow is not valid: {len(wf['errors'])} problem(s)",
                    "problems": wf["errors"],
                },
                status=422,
            )
        current = _current(fake, wf)
        if current and current["state"] not in ("undeployed", "failed"):
            return _err(409, "conflict", f"workflow {wf['name']} is already deployed")
        d = {
            "id": fake.new_id("dep"),
            "workflow_id": wf["id"],
            "snapshot_id": fake.new_id("snap"),
            "state": "requested",
            "reason": "",
            "state_seq": 0,
            "requested_by": "alice",
            "requested_at": NOW,
            "updated_at": NOW,
            "polls": 0,
        }
        fake.deployments[d["id"]] = d
        return web.json_response(_public(d), status=202)

    @r.post(sbase + "/workflows/{workflow}/undeploy")
    async def undeploy(request: web.Request) -> web.Response:
        wf = workflow_of(request, write=True)
        d = _current(fake, wf)
        if d is None or d["state"] in ("undeployed", "failed"):
            return _err(409, "conflict", f"workflow {wf['name']} is not deployed")
        d["state"] = "undeploying"
        d["polls"] = 0
        return web.json_response(_public(d), status=202)

    @r.get(sbase + "/workflows/{workflow}/deployments")
    async def deployments(request: web.Request) -> web.Response:
        wf = workflow_of(request)
        found = [d for d in fake.deployments.values() if d["workflow_id"] == wf["id"]]
        for d in found:
            d["polls"] += 1
            if d["polls"] >= fake.polls_to_finish:
                d["state"] = {
                    "requested": "deploying",
                    "deploying": "deployed",
                    "undeploying": "undeployed",
                }.get(d["state"], d["state"])
                d["polls"] = 0
        return web.json_response({"deployments": [_public(d) for d in reversed(found)]})

    # -------------------------------------------------------------- runner
    rbase = "/runner/v1/projects/{project}"

    @r.get(rbase + "/runs")
    async def list_runs(request: web.Request) -> web.Response:
        project_of(request)
        runs = list(reversed(fake.runs.values()))
        if "workflow_id" in request.query:
            runs = [x for x in runs if x["workflow_id"] == request.query["workflow_id"]]
        if "state" in request.query:
            runs = [x for x in runs if x["state"] == request.query["state"]]
        start = int(request.query.get("cursor", 0))
        limit = int(request.query.get("limit", 50))
        page = runs[start : start + limit]
        more = str(start + limit) if len(runs) > start + limit else None
        return web.json_response(
            {"runs": [_run_out(x, steps=False) for x in page], "next_cursor": more}
        )

    def run_of(request: web.Request) -> dict[str, Any]:
        project_of(request)
        run = fake.runs.get(request.match_info["run_id"])
        if run is None:
            raise _Fail(404, "not_found", f"run {request.match_info['run_id']} not found")
        return run

    @r.get(rbase + "/runs/{run_id}")
    async def get_run(request: web.Request) -> web.Response:
        run = run_of(request)
        run["polls"] += 1
        if run["state"] == "running" and run["polls"] >= fake.polls_to_finish:
            run["state"] = "completed"
            run["results"] = run.pop("pending_results", {})
        return web.json_response(_run_out(run, steps=True))

    @r.post(rbase + "/runs/{run_id}/cancel")
    async def cancel_run(request: web.Request) -> web.Response:
        run = run_of(request)
        if run["state"] not in ("pending", "running"):
            return _err(409, "conflict", f"run {run['id']} already ended ({run['state']})")
        run["state"] = "cancelled"
        run["reason"] = "cancelled by alice"
        return web.json_response(_run_out(run, steps=False))

    def log_lines(run: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": i + 1,
                "execution_id": f"ex-{step}",
                "step_id": step,
                "seq": i,
                "stream": "stdout",
                "line": msg,
                "at": NOW,
            }
            for i, (step, msg) in enumerate(run.get("logs", []))
        ]

    @r.get(rbase + "/runs/{run_id}/logs")
    async def logs(request: web.Request) -> web.Response:
        run = run_of(request)
        after = int(request.query.get("after_id", 0))
        limit = int(request.query.get("limit", 1000))
        lines = [x for x in log_lines(run) if x["id"] > after][:limit]
        return web.json_response({"lines": lines})

    @r.get(rbase + "/runs/{run_id}/logs/stream")
    async def stream_logs(request: web.Request) -> web.StreamResponse:
        run = run_of(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": keep-alive\n\n")
        for line in log_lines(run):
            await response.write(f"event: log\ndata: {json.dumps(line)}\n\n".encode())
        await response.write(f'event: end\ndata: {{"run_id": "{run["id"]}"}}\n\n'.encode())
        await response.write_eof()
        return response

    @r.get(rbase + "/runs/{run_id}/files/{key:.+}")
    async def run_file(request: web.Request) -> web.Response:
        run = run_of(request)
        content = run.get("files", {}).get(request.match_info["key"])
        if content is None:
            return _err(404, "not_found", "no such file")
        return web.Response(body=content, content_type="application/octet-stream")

    @r.get(rbase + "/sites")
    async def sites(request: web.Request) -> web.Response:
        project_of(request)
        listed = [site for site in fake.sites if not site["archived_at"]]
        return web.json_response({"sites": listed})

    # -- sites: administration (admins); a credential is answered once, only its hash kept --
    def admin(request: web.Request) -> None:
        if not caller(request)["is_admin"]:
            raise _Fail(403, "forbidden", "administrators only")

    def site_of(request: web.Request) -> dict[str, Any]:
        ref = request.match_info["site"]
        found = next((s for s in fake.sites if ref in (s["id"], s["name"])), None)
        if found is None:
            raise _Fail(404, "not_found", f"site {ref!r} not found")
        return found

    def issue(site: dict[str, Any]) -> dict[str, Any]:
        if site["archived_at"]:
            raise _Fail(409, "conflict", f"site {site['name']!r} is archived")
        credential = f"ryax_site_{fake.new_id('cred')}"
        fake.site_credentials[site["name"]] = credential
        site.update(credential="active", credential_issued_at=NOW)
        return {"site": site, "credential": credential}

    def no_store(body: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    @r.get("/runner/v1/sites")
    async def all_sites(request: web.Request) -> web.Response:
        admin(request)
        archived = request.query.get("archived") == "true"
        return web.json_response(
            {"sites": [s for s in fake.sites if archived or not s["archived_at"]]}
        )

    @r.post("/runner/v1/sites")
    async def create_site(request: web.Request) -> web.Response:
        admin(request)
        body = await request.json()
        if body.get("type") not in ("local", "slurm", "kubernetes"):
            return _err(400, "invalid_input", "type: one of local, slurm, kubernetes")
        if any(s["name"] == body.get("name") for s in fake.sites):
            return _err(409, "site_exists", f"site {body.get('name')!r} already exists")
        site = site_doc(body["name"], backend=body["type"], state="offline", worker_id="")
        site.update(created_at=NOW, created_by=caller(request)["username"])
        fake.sites.append(site)
        return no_store(issue(site), 201)

    @r.get("/runner/v1/sites/{site}")
    async def show_site(request: web.Request) -> web.Response:
        admin(request)
        return web.json_response(site_of(request))

    @r.post("/runner/v1/sites/{site}/credential")
    async def rotate_site(request: web.Request) -> web.Response:
        admin(request)
        site = site_of(request)
        issued = issue(site)
        site["connected"] = False  # the worker is cut off
        return no_store(issued)

    @r.delete("/runner/v1/sites/{site}/credential")
    async def revoke_site(request: web.Request) -> web.Response:
        admin(request)
        site = site_of(request)
        fake.site_credentials.pop(site["name"], None)
        site.update(credential="revoked", connected=False)
        return web.json_response(site)

    @r.post("/runner/v1/sites/{site}/archive")
    async def archive_site(request: web.Request) -> web.Response:
        admin(request)
        site = site_of(request)
        fake.site_credentials.pop(site["name"], None)
        site.update(
            credential="revoked",
            connected=False,
            state="offline",
            state_reason="site archived",
            archived_at=site["archived_at"] or NOW,
        )
        return web.json_response(site)

    @r.post(rbase + "/endpoints/{endpoint}")
    async def endpoint(request: web.Request) -> web.Response:
        project = project_of(request, write=True)
        ref = request.match_info["endpoint"]
        wf = next((w for w in mine(project) if ref in (w["id"], w["name"])), None)
        if wf is None:
            return _err(404, "not_found", f"no deployed workflow {ref!r} in this project")
        current = _current(fake, wf)
        if current is None or current["state"] != "deployed":
            state = current["state"] if current else "never deployed"
            return _err(409, "not_deployed", f"workflow {wf['name']} is not deployed ({state})")
        inputs: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                assert not isinstance(part, MultipartReader)
                if part.filename:
                    files[part.name or ""] = await part.read()
                else:
                    inputs[part.name or ""] = await part.text()
        elif request.body_exists:
            inputs = await request.json()
        run_id = fake.new_id("run")
        text = str(inputs.get("text", ""))
        key = f"runs/{run_id}/ex-report/report/report.txt"
        counts_key = f"runs/{run_id}/ex-count/counts/counts.tsv"
        results: dict[str, Any] = {
            "summary": text.upper(),
            "words": len(text.split()),
            "inputs": inputs,
            "report": {
                "type": "file",
                "name": "report.txt",
                "size": len(text) + 7,
                "sha256": "0" * 64,
                "key": key,
                "download_url": f"/runner/v1/projects/{project['name']}/runs/{run_id}/files/" + key,
            },
        }
        failing = text == "fail"
        run = {
            "id": run_id,
            "workflow_id": wf["id"],
            "workflow_name": wf["name"],
            "origin": "http",
            "state": "running",
            "reason": "",
            "started_at": NOW,
            "ended_at": None,
            "duration_seconds": None,
            "failed_step_id": None,
            "results": None,
            "pending_results": results,
            "files": {key: f"REPORT {text}".encode(), counts_key: b"a\t1\n"},
            "step_outputs": {
                "total": len(text.split()),
                "counts": {
                    "type": "file",
                    "name": "counts.tsv",
                    "size": 4,
                    "key": counts_key,
                    "download_url": f"/runner/v1/projects/{project['name']}/runs/{run_id}/files/"
                    + counts_key,
                },
            },
            "logs": [("api", "received"), ("count", f"{len(text.split())} words")],
            "polls": 0,
            "uploaded": {k: v.decode() for k, v in files.items()},
        }
        fake.runs[run_id] = run
        headers = {"Ryax-Run-Id": run_id}
        if request.query.get("mode") == "async":
            status_url = f"/runner/v1/projects/{project['name']}/runs/{run_id}"
            return web.json_response(
                {"run_id": run_id, "state": "pending", "status_url": status_url},
                status=202,
                headers={**headers, "Location": status_url},
            )
        if failing:
            run.update(state="failed", failed_step_id="count", reason="step count failed")
            run.pop("pending_results")
            return web.json_response(
                {
                    "error": "run_failed",
                    "detail": "ValueError: fail on purpose",
                    "run_id": run_id,
                    "step_id": "count",
                },
                status=409,
                headers=headers,
            )
        run.update(state="completed", duration_seconds=0.25, ended_at=NOW)
        run["results"] = run.pop("pending_results")
        return web.json_response(run["results"], headers=headers)

    # -------------------------------------------------------------- project API keys
    def api_key_out(k: dict[str, Any]) -> dict[str, Any]:
        return {n: v for n, v in k.items() if n != "key"}

    @r.post("/authorization/v1/projects/{project}/api-keys")
    async def create_api_key(request: web.Request) -> web.Response:
        user = caller(request)
        project = project_of(request)
        if project["members"].get(user["username"]) != "owner" and not user["is_admin"]:
            return _err(403, "forbidden", "owners only")
        name = (await request.json())["name"]
        if any(
            k["name"] == name and not k["revoked"] and k["project_id"] == project["id"]
            for k in fake.api_keys.values()
        ):
            return _err(409, "already_exists", f"project has an API key named {name}")
        key = {
            "id": fake.new_id("key"),
            "project_id": project["id"],
            "name": name,
            "created_at": NOW,
            "created_by": user["id"],
            "last_used_at": None,
            "revoked": False,
            "revoked_at": None,
            "key": f"ryaxpk_{fake.new_id('secret')}",
        }
        fake.api_keys[key["id"]] = key
        return web.json_response({**api_key_out(key), "key": key["key"]}, status=201)

    @r.get("/authorization/v1/projects/{project}/api-keys")
    async def list_api_keys(request: web.Request) -> web.Response:
        project = project_of(request)
        keys = [api_key_out(k) for k in fake.api_keys.values() if k["project_id"] == project["id"]]
        return web.json_response({"api_keys": keys})

    @r.delete("/authorization/v1/projects/{project}/api-keys/{key_id}")
    async def revoke_api_key(request: web.Request) -> web.Response:
        project = project_of(request)
        key = fake.api_keys.get(request.match_info["key_id"])
        if key is None or key["project_id"] != project["id"]:
            return _err(404, "not_found", f"API key {request.match_info['key_id']} not found")
        key.update(revoked=True, revoked_at=NOW)
        return web.json_response(api_key_out(key))

    # -------------------------------------------------------------- the user API
    def user_api_project(request: web.Request) -> dict[str, Any]:
        header = request.headers.get("Authorization", "").removeprefix("Bearer ")
        key = next((k for k in fake.api_keys.values() if k["key"] == header), None)
        if key is None:
            return project_of(request, write=True)
        project = next(p for p in fake.projects.values() if p["id"] == key["project_id"])
        if key["revoked"]:
            raise _Fail(401, "unauthenticated", "invalid or revoked API key")
        if request.match_info["project"] not in (project["id"], project["name"]):
            raise _Fail(403, "forbidden", "this API key is not one of this project")
        return project

    def served(project: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(workflow, its trigger step) of the project's deployed workflows with a path."""
        found = []
        for wf in mine(project):
            current = _current(fake, wf)
            trigger = next((f for f in wf["steps"] if f["from"] == "httpapijson"), None)
            values = (trigger or {}).get("inputs_values") or {}
            if current and current["state"] == "deployed" and values.get("path"):
                found.append((wf, trigger))
        return found

    def operation(trigger: dict[str, Any]) -> dict[str, Any]:
        outputs = trigger.get("outputs") or []
        where = {"header": "header", "query": "query", "path": "path"}
        return {
            "parameters": [
                {
                    "name": o["name"].replace("_", "-") if o["origin"] == "header" else o["name"],
                    "in": where[o["origin"]],
                    "required": o["origin"] == "path",
                    "schema": {"type": "string"},
                }
                for o in outputs
                if o.get("origin") in where
            ],
            "responses": {"200": {"description": "the results"}},
        }

    @r.get(rbase + "/results/{run_id}")
    async def user_api_result(request: web.Request) -> web.Response:
        user_api_project(request)
        run = fake.runs.get(request.match_info["run_id"])
        if run is None or run["origin"] != "user_api":
            return _err(404, "not_found", f"run {request.match_info['run_id']} not found")
        headers = {"Ryax-Run-Id": run["id"]}
        run["polls"] += 1
        if run["state"] == "running" and run["polls"] >= fake.polls_to_finish:
            run["state"] = "completed"
            run["results"] = run.pop("pending_results", {})
        if run["state"] == "completed":
            return web.json_response(run["results"], headers=headers)
        link = f"/runner/v1/projects/{request.match_info['project']}/results/{run['id']}"
        return web.json_response(
            {
                "workflow_run_id": run["id"],
                "result_link": link,
                "run_id": run["id"],
                "state": run["state"],
            },
            status=202,
            headers=headers,
        )

    @r.route("*", "/user-api/{project}/{path:.*}")
    async def user_api(request: web.Request) -> web.Response:
        project = user_api_project(request)
        rest = "/" + request.match_info["path"]
        if rest == "/openapi.json" and request.method == "GET":
            paths: dict[str, Any] = {}
            for _, trigger in served(project):
                values = trigger["inputs_values"]
                method = str(values.get("method", "POST")).lower()
                paths.setdefault(values["path"], {})[method] = operation(trigger)
            return web.json_response({"openapi": "3.1.0", "paths": paths})
        wanted = [seg for seg in rest.split("/") if seg]
        for wf, trigger in served(project):
            values = trigger["inputs_values"]
            template = [seg for seg in values["path"].split("/") if seg]
            if len(template) != len(wanted) or request.method != values.get("method", "POST"):
                continue
            params = {t[1:-1]: w for t, w in zip(template, wanted, strict=True) if t[0] == "{"}
            if any(t != w for t, w in zip(template, wanted, strict=True) if t[0] != "{"):
                continue
            inputs: dict[str, Any] = {**params, **request.query}
            for o in trigger.get("outputs") or []:
                if o.get("origin") == "header":
                    value = request.headers.get(o["name"].replace("_", "-"))
                    if value is not None:
                        inputs[o["name"]] = value
            if request.body_exists:
                inputs.update(await request.json())
            run_id = fake.new_id("run")
            run = {
                "id": run_id,
                "workflow_id": wf["id"],
                "workflow_name": wf["name"],
                "origin": "user_api",
                "state": "completed",
                "reason": "",
                "started_at": NOW,
                "ended_at": NOW,
                "duration_seconds": 0.1,
                "failed_step_id": None,
                "results": {"inputs": inputs},
                "files": {},
                "logs": [],
                "polls": 0,
            }
            fake.runs[run_id] = run
            if int(values.get("timeout", 60)) == 0:
                run.update(state="running", pending_results=run.pop("results"), results=None)
                link = f"/runner/v1/projects/{project['name']}/results/{run_id}"
                return web.json_response(
                    {
                        "workflow_run_id": run_id,
                        "result_link": link,
                        "run_id": run_id,
                        "state": "running",
                    },
                    status=202,
                    headers={"Ryax-Run-Id": run_id, "Location": link},
                )
            return web.json_response(
                run["results"],
                status=int(values.get("success_code", 200)),
                headers={"Ryax-Run-Id": run_id},
            )
        return _err(404, "not_found", f"no endpoint {request.method} {rest}")

    app.add_routes(r)
    return app


class _Fail(Exception):
    def __init__(
        self, status: int, error: str, detail: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail
        self.extra = extra or {}


def _user(u: dict[str, Any]) -> dict[str, Any]:
    return {"id": u["id"], "username": u["username"], "is_admin": u["is_admin"], "created_at": NOW}


def _project(p: dict[str, Any], role: str | None) -> dict[str, Any]:
    return {"id": p["id"], "name": p["name"], "created_at": NOW, "role": role}


def _projects_of(fake: FakeRyax, user: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _project(p, p["members"].get(user["username"]))
        for p in fake.projects.values()
        if user["is_admin"] or user["username"] in p["members"]
    ]


def _public(d: dict[str, Any]) -> dict[str, Any]:
    hidden = ("polls", "pending_results", "files", "logs", "project", "uploaded", "step_outputs")
    return {k: v for k, v in d.items() if k not in hidden}


def _current(fake: FakeRyax, wf: dict[str, Any]) -> dict[str, Any] | None:
    found = [d for d in fake.deployments.values() if d["workflow_id"] == wf["id"]]
    return found[-1] if found else None


NO_SETTINGS: dict[str, Any] = {
    "timeout_seconds": None,
    "retries": None,
    "site_name": None,
    "node_pool": None,
    "labels": {},
    "resources": None,
    "hpc": {},
    "always_warm": None,
}


def _steps(wf: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for f in wf["steps"]:
        values = {}
        for name, value in (f.get("inputs_values") or {}).items():
            if isinstance(value, dict) and "reference_value" in value:
                step, _, output = value["reference_value"].partition(".")
                values[name] = {"reference": {"step": step, "output": output}}
            elif isinstance(value, dict) and "static_file" in value:
                values[name] = {
                    "file": {
                        "name": value["static_file"].rsplit("/", 1)[-1],
                        "size": 0,
                        "sha256": "",
                        "directory": False,
                    }
                }
            else:
                values[name] = {"static": value}
        out.append(
            {
                "id": f["id"],
                "action_id": f["from"],
                "version": str(f["version"]),
                "inputs": values,
                "streams_to": f.get("streams_to", []),
                "settings": wf.get("settings", {}).get(f["id"], NO_SETTINGS),
            }
        )
    return out


def _summary(fake: FakeRyax, wf: dict[str, Any]) -> dict[str, Any]:
    current = _current(fake, wf)
    return {
        "id": wf["id"],
        "name": wf["name"],
        "description": wf["description"],
        "created_at": NOW,
        "updated_at": wf.get("updated_at", NOW),
        "steps": len(wf["steps"]),
        "deployment": _public(current) if current else None,
    }


def _detail(fake: FakeRyax, wf: dict[str, Any]) -> dict[str, Any]:
    return {
        **_summary(fake, wf),
        "steps": _steps(wf),
        "results": [],
        "valid": not wf["errors"],
        "problems": wf["errors"],
    }


def _scan_out(
    scan_id: str,
    repo: dict[str, Any] | None,
    found: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> dict[str, Any]:
    counts = dict.fromkeys(("unchanged", "changed_same_version", "replaced", "invalid"), 0)
    return {
        "id": scan_id,
        "origin": "git" if repo else "upload",
        "name": repo["name"] if repo else "action.tar.gz",
        "repository_id": repo["id"] if repo else None,
        "commit": "abc123" if repo else None,
        "branch": "main" if repo else None,
        "started_at": NOW,
        "finished_at": NOW,
        "forced": False,
        "counts": {
            **counts,
            "found": len(found),
            "new": len(found),
            "errors": len(errors),
            "warnings": 0,
        },
        "actions": found,
        "errors": errors,
        "warnings": [],
        "build_ids": [],
    }


def _store_action(a: dict[str, Any]) -> dict[str, Any]:
    """A built action as the studio's store answers it."""

    def io(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": spec["name"],
            "type": spec["type"],
            "human_name": spec["name"].title(),
            "help": spec["help"],
            "optional": spec["optional"],
            "enum_values": [],
            "has_default": False,
            "default": None,
            "origin": None,
        }

    return {
        "action_id": a["action_id"],
        "version": a["version"],
        "kind": a["kind"],
        "human_name": a["human_name"],
        "description": a["description"],
        "type": "python3",
        "categories": [],
        "inputs": [io(i) for i in a["inputs"]],
        "outputs": [io(o) for o in a["outputs"]],
        "resources": {"cpu": None, "memory_bytes": None, "time_seconds": None, "gpu": None},
        "artefact_key": f"artefacts/{a['action_id']}",
        "artefact_sha256": "0" * 64,
        "has_logo": False,
        "repository_id": a["origin"]["repository_id"],
        "source_commit": "abc123",
        "build_id": "build-0",
        "ready_at": NOW,
        "builtin": False,
        "dynamic_outputs": False,
    }


def _run_out(run: dict[str, Any], *, steps: bool) -> dict[str, Any]:
    out = _public(run)
    if steps:
        out["steps"] = [
            {
                "execution_id": "ex-api",
                "step_id": "api",
                "state": "completed",
                "error": None,
                "site_name": "local",
                "outputs": {"text": "a b"},
            },
            *(
                [
                    {
                        "execution_id": "ex-count-lost",
                        "step_id": "count",
                        "state": "lost",
                        "error": "worker lost: site local no longer knows the execution",
                        "site_name": "local",
                        "outputs": None,
                    }
                ]
                if run.get("lost_attempt")
                else []
            ),
            {
                "execution_id": "ex-count",
                "step_id": "count",
                "state": "failed" if run["state"] == "failed" else run["state"],
                "error": "ValueError: fail on purpose" if run["state"] == "failed" else None,
                "site_name": "local",
                "outputs": run.get("step_outputs", {}),
            },
        ]
    return out


def _workflow(
    fake: FakeRyax, project_id: str, name: str, description: str, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    wf_id = fake.new_id("wf")
    wf: dict[str, Any] = {
        "id": wf_id,
        "project": project_id,
        "name": name,
        "description": description,
        "steps": steps,
        "errors": []
        if steps
        else [
            {
                "code": "no_trigger",
                "message": "the workflow has no trigger",
                "step_id": None,
                "input": None,
                "line": None,
                "path": None,
            }
        ],
    }
    fake.workflows[wf_id] = wf
    return wf


def site_doc(
    name: str, *, backend: str = "local", state: str = "online", worker_id: str = "worker-1"
) -> dict[str, Any]:
    """A site as the runner answers it (SiteOut)."""
    online = state == "online"
    return {
        "id": f"site-{name}",
        "name": name,
        "worker_id": worker_id,
        "backend_kind": backend,
        "state": state,
        "state_reason": None if online else "no worker has connected yet",
        "node_pools": (
            [
                {
                    "name": "default",
                    "cpu": 4.0,
                    "memory_bytes": 8_000_000_000,
                    "gpu": 0,
                    "max_time_seconds": 0.0,
                }
            ]
            if worker_id
            else []
        ),
        "labels": {},
        "version": "0.1.0" if worker_id else "",
        "worker_address": "ipv4:192.0.2.10:50123" if worker_id else "",
        "connected": online,
        "registered_at": NOW,
        "last_seen_at": NOW,
        "credential": "active",
        "credential_issued_at": NOW,
        "created_at": NOW,
        "created_by": "admin",
        "archived_at": None,
    }


def seed_action(
    fake: FakeRyax,
    action_id: str,
    version: str = "1.0",
    *,
    kind: str = "Processor",
    state: str = "valid",
) -> dict[str, Any]:
    action = {
        "id": fake.new_id("src"),
        "action_id": action_id,
        "version": version,
        "state": state,
        "kind": kind,
        "human_name": action_id.title(),
        "description": f"The {action_id} action",
        "inputs": [{"name": "text", "type": "string", "optional": False, "help": "Text"}],
        "outputs": [{"name": "out", "type": "string", "optional": False, "help": "Out"}],
        "origin": {"kind": "git", "repository_id": "repo-x", "name": "examples", "path": "."},
        "errors": [],
        "last_build": None,
        "updated_at": NOW,
    }
    fake.actions[(action_id, version)] = action
    return action


@contextmanager
def serve(fake: FakeRyax) -> Iterator[FakeRyax]:
    """Run the fake on 127.0.0.1:<free port> in a thread for the duration of the block."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(fake), access_log=None)
    started = threading.Event()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = next(iter(runner.addresses))[1]
        fake.url = f"http://127.0.0.1:{port}"
        started.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the fake Ryax server did not start")
    try:
        yield fake
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
