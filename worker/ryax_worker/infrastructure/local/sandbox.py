"""The sandbox around each action process (RYAX_SANDBOX=bwrap) and the limits put on it.

What an action sees (nothing else of the machine: no checkout, no `.dev/`, no other step's
folders, no worker cache beyond its own artefact):

  /usr, /bin /sbin /lib* (links or read-only)  the system's programs and libraries, read-only
  /etc/<a few files>     resolver, hosts, certificates, users and groups, time zone, python
  /proc /dev             its own: a new pid namespace holds only its processes
  /tmp                   its own, writable (host: <instance>/tmp)
  /ryax/action           its artefact, read-only
  /ryax/home             HOME and first working directory, writable (host: <instance>/home); the
                         wrapper listens on the socket `action.sock` there (no TCP port)
  /ryax/executions       this step's executions (host: <cache>/executions/<deployment>/<step>):
                         <id>/inputs (its inputs), <id>/work (the working directory of a run)
  RYAX_SANDBOX_READ_ONLY_PATHS, read-only at their own paths

The network is the machine's: actions may call out (and reach what listens on loopback).
Its environment is built, not inherited: PATH, HOME, TMPDIR, LANG (LC_ALL, TZ if set),
PYTHONUNBUFFERED and the names of RYAX_ACTION_ENV_PASSTHROUGH; no RYAX_* setting, no credential.

Which user. The worker runs as root: bwrap is started by root *without* a user namespace (it can
then bind the worker's folders, which the action's user cannot reach: /root is 0700), and the
sandboxed command is `setpriv`, which takes RYAX_SANDBOX_UID/GID (default nobody/nogroup), no
supplementary group, empties the capability sets and sets no_new_privs before exec'ing run.sh.
Not bwrap's own `--unshare-user --uid`: started by root it maps the sandbox's uid onto root's
(uid_map `65534 0 1`), so the action would own root's files on the host; started as the
unprivileged user, bwrap cannot open the worker's folders to bind them, not even through
descriptors (`--bind-fd`: "Permission denied"). A worker that is not root runs bwrap with
`--unshare-user`: the action keeps the worker's uid on the host and sees only what is bound.

Limits (resources of the Deploy order). With cgroups, v2 or v1 (cgroups.py): memory, CPU quota
and process count per action. Otherwise rlimits, set by `prlimit` before bwrap starts: RLIMIT_DATA =
memory, RLIMIT_NPROC = RYAX_ACTION_MAX_PROCESSES (counted per uid: every action running as the
same uid shares it), no core dumps. `time` is CPU time per execution, and the process count is
watched too, by the backend during each run (backend.py: `_watch_limits`): moving RLIMIT_CPU of
a running process needs CAP_SYS_RESOURCE, which root does not have on every machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BWRAP = "bwrap"
SANDBOX_HOME = "/ryax/home"
SANDBOX_ACTION = "/ryax/action"
SANDBOX_EXECUTIONS = "/ryax/executions"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SOCKET_NAME = "action.sock"
#: What holds a sandbox's namespaces while a forked action process runs in it.
HOLDER = ("sleep", "infinity")
#: What of /etc an action needs: name resolution, TLS certificates, users, time, Python.
ETC_ENTRIES = (
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "mime.types",
    "alternatives",
)
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
MIB = 1024 * 1024


def find_bwrap() -> str | None:
    return shutil.which(BWRAP)


def nobody() -> tuple[int, int]:
    """uid and gid of `nobody`/`nogroup` (65534 where the names are unknown)."""
    import grp
    import pwd

    try:
        uid = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        uid = 65534
    for name in ("nogroup", "nobody"):
        with contextlib.suppress(KeyError):
            return uid, grp.getgrnam(name).gr_gid
    return uid, 65534


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    #: "bwrap" or "none" (RYAX_SANDBOX).
    mode: str = "none"
    bwrap: str = BWRAP
    uid: int = 65534
    gid: int = 65534
    #: RLIMIT_NPROC (or pids.max) of an action.
    max_processes: int = 1024
    #: Host paths every action may read, bound at the same path.
    read_only_paths: tuple[Path, ...] = ()

    @property
    def active(self) -> bool:
        return self.mode == "bwrap"

    @property
    def drops_to_uid(self) -> bool:
        """Root drops to uid/gid with setpriv; another user runs bwrap in a user namespace."""
        return self.active and os.geteuid() == 0


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What a step's `resources` ask for (0 = not set)."""

    memory_bytes: int = 0
    cpu: float = 0.0
    time_seconds: float = 0.0
    max_processes: int = 0

    def memory_text(self) -> str:
        return f"{self.memory_bytes / MIB:g} MiB"


