"""`python -m ryax_studio` as a process: configuration, readiness, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_missing_configuration_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RYAX_")}
    done = subprocess.run(
        [sys.executable, "-m", "ryax_studio"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert "RYAX_SECRET_KEY is required" in done.stderr or "is required" in done.stderr


async def test_serves_then_stops_cleanly_on_sigterm(
    db_url: str, amqp_url: str, fake_authz: Any
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RYAX_DATABASE_URL": db_url,
        "RYAX_AMQP_URL": amqp_url,
        "RYAX_AUTHORIZATION_URL": fake_authz.url,
        "RYAX_HTTP_PORT": str(port),
        "RYAX_SECRET_KEY": "a process test key that is long enough!!",
        "RYAX_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, read after it ends
        [sys.executable, "-m", "ryax_studio"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"{base}/studio/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the studio did not become ready")
            async with session.get(
                f"{base}/studio/v1/projects/proj-a/workflows",
                headers={"Authorization": "Bearer token-a"},
            ) as r:
                assert r.status == 200
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        output = process.stdout.read().decode()  # type: ignore[union-attr]
        assert code == 0, output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
