"""The platform driven the way a user drives it: the `ryax` command and plain HTTP.

Needs the e2e fixture `platform` (an object with `.url`, `.admin_user`, `.admin_password` of a
running platform behind its gateway). Without that fixture every test here is skipped, saying
so; with it, nothing is skipped: a platform that does not work fails the tests.

The demo scenario (dev/demo_scenario.py) runs in a project and with a user of this test run's
own (e2e-<random>), so a developer's `demo` project is left alone, and it runs twice: the second
run must reuse everything the first one made.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "dev" / "demo_scenario.py"
DEMO_WORKFLOW = "Word count demo"
DEMO_TEXT = "The cat and the hat"
# examples/workflows/demo.yaml documents this answer for this text.
DEMO_RESULTS = {"summary": "THE CAT AND THE HAT | the-cat-and-the-hat", "words": 7}
SERVICES = ("authorization", "repository", "studio", "runner")


class Platform(Protocol):
    url: str
    admin_user: str
    admin_password: str


@pytest.fixture
def live(request: pytest.FixtureRequest) -> Platform:
    """The lead's `platform` fixture; skipped (only) when no such fixture is defined."""
    try:
        found: Platform = request.getfixturevalue("platform")
    except pytest.FixtureLookupError:
        pytest.skip(
            "no `platform` fixture: the e2e suite needs a fixture named `platform` that starts "
            "the platform and yields .url, .admin_user, .admin_password"
        )
    return found


