"""Serving a service's aiohttp application on the event loop its settings name.

    run_app(app, host=settings.http_host, port=settings.http_port, shutdown_timeout=30)

RYAX_EVENT_LOOP: `uvloop` or `asyncio` (the standard library's loop). uvloop runs the same
code with less CPU per callback, socket write and timer: on the one-step run path it took the
runner from 1.11 to 0.94 ms of CPU per run (bench/README.md). It is every service's default.
A process that uses grpc and starts subprocesses (the worker) must set
GRPC_ENABLE_FORK_SUPPORT=false before grpc is imported: uvloop's spawn is a fork() (not
Python's vfork()), so grpc's fork handlers run in the child, and they restarted grpc's threads
there, which were killed by SIGSEGV before the exec (ryax_worker/__main__.py).

RYAX_MEMORY_TRIM_SECONDS (default 60; 0: never): how often the service hands the memory the
C library keeps freed back to the system (glibc's `malloc_trim`, in a thread). Python frees
objects into the C library's heap, which keeps the pages: after a build, a large request or a
burst of runs, a service kept 2 to 13 MiB it no longer used (21 MiB over the six services).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from ..settings import Env

log = logging.getLogger(__name__)

EVENT_LOOPS = ("uvloop", "asyncio")
#: RYAX_MEMORY_TRIM_SECONDS's default.
MEMORY_TRIM_SECONDS = 60.0


def event_loop_kind(env: Env | None = None) -> str:
    """RYAX_EVENT_LOOP, checked (a bad value stops the process at start)."""
    e = env if env is not None else Env.from_os()
    return e.text("RYAX_EVENT_LOOP", "uvloop", choices=EVENT_LOOPS, lower=True)


def memory_trim_seconds(env: Env | None = None) -> float:
    """RYAX_MEMORY_TRIM_SECONDS, checked (0: never)."""
    e = env if env is not None else Env.from_os()
    return e.number("RYAX_MEMORY_TRIM_SECONDS", MEMORY_TRIM_SECONDS, minimum=0, maximum=86400)


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def libc_malloc_trim() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none (musl)."""
    try:
        # The process's own symbols, libc's among them (no `ldconfig` run to find the file).
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def trim_every(seconds: float, trim: Callable[[], int]) -> None:
    """Call `trim` in a thread every `seconds` (until cancelled)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(trim)
        except Exception:
            log.exception("memory trim failed")


def memory_trimmer(
    seconds: float, trim: Callable[[], int] | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that trims every `seconds` while the app runs (nothing if 0 or no
    `trim`)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if seconds <= 0 or trim is None:
            yield
            return
        task = asyncio.create_task(trim_every(seconds, trim), name="memory trim")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def run_app(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    env: Env | None = None,
) -> None:
    """aiohttp's run_app (SIGTERM and SIGINT run the app's shutdown, then its cleanup) on the
    loop RYAX_EVENT_LOOP names, trimming freed memory every RYAX_MEMORY_TRIM_SECONDS."""
    loop = new_event_loop(event_loop_kind(env))
    app.cleanup_ctx.append(memory_trimmer(memory_trim_seconds(env), libc_malloc_trim()))
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=shutdown_timeout, loop=loop)
