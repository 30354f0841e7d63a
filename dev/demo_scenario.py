"""The demo: drive a running platform with the `ryax` command the way a new user would.

Run by `make demo` (dev/platform.py scenario) once the platform is up, or by hand:

    RYAX_URL=http://127.0.0.1:8080 RYAX_ADMIN_USER=admin RYAX_ADMIN_PASSWORD=... \\
        .venv/bin/python -P dev/demo_scenario.py

Steps: log in as the administrator; create the user `demo` and the project `demo` (or reuse
them); publish examples/actions as a git repository (a copy in .dev/demo-actions-repo, committed
there, unless examples/actions is a repository of its own) and add it to the project; scan it
and build every action; import examples/workflows/demo.yaml; deploy it and wait until it is
deployed; call its HTTP endpoint through `ryax run trigger`; print the results and where to look
next. Running it again reuses what exists (it is idempotent).

Environment: RYAX_URL (else RYAX_GATEWAY_URL, else http://127.0.0.1:8080), RYAX_ADMIN_USER
(default admin), RYAX_ADMIN_PASSWORD (else .dev/admin-password), RYAX_DEMO_USER (default demo),
RYAX_DEMO_PASSWORD (else generated once into .dev/demo-password), RYAX_DEMO_PROJECT (default
demo), RYAX_DEMO_TEXT (the text posted to the endpoint). The repository service must accept
local repositories (RYAX_REPOSITORY_ALLOW_LOCAL=true, as `make demo` runs it).

Exit status: 0 when the run completed with the expected results; 1 with `demo: step '...'
failed: ...` on stderr otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(os.environ.get("RYAX_REPO_ROOT") or Path(__file__).resolve().parent.parent)
DEV = REPO / ".dev"
ACTIONS = REPO / "examples" / "actions"
WORKFLOW_FILE = REPO / "examples" / "workflows" / "demo.yaml"
ACTIONS_COPY = DEV / "demo-actions-repo"
REPOSITORY_NAME = "demo-actions"
DEFAULT_TEXT = "The cat and the hat"
SERVICES = ("authorization", "repository", "studio", "runner")


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step '{step}' failed: {message}")
        self.step = step


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def say(message: str = "") -> None:
    print(message, flush=True)


def ryax_command() -> list[str]:
    """The `ryax` next to this interpreter (the venv's), else the one on PATH, else the module."""
    script = Path(sys.executable).parent / "ryax"
    if script.exists():
        return [str(script)]
    found = shutil.which("ryax")
    return [found] if found else [sys.executable, "-m", "ryax_cli"]


@dataclass
class Cli:
    """`ryax` as a user runs it, with a config file of its own (a temporary RYAX_CONFIG)."""

    url: str
    config: Path
    step: str = ""
    base_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("RYAX_TOKEN", "RYAX_PROJECT", "RYAX_CONFIG")
        }
        env.update(self.base_env)
        env["RYAX_URL"] = self.url
        env["RYAX_CONFIG"] = str(self.config)
        env.setdefault("COLUMNS", "120")
        return env

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        live: bool = False,
        timeout: float = 300,
    ) -> Result:
        """`live`: the command's progress (stderr) goes straight to the terminal."""
        say(f"$ ryax {shlex.join(args)}")
        try:
            done = subprocess.run(
                [*ryax_command(), *args],
                input=stdin,
                stdout=subprocess.PIPE,
                stderr=None if live else subprocess.PIPE,
                text=True,
                env=self.env(),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(self.step, f"`ryax {args[0]}` did not end in {timeout:.0f} s") from exc
        result = Result(done.returncode, done.stdout, done.stderr or "")
        if check and result.code != 0:
            message = result.stderr.strip() or f"`ryax {shlex.join(args)}` exited {result.code}"
            if live:
                message = f"`ryax {shlex.join(args)}` exited {result.code} (its error is above)"
            raise StepFailed(self.step, message.removeprefix("ryax: error: "))
        return result


def secret_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or not path.read_text().strip():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Ryax demo", "-c", "user.email=demo@ryax.invalid", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise StepFailed(
            "publish the example actions as a git repository",
            f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}",
        )
    return done.stdout.strip()


