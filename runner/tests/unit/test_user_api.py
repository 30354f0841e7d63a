"""The user API's rules (domain/user_api.py): the route a trigger declares, conflicts, which
route a request takes, and fields read from the path, query and headers with their type (a bad
value is an InvalidInput naming the field and where it came from: a 400, never a 500)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ryax_runner.domain.deployment import Deployment, DeploymentId, DeploymentState
from ryax_runner.domain.errors import InvalidInput
from ryax_runner.domain.user_api import (
    Route,
    RouteRefused,
    RouteTable,
    conflict,
    header_name,
    pick_headers,
    route_of,
    text_value,
    user_api_refusal,
)
from ryax_runner.domain.workflow import (
    IO,
    StaticInput,
    StepDefinition,
    TriggerDefinition,
    WorkflowDefinition,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def definition(
    fields: tuple[IO, ...] = (), http: bool = True, **settings: Any
) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="api",
        action_id="httpapijson",
        action_version="1.0",
        action_kind="trigger",
        outputs=fields,
        input_values=tuple((k, StaticInput(value=v)) for k, v in settings.items()),
    )
    step = StepDefinition(
        step_id="work",
        action_id="a",
        action_version="1",
        action_kind="processor",
        parent_step_ids=("api",),
    )
    return WorkflowDefinition(
        steps=(trigger, step),
        trigger=TriggerDefinition(step_id="api", http_endpoint=http, fields=fields),
    )


def route(path: str, method: str = "POST", fields: tuple[IO, ...] = (), **more: Any) -> Route:
    found = route_of(definition(fields, path=path, method=method, **more))
    assert found is not None
    return found


ID = IO(name="id", type="integer", origin="path")


# -- the route a trigger declares --------------------------------------------------------------


def test_a_trigger_without_a_path_has_no_route_and_settings_have_defaults() -> None:
    assert route_of(definition()) is None
    assert route_of(definition(path="  ")) is None
    assert route_of(definition(http=False, path="/x")) is None
    r = route("/reports/")
    assert (r.path, r.method, r.success_code, r.timeout_seconds) == ("/reports", "POST", 200, 60)
    r = route(
        "/items/{id}",
        "get",
        (ID,),
        success_code="201",
        timeout=0,
        summary="One item",
        tags="items, read",
    )
    assert (r.method, r.success_code, r.timeout_seconds) == ("GET", 201, 0)
    assert r.segments == (("lit", "items"), ("param", "id"))
    assert (r.summary, r.tags) == ("One item", ("items", "read"))


@pytest.mark.parametrize(
    ("settings", "fields", "message"),
    [
        ({"path": "items"}, (), "path: 'items' must start with /"),
        ({"path": "/items/{id}"}, (), "path: {id} is not an output of origin path"),
        ({"path": "/items/item-{id}"}, (ID,), "a path parameter is a whole segment"),
        ({"path": "/a/{id}/{id}"}, (ID,), "the parameter {id} is twice"),
        ({"path": "/a/../b"}, (), "no . or .. segments"),
        ({"path": "/a?b=1"}, (), "no ?, # or \\"),
        ({"path": "/openapi.json"}, (), "served by the user API itself"),
        ({"path": "/docs", "method": "POST"}, (), "served by the user API itself"),
        ({"path": "/x", "method": "TRACE"}, (), "method: 'TRACE'"),
        ({"path": "/x", "success_code": "202"}, (), "success_code: '202': 200 or 201"),
        ({"path": "/x", "timeout": -1}, (), "timeout: -1"),
        ({"path": "/x"}, (ID,), "output id: origin path, but the path /x has no {id}"),
        (
            {"path": "/x"},
            (IO(name="doc", type="file", origin="query"),),
            "output doc: a file comes in the body",
        ),
        (
            {"path": "/x"},
            (IO(name="authorization", type="string", origin="header"),),
            "output authorization: this header carries the caller's credentials",
        ),
        ({"path": "/x"}, (IO(name="n", type="string", origin="cookie"),), "origin 'cookie'"),
    ],
)
def test_a_trigger_that_cannot_be_served_is_refused_naming_the_setting(
    settings: dict[str, Any], fields: tuple[IO, ...], message: str
) -> None:
    with pytest.raises(RouteRefused) as caught:
        route_of(definition(fields, **settings))
    assert message in caught.value.detail


# -- conflicts -----------------------------------------------------------------------------------


def test_same_method_and_same_shape_conflict_other_names_or_methods_do_not() -> None:
    items = route("/items/{id}", "GET", (ID,))
    other_name = route("/items/{key}", "GET", (IO(name="key", type="string", origin="path"),))
    assert conflict(other_name, [("workflow a", items)]) == (
        "GET /items/{key} is already served by workflow a (/items/{id})"
    )
    assert conflict(route("/items/{id}", "POST", (ID,)), [("a", items)]) is None
    assert conflict(route("/items/special", "GET"), [("a", items)]) is None
    assert conflict(route("/items", "GET"), [("a", items)]) is None


def deployment(
    name: str,
    d: WorkflowDefinition,
    state: DeploymentState = DeploymentState.DEPLOYED,
    project: str = "p",
    workflow_id: str | None = None,
) -> Deployment:
    dep = Deployment.request(
        id=DeploymentId(f"dep-{name}"),
        project_id=project,
        workflow_id=workflow_id or name,
        workflow_name=name,
        snapshot_id="s",
        definition=d,
        requested_by="alice",
        now=NOW,
    )
    dep.state = state
    return dep


def test_the_second_deployment_claiming_a_route_is_refused_with_the_reason() -> None:
    first = deployment("first", definition(path="/items", method="GET"))
    second = deployment("second", definition(path="/items/", method="get"))
    why = user_api_refusal(second, [first, second])
    assert why == (
        "user API: GET /items is already served by workflow first (deployment dep-first) (/items)"
    )
    # The same workflow deployed again, another project, a failed or undeployed one: no claim.
    again = deployment("again", definition(path="/items", method="GET"), workflow_id="first")
    assert user_api_refusal(again, [first]) is None
    elsewhere = deployment("x", definition(path="/items", method="GET"), project="q")
    assert user_api_refusal(second, [elsewhere]) is None
    for state in (DeploymentState.FAILED, DeploymentState.UNDEPLOYED, DeploymentState.UNDEPLOYING):
        gone = deployment("gone", definition(path="/items", method="GET"), state=state)
        assert user_api_refusal(second, [gone]) is None
    bad = deployment("bad", definition(path="no-slash"))
    assert user_api_refusal(bad, []) == "user API: path: 'no-slash' must start with /"


def test_refuse_fails_the_deployment_with_its_reason() -> None:
    d = deployment("d", definition(path="/x"), state=DeploymentState.DEPLOYING)
    d.refuse("user API: taken", NOW)
    assert (d.state, d.reason) == (DeploymentState.FAILED, "user API: taken")
    assert not d.refresh(NOW)  # failed is sticky


# -- matching ------------------------------------------------------------------------------------


def test_a_request_takes_the_most_literal_route_and_decodes_each_segment() -> None:
    table = RouteTable(
        {
            "by-id": route("/items/{id}", "GET", (ID,)),
            "special": route("/items/special", "GET"),
            "create": route("/items", "POST"),
            "root": route("/", "GET"),
        }
    )
    found = table.match("GET", "/items/42")
    assert not isinstance(found, list) and found is not None
    assert (found.route_key, found.params) == ("by-id", {"id": "42"})
    special = table.match("get", "/items/special/")
    assert not isinstance(special, list) and special is not None and special.route_key == "special"
    encoded = table.match("GET", "/items/a%2Fb")
    assert not isinstance(encoded, list) and encoded is not None
    assert encoded.params == {"id": "a/b"}  # an encoded / stays in its parameter
    root = table.match("GET", "/")
    assert not isinstance(root, list) and root is not None and root.route_key == "root"
    assert table.match("DELETE", "/items/42") == ["GET"]  # 405, with Allow: GET
    assert table.match("PUT", "/items") == ["POST"]
    assert table.match("GET", "/items/42/more") is None
    assert table.match("GET", "/nothing") is None


def test_literal_segments_are_compared_decoded() -> None:
    table = RouteTable({"r": route("/caf%C3%A9/menu", "GET")})
    assert table.routes["r"].path == "/café/menu"
    found = table.match("GET", "/caf%C3%A9/menu")
    assert found is not None and not isinstance(found, list)


# -- fields from the path, the query, the headers ---------------------------------------------


@pytest.mark.parametrize(
    ("io", "origin", "text", "value"),
    [
        (IO(name="n", type="integer"), "path", " 42 ", 42),
        (IO(name="x", type="float"), "query", "2.5", 2.5),
        (IO(name="on", type="boolean"), "header", "yes", True),
        (IO(name="on", type="boolean"), "query", "0", False),
        (IO(name="s", type="string"), "path", "a/b", "a/b"),
        (IO(name="e", type="enum", enum_values=("red", "blue")), "query", "red", "red"),
    ],
)
def test_text_values_take_the_field_type(io: IO, origin: str, text: str, value: Any) -> None:
    assert text_value(io, origin, text) == value


@pytest.mark.parametrize(
    ("io", "origin", "text", "message"),
    [
        (IO(name="id", type="integer"), "path", "abc", "id (from the path): expected an integer"),
        (IO(name="x", type="float"), "query", "nan", "x (from the query): is NaN"),
        (IO(name="x", type="float"), "query", "one", "x (from the query): expected a number"),
        (IO(name="b", type="boolean"), "header", "maybe", "b (from the header): expected true"),
        (
            IO(name="e", type="enum", enum_values=("red",)),
            "query",
            "green",
            "e (from the query): expected one of red",
        ),
        (IO(name="d", type="json"), "query", "{", "d (from the query): expected a JSON"),
        (IO(name="n", type="integer"), "query", "9" * 5000, "n (from the query): expected an"),
        (IO(name="s", type="string"), "header", "a\x00b", "s (from the header): contains a NUL"),
    ],
)
def test_a_bad_text_names_the_field_and_its_origin(
    io: IO, origin: str, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        text_value(io, origin, text)
    assert str(caught.value).startswith(message), str(caught.value)


def test_header_fields_are_found_in_any_case_with_dashes_for_underscores() -> None:
    r = route(
        "/x",
        fields=(
            IO(name="x_request_id", type="string", origin="header"),
            IO(name="tenant", type="string", origin="header"),
            IO(name="absent", type="string", origin="header", optional=True),
            IO(name="q", type="string", origin="query"),
        ),
    )
    assert header_name("x_request_id") == "x-request-id"
    given = pick_headers(r, {"X-Request-Id": "r-1", "TENANT": "acme", "q": "not a header"})
    assert given == {"x_request_id": "r-1", "tenant": "acme"}
    assert pick_headers(r, {"x_request_id": "r-2"}) == {"x_request_id": "r-2"}
