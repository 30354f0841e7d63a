"""One action-wrapper process: start it from an unpacked artefact (in its sandbox, with its
limits: sandbox.py), reach it on its Unix socket, health-check it, call Init, stop it (SIGTERM
to the wrapper, then SIGKILL to the process group: the sandbox and everything in it go)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from ryax_kit.framing import FrameError, read_frame, write_frame

from ...domain.errors import DeploymentFailed
from ...domain.model import LogStream, StepRef
from ..proto import action_service_pb2 as apb
from ..proto import action_service_pb2_grpc as apb_grpc
from .cgroups import ActionCgroup, Cgroups
from .forkserver import ForkedChild, ForkFailed, ForkServer, ForkServers
from .openfiles import OpenFile, number_after
from .sandbox import (
    HOLDER,
    SANDBOX_ACTION,
    SANDBOX_HOME,
    SOCKET_NAME,
    Layout,
    Limits,
    SandboxConfig,
    children,
    cmdline,
    command,
    descendants,
    environment,
    exit_signal,
    find_wrapper,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The wrapper's session socket, next to its gRPC socket (InitReply.session_socket); a message
#: travels on it as a 4-byte big-endian length, then the message (ryax_kit.framing).
SESSION_SOCKET_NAME = SOCKET_NAME + ".session"
LINE_LIMIT = 1024 * 1024
TAIL_LINES = 20
PID_FILE = "pid"
#: What in a command line marks an action process (kill_leftover): the wrapper, or its sandbox.
#: (a sandbox holding a forked action process is marked by its host name).
_MARKERS = (b"ryax_action_wrapper", b"/ryax/action/run.sh", b"\0ryax-action\0")


class SessionBroken(Exception):
    """The session socket failed during an execution (closed before the Result, or sent
    something that is not a RunReply)."""


@dataclass(frozen=True, kw_only=True)
class ProcessOptions:
    start_timeout_seconds: float = 60.0
    stop_grace_seconds: float = 10.0
    health_interval_seconds: float = 10.0
    health_timeout_seconds: float = 5.0
    health_max_failures: int = 3
    #: The wrapper's own log level: its log (stderr) becomes the step's log on the runner.
    wrapper_log_level: str = "warning"
    #: Extra variables given to every action process (names from RYAX_ACTION_ENV_PASSTHROUGH).
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: The sandbox (RYAX_SANDBOX...) every action process runs in.
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    #: Per-action cgroups (v2 or v1) when the machine offers them (else rlimits).
    cgroups: Cgroups | None = None
    #: Where action processes are forked from (RYAX_ACTION_FORK_SERVER), else started anew.
    fork_servers: ForkServers | None = None


def describe_exit(code: int | None, sandboxed: bool = False) -> str:
    if code is None:
        return "the action process is still running"
    sig = exit_signal(code, sandboxed)
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"action process was killed by {name}"
    return f"action process exited with code {code}"


def kill_leftover(pid_file: Path) -> bool:
    """Kill the process group of a wrapper a previous worker left running (it was killed
    itself); True when there was one. The pid must still be an action wrapper's."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    if not any(marker in cmdline for marker in _MARKERS):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
        return True
    return False