def actions_repository() -> Path:
    """examples/actions as a git repository: itself if it is one, else a committed copy."""
    probe = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=ACTIONS,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode == 0 and Path(probe.stdout.strip()).resolve() == ACTIONS.resolve():
        return ACTIONS
    ACTIONS_COPY.mkdir(parents=True, exist_ok=True)
    if not (ACTIONS_COPY / ".git").exists():
        git("init", "-q", "-b", "main", cwd=ACTIONS_COPY)
    # Mirror the folder (deletions included) so a second run publishes the current examples.
    for entry in ACTIONS_COPY.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git")
    for entry in ACTIONS.iterdir():
        if entry.name in (".git", "__pycache__"):
            continue
        target = ACTIONS_COPY / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, ignore=ignore)
        else:
            shutil.copy2(entry, target)
    git("add", "-A", cwd=ACTIONS_COPY)
    if git("status", "--porcelain", cwd=ACTIONS_COPY):
        git("commit", "-q", "-m", "Ryax example actions", cwd=ACTIONS_COPY)
    return ACTIONS_COPY


def workflow_name() -> str:
    try:
        document = yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise StepFailed("read the demo workflow", f"{WORKFLOW_FILE}: {exc}") from exc
    name = document.get("spec", {}).get("human_name") if isinstance(document, dict) else None
    if not isinstance(name, str) or not name:
        raise StepFailed("read the demo workflow", f"{WORKFLOW_FILE} has no spec.human_name")
    return name


@dataclass
class Settings:
    url: str
    admin_user: str
    admin_password: str
    demo_user: str
    demo_password: str
    project: str
    text: str

    @classmethod
    def from_env(cls) -> Settings:
        e = os.environ
        admin_password = e.get("RYAX_ADMIN_PASSWORD") or ""
        if not admin_password and (DEV / "admin-password").exists():
            admin_password = (DEV / "admin-password").read_text().strip()
        if not admin_password:
            raise StepFailed("read the settings", "RYAX_ADMIN_PASSWORD is not set")
        url = e.get("RYAX_URL") or e.get("RYAX_GATEWAY_URL") or "http://127.0.0.1:8080"
        return cls(
            url=url.rstrip("/"),
            admin_user=e.get("RYAX_ADMIN_USER") or "admin",
            admin_password=admin_password,
            demo_user=e.get("RYAX_DEMO_USER") or "demo",
            demo_password=e.get("RYAX_DEMO_PASSWORD") or secret_file(DEV / "demo-password"),
            project=e.get("RYAX_DEMO_PROJECT") or "demo",
            text=e.get("RYAX_DEMO_TEXT") or DEFAULT_TEXT,
        )


def begin(cli: Cli, step: str) -> None:
    cli.step = step
    say()
    say(f"== {step}")