@dataclass(frozen=True, kw_only=True)
class Layout:
    """The host folders of one action process, and where its sandbox sees them."""

    artefact: Path
    home: Path
    tmp: Path
    executions: Path
    sandboxed: bool = True

    def mounts(self) -> tuple[tuple[Path, str], ...]:
        return (
            (self.executions, SANDBOX_EXECUTIONS),
            (self.home, SANDBOX_HOME),
            (self.tmp, "/tmp"),
            (self.artefact, SANDBOX_ACTION),
        )

    def inside(self, host: Path) -> str:
        """The path the action sees for a host path (given by the worker: always mapped)."""
        if not self.sandboxed:
            return str(host)
        for outside, inside in self.mounts():
            if host == outside or host.is_relative_to(outside):
                return inside + str(host)[len(str(outside)) :]
        raise ValueError(f"{host} is not visible in the sandbox")

    def outside(self, path: str) -> Path | None:
        """The host path of a file output the action gave: only its executions' folders hold
        outputs (work directories), anything else (its /tmp, its artefact, the system) is None."""
        if not self.sandboxed:
            return Path(path)
        normal = os.path.normpath(path)
        if normal.startswith(SANDBOX_EXECUTIONS + "/"):
            return Path(str(self.executions) + normal[len(SANDBOX_EXECUTIONS) :])
        return None