def ryax_command() -> list[str]:
    script = Path(sys.executable).parent / "ryax"
    if script.exists():
        return [str(script)]
    found = shutil.which("ryax")
    return [found] if found else [sys.executable, "-m", "ryax_cli"]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Ryax:
    url: str
    config: Path

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 300) -> Outcome:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RYAX_TOKEN", "RYAX_PROJECT", "RYAX_CONFIG", "RYAX_URL")
        }
        env |= {"RYAX_URL": self.url, "RYAX_CONFIG": str(self.config), "COLUMNS": "200"}
        done = subprocess.run(
            [*ryax_command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 300) -> Outcome:
        out = self(*args, stdin=stdin, timeout=timeout)
        assert out.code == 0, f"ryax {' '.join(args)} exited {out.code}: {out.stderr}"
        return out


@dataclass
class Demo:
    project: str
    user: str
    password: str
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


_DEMOS: dict[str, Demo] = {}


def run_scenario(live: Platform, root: Path, project: str, user: str, password: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
    env |= {
        "RYAX_URL": live.url,
        "RYAX_ADMIN_USER": live.admin_user,
        "RYAX_ADMIN_PASSWORD": live.admin_password,
        "RYAX_DEMO_PROJECT": project,
        "RYAX_DEMO_USER": user,
        "RYAX_DEMO_PASSWORD": password,
        "RYAX_DEMO_TEXT": DEMO_TEXT,
        "RYAX_REPO_ROOT": str(root),
    }
    return subprocess.run(
        [sys.executable, "-P", str(SCENARIO)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )


@pytest.fixture
def demo(live: Platform, tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo scenario, run twice, once per platform for this module's tests."""
    if live.url in _DEMOS:
        return _DEMOS[live.url]
    suffix = secrets.token_hex(3)
    project, user, password = f"e2e-{suffix}", f"e2e-{suffix}", secrets.token_urlsafe(12)
    # The scenario publishes examples/actions from a copy: this run's .dev, not the repo's.
    root = tmp_path_factory.mktemp("demo-root")
    shutil.copytree(REPO / "examples", root / "examples")
    first = run_scenario(live, root, project, user, password)
    assert first.returncode == 0, f"first run:\n{first.stdout}\n{first.stderr}"
    second = run_scenario(live, root, project, user, password)
    assert second.returncode == 0, f"second run:\n{second.stdout}\n{second.stderr}"
    _DEMOS[live.url] = Demo(project, user, password, first, second)
    return _DEMOS[live.url]


@pytest.fixture
def ryax(live: Platform, tmp_path: Path) -> Ryax:
    return Ryax(live.url, tmp_path / "config.toml")


def login(ryax: Ryax, user: str, password: str) -> None:
    ryax.ok("login", user, "--password-stdin", stdin=password + "\n")


# --------------------------------------------------------------------------- the demo


def test_demo_scenario_runs_and_is_idempotent(demo: Demo) -> None:
    out = demo.first.stdout
    assert "demo: OK" in out
    for key, value in DEMO_RESULTS.items():
        assert f"  {key}: {json.dumps(value)}" in out
    again = demo.second.stdout
    assert f"user {demo.user} exists: reused" in again
    assert f"project {demo.project} exists: reused" in again
    assert "repository demo-actions exists" in again
    assert f"workflow '{DEMO_WORKFLOW}' exists and is deployed: reused" in again
    assert "demo: OK" in again


def test_the_user_sees_what_the_demo_made(demo: Demo, ryax: Ryax) -> None:
    login(ryax, demo.user, demo.password)
    ryax.ok("project", "use", demo.project)
    actions = {a["action_id"] for a in ryax.ok("action", "list", "-o", "json").json()}
    assert {"make-report", "word-count", "uppercase", "slugify-text", "concat"} <= actions
    built = ryax.ok("action", "list", "-o", "json").json()
    used = {"make-report", "word-count", "uppercase", "slugify-text", "concat", "print-publisher"}
    assert all(a["state"] == "built" for a in built if a["action_id"] in used)

    workflow = ryax.ok("workflow", "show", DEMO_WORKFLOW, "-o", "json").json()
    assert workflow["deployment"]["state"] == "deployed"
    assert workflow["valid"] is True and len(workflow["steps"]) == 7

    runs = ryax.ok("run", "list", "-w", DEMO_WORKFLOW, "-o", "json").json()["runs"]
    assert len(runs) >= 2 and all(r["state"] == "completed" for r in runs)
    run = ryax.ok("run", "show", runs[0]["id"], "-o", "json").json()
    assert run["results"] == DEMO_RESULTS
    assert {s["step_id"] for s in run["steps"]} >= {"report", "count", "join", "log"}
    logs = ryax.ok("run", "logs", runs[0]["id"], "-o", "json").stdout.splitlines()
    assert logs, "the run has no log line"
    followed = ryax.ok("run", "logs", "-f", runs[0]["id"], timeout=60).stdout
    assert followed.strip()

    sites = ryax.ok("site", "list", "-o", "json").json()
    assert any(s["state"] == "online" for s in sites)
    exported = ryax.ok("workflow", "export", DEMO_WORKFLOW).stdout
    assert "kind: Workflows" in exported and "httpapijson" in exported


def test_trigger_through_the_cli(demo: Demo, ryax: Ryax) -> None:
    login(ryax, demo.user, demo.password)
    out = ryax.ok(
        "run",
        "trigger",
        DEMO_WORKFLOW,
        "-i",
        f"text={DEMO_TEXT}",
        "-o",
        "json",
        "-p",
        demo.project,
    )
    run = out.json()
    assert run["state"] == "completed"
    assert run["results"] == DEMO_RESULTS
    missing = ryax("run", "trigger", DEMO_WORKFLOW, "-p", demo.project)
    assert missing.code == 1 and "text" in missing.stderr


def test_the_endpoint_over_plain_http(demo: Demo, live: Platform) -> None:
    with httpx.Client(base_url=live.url, timeout=120) as http:
        token = http.post(
            "/authorization/v1/login", json={"username": demo.user, "password": demo.password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        endpoint = f"/runner/v1/projects/{demo.project}/endpoints/{quote(DEMO_WORKFLOW)}"
        answer = http.post(endpoint, json={"text": DEMO_TEXT}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == DEMO_RESULTS
        run_id = answer.headers["Ryax-Run-Id"]
        run = http.get(f"/runner/v1/projects/{demo.project}/runs/{run_id}", headers=headers)
        assert run.json()["state"] == "completed"
        unauthenticated = http.post(endpoint, json={"text": DEMO_TEXT})
        assert unauthenticated.status_code == 401
        assert set(unauthenticated.json()) >= {"error", "detail"}


def test_api_docs_behind_the_gateway(live: Platform) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for service in SERVICES:
            docs = http.get(f"/{service}/docs")
            assert docs.status_code == 200, f"/{service}/docs: {docs.status_code}"
            spec = http.get(f"/{service}/openapi.json")
            assert spec.status_code == 200 and spec.json()["paths"], service


# --------------------------------------------------------------------------- errors a user meets


def test_bad_credentials_exit_4_with_one_line(live: Platform, ryax: Ryax) -> None:
    out = ryax("login", live.admin_user, "--password-stdin", stdin="not the password\n")
    assert out.code == 4
    assert out.stderr.strip() == "ryax: error: authentication failed: invalid credentials"
    assert not ryax.config.exists()
    # A correct login right after works (and resets the failure count).
    login(ryax, live.admin_user, live.admin_password)


def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    out = Ryax(f"http://127.0.0.1:{port}", tmp_path / "c.toml")(
        "login", "admin", "--password-stdin", stdin="x\n"
    )
    assert out.code == 3
    assert out.stderr.startswith(
        f"ryax: error: cannot reach the Ryax server at http://127.0.0.1:{port}"
    )
    assert len(out.stderr.strip().splitlines()) == 1


def test_invalid_yaml_import_is_one_clear_line(demo: Demo, ryax: Ryax, tmp_path: Path) -> None:
    login(ryax, demo.user, demo.password)
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: ryax.tech/v2.0\nkind: Workflows\nspec: {functions: [\n")
    out = ryax("workflow", "import", str(broken), "-p", demo.project)
    assert out.code == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ryax: error: {broken} is not valid YAML at line ")


def test_invalid_workflow_import_lists_the_servers_problems(
    demo: Demo, ryax: Ryax, tmp_path: Path
) -> None:
    login(ryax, demo.user, demo.password)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "apiVersion: ryax.tech/v2.0\n"
        "kind: Workflows\n"
        "spec:\n"
        "  human_name: e2e broken\n"
        "  functions:\n"
        "  - id: api\n"
        "    from: httpapijson\n"
        '    version: "1.0"\n'
        "    inputs_values: {path: /e2e, method: POST, summary: e2e}\n"
        "    streams_to: [ghost]\n"
        "  - id: ghost\n"
        "    from: no-such-action\n"
        '    version: "9.9"\n'
    )
    out = ryax("workflow", "import", str(wrong), "-p", demo.project)
    assert out.code == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("ryax: error: ")
    assert "no-such-action" in out.stderr
    listed = ryax.ok("workflow", "list", "-o", "json", "-p", demo.project).json()
    assert "e2e broken" not in {w["name"] for w in listed}  # all or nothing


def test_missing_project_and_forbidden_project(demo: Demo, ryax: Ryax) -> None:
    login(ryax, demo.user, demo.password)
    out = ryax("workflow", "list", "-p", "no-such-project-e2e")
    assert out.code in (1, 4)  # not found, or not a member: the server decides which
    assert len(out.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- 20 runs


def test_twenty_runs_through_the_http_endpoint_each_with_its_own_outputs(
    live: Platform, demo: Demo
) -> None:
    """Trigger -> report (file) -> count (file in, file + int out) -> shout and slug (fan-out)
    -> join (fan-in) -> log: 20 runs, every answer checked against its own input."""
    from ryax_cli.sdk import Client

    client = Client(live.url)
    client.login(demo.user, demo.password)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
    for i in range(20):
        text = " ".join(words[: 1 + i % len(words)]) + f" run {i}"
        run = client.runs.trigger(demo.project, DEMO_WORKFLOW, {"text": text}, timeout=120)
        assert run.succeeded, f"run {i} ({run.id}) {run.state}: {run.error}"
        slug = text.lower().replace(" ", "-")
        # The report is the title "Posted text" (2 words) followed by the text.
        expected = {"summary": f"{text.upper()} | {slug}", "words": len(text.split()) + 2}
        assert run.outputs == expected, f"run {i}"
        detail = client.runs.show(demo.project, run.id)
        steps = {s.step for s in detail.info.steps}
        assert {"report", "count", "shout", "slug", "join", "log"} <= steps
    client.close()


# --------------------------------------------------------------------------- the user API

GREET_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: E2E greet
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values:
      path: /e2e/greet/{name}
      method: GET
      summary: Greet someone
      success_code: "201"
      timeout: 60
    outputs:
    - {name: name, human_name: Name, help: Who., type: string, origin: path}
    - {name: sep, human_name: Separator, help: Between., type: string, origin: query}
    - {name: x_tenant, human_name: Tenant, help: Whose., type: string, origin: header}
    streams_to: [shout]
  - id: shout
    from: uppercase
    version: "1.0"
    inputs_values: {text: {reference_value: api.name}}
    streams_to: [join]
  - id: join
    from: concat
    version: "1.0"
    inputs_values:
      left: {reference_value: shout.upper}
      right: {reference_value: api.x_tenant}
      separator: {reference_value: api.sep}
    streams_to: []
  results:
  - {key: greeting, reference_value: join.text}
"""
LATER_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: E2E later
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values: {path: /e2e/later, method: POST, summary: Later, timeout: 0}
    outputs:
    - {name: text, human_name: Text, help: Any., type: string, origin: body}
    streams_to: [shout]
  - id: shout
    from: uppercase
    version: "1.0"
    inputs_values: {text: {reference_value: api.text}}
    streams_to: []
  results:
  - {key: upper, reference_value: shout.upper}
"""


@dataclass
class UserApi:
    project: str
    project_id: str
    key: str
    key_id: str
    token: str


_USER_APIS: dict[str, UserApi] = {}


@pytest.fixture
def user_api(demo: Demo, live: Platform, tmp_path_factory: pytest.TempPathFactory) -> UserApi:
    """Two workflows served on the user API of the demo project, and a project API key made
    with the CLI (once per platform)."""
    if live.url in _USER_APIS:
        return _USER_APIS[live.url]
    root = tmp_path_factory.mktemp("user-api")
    ryax = Ryax(live.url, root / "config.toml")
    login(ryax, demo.user, demo.password)
    ryax.ok("project", "use", demo.project)
    for name, text in (("E2E greet", GREET_YAML), ("E2E later", LATER_YAML)):
        source = root / f"{name.replace(' ', '-')}.yaml"
        source.write_text(text)
        listed = {w["name"] for w in ryax.ok("workflow", "list", "-o", "json").json()}
        if name not in listed:
            ryax.ok("workflow", "import", str(source))
        deployed = ryax.ok("workflow", "deploy", name, timeout=900)
        assert "user API: " in deployed.stderr, deployed.stderr
    created = ryax.ok("project", "api-key", "create", f"e2e-{secrets.token_hex(3)}", "-o", "json")
    key = created.json()
    assert key["key"].startswith("ryaxpk_")
    project_id = ryax.ok("project", "show", "-o", "json").json()["id"]
    with httpx.Client(base_url=live.url, timeout=30) as http:
        token = http.post(
            "/authorization/v1/login", json={"username": demo.user, "password": demo.password}
        ).json()["access_token"]
    _USER_APIS[live.url] = UserApi(demo.project, project_id, key["key"], key["id"], token)
    return _USER_APIS[live.url]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_user_api_serves_each_field_from_its_origin_with_a_key(
    user_api: UserApi, live: Platform
) -> None:
    with httpx.Client(base_url=live.url, timeout=120) as http:
        for project in (user_api.project, user_api.project_id):  # by name or by id
            answer = http.get(
                f"/user-api/{project}/e2e/greet/bob",
                params={"sep": "@"},
                headers={**bearer(user_api.key), "X-Tenant": "acme"},
            )
            assert answer.status_code == 201, answer.text
            assert answer.json() == {"greeting": "BOB@acme"}
        # The header is named in the answer when it is missing; a wrong method is a 405.
        missing = http.get(
            f"/user-api/{user_api.project}/e2e/greet/bob",
            params={"sep": "@"},
            headers=bearer(user_api.key),
        )
        assert missing.status_code == 400 and "x_tenant (from the header)" in missing.text
        wrong = http.post(
            f"/user-api/{user_api.project}/e2e/greet/bob", headers=bearer(user_api.key)
        )
        assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
        # The demo's own trigger path is served too, and its endpoint by name still works.
        demo = http.post(
            f"/user-api/{user_api.project}/demo/word-count",
            json={"text": DEMO_TEXT},
            headers=bearer(user_api.key),
        )
        assert demo.status_code == 200 and demo.json() == DEMO_RESULTS
        by_name = http.post(
            f"/runner/v1/projects/{user_api.project}/endpoints/{quote(DEMO_WORKFLOW)}",
            json={"text": DEMO_TEXT},
            headers=bearer(user_api.token),
        )
        assert by_name.status_code == 200 and by_name.json() == DEMO_RESULTS
        # A key calls the user API and nothing else; no credentials, nothing.
        runs = http.get(
            f"/runner/v1/projects/{user_api.project}/runs", headers=bearer(user_api.key)
        )
        assert runs.status_code == 403
        anonymous = http.get(f"/user-api/{user_api.project}/e2e/greet/bob")
        assert anonymous.status_code == 401


def test_user_api_timeout_0_answers_202_and_the_result_link(
    user_api: UserApi, live: Platform
) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        answer = http.post(
            f"/user-api/{user_api.project}/e2e/later",
            json={"text": "later on"},
            headers=bearer(user_api.key),
        )
        assert answer.status_code == 202, answer.text
        link = answer.json()["result_link"]
        assert answer.headers["Location"] == link
        assert answer.json()["workflow_run_id"] == answer.json()["run_id"]
        for _ in range(240):
            result = http.get(link, headers=bearer(user_api.key))
            if result.status_code != 202:
                break
            time.sleep(0.5)
        assert result.status_code == 200, result.text
        assert result.json() == {"upper": "LATER ON"}


def test_user_api_openapi_and_its_page(user_api: UserApi, live: Platform) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        spec = http.get(f"/user-api/{user_api.project}/openapi.json", headers=bearer(user_api.key))
        assert spec.status_code == 200, spec.text
        greet = spec.json()["paths"]["/e2e/greet/{name}"]["get"]
        where = {(p["name"], p["in"]) for p in greet["parameters"]}
        assert where == {("name", "path"), ("sep", "query"), ("x-tenant", "header")}
        assert set(greet["responses"]) >= {"201", "202", "400"}
        assert "post" in spec.json()["paths"]["/demo/word-count"]
        page = http.get(f"/user-api/{user_api.project}/docs")
        assert page.status_code == 200 and "openapi.json" in page.text


def test_ryax_run_trigger_takes_a_path_with_a_token_or_a_key(user_api: UserApi, ryax: Ryax) -> None:
    env_project = ("-p", user_api.project)
    with_key = ryax.ok(
        "--token",
        user_api.key,
        "run",
        "trigger",
        "/e2e/later",
        "-i",
        "text=by key",
        "-o",
        "json",
        *env_project,
    ).json()
    assert with_key["state"] == "completed" and with_key["results"] == {"upper": "BY KEY"}
    greet = ryax.ok(
        "--token",
        user_api.token,
        "run",
        "trigger",
        "/e2e/greet/ann?sep=-",
        "-i",
        "x_tenant=t1",
        "-o",
        "json",
        *env_project,
    ).json()
    assert greet["state"] == "completed" and greet["results"] == {"greeting": "ANN-t1"}
    assert any(s["step_id"] == "join" for s in greet["steps"])  # a user reads the whole run
    nothing = ryax("--token", user_api.token, "run", "trigger", "/e2e/nothing", *env_project)
    assert nothing.code == 1 and "/e2e/greet/{name}" in nothing.stderr


def test_a_revoked_key_is_refused(user_api: UserApi, ryax: Ryax, live: Platform) -> None:
    ryax.ok(
        "--token",
        user_api.token,
        "project",
        "api-key",
        "revoke",
        user_api.key_id,
        "-p",
        user_api.project,
    )
    listed = ryax.ok(
        "--token",
        user_api.token,
        "project",
        "api-key",
        "list",
        "-o",
        "json",
        "-p",
        user_api.project,
    ).json()
    assert next(k for k in listed if k["id"] == user_api.key_id)["revoked"] is True
    with httpx.Client(base_url=live.url, timeout=60) as http:
        # Services cache an allowed answer for at most 10 s.
        for _ in range(40):
            answer = http.get(
                f"/user-api/{user_api.project}/openapi.json", headers=bearer(user_api.key)
            )
            if answer.status_code == 401:
                break
            time.sleep(0.5)
        assert answer.status_code == 401, answer.text
    _USER_APIS.pop(live.url, None)


# --------------------------------------------------------------------------- built-in timer

TIMER_WORKFLOW = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: {name}
  description: "The built-in Emit Every trigger, every second."
  functions:
  - id: tick
    from: emitgw
    version: "1.2"
    inputs_values:
      time: 1
    streams_to: [shout]
  - id: shout
    from: uppercase
    version: "1.0"
    inputs_values:
      text:
        reference_value: tick.scheduled_at
    streams_to: []
"""


def test_an_emitgw_workflow_runs_repeatedly_and_undeploy_stops_it(
    demo: Demo, ryax: Ryax, live: Platform, tmp_path: Path
) -> None:
    """The runner fires the built-in timer itself (no process on a site for the trigger)."""
    import time

    login(ryax, demo.user, demo.password)
    ryax.ok("project", "use", demo.project)
    name = f"Every second {secrets.token_hex(3)}"
    path = tmp_path / "every.yaml"
    path.write_text(TIMER_WORKFLOW.format(name=name))
    ryax.ok("workflow", "import", str(path))
    ryax.ok("workflow", "deploy", name, "--timeout", "120", timeout=180)
    first = ryax.ok("workflow", "show", name, "-o", "json").json()
    ryax.ok("workflow", "deploy", name)  # deployed, unchanged since: nothing to do
    # Changed after it was deployed: deploy says so and does nothing; --redeploy applies it.
    ryax.ok("workflow", "step-settings", name, "shout", "--retries", "1")
    stale = ryax("workflow", "deploy", name)
    assert stale.code == 1, stale.stderr
    said = " ".join(stale.stderr.split())
    assert "was changed after that" in said and "--redeploy" in said, said
    kept = ryax.ok("workflow", "show", name, "-o", "json").json()["deployment"]
    assert kept["id"] == first["deployment"]["id"] and kept["state"] == "deployed"
    ryax.ok("workflow", "deploy", name, "--redeploy", "--timeout", "120", timeout=180)
    shown = ryax.ok("workflow", "show", name, "-o", "json").json()
    assert shown["deployment"]["state"] == "deployed", shown["deployment"]
    assert shown["deployment"]["id"] != first["deployment"]["id"]
    workflow_id = shown["id"]
    with httpx.Client(base_url=live.url, timeout=30) as http:
        token = http.post(
            "/authorization/v1/login", json={"username": demo.user, "password": demo.password}
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        runs_url = f"/runner/v1/projects/{demo.project}/runs"

        def runs() -> list[dict[str, Any]]:
            answer = http.get(runs_url, params={"workflow_id": workflow_id, "limit": 500})
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["runs"]
            return found

        deadline = time.monotonic() + 30
        while len(done := [r for r in runs() if r["state"] == "completed"]) < 3:
            assert time.monotonic() < deadline, f"fewer than 3 completed runs: {runs()}"
            time.sleep(0.3)
        shown = [http.get(f"{runs_url}/{r['id']}").json() for r in done[:3]]
        upper = [run["results"]["upper"] for run in shown]
        # Each run got its own due time (ISO 8601, upper-cased by the action).
        assert len(set(upper)) == 3 and all("T" in u for u in upper), shown
        ryax.ok("workflow", "undeploy", name, "--timeout", "60", timeout=90)
        after = len(runs())
        time.sleep(2.5)  # more than two intervals: nothing fires any more
        assert len(runs()) == after
    deployment = ryax.ok("workflow", "show", name, "-o", "json").json()["deployment"]
    assert deployment["state"] == "undeployed"


# --------------------------------------------------------------------------- the form portal

FORM_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: {name}
  functions:
  - id: ask
    from: postgw
    version: "1.5"
    inputs_values: {{path: {path}, title: Count and shout, timeout: 60}}
    outputs:
    - {{name: text, human_name: Text, help: Shouted back., type: string}}
    - {{name: doc, human_name: Document, help: Its words are counted., type: file}}
    - {{name: mode, human_name: Mode, help: How., type: enum, enum_values: [loud, quiet]}}
    streams_to: [shout, count]
  - id: shout
    from: uppercase
    version: "1.0"
    inputs_values: {{text: {{reference_value: ask.text}}}}
    streams_to: []
  - id: count
    from: word-count
    version: "1.0"
    inputs_values: {{document: {{reference_value: ask.doc}}}}
    streams_to: []
  results:
  - {{key: upper, reference_value: shout.upper}}
  - {{key: words, reference_value: count.total}}
"""


def test_a_form_portal_through_the_gateway_signs_in_and_starts_a_run(
    demo: Demo, ryax: Ryax, live: Platform, tmp_path: Path
) -> None:
    """postgw: the studio offers it, the runner serves its form on the user API, a browser
    signs in with a project API key (cookie), a bad submission comes back with its errors, a
    good one (with a file) shows the run's results."""
    login(ryax, demo.user, demo.password)
    ryax.ok("project", "use", demo.project)
    suffix = secrets.token_hex(3)
    name, path = f"E2E form {suffix}", f"/e2e/form-{suffix}"
    source = tmp_path / "form.yaml"
    source.write_text(FORM_YAML.format(name=name, path=path))
    ryax.ok("workflow", "import", str(source))
    deployed = ryax.ok("workflow", "deploy", name, "--timeout", "600", timeout=900)
    form = f"{live.url}/user-api/{demo.project}{path}"
    assert f"form: {form}" in deployed.stderr, deployed.stderr
    key = ryax.ok("project", "api-key", "create", f"form-{suffix}", "-o", "json").json()["key"]
    html = {"Accept": "text/html"}
    with httpx.Client(timeout=120, follow_redirects=False) as browser:
        page = browser.get(form, headers=html)
        assert page.status_code == 401 and 'name="key"' in page.text
        signed = browser.post(
            f"{live.url}/user-api/{demo.project}/_login",
            data={"key": key, "next": f"/user-api/{demo.project}{path}"},
        )
        assert signed.status_code == 303, signed.text
        assert "httponly" in signed.headers["set-cookie"].lower()
        page = browser.get(form, headers=html)
        assert page.status_code == 200 and "<h1>Count and shout</h1>" in page.text
        assert '<label for="field-doc">Document (required)' in page.text.replace(
            ' <span class="required">', " "
        ).replace("</span>", "")
        bad = browser.post(form, data={"text": "", "mode": "loud"}, files={"doc": ("", b"")})
        assert bad.status_code == 400
        assert 'id="field-text-error">Error: required' in bad.text
        assert 'id="field-doc-error">Error: required: choose a file' in bad.text
        good = browser.post(
            form,
            data={"text": "hello <form>", "mode": "quiet"},
            files={"doc": ("words.txt", b"one two three four")},
        )
        assert good.status_code == 200, good.text
        assert "<dt>upper</dt><dd>HELLO &lt;FORM&gt;</dd>" in good.text
        assert "<dt>words</dt><dd><code>4</code></dd>" in good.text
        run_id = good.headers["Ryax-Run-Id"]
        again = browser.get(f"{form}?run={run_id}", headers=html)
        assert again.status_code == 200 and "the run completed" in again.text
    ryax.ok("workflow", "undeploy", name, "--timeout", "120", timeout=180)


# --------------------------------------------------------------------------- static files, zips


FILES_WORKFLOW = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: {name}
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values: {{path: {path}, method: POST, summary: count a static file}}
    outputs:
    - {{name: text, human_name: Text, help: unused, type: string, optional: true}}
    streams_to: [count]
  - id: count
    from: word-count
    version: "1.0"
{document}    streams_to: []
  results:
  - {{key: words, reference_value: count.total}}
"""


def _trigger_words(ryax: Ryax, workflow: str, project: str) -> Any:
    run = ryax.ok(
        "run", "trigger", workflow, "-i", "text=x", "-o", "json", "-p", project, timeout=600
    ).json()
    assert run["state"] == "completed", run
    return run["results"]


def test_a_static_file_value_a_zip_round_trip_and_a_file_variable(
    demo: Demo, ryax: Ryax, tmp_path: Path
) -> None:
    login(ryax, demo.user, demo.password)
    ryax.ok("project", "use", demo.project)
    source = tmp_path / "files.yaml"
    source.write_text(FILES_WORKFLOW.format(name="e2e files", path="/e2e-files", document=""))
    ryax.ok("workflow", "import", str(source), "--draft")
    words = tmp_path / "words.txt"
    words.write_text("one two three four\n")
    ryax.ok("workflow", "set-file", "e2e files", "count", "document", str(words))
    shown = ryax.ok("workflow", "show", "e2e files", "-o", "json").json()
    assert shown["valid"] is True, shown["problems"]
    count = next(s for s in shown["steps"] if s["id"] == "count")
    assert count["inputs"]["document"]["file"]["name"] == "words.txt"
    ryax.ok("workflow", "deploy", "e2e files", timeout=900)
    assert _trigger_words(ryax, "e2e files", demo.project) == {"words": 4}

    exported = tmp_path / "files.zip"
    ryax.ok("workflow", "export", "e2e files", "-f", str(exported))
    ryax.ok("workflow", "undeploy", "e2e files")  # the copy serves the same path
    ryax.ok("workflow", "import", str(exported), "--name", "e2e files copy")
    ryax.ok("workflow", "deploy", "e2e files copy", timeout=900)
    assert _trigger_words(ryax, "e2e files copy", demo.project) == {"words": 4}
    ryax.ok("workflow", "undeploy", "e2e files copy")

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c d e\n")
    ryax.ok("project", "variable", "set", "e2e-corpus", "--file", str(corpus))
    listed = ryax.ok("project", "variable", "list", "-o", "json").json()
    assert any(v["name"] == "e2e-corpus" and v["kind"] == "file" for v in listed)
    variable = tmp_path / "variable.yaml"
    variable.write_text(
        FILES_WORKFLOW.format(
            name="e2e variable",
            path="/e2e-variable",
            document="    inputs_values:\n      document: {project_variable_value: e2e-corpus}\n",
        )
    )
    ryax.ok("workflow", "import", str(variable))
    ryax.ok("workflow", "deploy", "e2e variable", timeout=900)
    assert _trigger_words(ryax, "e2e variable", demo.project) == {"words": 5}
    ryax.ok("workflow", "undeploy", "e2e variable")
