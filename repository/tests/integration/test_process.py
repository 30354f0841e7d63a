"""`python -m ryax_repository` as a process: starts, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aio_pika
import aiohttp
import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_service_starts_serves_and_stops_on_sigterm(
    db_url: str, amqp_url: str, authorization_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RYAX_DATABASE_URL": db_url,
        "RYAX_AMQP_URL": amqp_url,
        "RYAX_SECRET_KEY": "process-test-secret-key-0123456789abcdef",
        "RYAX_HTTP_PORT": str(port),
        "RYAX_AUTHORIZATION_URL": authorization_url,
        "RYAX_FILESTORE_DIR": str(tmp_path / "fs"),
        "RYAX_REPOSITORY_WORK_DIR": str(tmp_path / "w"),
        "RYAX_REPOSITORY_ALLOW_LOCAL": "true",
        "RYAX_LOG_FORMAT": "json",
    }
    env.pop("RYAX_S3_ENDPOINT", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ryax_repository",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the service never became ready")
            async with session.get(
                f"http://127.0.0.1:{port}/repository/v1/projects/project-a/repositories",
                headers={"Authorization": "Bearer token-alice"},
            ) as response:
                assert response.status == 200
                assert await response.json() == {"repositories": []}

        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        queue = await channel.declare_queue("repository.events", durable=True, passive=True)
        assert queue.declaration_result.consumer_count == 1

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=40)
        assert code == 0
        queue = await channel.declare_queue("repository.events", durable=True, passive=True)
        assert queue.declaration_result.consumer_count == 0
        await connection.close()
        stderr = (await process.stderr.read()).decode()  # type: ignore[union-attr]
        assert "Traceback" not in stderr and '"msg": "starting"' in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