def environment(config: SandboxConfig, layout: Layout, extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of an action process."""
    env = {
        "PATH": SANDBOX_PATH if config.active else os.environ.get("PATH", SANDBOX_PATH),
        "HOME": SANDBOX_HOME if config.active else str(layout.home),
        "TMPDIR": "/tmp" if config.active else str(layout.tmp),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    for name in ("LC_ALL", "TZ"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_LINKS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    entries = [f"/etc/{name}" for name in ETC_ENTRIES] + sorted(glob.glob("/etc/python3*"))
    args += ["--perms", "0755", "--dir", "/etc"]
    for entry in entries:
        if os.path.lexists(entry):
            args += ["--ro-bind-try", entry, entry]
    return [*args, "--proc", "/proc", "--dev", "/dev"]


def _parents(path: str) -> list[str]:
    """Folders bwrap makes on the way to a mount point are 0700 (root's): make them 0755 so
    that the action's user can go through."""
    args: list[str] = []
    for parent in reversed(Path(path).parents[:-1]):
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def bwrap_prefix(config: SandboxConfig) -> list[str]:
    """bwrap and its options up to the mounts: namespaces, and the user the command runs as."""
    args = [
        config.bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "ryax-action",
    ]
    if config.drops_to_uid:
        # setpriv (the command) needs these to change user; it drops every capability after.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    return args


def drop_privileges(config: SandboxConfig) -> list[str]:
    if not config.drops_to_uid:
        return []
    return [
        "setpriv",
        f"--reuid={config.uid}",
        f"--regid={config.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


#: `sh -c ENTER_CGROUPS <n> <procs file>... <command>...`: the shell writes its pid to the n
#: files, then becomes the command (exit 125 when a file refuses it: nothing runs unconfined).
ENTER_CGROUPS = (
    'n=$0; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; '
    'exec "$@"'
)


def rlimits(limits: Limits, *, use_cgroup: bool) -> list[str]:
    """`prlimit ... --` setting the rlimits the command starts with."""
    args = ["prlimit", "--core=0"]
    if not use_cgroup:
        if limits.max_processes > 0:
            args.append(f"--nproc={limits.max_processes}")
        if limits.memory_bytes > 0:
            args.append(f"--data={limits.memory_bytes}")
    return [*args, "--"]


def command(
    config: SandboxConfig,
    layout: Layout,
    run_args: Sequence[str],
    limits: Limits,
    cgroup_procs: Sequence[Path] = (),
    program: Sequence[str] = (),
) -> list[str]:
    """The argv starting the action's run.sh with `run_args`, sandboxed when configured.
    With a cgroup, a shell enters it (each of its `cgroup.procs`: one per hierarchy in cgroup
    v1) before anything of the action starts, and starts nothing if it cannot.
    `program` (sandboxed only) runs instead of run.sh: the holder of a sandbox the fork server
    starts the action process in (HOLDER)."""
    enter_cgroup = (
        ["/bin/sh", "-c", ENTER_CGROUPS, str(len(cgroup_procs)), *map(str, cgroup_procs)]
        if cgroup_procs
        else []
    )
    limited = rlimits(limits, use_cgroup=bool(cgroup_procs))
    if not config.active:
        return [*enter_cgroup, *limited, str(layout.artefact / "run.sh"), *run_args]
    mounts: list[str] = []
    for host, inside in layout.mounts():
        mounts += _parents(inside)
        mounts += ["--ro-bind" if inside == SANDBOX_ACTION else "--bind", str(host), inside]
    for path in config.read_only_paths:
        mounts += [*_parents(str(path)), "--ro-bind-try", str(path), str(path)]
    return [
        *enter_cgroup,
        *limited,
        *bwrap_prefix(config),
        *_system_binds(),
        *mounts,
        "--chdir",
        SANDBOX_HOME,
        "--",
        *drop_privileges(config),
        *(program or (f"{SANDBOX_ACTION}/run.sh", *run_args)),
    ]


# -- processes -------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(child) for child in text.split())
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children(child))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def find_wrapper(pid: int) -> int | None:
    """The action wrapper's own process: `pid` itself (no sandbox) or one of its descendants
    (bwrap -> bwrap as the namespace's init -> the wrapper)."""
    for candidate in (pid, *descendants(pid)):
        line = cmdline(candidate)
        if b"ryax_action_wrapper" in line and b"bwrap" not in line.split(b"\0", 1)[0]:
            return candidate
    return None


def exit_signal(code: int | None, sandboxed: bool) -> int | None:
    """The signal that ended the action: bwrap exits with 128 + the signal of its command."""
    if code is None:
        return None
    if code < 0:
        return -code
    if sandboxed and code > 128:
        with contextlib.suppress(ValueError):
            return int(signal.Signals(code - 128))
    return None


async def probe(config: SandboxConfig) -> tuple[str, float]:
    """Start an empty sandbox once: ("", seconds) when it works, else (why, seconds)."""
    if not config.active:
        return "", 0.0
    argv = [*bwrap_prefix(config), *_system_binds(), "--", *drop_privileges(config), "true"]
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": SANDBOX_PATH},
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    except (OSError, TimeoutError) as error:
        return f"cannot start {config.bwrap}: {error}", time.monotonic() - started
    seconds = time.monotonic() - started
    if process.returncode != 0:
        text = stderr.decode(errors="replace").strip()
        return f"{config.bwrap} does not work here (exit {process.returncode}): {text}", seconds
    return "", seconds


@dataclass
class SandboxState:
    """What the backend found at start (for readiness and deploy errors)."""

    config: SandboxConfig
    problem: str = ""
    cgroups: str = ""
    start_seconds: float = 0.0

    @property
    def active(self) -> bool:
        return self.config.active and not self.problem
