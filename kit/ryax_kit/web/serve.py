"""Serving a service's aiohttp application on the event loop its settings name.

    run_app(app, host=settings.http_host, port=settings.http_port, shutdown_timeout=30)

RYAX_EVENT_LOOP: `uvloop` (default) or `asyncio` (the standard library's loop). uvloop runs
the same code with less CPU per callback, socket write and timer: on the one-step run path it
took the runner from 1.11 to 0.94 ms of CPU per run and the worker from 0.93 to 0.79 ms
(bench/README.md). `asyncio` is there to rule the loop out when something behaves oddly.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..settings import Env

EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop_kind(env: Env | None = None) -> str:
    """RYAX_EVENT_LOOP, checked (a bad value stops the process at start)."""
    e = env if env is not None else Env.from_os()
    return e.text("RYAX_EVENT_LOOP", "uvloop", choices=EVENT_LOOPS, lower=True)


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_app(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    env: Env | None = None,
) -> None:
    """aiohttp's run_app (SIGTERM and SIGINT run the app's shutdown, then its cleanup) on the
    loop RYAX_EVENT_LOOP names."""
    loop = new_event_loop(event_loop_kind(env))
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=shutdown_timeout, loop=loop)
