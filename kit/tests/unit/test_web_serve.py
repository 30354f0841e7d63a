"""The event loop a service runs on (RYAX_EVENT_LOOP): uvloop unless asked otherwise, and a bad
value stops the start naming the variable."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import uvloop
from aiohttp import web

from ryax_kit.settings import ConfigurationError, Env
from ryax_kit.web.serve import (
    event_loop_kind,
    libc_malloc_trim,
    memory_trim_seconds,
    memory_trimmer,
    new_event_loop,
)


def test_uvloop_by_default_asyncio_when_asked() -> None:
    assert event_loop_kind(Env({})) == "uvloop"
    assert event_loop_kind(Env({"RYAX_EVENT_LOOP": "AsyncIO"})) == "asyncio"


def test_a_bad_event_loop_names_the_variable_and_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"RYAX_EVENT_LOOP='trio': expected one of"):
        event_loop_kind(Env({"RYAX_EVENT_LOOP": "trio"}))


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_each_loop_runs_coroutines(kind: str) -> None:
    loop = new_event_loop(kind)
    try:
        assert isinstance(loop, uvloop.Loop) == (kind == "uvloop")
        assert loop.run_until_complete(asyncio.sleep(0, result=42)) == 42
    finally:
        loop.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER = """
import asyncio, sys
from aiohttp import web
from ryax_kit.web import run_app

async def hello(request):
    return web.Response(text=type(asyncio.get_running_loop()).__module__)

app = web.Application()
app.router.add_get("/", hello)
run_app(app, host="127.0.0.1", port=int(sys.argv[1]), shutdown_timeout=1)
"""


@pytest.mark.parametrize(("setting", "module"), [("", "uvloop"), ("asyncio", "asyncio")])
def test_run_app_serves_on_the_loop_asked_and_stops_on_sigterm(setting: str, module: str) -> None:
    port = _free_port()
    env = {**os.environ, "RYAX_EVENT_LOOP": setting}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env)
    try:
        deadline = time.monotonic() + 20
        body = b""
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    body = answer.read()
                break
            except OSError:
                time.sleep(0.05)
        assert body.decode().startswith(module)
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
    finally:
        server.kill()
        server.wait()


def test_the_memory_trim_is_every_minute_by_default_and_can_be_off() -> None:
    assert memory_trim_seconds(Env({})) == 60.0
    assert memory_trim_seconds(Env({"RYAX_MEMORY_TRIM_SECONDS": "0"})) == 0.0
    with pytest.raises(ConfigurationError, match="RYAX_MEMORY_TRIM_SECONDS"):
        memory_trim_seconds(Env({"RYAX_MEMORY_TRIM_SECONDS": "-1"}))


def test_glibc_gives_a_trim_that_runs() -> None:
    trim = libc_malloc_trim()
    assert trim is not None  # glibc here
    assert trim() in (0, 1)


async def test_the_trimmer_trims_while_the_app_runs_and_stops_with_it() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    three = asyncio.Event()

    def trim() -> int:  # in a thread
        calls.append(time.monotonic())
        if len(calls) == 3:
            loop.call_soon_threadsafe(three.set)
        return 1

    context = memory_trimmer(0.05, trim)(web.Application())
    started = time.monotonic()
    await context.__anext__()
    # A loaded machine runs the timer late, never early: wait for the third trim.
    await asyncio.wait_for(three.wait(), 10)
    with pytest.raises(StopAsyncIteration):
        await context.__anext__()
    seen = len(calls)
    assert 3 <= seen <= (time.monotonic() - started) / 0.05 + 1
    await asyncio.sleep(0.15)
    assert len(calls) == seen


async def test_no_trimmer_when_off_or_without_glibc() -> None:
    for seconds, trim in ((0.0, lambda: 1), (0.01, None)):
        context = memory_trimmer(seconds, trim)(web.Application())
        await context.__anext__()
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "memory trim"]
        with pytest.raises(StopAsyncIteration):
            await context.__anext__()