def _cpu_of(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds (0 if it is gone)."""
    try:
        stat_text = Path(f"/proc/{pid}/stat").read_text()
        fields = stat_text[stat_text.rindex(")") + 2 :].split()
        ticks = sum(int(value) for value in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    path.chmod(mode)


class ActionProcess:
    """A started wrapper process (call start() once; stop() always)."""

    def __init__(
        self,
        *,
        ref: StepRef,
        artefact_dir: Path,
        instance_dir: Path,
        executions_dir: Path,
        options: ProcessOptions,
        limits: Limits,
        on_line: Callable[[LogStream, str], None],
    ) -> None:
        self.ref = ref
        self._artefact_dir = artefact_dir
        self._instance_dir = instance_dir
        self._options = options
        self.limits = limits
        self._on_line = on_line
        self.layout = Layout(
            artefact=artefact_dir,
            home=instance_dir / "home",
            tmp=instance_dir / "tmp",
            executions=executions_dir,
            sandboxed=options.sandbox.active,
        )
        self._home_fd: int | None = None
        self._cgroup: ActionCgroup | None = None
        #: The wrapper's clear_refs and status, kept open (used at every execution).
        self._clear_refs = OpenFile(write=True)
        self._status = OpenFile()
        self._oom_killed = False
        self._pids_maxed = False
        #: Why the worker killed it (a limit), said instead of the signal.
        self.kill_reason = ""
        #: The wrapper's own process (inside the sandbox: a descendant of `pid`).
        self.wrapper_pid: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._channel: aio.Channel | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._exited = asyncio.Event()
        self._waiter: asyncio.Task[None] | None = None
        self.stub: apb_grpc.ActionServiceAsyncStub | None = None
        #: The Session call carrying this process's executions (processor, publisher), open
        #: from its first execution; `_session_supported` is False once the wrapper answered
        #: UNIMPLEMENTED (older than Session: a Run call per execution).
        self._session: Any = None
        self._session_supported = True
        #: The wrapper's session socket (InitReply.session_socket): the executions travel on
        #: it rather than on the Session call; connected at the first execution.
        self._socket_supported = False
        self._socket: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._executing = False
        self.started_at = 0.0
        self.stopping = False
        self._forked: ForkedChild | None = None
        self._fork_code: int | None = None
        self._transports: list[asyncio.BaseTransport] = []

    # -- state -----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        if self._forked is not None:
            return self._fork_code
        return self._process.returncode if self._process is not None else None

    @property
    def forked(self) -> bool:
        """Forked from a fork server (else started from run.sh)."""
        return self._forked is not None

    @property
    def alive(self) -> bool:
        return self._process is not None and not self._exited.is_set()

    def exit_reason(self) -> str:
        if self.kill_reason:
            return self.kill_reason
        if self._oom_killed:
            return f"memory limit of {self.limits.memory_text()} exceeded: the action was killed"
        if self._pids_maxed:  # a process or thread refused, and the action died of it
            return (
                f"process limit of {self.limits.max_processes} reached (processes and threads): "
                + describe_exit(self.returncode, self.layout.sandboxed)
            )
        reason = describe_exit(self.returncode, self.layout.sandboxed)
        last = next((line for line in reversed(self._stderr_tail) if line.strip()), "")
        return f"{reason}: {last.strip()}" if last else reason

    def sandbox_path(self, host: Path) -> str:
        return self.layout.inside(host)

    async def wait_exit(self) -> int | None:
        await self._exited.wait()
        return self.returncode

    # -- start -----------------------------------------------------------------------------

    async def start(self, init: apb.InitRequest) -> None:
        """Start the process and Init the action; raises DeploymentFailed with the reason."""
        try:
            await self._start(init)
        except BaseException:
            await self.stop(grace=1.0)
            raise

    async def _start(self, init: apb.InitRequest) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._options.start_timeout_seconds
        await asyncio.to_thread(self._prepare_folders)
        socket = self.layout.home / SOCKET_NAME
        socket.unlink(missing_ok=True)
        sandbox = self._options.sandbox
        if self._options.cgroups is not None:
            name = "_".join(
                part.replace("/", "_") for part in (self.ref.deployment_id, self.ref.step_id)
            )
            try:
                self._cgroup = await asyncio.to_thread(
                    self._options.cgroups.create, name, self.limits
                )
            except OSError as error:
                raise DeploymentFailed(f"cannot create the action's cgroup: {error}") from error
        run_args = [
            "--address",
            f"unix:{SOCKET_NAME}",
            "--log-level",
            self._options.wrapper_log_level,
        ]
        env = environment(sandbox, self.layout, self._options.extra_env)
        server = await self._fork_server(env)
        if server is not None:
            await self._launch_forked(server, run_args, env, deadline)
        else:
            await self._launch(run_args, env)
        await self._wait_socket(socket, deadline)
        if self._forked is None:
            assert self._process is not None
            self.wrapper_pid = find_wrapper(self._process.pid)
        # The socket is reached through a descriptor on its folder: a short path whatever the
        # length of the cache directory's (a Unix socket path has at most 107 bytes).
        self._home_fd = os.open(self.layout.home, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._channel = aio.insecure_channel(
            f"unix:/proc/self/fd/{self._home_fd}/{SOCKET_NAME}",
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                # The socket file exists a moment before the wrapper accepts on it: a refused
                # first connection must not cost grpc's default 1 s reconnection backoff.
                ("grpc.initial_reconnect_backoff_ms", 10),
                ("grpc.min_reconnect_backoff_ms", 10),
                ("grpc.max_reconnect_backoff_ms", 500),
            ],
        )
        await self._until(self._channel.channel_ready(), deadline, "to accept connections")
        await self._until(self._wait_healthy(deadline), deadline, "to be healthy")
        self.stub = apb_grpc.ActionServiceStub(self._channel)
        try:
            reply = await self._until(
                self.stub.Init(init, timeout=max(deadline - loop.time(), 0.1)), deadline, "to Init"
            )
        except aio.AioRpcError as error:
            raise DeploymentFailed(self._broken("Init failed", error)) from error
        if reply.error:
            raise DeploymentFailed(f"Init failed: {reply.error}")
        self._socket_supported = reply.session_socket
        log.info(
            "action initialised",
            extra={
                "step": str(self.ref),
                "wrapper_version": reply.wrapper_version,
                "python_version": reply.python_version,
            },
        )

    async def _launch(self, run_args: list[str], env: dict[str, str]) -> None:
        """Start run.sh (in its sandbox): the classic start, every import done anew."""
        sandbox = self._options.sandbox
        argv = command(
            sandbox,
            self.layout,
            run_args,
            self.limits,
            self._cgroup.procs_files if self._cgroup else (),
        )
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.layout.home,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        except OSError as error:
            raise DeploymentFailed(
                f"cannot start the action process ({argv[0]}): {error}"
            ) from error
        self.started_at = asyncio.get_running_loop().time()
        process = self._process
        # Lets a worker that was killed find and stop this process when it starts again.
        (self._instance_dir / PID_FILE).write_text(str(process.pid), encoding="utf-8")
        assert process.stdout is not None and process.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(process.stdout, LogStream.STDOUT)),
            asyncio.create_task(self._pump(process.stderr, LogStream.STDERR)),
        ]
        self._waiter = asyncio.create_task(self._wait_process())
        log.info(
            "action process started",
            extra={"step": str(self.ref), "pid": process.pid, "sandbox": sandbox.mode},
        )

    async def _fork_server(self, env: dict[str, str]) -> ForkServer | None:
        """The fork server to start this action from, if any: only in a sandbox dropping to
        its user (a root worker with bwrap); else, or when it cannot start, run.sh is
        started as before."""
        servers = self._options.fork_servers
        if servers is None or not self._options.sandbox.drops_to_uid:
            return None
        try:
            return await servers.get(self._artefact_dir, env)
        except ForkFailed as error:
            log.warning(
                "no fork server, starting the action process from scratch",
                extra={"step": str(self.ref), "reason": str(error)},
            )
            return None

    async def _launch_forked(
        self, server: ForkServer, run_args: list[str], env: dict[str, str], deadline: float
    ) -> None:
        """Start the sandbox around a holder, then have the fork server fork the action
        process into it (the action's own paths, user, limits and environment)."""
        loop = asyncio.get_running_loop()
        sandbox = self._options.sandbox
        argv = command(
            sandbox,
            self.layout,
            (),
            self.limits,
            self._cgroup.procs_files if self._cgroup else (),
            program=HOLDER,
        )
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        holder_fd = -1
        try:
            try:
                self._process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=self.layout.home,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    start_new_session=True,
                )
            except OSError as error:
                raise DeploymentFailed(
                    f"cannot start the action's sandbox ({argv[0]}): {error}"
                ) from error
            self.started_at = loop.time()
            process = self._process
            (self._instance_dir / PID_FILE).write_text(str(process.pid), encoding="utf-8")
            self._pumps = [
                asyncio.create_task(self._pump(await self._reader(out_r), LogStream.STDOUT)),
                asyncio.create_task(self._pump(await self._reader(err_r), LogStream.STDERR)),
            ]
            out_r = err_r = -1
            # Until the action process is forked, the sandbox alone is watched.
            self._waiter = asyncio.create_task(self._wait_process())
            holder, holder_fd = await self._find_holder(process, deadline)
            limits = self.limits
            use_cgroup = self._cgroup is not None
            request = {
                "target": holder,
                "cwd": SANDBOX_HOME,
                "env": env,
                "argv": run_args,
                "uid": sandbox.uid,
                "gid": sandbox.gid,
                "cgroup_procs": [
                    str(p) for p in (self._cgroup.procs_files if self._cgroup else ())
                ],
                "rlimits": {
                    "nproc": 0 if use_cgroup else limits.max_processes,
                    "data": 0 if use_cgroup else limits.memory_bytes,
                },
                "remap": [[str(server.artefact_dir), SANDBOX_ACTION]],
            }
            try:
                self._forked = await self._until(
                    server.spawn(request, (out_w, err_w, holder_fd)), deadline, "to be forked"
                )
            except ForkFailed as error:
                raise DeploymentFailed(f"cannot fork the action process: {error}") from error
        finally:
            for descriptor in (out_r, err_r, out_w, err_w, holder_fd):
                if descriptor >= 0:
                    os.close(descriptor)
        self.wrapper_pid = self._forked.pid
        if not self._waiter.done():
            self._waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._waiter
            self._waiter = asyncio.create_task(self._wait_forked())
        log.info(
            "action process forked",
            extra={
                "step": str(self.ref),
                "pid": self._forked.pid,
                "sandbox_pid": process.pid,
                "fork_server": server.pid,
            },
        )

    async def _reader(self, descriptor: int) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
        pipe = os.fdopen(descriptor, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe
        )
        self._transports.append(transport)
        return reader

    async def _find_holder(
        self, process: asyncio.subprocess.Process, deadline: float
    ) -> tuple[int, int]:
        """The holder (bwrap -> bwrap, the namespace's init -> the holder): its pid and a
        pidfd on it, which pins it (the fork server checks it is still alive after opening its
        namespaces by pid: they were its own, not those of a process that got its pid)."""
        loop = asyncio.get_running_loop()
        wanted = "\0".join(HOLDER).encode() + b"\0"
        while True:
            for pid in descendants(process.pid):
                if cmdline(pid) != wanted:
                    continue
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    continue
                if cmdline(pid) == wanted and pid in descendants(process.pid):
                    return pid, pidfd
                os.close(pidfd)
            if process.returncode is not None:
                raise DeploymentFailed(
                    f"the action's sandbox ended at once ({describe_exit(process.returncode)})"
                )
            if loop.time() > deadline:
                raise DeploymentFailed("the action's sandbox did not start in time")
            await asyncio.sleep(0.002)

    def _prepare_folders(self) -> None:
        """The instance folder is the worker's (pid file); home and tmp are the action's own;
        the step's executions folder is the worker's (each run's work folder is the action's)."""
        self._instance_dir.mkdir(parents=True, exist_ok=True)
        self.layout.executions.mkdir(parents=True, exist_ok=True)
        self.layout.executions.chmod(0o755)
        sandbox = self._options.sandbox
        for folder in (self.layout.home, self.layout.tmp):
            if sandbox.drops_to_uid:
                _own(folder, sandbox.uid, sandbox.gid, 0o700)
            else:
                folder.mkdir(parents=True, exist_ok=True)

    async def _wait_socket(self, socket: Path, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not _is_socket(socket):
            if self._exited.is_set():
                raise DeploymentFailed(f"{self.exit_reason()} (while starting)")
            if loop.time() > deadline:
                raise DeploymentFailed(
                    f"the action process did not listen within "
                    f"{self._options.start_timeout_seconds:g} s"
                )
            await asyncio.sleep(0.005)

    async def _until(self, work: Awaitable[T], deadline: float, what: str) -> T:
        """Await `work` unless the process exits or the deadline passes first."""
        loop = asyncio.get_running_loop()
        task: asyncio.Future[T] = asyncio.ensure_future(work)
        exited: asyncio.Future[bool] = asyncio.create_task(self._exited.wait())
        try:
            waited: list[asyncio.Future[Any]] = [task, exited]
            done, _ = await asyncio.wait(
                waited,
                timeout=max(deadline - loop.time(), 0.0),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            exited.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if self._exited.is_set():
            raise DeploymentFailed(f"{self.exit_reason()} (waiting for it {what})")
        raise DeploymentFailed(
            f"the action process did not get ready ({what}) within "
            f"{self._options.start_timeout_seconds:g} s"
        )

    def _broken(self, what: str, error: aio.AioRpcError) -> str:
        if self._exited.is_set():
            return f"{what}: {self.exit_reason()}"
        return f"{what}: {error.code().name}: {error.details()}"

    async def _wait_healthy(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if await self.check_health(max(deadline - loop.time(), 0.1)):
                return
            await asyncio.sleep(0.1)

    async def check_health(self, within_seconds: float) -> bool:
        """True when the wrapper answers the gRPC health check ("" = the process)."""
        if self._channel is None:
            return False
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=max(within_seconds, 0.1)
            )
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    # -- executions --------------------------------------------------------------------------

    async def replies(
        self, request: apb.RunRequest, *, session: bool
    ) -> AsyncGenerator[apb.RunReply, None]:
        """The replies of one execution, up to its Result: on the process's Session call when
        `session` (a processor or publisher; the call is opened by the first execution and stays
        open), or on the wrapper's session socket when it has one, else, or with a wrapper older
        than Session, on a Run call of its own. Raises what the call raises (AioRpcError), or
        SessionBroken; stopping the iteration before the Result cancels the call (closes the
        socket), hence the execution."""
        assert self.stub is not None
        self._executing = True
        try:
            async with aclosing(self._replies(request, session)) as replies:
                async for reply in replies:
                    yield reply
        finally:
            self._executing = False

    async def _replies(
        self, request: apb.RunRequest, session: bool
    ) -> AsyncGenerator[apb.RunReply, None]:
        assert self.stub is not None
        if session and self._socket_supported:
            async with aclosing(self._on_socket(request)) as on_socket:
                async for reply in on_socket:
                    if reply is None:  # could not connect: the Session call instead
                        break
                    yield reply
                else:
                    return
        if session and self._session_supported:
            async with aclosing(self._on_session(request)) as replies:
                async for reply in replies:
                    if reply is None:  # UNIMPLEMENTED before anything ran: Run instead
                        break
                    yield reply
                else:
                    return
        call = self.stub.Run(request)
        try:
            async for reply in call:
                yield reply
        finally:
            call.cancel()  # a no-op once the call ended

    async def _on_socket(
        self, request: apb.RunRequest
    ) -> AsyncGenerator[apb.RunReply | None, None]:
        """One execution on the session socket (None first if it cannot be reached)."""
        if self._socket is None:
            path = f"/proc/self/fd/{self._home_fd}/{SESSION_SOCKET_NAME}"
            try:
                self._socket = await asyncio.open_unix_connection(path)
            except OSError as error:
                self._socket_supported = False
                log.warning(
                    "cannot reach the action's session socket: the Session call instead",
                    extra={"step": str(self.ref), "error": str(error)},
                )
                yield None
                return
        reader, writer = self._socket
        ended = False
        try:
            await write_frame(writer, request.SerializeToString())
            while True:
                try:
                    payload = await read_frame(reader, MAX_MESSAGE_BYTES)
                except FrameError as error:
                    raise SessionBroken(f"the action's session socket: {error}") from error
                if payload is None:
                    raise ConnectionResetError("closed between two messages")
                reply = apb.RunReply.FromString(payload)
                yield reply
                if reply.WhichOneof("reply") == "result":
                    ended = True
                    return
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            raise SessionBroken("the action process closed its session socket") from error
        except DecodeError as error:
            raise SessionBroken(
                f"the action sent something that is not a RunReply: {error}"
            ) from error
        finally:
            if not ended:
                # Stopped or broken before the Result: the wrapper stops what runs.
                writer.close()
                if self._socket is not None and self._socket[1] is writer:
                    self._socket = None

    async def _on_session(
        self, request: apb.RunRequest
    ) -> AsyncGenerator[apb.RunReply | None, None]:
        assert self.stub is not None
        if self._session is None:
            self._session = self.stub.Session()
        call, ended = self._session, False
        try:
            # A call that already ended (UNIMPLEMENTED) refuses the write: its status is read next.
            with contextlib.suppress(aio.AioRpcError, asyncio.InvalidStateError):
                await call.write(request)
            started = False
            while True:
                try:
                    reply = await call.read()
                except aio.AioRpcError as error:
                    if not started and error.code() == grpc.StatusCode.UNIMPLEMENTED:
                        self._session_supported, self._session, ended = False, None, True
                        log.info(
                            "the action wrapper has no Session: a Run call per execution",
                            extra={"step": str(self.ref)},
                        )
                        yield None
                        return
                    raise
                if reply is aio.EOF:
                    return  # closed without a Result: the caller says so
                started = True
                yield reply
                if reply.WhichOneof("reply") == "result":
                    ended = True
                    return
        finally:
            if not ended:
                # Stopped or broken before the Result: the call cannot carry the next one.
                call.cancel()
                if self._session is call:
                    self._session = None

    # -- output and exit -------------------------------------------------------------------

    async def _pump(self, stream: asyncio.StreamReader, kind: LogStream) -> None:
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raw = await stream.read(LINE_LIMIT)
            except OSError:
                return
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if kind == LogStream.STDERR:
                self._stderr_tail.append(line)
            log.debug("action output", extra={"step": str(self.ref), "line": line})
            try:
                self._on_line(kind, line)
            except Exception:
                log.exception("cannot forward an action process line")

    async def _wait_forked(self) -> None:
        """A forked action process ended (its sandbox is then killed), or its sandbox did (the
        process dies with the sandbox's pid namespace)."""
        assert self._process is not None and self._forked is not None
        holder = asyncio.ensure_future(self._process.wait())
        child = self._forked.exited
        waited: list[asyncio.Future[Any]] = [holder, child]
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if not holder.done():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
        await holder
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(child), 5.0)
        code = child.result() if child.done() else None
        self._fork_code = code if code is not None else self._process.returncode
        await self._finish()

    async def _wait_process(self) -> None:
        assert self._process is not None
        await self._process.wait()
        await self._finish()

    async def _finish(self) -> None:
        assert self._process is not None
        if self._cgroup is not None:
            self._oom_killed = self._cgroup.oom_killed()
            self._pids_maxed = self._cgroup.pids_maxed()
            await asyncio.to_thread(self._cgroup.remove)
        # Let the pumps drain what the process wrote last (the crash reason is often there).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._pumps, return_exceptions=True), 2.0)
        self._exited.set()
        log.info(
            "action process exited",
            extra={
                "step": str(self.ref),
                "pid": self._process.pid,
                "code": self._process.returncode,
            },
        )

    # -- stop ------------------------------------------------------------------------------

    def signal(self, sig: signal.Signals) -> None:
        """SIGTERM goes to the wrapper (it stops gracefully; bwrap would just die), anything
        else to the process group: bwrap's death takes the sandbox and all in it."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sig == signal.SIGTERM and self.wrapper_pid not in (None, self._process.pid):
                os.kill(self.wrapper_pid, sig)
            else:
                os.killpg(self._process.pid, sig)

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM the process group, SIGKILL after the grace period; close the channel."""
        self.stopping = True
        if not self._executing:
            # Idle between executions: the wrapper's graceful stop need not wait for it.
            self._close_session()
        grace = self._options.stop_grace_seconds if grace is None else grace
        if self._process is not None and self._process.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self._exited.wait()), grace)
            except TimeoutError:
                log.warning(
                    "action process ignored SIGTERM, killing", extra={"step": str(self.ref)}
                )
                self.signal(signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exited.wait()), 10.0)
        self._close_session()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._home_fd is not None:
            os.close(self._home_fd)
            self._home_fd = None
        self._clear_refs.close()
        self._status.close()
        for pump in self._pumps:
            pump.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.cancel()
        for transport in self._transports:
            transport.close()
        self._transports.clear()

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.cancel()
            self._session = None
        if self._socket is not None:
            self._socket[1].close()
            self._socket = None

    # -- limits and resource usage (Linux /proc) -------------------------------------------

    def _usage_pid(self) -> int | None:
        return self.wrapper_pid or self.pid

    def _sandbox_pids(self) -> list[int]:
        """The wrapper and every process it made (not bwrap's own two)."""
        if self.pid is None:
            return []
        if not self.layout.sandboxed:
            return [self.pid, *descendants(self.pid)]
        if self._forked is not None:
            return [self._forked.pid, *descendants(self._forked.pid)] if self._forked.pid else []
        own = set(children(self.pid))
        return [p for p in descendants(self.pid) if p not in own]

    def leftovers(self) -> int:
        """Processes in the sandbox besides the wrapper (what a run left behind)."""
        return len([p for p in self._sandbox_pids() if p != self.wrapper_pid])

    def process_limit_hit(self) -> bool:
        """The sandbox holds as many processes and threads as it may, or (with a cgroup) a
        fork or thread was refused since it started."""
        if self._cgroup is not None and self._cgroup.pids_maxed():
            return True
        limit = self.limits.max_processes
        return bool(limit) and self.tasks() >= limit

    def tasks(self) -> int:
        """Processes and threads in the sandbox (what RLIMIT_NPROC and pids.max count)."""
        total = 0
        for pid in self._sandbox_pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("Threads:"):
                        total += int(line.split()[1])
        return total

    def sandbox_cpu_seconds(self) -> float:
        """CPU time of every process in the sandbox and of those they waited for."""
        return sum(_cpu_of(pid) for pid in self._sandbox_pids())

    def cpu_seconds(self) -> float:
        """CPU time of the sandbox's processes and their waited-for children, in seconds (0 if
        unknown): the cgroup's account where there is one (one file read), else /proc."""
        if self._cgroup is not None:
            used = self._cgroup.cpu_seconds()
            if used is not None:
                return used
        return self.sandbox_cpu_seconds()

    def reset_peak_memory(self) -> None:
        pid = self._usage_pid()
        if pid is not None:
            self._clear_refs.write(f"/proc/{pid}/clear_refs", b"5")

    def peak_memory_bytes(self) -> int:
        pid = self._usage_pid()
        text = self._status.read(f"/proc/{pid}/status") if pid is not None else None
        peak = number_after(text, b"VmHWM:") if text is not None else None
        return peak * 1024 if peak is not None else 0
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return 0
        return 0
