"""Fork servers: preloaded wrapper runtimes the action processes are forked from
(action-wrapper: `ryax_action_wrapper/infrastructure/forkserver.py` says how a child enters its
step's sandbox). One per runtime: artefacts whose run.sh, wrapper package and wrapper
dependencies (grpcio, protobuf: their dist-info folders in deps/) are the same share one, so the
imported modules' files are byte for byte those of each action's own artefact.

A fork server is started from the first artefact of its runtime with that artefact's run.sh
(`--fork-server FD`), as the worker's user, outside the sandbox, in a built environment (the
one every action gets: no RYAX_* setting, no credential), and dies with the worker. If it dies,
the action processes it made die too (parent-death signals); the next start of an action
starts a new fork server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
#: The wrapper's runtime distributions: the fork server imports them for every child.
RUNTIME_DISTRIBUTIONS = ("grpcio", "grpcio_health_checking", "protobuf")
MAX_MESSAGE = 1 << 20


class ForkFailed(Exception):
    """The fork server could not start an action process (the reason is the message)."""


def runtime_key(artefact_dir: Path) -> str | None:
    """What artefacts sharing a fork server have in common (None: cannot be forked): the
    bytes of run.sh and of the wrapper package, the names (with versions) of the wrapper's
    runtime distributions in deps/ and the manifest's Python."""
    run_sh = artefact_dir / "run.sh"
    wrapper = artefact_dir / "wrapper" / "ryax_action_wrapper"
    if not run_sh.is_file() or not (wrapper / "infrastructure" / "forkserver.py").is_file():
        return None
    digest = hashlib.sha256()
    digest.update(run_sh.read_bytes())
    for path in sorted(wrapper.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(wrapper)).encode() + b"\0")
            digest.update(path.read_bytes())
    deps = artefact_dir / "deps"
    if deps.is_dir():
        for entry in sorted(deps.iterdir()):
            if entry.name.endswith(".dist-info") and entry.name.lower().startswith(
                RUNTIME_DISTRIBUTIONS
            ):
                digest.update(entry.name.encode() + b"\0")
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((artefact_dir / "manifest.json").read_text(encoding="utf-8"))
        digest.update(str(manifest.get("python", "")).encode())
    return digest.hexdigest()


@dataclass
class ForkedChild:
    """One action process made by a fork server."""

    request_id: int
    #: Its pid (on this machine's pid namespace), once the fork server told it.
    pid: int = 0
    started: asyncio.Future[int] = field(default_factory=lambda: _future())
    #: Its exit code (128 + signal when killed); None when its fork server died first.
    exited: asyncio.Future[int | None] = field(default_factory=lambda: _future())


def _future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


