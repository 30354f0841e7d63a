from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import socket
import tarfile
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from ryax_action_builder.app import create_app
from ryax_action_builder.container import Container
from ryax_action_builder.settings import Settings
from ryax_kit.filestore import FilestoreSettings, S3Filestore
from ryax_kit.settings import Env


@pytest.fixture
def amqp_url(fresh_vhost: str) -> str:
    return fresh_vhost


@pytest.fixture(scope="session")
def builder_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by every builder of the session: pip's cache and the wrapper layer are made once."""
    return tmp_path_factory.mktemp("builder-cache")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def settings(
    amqp_url: str, s3_env: dict[str, str], builder_cache: Path, tmp_path: Path
) -> Settings:
    return Settings(
        amqp_url=amqp_url,
        http_port=free_port(),
        filestore=FilestoreSettings.read(Env(s3_env), default_dir=tmp_path / "unused"),
        cache_dir=builder_cache,
        work_dir=tmp_path,
        shutdown_grace_seconds=5,
    )


def source_archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in sorted(files.items()):
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


SLUGIFY_METADATA = """\
apiVersion: "ryax.tech/v2.0"
kind: Processor
spec:
  id: slugify-text
  version: "1.0"
  human_name: Slugify a text
  type: python3
  options:
    python:
      version: "3.11"
  inputs:
  - {name: text, human_name: Text, help: Any text, type: string}
  outputs:
  - {name: slug, human_name: Slug, help: The slug, type: string}
"""

SLUGIFY_FILES = {
    "ryax_metadata.yaml": SLUGIFY_METADATA,
    "ryax_handler.py": """\
        from slugify import slugify

        def handle(request):
            print("slugifying", request["text"])
            return {"slug": slugify(request["text"])}
    """,
    "requirements.txt": "python-slugify==9.0.0\n",
}


@pytest.fixture
def slugify_files() -> dict[str, str]:
    """A processor using one small PyPI package (examples/actions/slugify-text)."""
    return dict(SLUGIFY_FILES)


@dataclass
class Answers:
    """Everything the builder published, as the repository would receive it."""

    messages: list[aio_pika.abc.AbstractIncomingMessage]
    arrived: asyncio.Condition

    async def wait_for(self, count: int, seconds: float = 120) -> None:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: len(self.messages) >= count), seconds
            )


@contextlib.asynccontextmanager
async def listening_for_answers(amqp_url: str) -> AsyncIterator[Answers]:
    """Plays the repository: binds a queue to the builder's answers, collects them."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        "ryax.action-builder", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue("test.repository.events", durable=False, exclusive=True)
    for key in ("ActionBuilt", "ActionBuildFailed"):
        await queue.bind(exchange, key)
    result = Answers([], asyncio.Condition())

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        async with result.arrived:
            result.messages.append(message)
            result.arrived.notify_all()

    await queue.consume(on_message)
    try:
        yield result
    finally:
        await connection.close()


@pytest.fixture
async def answers(amqp_url: str) -> AsyncIterator[Answers]:
    async with listening_for_answers(amqp_url) as result:
        yield result


@pytest.fixture
async def listen_later(amqp_url: str) -> AsyncIterator[Callable[[], Awaitable[Answers]]]:
    """Starts listening for answers when called: until then no queue is bound to them."""
    async with contextlib.AsyncExitStack() as stack:

        async def listen() -> Answers:
            return await stack.enter_async_context(listening_for_answers(amqp_url))

        yield listen


@pytest.fixture
async def order_sender(amqp_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Plays the repository: puts the source in the filestore, publishes ActionBuildRequested
    (with the Python packages of spec.dependencies as the repository maps them, when given)."""
    from ryax_action_builder.domain.model import ActionKind, BuildId, BuildOrder, PythonPackage
    from ryax_action_builder.infrastructure.messaging.mappers import build_order_to_proto

    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(
        "ryax.repository", aio_pika.ExchangeType.TOPIC, durable=True
    )
    # The builder's queue exists before the first order, as after the builder's first start.
    queue = await channel.declare_queue(
        "action-builder.builds",
        durable=True,
        arguments={"x-dead-letter-exchange": "action-builder.builds.dlx"},
    )
    await queue.bind(exchange, "ActionBuildRequested")

    async def send(
        store: Callable[[str, bytes], Any],
        build_id: str,
        files: dict[str, str],
        kind: str = "processor",
        python_packages: tuple[PythonPackage, ...] = (),
    ) -> BuildOrder:
        archive = source_archive(files)
        sha = hashlib.sha256(archive).hexdigest()
        key = f"sources/{sha}.tar.gz"
        await store(key, archive)
        order = BuildOrder(
            event_id=f"event-{build_id}",
            build_id=BuildId(build_id),
            project_id="project-1",
            action_id="slugify-text",
            action_version="1.0",
            kind=ActionKind(kind),
            source_key=key,
            source_sha256=sha,
            metadata_yaml=files["ryax_metadata.yaml"],
            python_packages=python_packages,
        )
        await exchange.publish(
            aio_pika.Message(
                build_order_to_proto(order).SerializeToString(),
                message_id=order.event_id,
                type="ActionBuildRequested",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key="ActionBuildRequested",
        )
        return order

    yield send
    await connection.close()


@pytest.fixture
def filestore(settings: Settings) -> S3Filestore:
    store = Container(settings=settings).filestore()
    assert isinstance(store, S3Filestore)
    return store


@pytest.fixture
async def builder(settings: Settings) -> AsyncIterator[Container]:
    """The whole service in this process (aiohttp app: start-up, consumer, shutdown)."""
    container = Container(settings=settings)
    server = TestServer(create_app(container), port=settings.http_port)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 120
        while True:
            async with http.get(f"http://127.0.0.1:{settings.http_port}/readyz") as resp:
                if resp.status == 200:
                    break
                assert time.monotonic() < deadline, await resp.text()
            await asyncio.sleep(0.2)
    yield container
    await server.close()