def scenario(s: Settings, workdir: Path) -> dict[str, Any]:
    admin = Cli(s.url, workdir / "admin.toml")

    begin(admin, f"log in as the administrator {s.admin_user}")
    admin.run("login", s.admin_user, "--password-stdin", stdin=s.admin_password + "\n")

    begin(admin, f"create the user {s.demo_user}")
    users = {u["username"]: u for u in admin.run("user", "list", "-o", "json").json()}
    if s.demo_user in users:
        say(f"user {s.demo_user} exists: reused")
        demo_id = users[s.demo_user]["id"]
    else:
        created = admin.run(
            "user",
            "create",
            s.demo_user,
            "--password-stdin",
            "-o",
            "json",
            stdin=s.demo_password + "\n",
        ).json()
        demo_id = created["id"]

    begin(admin, f"create the project {s.project}")
    projects = {p["name"] for p in admin.run("project", "list", "-o", "json").json()}
    if s.project in projects:
        say(f"project {s.project} exists: reused")
        admin.run("project", "add-member", s.demo_user, "--role", "owner", "-p", s.project)
    else:
        admin.run("project", "create", s.project, "--owner", demo_id)

    user = Cli(s.url, workdir / "user.toml")
    begin(user, f"log in as {s.demo_user}")
    login = user.run(
        "login", s.demo_user, "--password-stdin", stdin=s.demo_password + "\n", check=False
    )
    if login.code != 0:
        # The user existed before with another password: carry on as the administrator.
        say(f"cannot log in as {s.demo_user} ({login.stderr.strip()}); going on as {s.admin_user}")
        admin.run("project", "add-member", s.admin_user, "--role", "owner", "-p", s.project)
        user = admin
        s.demo_user, s.demo_password = s.admin_user, s.admin_password
    user.run("project", "use", s.project)

    begin(user, "publish the example actions as a git repository")
    source = actions_repository()
    say(f"git repository: {source}")

    begin(user, f"add the repository {REPOSITORY_NAME}")
    repositories = {r["name"]: r for r in user.run("repository", "list", "-o", "json").json()}
    if REPOSITORY_NAME in repositories:
        say(f"repository {REPOSITORY_NAME} exists ({repositories[REPOSITORY_NAME]['url']}): reused")
    else:
        user.run("repository", "add", str(source), "--name", REPOSITORY_NAME)

    begin(user, "scan the repository")
    scan = user.run("repository", "scan", REPOSITORY_NAME, "-o", "json").json()
    found = sorted(
        f"{a.get('action_id')} {a.get('version')}"
        for a in scan.get("actions", [])
        if a.get("action_id")
    )
    say(f"{len(found)} action(s): {', '.join(found)}")
    for issue in scan.get("errors", []):
        say(f"  error: {issue.get('file')}:{issue.get('line')}: {issue.get('message')}")
    if not found:
        raise StepFailed(user.step, "the scan found no action")

    begin(user, "build every action")
    user.run("action", "build", "--all", "--timeout", "1200", live=True, timeout=3600)

    name = workflow_name()
    begin(user, f"import the workflow {name!r} from {WORKFLOW_FILE.relative_to(REPO)}")
    workflows = {w["name"]: w for w in user.run("workflow", "list", "-o", "json").json()}
    existing = workflows.get(name)
    state = ((existing or {}).get("deployment") or {}).get("state")
    if existing is None:
        user.run("workflow", "import", str(WORKFLOW_FILE))
    elif state in (None, "undeployed", "failed"):
        user.run("workflow", "import", str(WORKFLOW_FILE), "--replace")
    else:
        say(f"workflow {name!r} exists and is {state}: reused")

    begin(user, f"deploy the workflow {name!r}")
    user.run("workflow", "deploy", name, "--timeout", "600", live=True, timeout=700)

    begin(user, f"trigger the workflow {name!r} through its HTTP endpoint")
    started = time.monotonic()
    run = user.run(
        "run",
        "trigger",
        name,
        "-i",
        f"text={s.text}",
        "--timeout",
        "120",
        "-o",
        "json",
        timeout=300,
    ).json()
    elapsed = time.monotonic() - started
    results = run.get("results") or run.get("outputs") or {}
    say(f"run {run.get('id')} {run.get('state')} in {elapsed:.1f} s")
    say("results:")
    for key, value in results.items():
        say(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    if run.get("state") != "completed":
        raise StepFailed(user.step, f"the run is {run.get('state')}: {run.get('reason')}")
    if "summary" not in results or "words" not in results:
        raise StepFailed(user.step, f"the results lack summary and words: {results}")

    begin(user, "read the run's logs")
    logs = user.run("run", "logs", str(run.get("id")))
    say(logs.stdout.rstrip() or "(no log line)")
    return {"run": run, "workflow": name, "user": s.demo_user, "password": s.demo_password}


def print_next(s: Settings, outcome: dict[str, Any]) -> None:
    name = outcome["workflow"]
    run_id = outcome["run"].get("id")
    say()
    say("== where to look next")
    say(f"Gateway:      {s.url}")
    say("API docs:     " + "  ".join(f"{s.url}/{service}/docs" for service in SERVICES))
    say(f"Endpoints:    {s.url}/runner/v1/projects/{s.project}/endpoints/openapi.json")
    say(
        f"Credentials:  admin {s.admin_user} / {s.admin_password} (demo only; from "
        f"RYAX_ADMIN_PASSWORD or .dev/admin-password); user {outcome['user']} / "
        f"{outcome['password']} in project {s.project}"
    )
    say("Try:")
    examples: Sequence[str] = (
        f"export RYAX_URL={s.url}",
        f"ryax login {outcome['user']}",
        f"ryax project use {s.project}",
        "ryax action list",
        "ryax workflow list",
        f"ryax workflow show {shlex.quote(name)}",
        f"ryax run trigger {shlex.quote(name)} -i text='Hello Ryax'",
        "ryax run list",
        f"ryax run show {run_id}",
        f"ryax run logs -f {run_id}",
        "ryax site list",
        f"ryax workflow export {shlex.quote(name)} > demo-export.yaml",
        "ryax --help",
    )
    for example in examples:
        say(f"  {example}")


def main() -> int:
    try:
        settings = Settings.from_env()
        say(f"Ryax demo against {settings.url}")
        with tempfile.TemporaryDirectory(prefix="ryax-demo-") as tmp:
            outcome = scenario(settings, Path(tmp))
    except StepFailed as exc:
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    print_next(settings, outcome)
    say()
    say("demo: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
