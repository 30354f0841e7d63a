"""The fork server (`run.sh --fork-server FD`): a wrapper process that has imported the
wrapper's modules (grpc, protobuf, the wrapper itself) once, and forks a fresh action process
for each request of the worker, into that action's sandbox. Start-up then skips the imports,
and the imported pages are shared copy-on-write by every action process it made.

It runs outside any sandbox, as the worker's user, started by the worker with a built
environment (no RYAX_* setting, no credential) and talks only over the socket FD (a
SOCK_SEQPACKET pair the worker holds the other end of). Its memory holds imported modules and
the worker's requests (paths, environment of actions), never an input or a secret of a run.

For each request (JSON, with three descriptors: the action's stdout and stderr, a pidfd on the
sandbox's holder), it joins the
namespaces of the step's sandbox, a bubblewrap sandbox the worker started around
`sleep infinity` (the holder) exactly as it starts one around run.sh: mount (chroot into the
sandbox's root), pid, ipc, uts; like `nsenter` or `runc exec`. It forks the action process
there, then goes back to its own namespaces and folder (if it cannot, it exits). The action
process enters its cgroups and the sandbox's cgroup namespace, makes its own session, takes
the descriptors as stdout/stderr, closes every other descriptor, sets the rlimits, drops the
capability bounding set, changes to the sandbox's user, clears its capabilities, sets
no_new_privs and a parent-death signal, takes the action's environment and the sandbox's
paths (the paths of the modules already imported are rewritten from the artefact the fork
server was started from to /ryax/action: their files are the same, byte for byte, by the
worker's choice of fork server) and runs the wrapper's main(). The fork server reaps it and
reports its exit (128 + signal when killed, like bwrap).

A sandbox with its own user namespace (a worker that is not root) is refused: the fork server
could not come back from it. The action processes die with the fork server (parent-death
signal): the worker starts them again, through a new fork server.

Messages to the worker: {"ready": true, ...} once, then {"id", "pid"}, {"id", "error"} and
{"id", "exit"} per request.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
#: The holder's namespaces, joined in this order (mount last; cgroup by the child itself).
NAMESPACES = ("user", "ipc", "uts", "net", "cgroup", "pid", "mnt")
#: Those the fork server joins and leaves again around each fork.
ENTERED = ("ipc", "uts", "net", "pid", "mnt")
#: What is imported before any fork: everything the wrapper needs to serve an action.
PRELOAD = (
    "grpc",
    "grpc.aio",
    "grpc_health.v1.health",
    "grpc_health.v1.health_pb2",
    "grpc_health.v1.health_pb2_grpc",
    "google.protobuf",
    "google.protobuf.json_format",
    "google.protobuf.struct_pb2",
    "google.protobuf.timestamp_pb2",
    "ryax_action_wrapper.container",
    "ryax_action_wrapper.infrastructure.grpc.server",
    "ryax_action_wrapper.infrastructure.grpc.servicer",
    "ryax_action_wrapper.infrastructure.grpc.mappers",
    "ryax_action_wrapper.infrastructure.loader",
    "ryax_action_wrapper.infrastructure.capture",
    "ryax_action_wrapper.infrastructure.files",
    "ryax_action_wrapper.infrastructure.logging",
    "ryax_action_wrapper.infrastructure.once",
    "ryax_action_wrapper.application.trigger_service",
    "asyncio",
    "json",
    "logging",
    "traceback",
)
MAX_MESSAGE = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _prctl(option: int, arg: int, arg3: int = 0) -> int:
    return int(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(arg3), 0, 0))


def preload() -> int:
    """Import what every action process needs; the number of modules loaded."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    return len(sys.modules)


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.send(json.dumps(message).encode())


class _Home:
    """The fork server's own namespaces and folder, to come back to after each fork."""

    def __init__(self) -> None:
        self.namespaces = {
            name: os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC) for name in ENTERED
        }
        self.cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def back(self, entered: list[str]) -> None:
        """setns back (the mount namespace first: it also undoes the chroot), then the folder.
        A fork server that cannot come back exits: the worker starts a new one."""
        for name in reversed(entered):
            _check(_libc.setns(self.namespaces[name], 0), f"setns back to own {name}")
        os.fchdir(self.cwd)


