"""Sites on the running platform, driven like an admin drives them: the demo's own site is the
runner's built-in site (its worker connected with the credential dev/platform.py gave it); an
admin creates a site with `ryax site create`, a real worker process (`python -m ryax_worker`)
registers with its credential, a worker with a wrong one is refused, a rotation cuts the first
worker off, and the site is archived.

Needs the `platform` fixture (tests/conftest.py), like tests/e2e/test_demo.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Ryax:
    """The `ryax` command, with a config file of the test's own."""

    url: str
    config: Path

    def ok(self, *args: str, stdin: str | None = None) -> Outcome:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= {"RYAX_URL": self.url, "RYAX_CONFIG": str(self.config), "COLUMNS": "200"}
        done = subprocess.run(
            [sys.executable, "-m", "ryax_cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, (
            f"ryax {' '.join(args)} exited {done.returncode}: {done.stderr}"
        )
        return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def ryax(request: pytest.FixtureRequest, tmp_path: Path) -> Ryax:
    """Logged in as the platform's admin (the `platform` fixture of tests/conftest.py)."""
    platform: Any = request.getfixturevalue("platform")
    cli = Ryax(platform.url, tmp_path / "config.toml")
    cli.ok("login", platform.admin_user, "--password-stdin", stdin=platform.admin_password + "\n")
    return cli


def worker_grpc_address() -> str:
    """Where the platform's worker dials the runner (dev/platform.py env worker)."""
    return worker_setting("RYAX_RUNNER_GRPC_ADDRESS")


def worker_setting(name: str) -> str:
    """A setting of the platform's worker (dev/platform.py env worker)."""
    done = subprocess.run(
        [sys.executable, "-P", str(REPO / "dev" / "platform.py"), "env", "worker"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    env = {k: "".join(shlex.split(v)) for k, v in pairs}
    return env[name]


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


class WorkerProcess:
    """A worker service process of a site, dialling the platform's runner."""

    def __init__(self, folder: Path, site: str, worker_id: str, credential: str) -> None:
        self.log = folder / f"{worker_id}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
        env |= {
            "RYAX_RUNNER_GRPC_ADDRESS": worker_grpc_address(),
            "RYAX_SITE_NAME": site,
            "RYAX_WORKER_ID": worker_id,
            "RYAX_SITE_CREDENTIAL": credential,
            "RYAX_HTTP_PORT": str(free_port()),
            "RYAX_WORKER_CACHE_DIR": str(folder / f"{worker_id}-cache"),
            "RYAX_FILESTORE_DIR": str(folder / "filestore"),
            "RYAX_SANDBOX": "none",
            "RYAX_SANDBOX_ALLOW_NONE": "true",
            "RYAX_RECONNECT_MAX_SECONDS": "1",
            "RYAX_LOG_FORMAT": "json",
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ryax_worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def says(self, text: str) -> bool:
        return text in self.log.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def test_the_demo_site_is_the_runners_builtin_site(ryax: Ryax) -> None:
    sites = {s["name"]: s for s in ryax.ok("site", "list", "--all", "-o", "json").json()}
    local = sites["local"]
    assert (local["credential"], local["state"], local["connected"]) == ("active", "online", True)
    # On the runner's Unix socket (docs/runner-worker-protocol.md "The local socket").
    runner_socket = worker_setting("RYAX_RUNNER_WORKER_SOCKET")
    assert local["worker_address"] == f"unix:{runner_socket}"


def test_an_admin_attaches_a_site_whose_worker_registers_with_its_credential(
    ryax: Ryax, tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    name = f"e2e-site-{secrets.token_hex(3)}"
    credential = ryax.ok("site", "create", name, "--type", "local").stdout.strip()
    assert credential.startswith("ryax_site_")
    show = lambda: ryax.ok("site", "show", name, "-o", "json").json()  # noqa: E731
    try:
        assert show()["state"] == "offline" and credential not in json.dumps(show())

        worker = WorkerProcess(tmp_path, name, "e2e-first", credential)
        workers.append(worker)
        eventually("the worker registers", lambda: show()["connected"] is True)
        site = show()
        assert (site["state"], site["worker_id"]) == ("online", "e2e-first")
        assert site["node_pools"] and site["version"]
        table = ryax.ok("site", "show", name).stdout
        assert "e2e-first" in table and "yes" in table

        # A worker with a wrong credential is refused and says so; nothing changes.
        intruder = WorkerProcess(tmp_path, name, "e2e-intruder", "ryax_site_" + "x" * 43)
        workers.append(intruder)
        eventually(
            "the intruder is refused",
            lambda: intruder.says("refused this worker's site credential"),
        )
        assert show()["worker_id"] == "e2e-first"

        # Rotated: the first worker is cut off and refused from then on.
        rotated = ryax.ok("site", "rotate", name).stdout.strip()
        assert rotated != credential and rotated.startswith("ryax_site_")
        eventually(
            "the first worker is cut off and refused",
            lambda: worker.says("refused this worker's site credential"),
        )
        assert show()["connected"] is False
        assert credential not in worker.log.read_text() and rotated not in worker.log.read_text()
    finally:
        ryax.ok("site", "archive", name)
    archived = show()
    assert archived["archived_at"] and archived["credential"] == "revoked"
    listed = [s["name"] for s in ryax.ok("site", "list", "--all", "-o", "json").json()]
    assert name not in listed
