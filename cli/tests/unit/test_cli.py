"""The `ryax` command against the in-process fake gateway: output, -o json, exit codes,
config file, error messages."""

from __future__ import annotations

import io
import json
import stat
import tomllib
import zipfile
from pathlib import Path

import pytest

from .conftest import ADMIN, ALICE, Ryax
from .fake_ryax import FakeRyax

DEMO_YAML = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: Word count demo
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values: {path: /demo/word-count, method: POST}
    streams_to: [count]
  - id: count
    from: word-count
    version: "1.0"
    inputs_values: {document: {reference_value: api.text}}
"""


def single_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# --------------------------------------------------------------------------- login, config


def test_login_writes_a_private_config_and_selects_the_only_project(ryax: Ryax) -> None:
    out = ryax.login()
    assert "Logged in to" in out.stderr and "as alice" in out.stderr
    assert "current project: demo" in out.stderr
    mode = stat.S_IMODE(ryax.config.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(ryax.config.parent.stat().st_mode) == 0o700
    saved = tomllib.loads(ryax.config.read_text())
    assert saved["url"] == ryax.env["RYAX_URL"]
    assert saved["token"].startswith("tok-alice")
    assert saved["project"] == "demo"


def test_wrong_credentials_exit_4_with_one_line(ryax: Ryax) -> None:
    out = ryax("login", "alice", "--password-stdin", input="nope\n")
    assert out.exit_code == 4
    assert single_line(out.stderr) == "ryax: error: authentication failed: invalid credentials"
    assert not ryax.config.exists()


def test_password_prompt_needs_a_terminal_or_stdin(ryax: Ryax) -> None:
    out = ryax("login", "alice")
    assert out.exit_code == 2
    assert "--password-stdin" in out.stderr


def test_password_from_environment(ryax: Ryax) -> None:
    out = ryax("login", "alice", RYAX_PASSWORD=ALICE[1])
    assert out.exit_code == 0, out.stderr


def test_unreachable_server_exits_3(ryax: Ryax) -> None:
    out = ryax("login", "alice", "--password-stdin", input="x\n", RYAX_URL="http://127.0.0.1:9")
    assert out.exit_code == 3
    line = single_line(out.stderr)
    assert line.startswith("ryax: error: cannot reach the Ryax server at http://127.0.0.1:9")
    assert "Traceback" not in out.stderr


def test_debug_shows_the_traceback(ryax: Ryax) -> None:
    out = ryax(
        "--debug", "login", "alice", "--password-stdin", input="x\n", RYAX_URL="http://127.0.0.1:9"
    )
    assert out.exit_code == 3
    assert "Traceback" in out.stderr and "ServerUnreachable" in out.stderr


def test_not_logged_in_exits_4(ryax: Ryax) -> None:
    out = ryax("project", "list")
    assert out.exit_code == 4
    assert "not logged in" in single_line(out.stderr)


def test_expired_token_exits_4_and_suggests_login(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    fake.tokens.clear()
    out = ryax("project", "list")
    assert out.exit_code == 4
    assert "run `ryax login`" in single_line(out.stderr)


def test_env_overrides_the_config_file(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    other = fake.token_for("admin")
    out = ryax("config", "show", "-o", "json", RYAX_TOKEN=other, RYAX_PROJECT="other")
    data = json.loads(out.stdout)
    assert data["project"] == "other"
    assert data["sources"]["token"] == "env RYAX_TOKEN"
    assert data["sources"]["project"] == "env RYAX_PROJECT"
    assert data["sources"]["url"] == "env RYAX_URL"
    # The options win over the environment.
    out = ryax("--project", "flag", "config", "show", "-o", "json", RYAX_PROJECT="other")
    assert json.loads(out.stdout)["project"] == "flag"
    # The environment's token is the one sent.
    out = ryax("whoami", "-o", "json", RYAX_TOKEN=other)
    assert json.loads(out.stdout)["username"] == "admin"


def test_config_file_is_used_without_env(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("config", "show", "-o", "json", RYAX_URL=None)
    data = json.loads(out.stdout)
    assert data["url"] == ryax.env["RYAX_URL"]
    assert data["sources"]["url"].startswith("file ")
    assert data["sources"]["token"].startswith("file ")


def test_saved_token_is_not_sent_to_another_server(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("project", "list", RYAX_URL="http://127.0.0.1:9")
    assert out.exit_code == 4
    assert "the saved token is for" in out.stderr


def test_invalid_config_file_is_reported(ryax: Ryax) -> None:
    ryax.config.parent.mkdir(parents=True)
    ryax.config.write_text("url = [broken\n")
    out = ryax("project", "list")
    assert out.exit_code == 1
    assert "is not valid TOML" in single_line(out.stderr)


def test_logout_forgets_the_token(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    out = ryax("logout")
    assert out.exit_code == 0, out.stderr
    assert "token" not in tomllib.loads(ryax.config.read_text())
    assert not [t for t, u in fake.tokens.items() if u == "alice"]


# --------------------------------------------------------------------------- projects


def test_project_list_table_and_json(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("project", "list")
    assert out.exit_code == 0
    assert "demo" in out.stdout and "owner" in out.stdout and "*" in out.stdout
    data = json.loads(ryax("project", "list", "-o", "json").stdout)
    assert data == [
        {"id": data[0]["id"], "name": "demo", "created_at": data[0]["created_at"], "role": "owner"}
    ]


def test_project_use_checks_and_saves(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login(ADMIN)
    fake.add_project("other", {"admin": "owner"})
    assert ryax("project", "use", "other").exit_code == 0
    assert tomllib.loads(ryax.config.read_text())["project"] == "other"
    out = ryax("project", "use", "missing")
    assert out.exit_code == 1
    assert single_line(out.stderr) == "ryax: error: not found: project missing not found"


def test_project_show_names_the_members(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    out = ryax("project", "show", "demo")
    assert out.exit_code == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if fake.users["alice"]["id"] in line)
    assert "alice" in row.replace(fake.users["alice"]["id"], "") and "owner" in row


def test_missing_project_is_a_usage_error(ryax: Ryax, fake: FakeRyax) -> None:
    fake.add_user("carol", "carol-password")
    ryax.login(("carol", "carol-password"))  # in no project: none is selected
    out = ryax("workflow", "list")
    assert out.exit_code == 2
    assert "no project selected" in single_line(out.stderr)


def test_forbidden_exits_4(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("project", "create", "new")
    assert out.exit_code == 4
    assert "permission denied: only administrators" in single_line(out.stderr)


def test_admin_creates_user_and_project(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login(ADMIN)
    out = ryax("user", "create", "bob", "--password-stdin", input="bob-password\n")
    assert out.exit_code == 0, out.stderr
    out = ryax("project", "create", "p2", "--owner", fake.users["bob"]["id"], "-o", "json")
    assert json.loads(out.stdout)["name"] == "p2"
    assert fake.projects["p2"]["members"] == {"bob": "owner"}
    out = ryax("project", "add-member", "alice", "--role", "viewer", "-p", "p2")
    assert out.exit_code == 0, out.stderr
    again = ryax("user", "create", "bob", "--password", "x")
    assert again.exit_code == 1 and "already exists" in again.stderr
    users = json.loads(ryax("user", "list", "-o", "json").stdout)
    assert {u["username"] for u in users} == {"admin", "alice", "bob"}


def test_usage_errors_exit_2(ryax: Ryax) -> None:
    assert ryax("workflow", "lst").exit_code == 2
    assert ryax("run", "list", "--limit", "zero").exit_code == 2
    assert ryax().exit_code in (0, 2)  # no arguments: the help


# --------------------------------------------------------------------------- repositories


def test_repository_add_scan_list(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    folder = tmp_path / "actions"
    folder.mkdir()
    out = ryax("repository", "add", str(folder), "--name", "examples", "-b", "main")
    assert out.exit_code == 0, out.stderr
    repo = next(iter(fake.repositories.values()))
    assert repo["url"] == str(folder.resolve()) and repo["branch"] == "main"
    out = ryax("repository", "scan", "examples")
    assert out.exit_code == 0, out.stderr
    assert "word-count" in out.stdout
    assert "broken/ryax_metadata.yaml:3: spec.kind: must be one of" in out.stderr
    assert "spec.kind: spec.kind" not in out.stderr  # the field named once
    assert ryax("repository", "scan", "examples", "--strict").exit_code == 1
    data = json.loads(ryax("repository", "list", "-o", "json").stdout)
    assert data[0]["name"] == "examples" and data[0]["last_scan"]["commit"] == "abc123"
    dup = ryax("repository", "add", "https://example.com/x.git", "--name", "examples")
    assert dup.exit_code == 1 and "exists" in dup.stderr
    missing = ryax("repository", "scan", "nope")
    assert missing.exit_code == 1
    assert (
        single_line(missing.stderr) == "ryax: error: not found: repository 'nope' in project demo"
    )


def test_repository_upload_packs_a_folder(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    folder = tmp_path / "my-action"
    folder.mkdir()
    (folder / "ryax_metadata.yaml").write_text("kind: Processor\n")
    out = ryax("repository", "upload", str(folder))
    assert out.exit_code == 0, out.stderr
    assert list(fake.uploads) == ["my-action.tar.gz"]
    assert fake.uploads["my-action.tar.gz"][:2] == b"\x1f\x8b"


# --------------------------------------------------------------------------- actions


def test_action_list_and_show(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("action", "list")
    assert "word-count" in out.stdout and "valid" in out.stdout
    data = json.loads(ryax("action", "show", "word-count", "-o", "json").stdout)
    assert data["action_id"] == "word-count"
    out = ryax("action", "show", "word-count", "1.0")
    assert "text" in out.stdout and "input" in out.stdout
    missing = ryax("action", "show", "nope", "2.0")
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_action_build_all_waits_and_reports(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    out = ryax("action", "build", "--all")
    assert out.exit_code == 0, out.stderr
    assert "word-count 1.0: succeeded" in out.stderr
    assert "3 action(s) built" in out.stderr
    assert {a["state"] for a in fake.actions.values()} == {"built"}
    again = ryax("action", "build", "--all")
    assert again.exit_code == 0 and "already built" in again.stderr


def test_action_build_failure_shows_log_and_exits_1(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    fake.failing_actions.add("uppercase")
    out = ryax("action", "build", "uppercase", "-o", "json")
    assert out.exit_code == 1
    assert "build of uppercase 1.0 failed: pip install failed" in out.stderr
    assert "ERROR: boom" in out.stderr
    assert json.loads(out.stdout)[0]["state"] == "failed"


def test_action_build_follows_a_build_in_progress(ryax: Ryax, fake: FakeRyax) -> None:
    ryax.login()
    assert ryax("action", "build", "uppercase", "--no-wait").exit_code == 0
    out = ryax("action", "build", "uppercase")
    assert out.exit_code == 0, out.stderr
    assert len(fake.calls("POST", "/repository/v1/projects/demo/actions/uppercase")) == 1


def test_action_build_needs_a_target(ryax: Ryax) -> None:
    ryax.login()
    assert ryax("action", "build").exit_code == 2


# --------------------------------------------------------------------------- workflows


def test_invalid_yaml_is_reported_before_any_call(
    ryax: Ryax, fake: FakeRyax, tmp_path: Path
) -> None:
    ryax.login()
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec:\n  functions: [\n  - id: x\n")
    before = len(fake.requests)
    out = ryax("workflow", "import", str(bad))
    assert out.exit_code == 1
    line = single_line(out.stderr)
    assert line.startswith(f"ryax: error: {bad} is not valid YAML at line ")
    assert len(fake.requests) == before


def test_import_rejected_by_the_server_lists_its_problems(ryax: Ryax, tmp_path: Path) -> None:
    ryax.login()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(DEMO_YAML.replace("word-count", "no-such-action"))
    out = ryax("workflow", "import", str(wrong))
    assert out.exit_code == 1
    assert out.stderr.splitlines() == [
        "ryax: error: the document is not valid: 1 problem(s)",
        f"  - {wrong}, line 11, spec.functions[1] (count).from: no action no-such-action 1.0 "
        "in the store",
    ]
    missing = ryax("workflow", "import", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1 and "cannot read" in missing.stderr


def deployed_demo(ryax: Ryax, tmp_path: Path) -> None:
    source = tmp_path / "demo.yaml"
    source.write_text(DEMO_YAML)
    out = ryax("workflow", "import", str(source))
    assert out.exit_code == 0, out.stderr
    out = ryax("workflow", "deploy", "Word count demo")
    assert out.exit_code == 0, out.stderr


def test_workflow_import_deploy_trigger_logs(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    source = tmp_path / "demo.yaml"
    source.write_text(DEMO_YAML)
    out = ryax("workflow", "import", str(source), "-o", "json")
    assert out.exit_code == 0, out.stderr
    wf = json.loads(out.stdout)
    assert wf["name"] == "Word count demo"
    again = ryax("workflow", "import", str(source))
    assert again.exit_code == 1 and "exists" in again.stderr
    replaced = ryax("workflow", "import", str(source), "--replace")
    assert replaced.exit_code == 0 and "Replaced workflow Word count demo" in replaced.stderr

    listed = ryax("workflow", "list")
    assert "Word count demo" in listed.stdout
    shown = json.loads(ryax("workflow", "show", "Word count demo", "-o", "json").stdout)
    assert shown["id"] == wf["id"]

    out = ryax("workflow", "deploy", "Word count demo")
    assert out.exit_code == 0, out.stderr
    assert "workflow Word count demo: deploying" in out.stderr
    assert "is deployed; endpoint: POST " in out.stderr
    assert "/runner/v1/projects/demo/endpoints/Word%20count%20demo" in out.stderr
    # Deploying again is not an error.
    assert ryax("workflow", "deploy", wf["id"]).exit_code == 0
    # Changed after it was deployed: deploying again says so (and does nothing); --redeploy
    # undeploys it, then deploys it again.
    fake.workflows[wf["id"]]["updated_at"] = "2026-01-02T03:05:00+00:00"
    stale = ryax("workflow", "deploy", "Word count demo")
    assert stale.exit_code == 1
    assert "was changed after that, at 2026-01-02T03:05:00+00:00" in single_line(stale.stderr)
    assert len(fake.deployments) == 1
    out = ryax("workflow", "deploy", "Word count demo", "--redeploy")
    assert out.exit_code == 0, out.stderr
    first, second = fake.deployments.values()
    assert first["state"] == "undeployed" and second["state"] == "deployed"
    table = ryax("workflow", "show", "Word count demo")
    assert "deployed" in table.stdout and "endpoints/Word%20count%20demo" in table.stdout

    out = ryax("run", "trigger", "Word count demo", "-i", "text=the cat", "-i", "n:=3")
    assert out.exit_code == 0, out.stderr
    assert "THE CAT" in out.stdout and "words" in out.stdout and "file report.txt" in out.stdout
    run_id = next(iter(fake.runs))
    call = fake.calls("POST", "/runner/v1/projects/demo/endpoints/Word count demo")[0]
    assert json.loads(call.body) == {"text": "the cat", "n": 3}
    assert call.query["mode"] == "sync"

    data = json.loads(ryax("run", "list", "-o", "json").stdout)
    assert data["runs"][0]["id"] == run_id and data["next_cursor"] is None
    by_workflow = json.loads(ryax("run", "list", "-w", "Word count demo", "-o", "json").stdout)
    assert [r["id"] for r in by_workflow["runs"]] == [run_id]
    shown_run = json.loads(ryax("run", "show", run_id, "-o", "json").stdout)
    assert shown_run["state"] == "completed" and shown_run["steps"][0]["step_id"] == "api"

    logs = ryax("run", "logs", run_id)
    assert "[count] 2 words" in logs.stdout
    follow = ryax("run", "logs", run_id, "-f", "-o", "json")
    assert [json.loads(line)["line"] for line in follow.stdout.splitlines()] == [
        "received",
        "2 words",
    ]
    exported = ryax("workflow", "export", wf["id"])
    assert "kind: Workflows" in exported.stdout
    out = ryax("workflow", "undeploy", "Word count demo")
    assert out.exit_code == 0, out.stderr
    assert ryax("workflow", "undeploy", "Word count demo").exit_code == 0  # already: a no-op
    gone = ryax("run", "trigger", "Word count demo", "-i", "text=x")
    assert gone.exit_code == 1
    assert single_line(gone.stderr) == (
        "ryax: error: workflow Word count demo is not deployed (undeployed)"
    )


def test_trigger_uploads_files_and_downloads_outputs(
    ryax: Ryax, fake: FakeRyax, tmp_path: Path
) -> None:
    ryax.login()
    deployed_demo(ryax, tmp_path)
    doc = tmp_path / "doc.txt"
    doc.write_text("file body")
    dest = tmp_path / "out"
    out = ryax(
        "run",
        "trigger",
        "Word count demo",
        "-i",
        "text=a b",
        "-i",
        f"doc=@{doc}",
        "--download",
        str(dest),
    )
    assert out.exit_code == 0, out.stderr
    run = next(iter(fake.runs.values()))
    assert run["uploaded"] == {"doc": "file body"}
    assert (dest / "report.txt").read_bytes() == b"REPORT a b"
    assert (dest / "count" / "counts.tsv").read_bytes() == b"a\t1\n"
    again = ryax("run", "download", run["id"], "report", "-d", str(tmp_path / "r.txt"))
    assert again.exit_code == 0, again.stderr
    assert (tmp_path / "r.txt").read_bytes() == b"REPORT a b"
    step_file = ryax("run", "download", run["id"], "count.counts", "-d", str(tmp_path))
    assert step_file.exit_code == 0, step_file.stderr
    assert (tmp_path / "counts.tsv").read_bytes() == b"a\t1\n"
    unknown = ryax("run", "download", run["id"], "nope")
    assert unknown.exit_code == 1
    assert "its files: count.counts, report" in unknown.stderr
    bad = ryax("run", "trigger", "Word count demo", "-i", "doc=@/no/such/file")
    assert bad.exit_code == 2


def test_failed_run_exits_1_with_the_step_error(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    deployed_demo(ryax, tmp_path)
    out = ryax("run", "trigger", "Word count demo", "-i", "text=fail")
    assert out.exit_code == 1
    run_id = next(iter(fake.runs))
    assert out.stderr.strip().splitlines()[-1] == (
        f"ryax: error: run {run_id} failed: step count failed"
    )
    assert "ValueError: fail on purpose" in out.stdout


def test_async_trigger_and_wait(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    deployed_demo(ryax, tmp_path)
    out = ryax("run", "trigger", "Word count demo", "-i", "text=x y z", "--no-wait", "-o", "json")
    assert out.exit_code == 0, out.stderr
    run_id = json.loads(out.stdout)["id"]
    assert fake.runs[run_id]["state"] == "running"
    waited = ryax("run", "show", run_id, "--wait", "-o", "json")
    assert waited.exit_code == 0, waited.stderr
    assert json.loads(waited.stdout)["results"]["words"] == 3

    no_wait = ryax("run", "trigger", "Word count demo", "-i", "text=x", "--no-wait", "-o", "json")
    other = json.loads(no_wait.stdout)["id"]
    assert ryax("run", "cancel", other).exit_code == 0
    assert fake.runs[other]["state"] == "cancelled"
    again = ryax("run", "cancel", other)
    assert again.exit_code == 1 and "already ended" in again.stderr


def test_trigger_of_a_workflow_that_is_not_deployed(ryax: Ryax, tmp_path: Path) -> None:
    ryax.login()
    source = tmp_path / "demo.yaml"
    source.write_text(DEMO_YAML)
    ryax("workflow", "import", str(source))
    out = ryax("run", "trigger", "Word count demo", "-i", "text=x")
    assert out.exit_code == 1
    assert "workflow Word count demo is not deployed (never deployed)" in out.stderr


def test_workflow_create_and_errors(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("workflow", "create", "empty", "-o", "json")
    wf = json.loads(out.stdout)
    errors = ryax("workflow", "errors", "empty")
    assert "no trigger" in errors.stdout
    deploy = ryax("workflow", "deploy", wf["id"])
    assert deploy.exit_code == 1
    assert deploy.stderr.splitlines() == [
        "ryax: error: the workflow is not valid: 1 problem(s)",
        "  - the workflow has no trigger",
    ]


def test_run_list_pages(ryax: Ryax, tmp_path: Path) -> None:
    ryax.login()
    deployed_demo(ryax, tmp_path)
    for _ in range(3):
        ryax("run", "trigger", "Word count demo", "-i", "text=x")
    out = ryax("run", "list", "-n", "2")
    assert "more: --cursor 2" in out.stderr
    rest = json.loads(ryax("run", "list", "-n", "2", "--cursor", "2", "-o", "json").stdout)
    assert len(rest["runs"]) == 1 and rest["next_cursor"] is None


def test_run_show_lists_a_lost_attempt_like_any_step_state(
    ryax: Ryax, fake: FakeRyax, tmp_path: Path
) -> None:
    ryax.login()
    deployed_demo(ryax, tmp_path)
    ryax("run", "trigger", "Word count demo", "-i", "text=x")
    run_id = next(iter(fake.runs))
    fake.runs[run_id]["lost_attempt"] = True  # the worker was lost once: count ran twice
    out = ryax("run", "show", run_id)
    assert out.exit_code == 0, out.stderr
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in out.stdout.splitlines()]
    assert [c for c in cells if c[:1] == ["count"]] == [["count", "lost"], ["count", "completed"]]
    assert "no longer knows the execution" in out.stdout
    shown = json.loads(ryax("run", "show", run_id, "-o", "json").stdout)
    assert [s["state"] for s in shown["steps"]] == ["completed", "lost", "completed"]


def test_run_show_unknown_is_404(ryax: Ryax) -> None:
    ryax.login()
    out = ryax("run", "show", "run-404")
    assert out.exit_code == 1
    assert single_line(out.stderr) == "ryax: error: not found: run run-404 not found"


@pytest.mark.parametrize("output", ["table", "json"])
def test_site_list(ryax: Ryax, output: str) -> None:
    ryax.login()
    out = ryax("site", "list", "-o", output)
    assert out.exit_code == 0, out.stderr
    if output == "json":
        assert json.loads(out.stdout)[0]["name"] == "local"
    else:
        assert "local" in out.stdout and "online" in out.stdout


def test_every_read_command_accepts_output_json(ryax: Ryax) -> None:
    import typer.main

    from ryax_cli.cli import app

    command = typer.main.get_command(app)
    readers = {
        ("whoami",),
        ("user", "list"),
        ("config", "show"),
        ("project", "list"),
        ("project", "show"),
        ("repository", "list"),
        ("repository", "scan"),
        ("action", "list"),
        ("action", "show"),
        ("workflow", "list"),
        ("workflow", "show"),
        ("workflow", "errors"),
        ("run", "list"),
        ("run", "show"),
        ("run", "logs"),
        ("site", "list"),
        ("site", "show"),
    }
    for path in readers:
        cmd = command
        for name in path:
            cmd = cmd.commands[name]  # type: ignore[attr-defined]
        options = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
        assert {"-o", "--output"} <= options, path


def test_version_and_completion(ryax: Ryax) -> None:
    assert ryax("--version").stdout.startswith("ryax ")
    out = ryax("--show-completion", "bash")
    assert out.exit_code == 0 and "complete" in out.stdout


# --------------------------------------------------------------------------- workflow zips
def test_static_files_and_the_workflow_zip(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    source = tmp_path / "demo.yaml"
    source.write_text(DEMO_YAML)
    assert ryax("workflow", "import", str(source)).exit_code == 0
    words = tmp_path / "words.txt"
    words.write_bytes(b"the cat and the hat\n")
    out = ryax("workflow", "set-file", "Word count demo", "count", "document", str(words))
    assert out.exit_code == 0, out.stderr
    assert "Set count.document of workflow Word count demo to words.txt" in out.stderr
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("A")
    out = ryax("workflow", "set-file", "Word count demo", "log", "report", str(folder))
    assert out.exit_code == 0, out.stderr
    (wid,) = [w["id"] for w in fake.workflows.values() if w["name"] == "Word count demo"]
    name, data = fake.static_files[(wid, "log", "report")]
    assert name == "data.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as sent:
        assert sent.read("sub/a.txt") == b"A"

    exported = tmp_path / "demo.zip"
    out = ryax("workflow", "export", "Word count demo", "--file", str(exported))
    assert out.exit_code == 0, out.stderr
    with zipfile.ZipFile(exported) as archive:
        assert archive.read("files/count/document/words.txt") == b"the cat and the hat\n"
        assert b"static_file: files/count/document/words.txt" in archive.read("workflow.yaml")
    out = ryax("workflow", "import", str(exported), "--name", "again")
    assert out.exit_code == 0, out.stderr
    (again,) = [w["id"] for w in fake.workflows.values() if w["name"] == "again"]
    assert fake.static_files[(again, "count", "document")][1] == b"the cat and the hat\n"

    # a zip missing a file: the problem names the file in the zip, its line and the field
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(exported) as archive, zipfile.ZipFile(broken, "w") as out_zip:
        out_zip.writestr("workflow.yaml", archive.read("workflow.yaml"))
    out = ryax("workflow", "import", str(broken), "--name", "third")
    assert out.exit_code == 1
    located = f"  - {broken}: workflow.yaml, line 14, spec.functions[1] (count).inputs_values"
    assert located + ".document: " in out.stderr, out.stderr
    assert "is not in the zip" in out.stderr
    out = ryax("workflow", "import", str(broken), "--replace")
    assert out.exit_code == 1 and "--replace takes a YAML document" in out.stderr


def test_project_variables(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    ryax.login()
    assert ryax("project", "variable", "set", "greeting", "hello").exit_code == 0
    out = ryax("project", "variable", "set", "limit", "42", "--json")
    assert out.exit_code == 0 and "Set value variable limit" in out.stderr
    out = ryax("project", "variable", "set", "token", "--secret", input="s3cr3t\n")
    assert out.exit_code == 0, out.stderr
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("A")
    out = ryax("project", "variable", "set", "corpus", "--file", str(folder))
    assert out.exit_code == 0, out.stderr
    stored = {name: v for (_, name), v in fake.variables.items()}
    assert stored["limit"]["value"] == 42
    assert stored["token"]["secret"] == "s3cr3t"
    assert stored["corpus"]["file"]["directory"] is True
    with zipfile.ZipFile(io.BytesIO(stored["corpus"]["data"])) as sent:
        assert sent.read("a.txt") == b"A"
    out = ryax("project", "variable", "list")
    assert out.exit_code == 0
    assert "s3cr3t" not in out.stdout
    for expected in ("greeting", '"hello"', "(secret)", "directory corpus", "42"):
        assert expected in out.stdout
    out = ryax("project", "variable", "set", "x", "1", "--json", "--secret")
    assert out.exit_code == 1 and "give one of" in out.stderr
    assert ryax("project", "variable", "delete", "greeting").exit_code == 0
    out = ryax("project", "variable", "delete", "greeting")
    assert out.exit_code == 1
