"""A workflow across a local site and a Slurm site, on the running platform: an admin creates a
`slurm` site, its worker (`python -m ryax_worker`, RYAX_WORKER_BACKEND=slurm) runs on this
machine against the checkout's private Slurm (dev/ensure-slurm.sh), and a workflow whose
trigger and first step run on the demo's local site and whose word count runs as a Slurm job
gets a file from the local site and gives one back.

Needs the `platform` fixture (tests/conftest.py), like tests/e2e/test_demo.py; the actions come
from the demo scenario (dev/demo_scenario.py), run here in a project of this test's own.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TEXT = "one two three four five six seven eight nine ten eleven"
#: make-report writes its title ("Posted text") above the text: two words more.
WORDS = len(TEXT.split()) + 2


@dataclass
class Ryax:
    """The `ryax` command, with a config file of the test's own."""

    url: str
    config: Path

    def ok(self, *args: str, stdin: str | None = None) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= {"RYAX_URL": self.url, "RYAX_CONFIG": str(self.config), "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "ryax_cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, (
            f"ryax {' '.join(args)} exited {done.returncode}: {done.stderr}"
        )
        return done.stdout

    def fails(self, *args: str) -> str:
        """The error a refused command prints (exit code 1)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= {"RYAX_URL": self.url, "RYAX_CONFIG": str(self.config), "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "ryax_cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
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


def eventually(what: str, check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        time.sleep(0.5)


@pytest.fixture
def slurm_conf() -> str:
    done = subprocess.run(
        ["bash", str(REPO / "dev" / "ensure-slurm.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, f"dev/ensure-slurm.sh failed: {done.stderr}"
    return str(REPO / ".dev" / "slurm" / "etc" / "slurm.conf")


@dataclass
class Project:
    name: str
    user: str
    password: str


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The demo scenario in a project of this test's own: its actions built."""
    live: Any = request.getfixturevalue("platform")
    suffix = secrets.token_hex(3)
    made = Project(f"e2e-slurm-{suffix}", f"e2e-slurm-{suffix}", secrets.token_urlsafe(12))
    root = tmp_path_factory.mktemp("slurm-demo-root")
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


class SlurmWorker:
    """The worker of a Slurm site, dialling the platform's runner like the demo's worker."""

    def __init__(self, folder: Path, site: str, credential: str, slurm_conf: str) -> None:
        self.log = folder / "slurm-worker.log"
        shared = folder / "shared"
        shared.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= platform_env("worker")
        env |= {
            "RYAX_SITE_NAME": site,
            "RYAX_WORKER_ID": f"{site}-worker",
            "RYAX_SITE_CREDENTIAL": credential,
            "RYAX_WORKER_BACKEND": "slurm",
            "RYAX_SLURM_SHARED_DIR": str(shared),
            "RYAX_SLURM_POLL_SECONDS": "0.5",
            "RYAX_HTTP_PORT": str(free_port()),
            "RYAX_WORKER_CACHE_DIR": str(folder / "slurm-worker-cache"),
            "RYAX_LOG_FORMAT": "json",
            "SLURM_CONF": slurm_conf,
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ryax_worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def workflow_yaml(name: str, path: str) -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: "ryax.tech/v2.0"
        kind: Workflows
        spec:
          human_name: {name}
          description: "A report written on the local site, counted by a Slurm job."
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


@pytest.fixture
def admin(request: pytest.FixtureRequest, tmp_path: Path) -> Ryax:
    live: Any = request.getfixturevalue("platform")
    cli = Ryax(live.url, tmp_path / "admin.toml")
    cli.ok("login", live.admin_user, "--password-stdin", stdin=live.admin_password + "\n")
    return cli


@pytest.fixture
def slurm_site(admin: Ryax, slurm_conf: str, tmp_path: Path) -> Iterator[tuple[str, SlurmWorker]]:
    name = f"e2e-hpc-{secrets.token_hex(3)}"
    credential = admin.ok("site", "create", name, "--type", "slurm").strip()
    worker = SlurmWorker(tmp_path, name, credential, slurm_conf)
    try:
        yield name, worker
    finally:
        worker.stop()
        admin.ok("site", "archive", name)


def test_slurm_a_workflow_across_a_local_and_a_slurm_site_passes_files_both_ways(
    request: pytest.FixtureRequest,
    project: Project,
    admin: Ryax,
    slurm_site: tuple[str, SlurmWorker],
    tmp_path: Path,
) -> None:
    live: Any = request.getfixturevalue("platform")
    site, worker = slurm_site

    def show() -> Any:
        return json.loads(admin.ok("site", "show", site, "-o", "json"))

    eventually("the Slurm worker registers", lambda: show()["connected"] is True, 90)
    pools = {p["name"]: p for p in show()["node_pools"]}
    assert pools["debug"]["cpu"] == 4 and pools["short"]["max_time_seconds"] == 60

    user = Ryax(live.url, tmp_path / "user.toml")
    user.ok("login", project.user, "--password-stdin", stdin=project.password + "\n")
    user.ok("project", "use", project.name)
    name = f"Slurm e2e {secrets.token_hex(3)}"
    definition = tmp_path / "workflow.yaml"
    definition.write_text(workflow_yaml(name, f"/e2e-slurm-{secrets.token_hex(3)}"))
    user.ok("workflow", "import", str(definition))
    workflow = json.loads(user.ok("workflow", "show", name, "-o", "json"))

    with httpx.Client(base_url=live.url, timeout=300) as http:
        token = http.post(
            "/authorization/v1/login", json={"username": project.user, "password": project.password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        steps = f"/studio/v1/projects/{project.name}/workflows/{workflow['id']}/steps"
        for step, where in (("api", "local"), ("report", "local"), ("log", "local")):
            put = http.put(f"{steps}/{step}/settings", json={"site_name": where}, headers=headers)
            assert put.status_code == 200, put.text

        # The Slurm step's settings through the CLI, checked by the studio.
        refused = user.fails("workflow", "step-settings", name, "count", "--hpc", "nodes=two")
        assert "hpc.nodes: 'two' is not a node count (e.g. 2 or 1-4)" in refused, refused
        # More CPUs than any partition has: the deployment waits, naming the closest one.
        user.ok("workflow", "step-settings", name, "count", "--site", site, "--cpu", "64")
        user.ok("workflow", "deploy", name, "--no-wait")

        def waiting_reason() -> str:
            d = json.loads(user.ok("workflow", "show", name, "-o", "json"))["deployment"]
            return str(d["reason"]) if d and d["state"] == "waiting_for_site" else ""

        eventually("the deployment waits for a site", lambda: bool(waiting_reason()), 60)
        reason = waiting_reason()
        assert reason.startswith("step count: asks 64 cpu; the closest node pool, "), reason
        assert reason.endswith(f"@{site}, has 4 cpu"), reason
        user.ok("workflow", "undeploy", name, "--timeout", "300")
        # Step-level HPC parameters: the job asks for them.
        user.ok(
            "workflow", "step-settings", name, "count", "--cpu", "0",
            "--hpc", "partition=debug", "--hpc", "nodes=1", "--hpc", "tasks=1",
        )  # fmt: skip
        shown = user.ok("workflow", "step-settings", name, "count", "-o", "json")
        assert json.loads(shown)["hpc"] == {"partition": "debug", "nodes": "1", "ntasks": "1"}

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
    logs = [json.loads(line) for line in lines if line.strip()]
    count_lines = [entry["line"] for entry in logs if entry.get("step_id") == "count"]
    assert any(line.startswith("ryax: slurm job ") for line in count_lines), count_lines
    submitted = next(line for line in count_lines if " submitted (" in line)
    assert "partition=debug nodes=1 ntasks=1" in submitted, submitted
    assert any(" COMPLETED" in line for line in count_lines), count_lines
    # The counts file came back from the Slurm site to the local one's publisher.
    published = [entry["line"] for entry in logs if entry.get("step_id") == "log"]
    assert f"total: {WORDS}" in published, published
    assert "report counts.tsv:" in published, published
    assert worker.process.poll() is None
