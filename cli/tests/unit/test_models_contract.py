"""The CLI's models against the services' own OpenAPI documents.

Each model declares the response schemas it reads (`SCHEMAS`), the one key of each field
(`KEYS`), the fields that may be absent or null (`OPTIONAL`) and the models of nested objects
(`NESTED`); list answers are `Listing`s (a wrapper schema and its key). These tests check the
declarations against the documents the services serve, check that `from_json` reads exactly
the declared keys, and check that the fake gateway answers in the services' shapes. Renaming
a key of a service's response model fails here.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest

from ryax_cli import models
from ryax_cli.models import FileRef, Listing, Model, Schema
from ryax_cli.sdk import Client

from .conftest import ALICE
from .fake_ryax import FakeRyax, seed_action

SERVICES = ("authorization", "repository", "studio", "runner")


@functools.cache
def openapi_of(service: str) -> dict[str, Any]:
    """A service's OpenAPI document, as its HTTP API serves it (the one place that asks)."""
    routes = importlib.import_module(f"ryax_{service}.infrastructure.api.routes")
    # Routes of the service's other API modules (the runner's sites.py...) join the same
    # document when imported, as the service's app imports them.
    package = importlib.import_module(f"ryax_{service}.infrastructure.api")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    document: dict[str, Any] = routes.api.openapi()
    return document


# --------------------------------------------------------------------------- schema reading


def component(schema: Schema) -> dict[str, Any]:
    found: dict[str, Any] = openapi_of(schema.service)["components"]["schemas"][schema.name]
    return found


def ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None


