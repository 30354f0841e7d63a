"""A silent cut of the path to the runner (a cable pulled, a NAT that forgot the flow: nothing
arrives any more, no reset, no error) is noticed by the worker within seconds, and once the path
is back the worker is registered again within seconds (issue 12: back to normal within 5 s).

The worker dials the fake runner (a real grpc.aio server) through a TCP relay the test can
stall: stalled, it passes no byte either way, keeps every connection open and takes new ones
without passing anything, as a cut link does. Only gRPC's keepalive pings can tell (the
runner-silence timeout is off here)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from ryax_worker.container import Container
from ryax_worker.settings import Settings

from .conftest import FakeRunner

#: What the keepalive settings promise (ping every 5 s, answer within 5 s), with slack.
NOTICED_WITHIN_S = 12.0
#: Issue 12's target for being back once the path is.
BACK_WITHIN_S = 5.0


class StallableRelay:
    """127.0.0.1:<port> -> target, passing bytes unless stalled."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self.flowing.wait()
                data = await reader.read(65536)
                if not data:
                    break
                await self.flowing.wait()  # read just before a stall: held, not passed
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        await self.flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


@pytest.fixture
async def relayed_runner(
    fake_runner: tuple[FakeRunner, str],
) -> AsyncIterator[tuple[FakeRunner, StallableRelay]]:
    runner, address = fake_runner
    host, _, port = address.rpartition(":")
    relay = StallableRelay(host, int(port))
    await relay.start()
    try:
        yield runner, relay
    finally:
        relay.resume()
        await relay.close()


async def wait_for(predicate: Callable[[], bool], within: float) -> float:
    """Seconds until `predicate` held (polled every 50 ms); fails after `within`."""
    started = time.monotonic()
    while True:
        elapsed = time.monotonic() - started
        if predicate():
            return elapsed
        assert elapsed < within, f"not so after {within:.0f} s"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_a_silent_cut_is_noticed_and_the_worker_is_back_soon_after_the_path(
    relayed_runner: tuple[FakeRunner, StallableRelay],
    make_settings: Callable[[str], Settings],
) -> None:
    runner, relay = relayed_runner
    settings = replace(make_settings(f"127.0.0.1:{relay.port}"), runner_silence_seconds=0)
    container = Container(settings=settings)
    connection = container.connection()
    connection.start()
    try:
        await wait_for(lambda: connection.connected, within=15)
        registers = len(runner.registers)

        relay.stall()
        noticed = await wait_for(lambda: not connection.connected, within=60)
        assert noticed <= NOTICED_WITHIN_S, f"the cut was noticed after {noticed:.1f} s"
        # The path stays cut a while longer: the worker keeps trying (into the void) and its
        # backoff grows, as it does during a long outage.
        await asyncio.sleep(15)
        assert not connection.connected

        relay.resume()
        back = await wait_for(lambda: connection.connected, within=60)
        assert back <= BACK_WITHIN_S, f"registered again {back:.1f} s after the path returned"
        assert len(runner.registers) > registers
        print(f"silent cut noticed after {noticed:.1f} s; registered {back:.1f} s after the path")
    finally:
        with contextlib.suppress(Exception):
            await connection.close(flush_timeout=1)