def serve(fd: int, entry: Callable[[list[str]], None]) -> int:
    """The fork server's loop, until the worker closes its end of the socket; each action
    process runs `entry(argv)` (the wrapper's main)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        return 1  # the worker died before the parent-death signal was set
    sock = socket.socket(fileno=fd)
    started = time.monotonic()
    modules = preload()
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as file:
        last_cap = int(file.read().strip())
    home = _Home()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    _send(
        sock,
        {
            "ready": True,
            "pid": os.getpid(),
            "modules": modules,
            "preload_ms": round((time.monotonic() - started) * 1000, 1),
            "python": sys.version.split()[0],
        },
    )
    while True:
        watched: list[Any] = [sock, wake_r]
        readable, _, _ = select.select(watched, [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
            _reap(children, sock)
        if sock not in readable:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 4)
        except OSError:
            return 1
        if not data:
            return 0  # the worker is gone or closed us
        try:
            request = json.loads(data)
            request_id = int(request["id"])
        except (ValueError, KeyError, TypeError):
            for descriptor in fds:
                os.close(descriptor)
            continue
        try:
            pid = _fork_into(request, fds, sock, home, (wake_r, wake_w), last_cap, entry)
        except (OSError, KeyError, ValueError, TypeError) as error:
            _send(sock, {"id": request_id, "error": f"cannot start the action: {error}"})
        else:
            children[pid] = request_id
            _send(sock, {"id": request_id, "pid": pid})
        finally:
            for descriptor in fds:
                os.close(descriptor)


def _reap(children: dict[int, int], sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        request_id = children.pop(pid, None)
        if request_id is not None:
            code = os.waitstatus_to_exitcode(status)
            _send(sock, {"id": request_id, "exit": code if code >= 0 else 128 - code})


def _fork_into(
    request: dict[str, Any],
    fds: list[int],
    sock: socket.socket,
    home: _Home,
    wake: tuple[int, int],
    last_cap: int,
    entry: Callable[[list[str]], None],
) -> int:
    """Enter the holder's namespaces (but its cgroup's: the child does it), chroot into its
    root, fork the action process there, come back. Raises OSError (nothing forked)."""
    if len(fds) != 3:
        raise OSError("a request needs stdout, stderr and a pidfd on the sandbox's holder")
    target = int(request["target"])
    joins: list[tuple[str, int]] = []
    opened: list[int] = []
    entered: list[str] = []
    try:
        for name in NAMESPACES:
            theirs = os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            opened.append(theirs)
            if os.fstat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            if name == "user":
                raise OSError("the sandbox has its own user namespace: start it from run.sh")
            joins.append((name, theirs))
        if "mnt" not in (name for name, _ in joins):
            raise OSError("the target shares the fork server's mount namespace: not a sandbox")
        cgroup_ns = next((fd for name, fd in joins if name == "cgroup"), -1)
        # The child enters its cgroups (then its cgroup namespace): descriptors opened here,
        # on this side of the mount namespace.
        procs = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in request["cgroup_procs"]]
        opened.extend(procs)
        root = os.open(f"/proc/{target}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        opened.append(root)
        # Still alive after the opens: `target` was the holder's pid all along (a pidfd pins
        # its process; the pid of a dead one could have been given to another).
        try:
            signal.pidfd_send_signal(fds[2], 0)
        except ProcessLookupError:
            raise OSError("the action's sandbox ended before the fork") from None
        try:
            for name, descriptor in joins:
                if name == "cgroup":
                    continue
                _check(_libc.setns(descriptor, 0), f"setns({name})")
                entered.append(name)
            os.fchdir(root)
            os.chroot(".")
            os.chdir(request["cwd"])
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for descriptor in wake:
                        os.close(descriptor)
                    code = _action(request, fds, sock, procs, cgroup_ns, last_cap, entry)
                finally:
                    os._exit(code)
            return pid
        finally:
            try:
                home.back(entered)
            except OSError as error:
                sys.stderr.write(f"ryax fork server: {error}: exiting\n")
                os._exit(70)
    finally:
        for descriptor in opened:
            os.close(descriptor)


def _drop_privileges(request: dict[str, Any], last_cap: int) -> None:
    rlimits = request.get("rlimits", {})
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if rlimits.get("nproc"):
        resource.setrlimit(resource.RLIMIT_NPROC, (rlimits["nproc"], rlimits["nproc"]))
    if rlimits.get("data"):
        resource.setrlimit(resource.RLIMIT_DATA, (rlimits["data"], rlimits["data"]))
    for cap in range(last_cap + 1):
        _prctl(PR_CAPBSET_DROP, cap)  # EPERM without CAP_SETPCAP: checked below
    uid, gid = request.get("uid"), request.get("gid")
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    _check(_prctl(PR_SET_NO_NEW_PRIVS, 1), "no_new_privs")
    with open("/proc/self/status", encoding="ascii") as file:
        status = dict(line.split(":", 1) for line in file.read().splitlines() if ":" in line)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if int(status.get(field, "0").strip() or "0", 16):
            raise OSError(f"capabilities left after dropping them: {field} {status[field]}")


def _remap(path: str, pairs: list[tuple[str, str]]) -> str:
    for host, inside in pairs:
        if path == host or path.startswith(host + "/"):
            return inside + path[len(host) :]
    return path


def _take_paths(request: dict[str, Any]) -> None:
    """sys.path and the imported modules' paths as the sandbox sees them."""
    pairs = [(str(host), str(inside)) for host, inside in request.get("remap", ())]
    sys.path[:] = [os.getcwd(), *(_remap(p, pairs) for p in sys.path if p)]
    for module in list(sys.modules.values()):
        for attribute in ("__file__", "__cached__"):
            value = getattr(module, attribute, None)
            if isinstance(value, str):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(module, attribute, _remap(value, pairs))
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [_remap(p, pairs) for p in search]
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            if isinstance(spec.origin, str):
                with contextlib.suppress(AttributeError):
                    spec.origin = _remap(spec.origin, pairs)
            locations = spec.submodule_search_locations
            if isinstance(locations, list):
                locations[:] = [_remap(p, pairs) for p in locations]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def _action(
    request: dict[str, Any],
    fds: list[int],
    sock: socket.socket,
    procs: list[int],
    cgroup_ns: int,
    last_cap: int,
    entry: Callable[[list[str]], None],
) -> int:
    """The action process (in the sandbox's namespaces and root): its cgroups and cgroup
    namespace, descriptors, limits and user; then the wrapper's main()."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # cleared when the user changes: set again below
    try:
        for descriptor in procs:
            os.write(descriptor, str(os.getpid()).encode())
        if cgroup_ns >= 0:
            _check(_libc.setns(cgroup_ns, 0), "setns(cgroup)")
        os.setsid()
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        sock.detach()
        os.closerange(3, 65536)
        _drop_privileges(request, last_cap)
        # (Its parent, the fork server, lies outside this pid namespace: getppid() says 0.)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.write(2, f"ryax: cannot start the action process in its sandbox: {error}\n".encode())
        return 126
    os.environ.clear()
    os.environ.update(request.get("env", {}))
    _take_paths(request)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    argv = [str(arg) for arg in request.get("argv", ())]
    sys.argv = ["ryax_action_wrapper", *argv]
    code = 0
    try:
        entry(argv)
    except SystemExit as done:
        if done.code is None:
            code = 0
        elif isinstance(done.code, int):
            code = done.code
        else:
            sys.stderr.write(f"{done.code}\n")
            code = 1
    except BaseException:  # noqa: BLE001 - as the interpreter would: print it, exit 1
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code
