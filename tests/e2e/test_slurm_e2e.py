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
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.support import (
    REPO,
    WORDS,
    Project,
    Ryax,
    admin_cli,
    demo_project,
    eventually,
    file_bytes,
    free_port,
    platform_env,
    run_chain_across_sites,
    stop_process,
    worker_env,
)

pytestmark = pytest.mark.e2e


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


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return demo_project(request.getfixturevalue("platform"), tmp_path_factory, "e2e-slurm")


@pytest.fixture
def admin(request: pytest.FixtureRequest, tmp_path: Path) -> Ryax:
    return admin_cli(request.getfixturevalue("platform"), tmp_path)


class SlurmWorker:
    """The worker of a Slurm site, dialling the platform's runner like the demo's worker."""

    def __init__(self, folder: Path, site: str, credential: str, slurm_conf: str) -> None:
        self.log = folder / "slurm-worker.log"
        shared = folder / "shared"
        shared.mkdir()
        # As a remote site: its credential, no filestore key (files by presigned URLs).
        env = worker_env(site, credential)
        self.http_port = free_port()
        # The runner's TLS port for remote sites, checked against the checkout's CA.
        runner = platform_env("runner")
        env |= {
            "RYAX_RUNNER_GRPC_ADDRESS": runner["RYAX_RUNNER_GRPC_TLS_ADDRESS"],
            "RYAX_RUNNER_CA_FILE": str(
                Path(runner["RYAX_RUNNER_GRPC_TLS_CERT_FILE"]).parent / "ca.pem"
            ),
            "RYAX_WORKER_ID": f"{site}-worker",
            "RYAX_WORKER_BACKEND": "slurm",
            "RYAX_SLURM_SHARED_DIR": str(shared),
            "RYAX_SLURM_POLL_SECONDS": "0.5",
            "RYAX_HTTP_PORT": str(self.http_port),
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
        stop_process(self.process)


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

    def settings_by_cli(user: Ryax, name: str) -> None:
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

    placed_on = {"api": "local", "report": "local", "count": site, "log": "local"}
    done = run_chain_across_sites(live, project, tmp_path, placed_on, "Slurm", settings_by_cli)
    # Where each action step ran (the HTTP trigger is served by the runner itself).
    ran = done.site_of()
    assert {step: ran[step] for step in ("report", "count", "log")} == {
        step: placed_on[step] for step in ("report", "count", "log")
    }
    count_lines = done.lines_of("count")
    assert any(line.startswith("ryax: slurm job ") for line in count_lines), count_lines
    submitted = next(line for line in count_lines if " submitted (" in line)
    assert "partition=debug nodes=1 ntasks=1" in submitted, submitted
    assert any(" COMPLETED" in line for line in count_lines), count_lines
    # The counts file came back from the Slurm site to the local one's publisher.
    published = done.lines_of("log")
    assert f"total: {WORDS}" in published, published
    assert "report counts.tsv:" in published, published
    assert worker.process.poll() is None
    assert '"runner_tls": true' in worker.log.read_text(), "it dialled the runner's TLS port"
    # The report came down and the counts went up through URLs the runner presigned.
    moved = file_bytes(httpx.get(f"http://127.0.0.1:{worker.http_port}/metrics").text)
    assert moved.get(("download", "presigned"), 0) > 0, moved
    assert moved.get(("upload", "presigned"), 0) > 0, moved
