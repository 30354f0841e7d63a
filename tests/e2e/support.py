"""What the end-to-end tests that drive the platform as a user share: the `ryax` command with
a config file of the test's own, the platform's settings of a service, the demo scenario run
in a project of the test's own (its actions built), and the demo workflow with some of its steps
placed on another site (each step's site is set through the studio's API).

Imported as `tests.e2e.support` (dev/run-pytest.sh puts the checkout on the path for tests/*).
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TEXT = "one two three four five six seven eight nine ten eleven"
#: make-report writes its title ("Posted text") above the text: two words more.
WORDS = len(TEXT.split()) + 2


@dataclass
class Ryax:
    """The `ryax` command, with a config file of the test's own."""

    url: str
    config: Path

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= {"RYAX_URL": self.url, "RYAX_CONFIG": str(self.config), "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "ryax_cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, (
            f"ryax {' '.join(args)} exited {done.returncode}: {done.stderr}"
        )
        return done.stdout

    def fails(self, *args: str) -> str:
        """The error a refused command prints (exit code 1)."""
        done = self.run(*args)
        assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
        return done.stderr


def platform_env(service: str) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-P", str(REPO / "dev" / "platform.py"), "env", service],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {k: "".join(shlex.split(v)) for k, v in pairs}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def worker_env(site: str, credential: str) -> dict[str, str]:
    """The platform's worker settings for another site's worker: not the demo site's name and
    credential, no filestore address or key (a remote site's files move by presigned URLs,
    docs/remote-sites.md), and gRPC, not the runner's Unix socket."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
    env |= {
        k: v
        for k, v in platform_env("worker").items()
        if not k.startswith(("RYAX_S3_", "RYAX_FILESTORE_", "RYAX_SITE_"))
        and k != "RYAX_RUNNER_WORKER_SOCKET"
    }
    env |= {"RYAX_SITE_NAME": site, "RYAX_SITE_CREDENTIAL": credential}
    return env


def file_bytes(metrics: str) -> dict[tuple[str, str], float]:
    """ryax_worker_file_bytes_total of a worker's /metrics, by (direction, mode)."""
    found: dict[tuple[str, str], float] = {}
    for line in metrics.splitlines():
        if line.startswith("ryax_worker_file_bytes_total{"):
            labels, value = line.rsplit(" ", 1)
            direction = labels.split('direction="', 1)[1].split('"', 1)[0]
            mode = labels.split('mode="', 1)[1].split('"', 1)[0]
            found[(direction, mode)] = float(value)
    return found


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM (a clean stop), SIGKILL if it is not done within `timeout`."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def eventually(what: str, check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.5)


@dataclass
class Project:
    name: str
    user: str
    password: str


def demo_project(live: Any, tmp_path_factory: pytest.TempPathFactory, prefix: str) -> Project:
    """The demo scenario in a project of the test's own (`<prefix>-<random>`): its actions
    built."""
    suffix = secrets.token_hex(3)
    made = Project(f"{prefix}-{suffix}", f"{prefix}-{suffix}", secrets.token_urlsafe(12))
    root = tmp_path_factory.mktemp(f"{prefix}-demo-root")
    shutil.copytree(REPO / "examples", root / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
    env |= {
        "RYAX_URL": live.url,
        "RYAX_ADMIN_USER": live.admin_user,
        "RYAX_ADMIN_PASSWORD": live.admin_password,
        "RYAX_DEMO_PROJECT": made.name,
        "RYAX_DEMO_USER": made.user,
        "RYAX_DEMO_PASSWORD": made.password,
        "RYAX_REPO_ROOT": str(root),
    }
    done = subprocess.run(
        [sys.executable, "-P", str(REPO / "dev" / "demo_scenario.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, f"demo scenario:\n{done.stdout}\n{done.stderr}"
    return made


def workflow_yaml(name: str, path: str, description: str) -> str:
    """The demo's report -> word count -> publisher chain behind an HTTP API trigger: the
    report file goes from `report` to `count`, the counts file from `count` to `log`."""
    return textwrap.dedent(
        f"""\
        apiVersion: "ryax.tech/v2.0"
        kind: Workflows
        spec:
          human_name: {name}
          description: "{description}"
          functions:
          - id: api
            from: httpapijson
            version: "1.0"
            inputs_values:
              path: {path}
              method: POST
              summary: Count the words of a text on the HPC site
              description: e2e
              tags: e2e
              success_code: "200"
              timeout: 300
            outputs:
            - name: text
              human_name: Text
              help: The text.
              type: string
              origin: body
            streams_to: [report]
          - id: report
            from: make-report
            version: "1.0"
            inputs_values:
              text:
                reference_value: api.text
              title: Posted text
            streams_to: [count]
          - id: count
            from: word-count
            version: "1.0"
            inputs_values:
              document:
                reference_value: report.report
            streams_to: [log]
          - id: log
            from: print-publisher
            version: "1.0"
            inputs_values:
              text:
                reference_value: api.text
              total:
                reference_value: count.total
              report:
                reference_value: count.counts
            streams_to: []
          results:
          - key: words
            reference_value: count.total
        """
    )


def admin_cli(live: Any, tmp_path: Path) -> Ryax:
    """`ryax` logged in as the platform's admin."""
    cli = Ryax(live.url, tmp_path / "admin.toml")
    cli.ok("login", live.admin_user, "--password-stdin", stdin=live.admin_password + "\n")
    return cli


@dataclass
class ChainRun:
    """A completed run of `workflow_yaml`'s chain: its record and its log lines."""

    run: dict[str, Any]
    logs: list[dict[str, Any]]

    def site_of(self) -> dict[str, str | None]:
        """Each step's site, as the run's executions record it."""
        return {e["step_id"]: e["site_name"] for e in self.run["steps"]}

    def lines_of(self, step: str) -> list[str]:
        return [entry["line"] for entry in self.logs if entry.get("step_id") == step]


def run_chain_across_sites(
    live: Any,
    project: Project,
    tmp_path: Path,
    placed_on: dict[str, str],
    what: str,
    before_deploy: Callable[[Ryax, str], None] | None = None,
) -> ChainRun:
    """As the project's user: import `workflow_yaml`'s chain, place each step on its site
    (`placed_on`: step -> site name, through the studio's API), call `before_deploy(user's
    ryax, workflow name)` if given, deploy it, post TEXT to its endpoint and check the answer
    (WORDS words) and the run (completed)."""
    import json
    from urllib.parse import quote

    import httpx

    user = Ryax(live.url, tmp_path / "user.toml")
    user.ok("login", project.user, "--password-stdin", stdin=project.password + "\n")
    user.ok("project", "use", project.name)
    name = f"{what} e2e {secrets.token_hex(3)}"
    definition = tmp_path / "workflow.yaml"
    path = f"/e2e-{what.lower()}-{secrets.token_hex(3)}"
    definition.write_text(
        workflow_yaml(name, path, f"A report written on one site, counted on {what}.")
    )
    user.ok("workflow", "import", str(definition))
    workflow = json.loads(user.ok("workflow", "show", name, "-o", "json"))
    with httpx.Client(base_url=live.url, timeout=300) as http:
        token = http.post(
            "/authorization/v1/login", json={"username": project.user, "password": project.password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        steps = f"/studio/v1/projects/{project.name}/workflows/{workflow['id']}/steps"
        for step, where in placed_on.items():
            put = http.put(f"{steps}/{step}/settings", json={"site_name": where}, headers=headers)
            assert put.status_code == 200, put.text
        if before_deploy is not None:
            before_deploy(user, name)
        user.ok("workflow", "deploy", name, "--timeout", "600")
        placed = json.loads(user.ok("workflow", "show", name, "-o", "json"))
        assert placed["deployment"]["state"] == "deployed"
        endpoint = f"/runner/v1/projects/{project.name}/endpoints/{quote(name)}"
        answer = http.post(endpoint, json={"text": TEXT}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"words": WORDS}
        run_id = answer.headers["Ryax-Run-Id"]
        run = http.get(f"/runner/v1/projects/{project.name}/runs/{run_id}", headers=headers)
        assert run.json()["state"] == "completed", run.text
    lines = user.ok("run", "logs", run_id, "-o", "json").splitlines()
    return ChainRun(run=run.json(), logs=[json.loads(line) for line in lines if line.strip()])
