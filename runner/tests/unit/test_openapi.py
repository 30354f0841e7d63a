"""The runner's OpenAPI document is valid and says what the routes really read."""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from ryax_kit.web import openapi_path
from ryax_runner.infrastructure.api import endpoints, routes, sites

API = routes.api
_PATH_PARAM = re.compile(r"\{([^{}]+)\}")
#: How a route (or a helper it calls) reads a query parameter.
_QUERY_READS = (
    re.compile(r"request\.query\.get\(\s*\"(\w+)\""),
    re.compile(r"request\.query\[\s*\"(\w+)\"\s*\]"),
    re.compile(r"\"(\w+)\"\s+in\s+request\.query"),
    re.compile(r"_query_\w+\(\s*request,\s*\"(\w+)\""),
)
_CALL = re.compile(r"\b(_\w+)\(")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    assert endpoints.api is API  # the endpoint trigger's routes are in the same document
    assert sites.api is API
    return API.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]


def test_every_path_parameter_is_declared_and_no_router_pattern_leaks(
    document: dict[str, Any],
) -> None:
    assert document["openapi"].startswith("3.")
    for path, method, op in operations(document):
        assert ":" not in path, f"{path}: a router pattern is not an OpenAPI path"
        in_path = _PATH_PARAM.findall(path)
        declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        assert sorted(declared) == sorted(in_path), f"{method} {path}"
        for p in op.get("parameters", []):
            assert p["in"] in ("path", "query") and "schema" in p, f"{method} {path}: {p}"
            if p["in"] == "path":
                assert p["required"] is True, f"{method} {path}: {p['name']}"
        names = [(p["in"], p["name"]) for p in op.get("parameters", [])]
        assert len(names) == len(set(names)), f"{method} {path}: a parameter twice"
    files = "/runner/v1/projects/{project}/runs/{run_id}/files/{key}"
    assert "get" in document["paths"][files]


def test_operation_ids_are_unique_and_every_reference_resolves(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[-1] in schemas


def _source_with_helpers(handler: Callable[..., Any], depth: int = 3) -> str:
    """The handler's source and that of the module's `_helpers` it calls, transitively."""
    module = sys.modules[handler.__module__]
    seen: set[str] = set()
    sources: list[str] = []
    pending: list[tuple[Any, int]] = [(handler, 0)]
    while pending:
        function, level = pending.pop()
        source = inspect.getsource(function)
        sources.append(source)
        for name in _CALL.findall(source):
            helper = getattr(module, name, None) or getattr(routes, name, None)
            if inspect.isfunction(helper) and name not in seen and level < depth:
                seen.add(name)
                pending.append((helper, level + 1))
    return "\n".join(sources)


def test_the_query_parameters_documented_are_those_each_route_reads(
    document: dict[str, Any],
) -> None:
    read_somewhere = 0
    for route in API.routes:
        method, path = route.method.lower(), openapi_path(route.path)
        op = document["paths"][path][method]
        source = _source_with_helpers(route.handler)  # type: ignore[attr-defined]
        read = {name for pattern in _QUERY_READS for name in pattern.findall(source)}
        documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert documented == read, f"{method.upper()} {path}"
        read_somewhere += len(read)
    assert read_somewhere >= 19  # the scan finds them (deployments, runs, logs, endpoints)


def test_an_endpoint_call_may_have_no_body(document: dict[str, Any]) -> None:
    """Every field then takes its default (an endpoint without fields is called with none)."""
    call = document["paths"]["/runner/v1/projects/{project}/endpoints/{endpoint}"]["post"]
    assert call["requestBody"]["required"] is False
    bodies = [op["requestBody"] for _, _, op in operations(document) if "requestBody" in op]
    assert sum(not body["required"] for body in bodies) == 1


@pytest.mark.parametrize("held_by", ["", "site-1"])
def test_a_file_output_is_described_with_every_key_the_api_gives(held_by: str) -> None:
    """The schema of a file output (an endpoint's results, the user API's) names every key
    `present` answers with, `held_by` included while a site holds the file."""
    stored = {"$file": {"name": "a.csv", "size": 3, "sha256": "ab", "key": "runs/r/e/o/a.csv"}}
    if held_by:
        stored["$file"]["held_by"] = held_by
    shown = routes.present(stored, lambda key: f"/download/{key}")
    schema = endpoints.FILE_OUT
    assert set(shown) <= set(schema["properties"]), set(shown) - set(schema["properties"])
    assert set(schema["required"]) <= set(shown)
    assert ("held_by" in shown) == bool(held_by)
    assert shown["type"] in schema["properties"]["type"]["enum"]
