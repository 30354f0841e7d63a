"""`ryax run trigger /path` (the user API) and `ryax project api-key create|list|revoke`, against
the fake gateway."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Ryax
from .fake_ryax import FakeRyax

ITEMS_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: Items
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values: {path: "/items/{id}", method: GET, success_code: "201", timeout: 30}
    outputs:
    - {name: id, type: integer, origin: path}
    - {name: verbose, type: boolean, origin: query}
    - {name: x_tenant, type: string, origin: header}
    streams_to: [count]
  - id: count
    from: word-count
    version: "1.0"
    inputs_values: {document: {reference_value: api.id}}
"""
LATER_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: Later
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values: {path: /later, method: POST, timeout: 0}
    outputs:
    - {name: text, type: string, origin: body}
    streams_to: [count]
  - id: count
    from: word-count
    version: "1.0"
    inputs_values: {document: {reference_value: api.text}}
"""


def deploy(ryax: Ryax, tmp_path: Path, text: str, name: str) -> str:
    source = tmp_path / f"{name}.yaml"
    source.write_text(text)
    assert ryax("workflow", "import", str(source)).exit_code == 0
    out = ryax("workflow", "deploy", name)
    assert out.exit_code == 0, out.stderr
    return out.stderr


def test_trigger_by_path_places_each_input_where_the_openapi_says(
    ryax: Ryax, fake: FakeRyax, tmp_path: Path
) -> None:
    ryax.login()
    said = deploy(ryax, tmp_path, ITEMS_YAML, "Items")
    assert f"user API: GET {fake.url}/user-api/demo/items/{{id}}" in said
    out = ryax(
        "run", "trigger", "/items/42", "-i", "verbose=true", "-i", "x_tenant=acme", "-o", "json"
    )
    assert out.exit_code == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["state"] == "completed"
    assert run["results"] == {"inputs": {"id": "42", "verbose": "true", "x_tenant": "acme"}}
    (call,) = fake.calls("GET", "/user-api/demo/items/42")
    assert call.query == {"verbose": "true"}
    assert call.headers["x-tenant"] == "acme" and call.body == b""
    assert call.headers["Authorization"].startswith("Bearer tok-alice")
    # --path works as well, with a query string of its own.
    again = ryax("run", "trigger", "--path", "/items/7?verbose=false", "-i", "x-tenant=t")
    assert again.exit_code == 0, again.stderr
    assert fake.calls("GET", "/user-api/demo/items/7")[0].query == {"verbose": "false"}
    shown = ryax("workflow", "show", "Items")
    assert "/user-api/demo/items/{id}" in shown.stdout


def test_a_timeout_0_path_answers_202_and_the_cli_follows_the_run(
    ryax: Ryax, fake: FakeRyax, tmp_path: Path
) -> None:
    ryax.login()
    deploy(ryax, tmp_path, LATER_YAML, "Later")
    out = ryax("run", "trigger", "/later", "-i", "text=some words", "-o", "json")
    assert out.exit_code == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["state"] == "completed"
    assert run["results"] == {"inputs": {"text": "some words"}}
    (call,) = fake.calls("POST", "/user-api/demo/later")
    assert json.loads(call.body) == {"text": "some words"}


def test_a_path_no_endpoint_serves_and_usage_errors(
    ryax: Ryax, fake: FakeRyax, tmp_path: Path
) -> None:
    ryax.login()
    deploy(ryax, tmp_path, ITEMS_YAML, "Items")
    out = ryax("run", "trigger", "/nothing")
    assert out.exit_code == 1
    assert "no endpoint /nothing in project demo (its paths: /items/{id})" in out.stderr
    wrong = ryax("run", "trigger", "/items/1", "--method", "POST")
    assert wrong.exit_code == 1 and "/items/1 answers GET, not POST" in wrong.stderr
    both = ryax("run", "trigger", "Items", "--path", "/items/1")
    assert both.exit_code == 2
    assert ryax("run", "trigger").exit_code == 2


def test_api_keys_create_list_revoke(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    out = ryax("project", "api-key", "create", "billing")
    assert out.exit_code == 0, out.stderr
    key = out.stdout.strip()
    assert key.startswith("ryaxpk_") and "shown once" in out.stderr
    created = json.loads(ryax("project", "api-key", "create", "ci", "-o", "json").stdout)
    assert created["key"].startswith("ryaxpk_") and created["name"] == "ci"
    twice = ryax("project", "api-key", "create", "ci")
    assert twice.exit_code == 1 and "ci" in twice.stderr
    listed = json.loads(ryax("project", "api-key", "list", "-o", "json").stdout)
    assert [(k["name"], k["revoked"]) for k in listed] == [("billing", False), ("ci", False)]
    assert all("key" not in k for k in listed)
    table = ryax("project", "api-key", "list")
    assert "billing" in table.stdout and "never" in table.stdout and key not in table.stdout

    # The key calls the user API of its project.
    deploy(ryax, tmp_path, ITEMS_YAML, "Items")
    with_key = ryax(
        "--token", key, "run", "trigger", "/items/1", "-i", "x_tenant=a", "-o", "json", "-p", "demo"
    )
    assert with_key.exit_code == 0, with_key.stderr
    assert json.loads(with_key.stdout)["results"]["inputs"]["id"] == "1"
    assert fake.calls("GET", "/user-api/demo/items/1")[0].headers["Authorization"] == (
        f"Bearer {key}"
    )
    # A key reads no run: a 202 is followed through the call's result link.
    deploy(ryax, tmp_path, LATER_YAML, "Later")
    later = ryax(
        "--token", key, "run", "trigger", "/later", "-i", "text=by key", "-o", "json", "-p", "demo"
    )
    assert later.exit_code == 0, later.stderr
    followed = json.loads(later.stdout)
    assert followed["state"] == "completed"
    assert followed["results"] == {"inputs": {"text": "by key"}}
    assert fake.calls("GET", f"/runner/v1/projects/demo/results/{followed['id']}")

    revoked = ryax("project", "api-key", "revoke", "billing")
    assert revoked.exit_code == 0 and "Revoked API key billing" in revoked.stderr
    by_id = ryax("project", "api-key", "revoke", created["id"], "-o", "json")
    assert json.loads(by_id.stdout)["revoked"] is True
    listed = json.loads(ryax("project", "api-key", "list", "-o", "json").stdout)
    assert [k["revoked"] for k in listed] == [True, True]
    refused = ryax("--token", key, "run", "trigger", "/items/1", "-i", "x_tenant=a", "-p", "demo")
    assert refused.exit_code == 4 and "revoked" in refused.stderr
    missing = ryax("project", "api-key", "revoke", "no-such-key")
    assert missing.exit_code == 1


def test_only_owners_create_keys(ryax: Ryax, fake: FakeRyax) -> None:
    fake.projects["demo"]["members"]["alice"] = "developer"
    ryax.login()
    out = ryax("project", "api-key", "create", "ci")
    assert out.exit_code == 4 and "owners only" in out.stderr


def test_the_form_portal_page_is_named_by_show_and_deploy() -> None:
    from ryax_cli.cli.workflows import form_url
    from ryax_cli.models import Workflow

    def wf(action_id: str, path: object) -> Workflow:
        step = {"id": "ask", "action_id": action_id, "version": "1.5", "inputs": {}}
        if path is not None:
            step["inputs"] = {"path": {"static": path}}
        return Workflow.from_json({"id": "w", "name": "Ask", "steps": [step]})

    assert form_url("http://gw", "my proj", wf("postgw", "/ask")) == (
        "http://gw/user-api/my%20proj/ask"
    )
    assert form_url("http://gw", "p", wf("postgw", None)) is None
    assert form_url("http://gw", "p", wf("httpapijson", "/ask")) is None