def unwrap(service: str, node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema under `anyOf: [X, null]` and `$ref`s, and whether null is allowed."""
    nullable = False
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        nullable = len(branches) < len(node["anyOf"])
        if len(branches) == 1:
            node = branches[0]
    if node.get("allOf") and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    name = ref_name(node)
    if name is not None:
        node = component(Schema(service, name))
    return node, nullable


def item_ref(service: str, node: dict[str, Any]) -> str | None:
    """The schema name of an object property, or of the items of an array property."""
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            node = branches[0]
    if node.get("type") == "array":
        node = node.get("items", {})
    return ref_name(node)


def lookup(schema: Schema, key: str) -> tuple[dict[str, Any] | None, bool]:
    """The property at a dotted `key` of `schema`, and whether it is always there and not null
    (every object on the way required and not nullable)."""
    node: dict[str, Any] = component(schema)
    always = True
    for part in key.split("."):
        obj, nullable = unwrap(schema.service, node)
        properties = obj.get("properties", {})
        if part not in properties:
            return None, False
        always = always and not nullable and part in obj.get("required", [])
        node = properties[part]
    _, nullable = unwrap(schema.service, node)
    return node, always and not nullable


def sample(service: str, node: dict[str, Any], depth: int = 0) -> Any:
    """A value of the schema `node`, every property filled in."""
    node, _ = unwrap(service, node)
    if "enum" in node:
        return node["enum"][0]
    if "anyOf" in node:
        return sample(service, node["anyOf"][0], depth)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        if depth > 6:
            return {}
        return {k: sample(service, v, depth + 1) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return [sample(service, node.get("items", {}), depth + 1)]
    if kind == "string":
        return "2026-01-02T03:04:05+00:00" if node.get("format") == "date-time" else "text"
    return {"integer": 7, "number": 1.5, "boolean": True}.get(str(kind), "any")


# --------------------------------------------------------------------------- the declarations

MODELS = sorted(
    (
        value
        for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, Model) and value is not Model
    ),
    key=lambda m: m.__name__,
)
LISTINGS = {name: value for name, value in vars(models).items() if isinstance(value, Listing)}
#: models that no OpenAPI schema describes, and where their shape comes from instead
WITHOUT_SCHEMA = {FileRef: "the runner's `present` (file values inside free-form results)"}


def ids(model: type[Model]) -> str:
    return model.__name__


def test_the_contract_covers_every_model() -> None:
    assert len(MODELS) >= 20 and len(LISTINGS) >= 10
    for model in MODELS:
        assert model.SCHEMAS or model in WITHOUT_SCHEMA, f"{model.__name__} declares no SCHEMAS"


@pytest.mark.parametrize("model", MODELS, ids=ids)
def test_every_field_is_read_from_one_declared_key(model: type[Model]) -> None:
    fields = {f.name for f in dataclasses.fields(model)} - {"raw"}
    assert set(model.KEYS) == fields, f"{model.__name__}: fields without a key, or keys without"
    assert set(model.OPTIONAL) | set(model.NESTED) <= fields
    keys = list(model.KEYS.values())
    assert len(keys) == len(set(keys)), f"{model.__name__} reads a key twice"


@pytest.mark.parametrize("model", [m for m in MODELS if m.SCHEMAS], ids=ids)
def test_every_key_is_in_the_schemas_and_required_where_needed(model: type[Model]) -> None:
    problems = []
    for name, key in model.KEYS.items():
        found_in = []
        for schema in model.SCHEMAS:
            node, always = lookup(schema, key)
            if node is not None:
                found_in.append(schema.name)
            if name in model.OPTIONAL:
                continue
            if node is None:
                problems.append(f"{name}: no key {key!r} in {schema.service} {schema.name}")
            elif not always:
                problems.append(
                    f"{name}: {key!r} is optional or nullable in {schema.service} {schema.name}, "
                    f"declare it in {model.__name__}.OPTIONAL or read it from another key"
                )
        if name in model.OPTIONAL and not found_in:
            problems.append(f"{name}: no key {key!r} in any of {model.SCHEMAS}")
    assert not problems, f"{model.__name__}:\n" + "\n".join(problems)


@pytest.mark.parametrize("model", [m for m in MODELS if m.NESTED], ids=ids)
def test_nested_models_read_the_schemas_of_their_objects(model: type[Model]) -> None:
    for name, nested in model.NESTED.items():
        key = model.KEYS[name]
        for schema in model.SCHEMAS:
            node, _ = lookup(schema, key)
            if node is None:
                continue  # an OPTIONAL key of another schema of the model
            expected = {s.name for s in nested.SCHEMAS if s.service == schema.service}
            assert item_ref(schema.service, node) in expected, (
                f"{model.__name__}.{name}: {schema.name}.{key} holds "
                f"{item_ref(schema.service, node)}, {nested.__name__} reads {expected or 'none'}"
            )


@pytest.mark.parametrize("listing", list(LISTINGS.values()), ids=list(LISTINGS))
def test_list_answers_have_the_shape_the_service_answers(listing: Listing[Any]) -> None:
    node, always = lookup(listing.schema, listing.key)
    assert node is not None and always, f"{listing.schema.name} has no required {listing.key!r}"
    array, _ = unwrap(listing.schema.service, node)
    assert array.get("type") == "array", f"{listing.schema.name}.{listing.key} is not a list"
    expected = {s.name for s in listing.model.SCHEMAS if s.service == listing.schema.service}
    assert item_ref(listing.schema.service, node) in expected


# --------------------------------------------------------------------------- what from_json reads


class Recording(dict[str, Any]):
    """A JSON object that notes every key read from it (`a.b` for key b of the object at a)."""

    def __init__(self, data: dict[str, Any], seen: set[str], prefix: str, opaque: set[str]):
        super().__init__(data)
        self.seen, self.prefix, self.opaque = seen, prefix, opaque

    def _note(self, key: str, value: Any) -> Any:
        path = self.prefix + key
        self.seen.add(path)
        if isinstance(value, dict) and path not in self.opaque:
            return Recording(value, self.seen, path + ".", self.opaque)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self._note(key, super().get(key, default))

    def __getitem__(self, key: str) -> Any:
        return self._note(key, super().__getitem__(key))

    def __contains__(self, key: object) -> bool:
        self.seen.add(self.prefix + str(key))
        return super().__contains__(key)


def reads(model: type[Model], document: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    # A nested model's object is read by that model (checked on its own).
    opaque = {model.KEYS[name] for name in model.NESTED}
    model.from_json(Recording(document, seen, "", opaque))
    return seen


def declared(model: type[Model]) -> set[str]:
    parts = (key.split(".") for key in model.KEYS.values())
    return {".".join(p[: i + 1]) for p in parts for i in range(len(p))}


SCHEMA_CASES = [(m, s) for m in MODELS for s in m.SCHEMAS]


@pytest.mark.parametrize(
    ("model", "schema"), SCHEMA_CASES, ids=[f"{m.__name__}-{s.name}" for m, s in SCHEMA_CASES]
)
def test_from_json_reads_exactly_the_declared_keys(model: type[Model], schema: Schema) -> None:
    document = sample(schema.service, component(schema))
    assert reads(model, document) == declared(model)
    parsed = model.from_json(document)
    assert parsed.raw is document  # `-o json` prints the answer as the service sent it


def test_a_file_value_is_what_the_runner_presents() -> None:
    present = importlib.import_module("ryax_runner.infrastructure.api.routes").present
    stored = {"$file": {"name": "r.txt", "size": 3, "sha256": "0" * 64, "key": "runs/r/x"}}
    value = present(stored, lambda key: f"/files/{key}")
    assert reads(FileRef, value) == declared(FileRef)
    assert set(FileRef.KEYS.values()) <= set(value)
    ref = FileRef.from_json(value)
    assert FileRef.looks_like(value) and (ref.name, ref.key, ref.size) == ("r.txt", "runs/r/x", 3)
    assert ref.url == "/files/runs/r/x"


# --------------------------------------------------------------------------- the CLI's routes

A = "/authorization/v1"
R = "/repository/v1/projects/{project}"
S = "/studio/v1/projects/{project}"
W = S + "/workflows/{workflow}"
N = "/runner/v1/projects/{project}"
ENDPOINTS: list[tuple[str, str, type[Model] | Listing[Any]]] = [
    ("POST", A + "/login", models.Session),
    ("GET", A + "/me", models.Me),
    ("GET", A + "/users", models.USERS),
    ("POST", A + "/users", models.User),
    ("GET", A + "/projects", models.PROJECTS),
    ("POST", A + "/projects", models.Project),
    ("GET", A + "/projects/{project}", models.Project),
    ("PUT", A + "/projects/{project}/members/{user}", models.Project),
    ("DELETE", A + "/projects/{project}/members/{user}", models.Project),
    ("POST", A + "/tokens", models.MachineToken),
    ("GET", A + "/tokens", models.TOKENS),
    ("POST", A + "/projects/{project}/api-keys", models.ApiKey),
    ("GET", A + "/projects/{project}/api-keys", models.API_KEYS),
    ("DELETE", A + "/projects/{project}/api-keys/{key_id}", models.ApiKey),
    ("GET", R + "/repositories", models.REPOSITORIES),
    ("POST", R + "/repositories", models.Repository),
    ("POST", R + "/repositories/{repository_id}/scan", models.ScanResult),
    ("POST", R + "/uploads", models.ScanResult),
    ("GET", R + "/actions", models.ACTIONS),
    ("GET", R + "/actions/{action_id}/{version}", models.Action),
    ("POST", R + "/actions/{action_id}/{version}/build", models.Build),
    ("GET", R + "/builds/{build_id}", models.Build),
    ("GET", S + "/actions", models.STORE_ACTIONS),
    ("GET", S + "/workflows", models.WORKFLOWS),
    ("POST", S + "/workflows", models.Workflow),
    ("POST", S + "/workflows/import", models.Workflow),
    ("GET", W, models.Workflow),
    ("PUT", W + "/yaml", models.Workflow),
    ("GET", W + "/errors", models.WORKFLOW_PROBLEMS),
    ("GET", W + "/deployments", models.DEPLOYMENTS),
    ("POST", W + "/deploy", models.Deployment),
    ("POST", W + "/undeploy", models.Deployment),
    ("GET", N + "/runs", models.RunPage),
    ("GET", N + "/runs/{run_id}", models.RunInfo),
    ("POST", N + "/runs/{run_id}/cancel", models.RunInfo),
    ("GET", N + "/runs/{run_id}/logs", models.LOG_LINES),
    ("GET", N + "/sites", models.SITES),
    ("GET", "/runner/v1/sites", models.SITES),
    ("POST", "/runner/v1/sites", models.SiteCredential),
    ("GET", "/runner/v1/sites/{site}", models.Site),
    ("POST", "/runner/v1/sites/{site}/credential", models.SiteCredential),
    ("DELETE", "/runner/v1/sites/{site}/credential", models.Site),
    ("POST", "/runner/v1/sites/{site}/archive", models.Site),
]


def response_schema(service: str, method: str, path: str) -> tuple[int, str | None]:
    operation = openapi_of(service)["paths"][path][method.lower()]
    status = next(int(code) for code in operation["responses"] if code.startswith("2"))
    content = operation["responses"][str(status)].get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return status, ref_name(schema)


@pytest.mark.parametrize(
    ("method", "path", "answer"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS]
)
def test_each_route_answers_a_schema_its_model_reads(
    method: str, path: str, answer: type[Model] | Listing[Any]
) -> None:
    service = path.split("/")[1]
    _, name = response_schema(service, method, path)
    if isinstance(answer, Listing):
        assert (service, name) == (answer.schema.service, answer.schema.name)
    else:
        assert name in {s.name for s in answer.SCHEMAS if s.service == service}, (
            f"{method} {path} answers {name}, {answer.__name__} reads {answer.SCHEMAS}"
        )


def test_every_listing_is_a_route_of_the_cli() -> None:
    assert {id(a) for _, _, a in ENDPOINTS} >= {id(v) for v in LISTINGS.values()}


def test_a_renamed_key_breaks_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    users = component(Schema("authorization", "UserOut"))
    renamed = {**users["properties"]}
    renamed["name"] = renamed.pop("username")
    monkeypatch.setitem(users, "properties", renamed)
    with pytest.raises(AssertionError, match="no key 'username' in authorization UserOut"):
        test_every_key_is_in_the_schemas_and_required_where_needed(models.User)


# --------------------------------------------------------------------------- the fake's answers


@functools.cache
def keys_read() -> dict[tuple[str, str], set[str]]:
    """(service, schema) -> the keys of its objects some model reads."""
    found: dict[tuple[str, str], set[str]] = {}
    for model in MODELS:
        for schema in model.SCHEMAS:
            for key in model.KEYS.values():
                name: str | None = schema.name
                node: dict[str, Any] = component(schema)
                for part in key.split("."):
                    if name is None:
                        break
                    found.setdefault((schema.service, name), set()).add(part)
                    obj, _ = unwrap(schema.service, node)
                    node = obj.get("properties", {}).get(part, {})
                    name = item_ref(schema.service, node)
    return found


def conformance(service: str, node: dict[str, Any], value: Any, where: str) -> list[str]:
    """Where `value` has a key its schema lacks, or lacks a required key a model reads."""
    name = item_ref(service, node)
    node, _ = unwrap(service, node)
    if value is None or "anyOf" in node:
        return []  # null, or a value of several possible types
    if node.get("type") == "array" and isinstance(value, list):
        return [
            p
            for i, item in enumerate(value)
            for p in conformance(service, node.get("items", {}), item, f"{where}[{i}]")
        ]
    properties = node.get("properties")
    if properties is None or not isinstance(value, dict):
        return []
    read = keys_read().get((service, name or ""), set())
    problems = [f"{where}.{k}: not in {name}" for k in value if k not in properties]
    problems += [
        f"{where}.{k}: missing (required in {name})"
        for k in node.get("required", [])
        if k in read and k not in value
    ]
    for key, sub in properties.items():
        if key in value:
            problems += conformance(service, sub, value[key], f"{where}.{key}")
    return problems


def route_of(method: str, path: str) -> tuple[str, str] | None:
    service = path.split("/")[1]
    if service not in SERVICES:
        return None
    for template, operations in openapi_of(service)["paths"].items():
        pattern = re.sub(r"\{[^}:]+:\.\+\}", ".+", template)
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", pattern)
        if re.fullmatch(pattern, path) and method.lower() in operations:
            return service, template
    return None


def test_the_fake_gateway_answers_in_the_services_shapes(fake: FakeRyax, tmp_path: Path) -> None:
    seed_action(fake, "make-report", "2.0", state="built")
    folder = tmp_path / "action"
    folder.mkdir()
    (folder / "ryax_metadata.yaml").write_text("spec: {}\n")
    with Client(fake.url) as client:
        client.waiting.interval = 0
        client.login(*ALICE)
        client.me()
        client.projects.list()
        client.projects.get("demo")
        client.projects.set_member("demo", "admin", "viewer")
        key = client.api_keys.create("demo", "ci")
        client.api_keys.list("demo")
        client.api_keys.revoke("demo", key.id)
        repo = client.repositories.add("demo", "examples", "https://example.com/x.git")
        client.repositories.list("demo")
        client.repositories.scan("demo", repo.id)
        client.repositories.upload("demo", folder)
        client.actions.list("demo")
        client.actions.build("demo", "word-count", "1.0")
        client.actions.store("demo")
        wf = client.workflows.import_yaml("demo", DEMO_YAML)
        client.workflows.create("demo", "empty")
        client.workflows.list("demo")
        client.workflows.show("demo", wf.id)
        client.workflows.errors("demo", "empty")
        client.workflows.deploy("demo", wf.id)
        run = client.runs.trigger("demo", wf.name, {"text": "a b"})
        client.runs.trigger("demo", wf.name, {"text": "c"}, wait=False)
        client.runs.list("demo")
        client.runs.show("demo", run.id)
        list(client.runs.logs("demo", run.id))
        client.sites.list("demo")
        client.workflows.undeploy("demo", wf.id)
        client.workflows.upload_file("demo", wf.id, "count", "document", b"words", "w.txt")
        client.variables.set_value("demo", "greeting", "hello")
        client.variables.set_secret("demo", "token", "s3cr3t")
        client.variables.set_file("demo", "corpus", b"text", "c.txt")
        client.variables.list("demo")
        client.variables.delete("demo", "greeting")
    with Client(fake.url) as admin:
        admin.login("admin", "admin-password")
        admin.users.list()
        admin.users.create("bob", "bob-password")
        admin.projects.create("other")
        admin.sites.create("edge-1", "slurm")
        admin.sites.all(archived=True)
        admin.sites.show("edge-1")
        admin.sites.rotate("edge-1")
        admin.sites.revoke("edge-1")
        admin.sites.archive("edge-1")

    checked, problems = set(), []
    for answer in fake.answers:
        route = route_of(answer.method, answer.path)
        if route is None or not 200 <= answer.status < 300:
            continue
        service, template = route
        _, name = response_schema(service, answer.method, template)
        if name is None:
            continue  # an answer no schema describes (an HTTP endpoint's results)
        checked.add(f"{answer.method} {template}")
        node = {"$ref": f"#/components/schemas/{name}"}
        problems += conformance(service, node, answer.body, f"{answer.method} {answer.path}")
    assert not problems, "\n".join(problems)
    assert len(checked) >= 25, sorted(checked)


DEMO_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: Contract demo
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    streams_to: [count]
  - id: count
    from: word-count
    version: "1.0"
    inputs_values: {document: {reference_value: api.text}}
"""
