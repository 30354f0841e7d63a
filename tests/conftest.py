"""The `platform` fixture of the suites that drive the whole platform as processes (tests/e2e
with the `ryax` command and HTTP, tests/webui with a browser), started the way `make demo` does
(dev/platform.py up: the services, the gateway, and nginx serving the web UI's build).

If a platform of this checkout already runs (`make demo`), it is reused and left running;
otherwise it is started under supervisord for the session and stopped after it.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLATFORM = [str(REPO / ".venv" / "bin" / "python"), "-P", str(REPO / "dev" / "platform.py")]


@dataclass(frozen=True)
class RunningPlatform:
    url: str
    admin_user: str
    admin_password: str


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLATFORM, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _env_of(service: str) -> dict[str, str]:
    done = _run("env", service, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"dev/platform.py env {service} failed:\n{done.stdout}{done.stderr}")
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {k: "".join(shlex.split(v)) for k, v in pairs}


@pytest.fixture(scope="session")
def platform() -> Iterator[RunningPlatform]:
    already = _run("status", timeout=60)
    started = "not running" in already.stdout or already.returncode != 0
    if started:
        up = _run("up", timeout=600)
        sys.stdout.write(up.stdout)
        if up.returncode != 0:
            _run("down", timeout=120)
            pytest.fail(f"the platform did not start:\n{up.stdout}\n{up.stderr}")
    env = _env_of("authorization")
    try:
        yield RunningPlatform(
            url=env["RYAX_GATEWAY_URL"],
            admin_user=env["RYAX_ADMIN_USER"],
            admin_password=env["RYAX_ADMIN_PASSWORD"],
        )
    finally:
        if started:
            _run("down", timeout=180)