class ForkServer:
    """One running fork server (start() once; close() always)."""

    def __init__(self, *, key: str, artefact_dir: Path, env: Mapping[str, str], home: Path):
        self.key = key
        self.artefact_dir = artefact_dir
        self._env = dict(env)
        self._home = home
        self._sock: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._children: dict[int, ForkedChild] = {}
        self._next_id = 0
        self._stderr: asyncio.Task[None] | None = None
        self.dead = False
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return not self.dead and self._process is not None and self._process.returncode is None

    async def start(self, within_seconds: float) -> None:
        self._home.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        try:
            self._process = await asyncio.create_subprocess_exec(
                str(self.artefact_dir / "run.sh"),
                "--fork-server",
                str(theirs.fileno()),
                cwd=self._home,
                env=self._env,
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            await self.close()
            raise ForkFailed(f"cannot start the fork server: {error}") from error
        finally:
            theirs.close()
        loop.add_reader(ours.fileno(), self._on_message)
        self._stderr = asyncio.create_task(self._pump_stderr())
        try:
            self.info = await asyncio.wait_for(asyncio.shield(self._ready), within_seconds)
        except (TimeoutError, ForkFailed) as error:
            await self.close()
            raise ForkFailed(f"the fork server did not start: {error}") from error
        log.info(
            "fork server started",
            extra={
                "pid": self.pid,
                "runtime": self.key[:12],
                "modules": self.info.get("modules"),
                "preload_ms": self.info.get("preload_ms"),
            },
        )

    async def _pump_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        while line := await self._process.stderr.readline():
            log.warning(
                "fork server output",
                extra={"line": line.decode(errors="replace").rstrip(), "pid": self.pid},
            )

    def _on_message(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(MAX_MESSAGE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost("the fork server closed its socket (it died)")
            return
        try:
            message = json.loads(data)
        except ValueError:
            return
        if message.get("ready"):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
            return
        child = self._children.get(int(message.get("id", -1)))
        if child is None:
            return
        if "pid" in message:
            child.pid = int(message["pid"])
            if not child.started.done():
                child.started.set_result(child.pid)
        elif "error" in message:
            if not child.started.done():
                child.started.set_exception(ForkFailed(str(message["error"]).strip()))
        elif "exit" in message:
            self._children.pop(child.request_id, None)
            if not child.started.done():
                child.started.set_exception(
                    ForkFailed(f"the action process ended at once (exit {message['exit']})")
                )
            if not child.exited.done():
                child.exited.set_result(int(message["exit"]))

    def _lost(self, reason: str, *, expected: bool = False) -> None:
        if self.dead:
            return
        self.dead = True
        if not expected:
            log.warning("fork server lost", extra={"pid": self.pid, "reason": reason})
        if self._sock is not None:
            with contextlib.suppress(ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ForkFailed(reason))
        for child in self._children.values():
            if not child.started.done():
                child.started.set_exception(ForkFailed(reason))
            if not child.exited.done():
                child.exited.set_result(None)
        self._children.clear()

    async def spawn(self, request: dict[str, Any], fds: Sequence[int]) -> ForkedChild:
        """Fork an action process; `request` as forkserver.py reads it, `fds` its stdout, its
        stderr and a pidfd on the sandbox's holder. Raises ForkFailed with the reason."""
        if not self.alive or self._sock is None:
            raise ForkFailed("the fork server is not running")
        self._next_id += 1
        child = ForkedChild(request_id=self._next_id)
        self._children[child.request_id] = child
        payload = json.dumps({**request, "id": child.request_id}).encode()
        for _ in range(100):
            try:
                socket.send_fds(self._sock, [payload], list(fds))
                break
            except BlockingIOError:
                await asyncio.sleep(0.01)
            except OSError as error:
                self._lost(f"cannot write to the fork server: {error}")
                raise ForkFailed(f"cannot write to the fork server: {error}") from error
        else:
            raise ForkFailed("the fork server does not read its requests")
        await child.started
        return child

    async def close(self) -> None:
        self._lost("the fork server was stopped", expected=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
        if self._stderr is not None:
            self._stderr.cancel()


class ForkServers:
    """The fork servers of a worker, one per runtime, started on first use and again when one
    died."""

    def __init__(self, *, home: Path, start_timeout_seconds: float = 60.0) -> None:
        self._home = home
        self._start_timeout = start_timeout_seconds
        self._servers: dict[str, ForkServer] = {}
        self._keys: dict[Path, str | None] = {}
        self._lock = asyncio.Lock()
        self.started = 0

    def pids(self) -> list[int]:
        return [s.pid for s in self._servers.values() if s.alive and s.pid is not None]

    def servers(self) -> list[ForkServer]:
        return list(self._servers.values())

    async def key_of(self, artefact_dir: Path) -> str | None:
        if artefact_dir not in self._keys:
            self._keys[artefact_dir] = await asyncio.to_thread(runtime_key, artefact_dir)
        return self._keys[artefact_dir]

    async def get(self, artefact_dir: Path, env: Mapping[str, str]) -> ForkServer | None:
        """The fork server for this artefact's runtime (None: the artefact cannot be forked:
        an older wrapper); raises ForkFailed when one cannot start."""
        key = await self.key_of(artefact_dir)
        if key is None:
            return None
        async with self._lock:
            server = self._servers.get(key)
            if server is not None and server.alive:
                return server
            if server is not None:
                await server.close()
            server = ForkServer(
                key=key, artefact_dir=artefact_dir, env=env, home=self._home / key[:16]
            )
            await server.start(self._start_timeout)
            self._servers[key] = server
            self.started += 1
            return server

    async def close(self) -> None:
        servers = list(self._servers.values())
        self._servers.clear()
        await asyncio.gather(*(s.close() for s in servers), return_exceptions=True)
