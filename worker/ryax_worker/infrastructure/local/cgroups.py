"""Per-action cgroups, where the machine offers them: a memory limit (no swap), a CPU quota
(`resources.cpu`) and a process count on a cgroup made for each action process under the
worker's own. cgroup v2 (unified) or v1 (one hierarchy per controller); anything refused:
rlimits instead (sandbox.py), and the reason is logged and shown in readiness.

cgroup v2: used when /sys/fs/cgroup is a cgroup2 mount whose controllers include memory and
pids, and the worker may create cgroups under its own and enable those controllers there (as
root, or in a delegated subtree: systemd `Delegate=yes`). Cgroup v2 forbids processes in a
cgroup whose controllers are enabled for its children, so the worker first moves itself into a
`ryax-worker` child when its cgroup holds processes. Files: memory.max, memory.swap.max,
cpu.max (and cpu.max.burst), pids.max; an OOM kill is `oom_kill` in memory.events.

cgroup v1: used when /sys/fs/cgroup holds a `memory` and a `pids` hierarchy (and `cpu` for the
quota, `cpuacct` for the CPU time used: often one hierarchy mounted as `cpu,cpuacct`) in which
the worker may create cgroups under its own (/proc/self/cgroup). Files:
memory.limit_in_bytes and memory.memsw.limit_in_bytes, cpu.cfs_period_us and cpu.cfs_quota_us
(and cpu.cfs_burst_us), pids.max; an OOM kill is `oom_kill` in memory.oom_control.

The CPU quota (`resources.cpu` cores, per period of 100 ms) comes with a burst of as much
(Linux 5.14 and later; older kernels have no such file: the quota alone): quota an action left
unused in earlier periods can be spent in one, up to twice its quota. Measured with a quota of
0.1 core: 15 ms of CPU work every 250 ms took 50 ms of wall time without the burst (stopped
until the next period), 15 ms with it. Over time an action still gets at most its share.

The CPU time an execution used is read from the cgroup (v2 cpu.stat `usage_usec`, v1
cpuacct.usage): one file, where walking /proc for the sandbox's processes showed in the hop
path's profile (`ActionCgroup.cpu_seconds`).

Layout: <the worker's cgroup>/ryax-actions.<worker pid>/<deployment>_<step>.<n>/ (in each
hierarchy for v1). One folder per worker process, so workers sharing a cgroup (tests, two
workers on a host) never touch each other's; a folder left by a worker that died is emptied
(its processes killed) and removed by the next worker's start.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .openfiles import OpenFile, number_after
from .sandbox import Limits

ROOT = Path("/sys/fs/cgroup")
NEEDED = ("memory", "pids")
WANTED = ("memory", "pids", "cpu", "cpuacct")
CPU_PERIOD_US = 100_000
PREFIX = "ryax-actions."
#: v2 has one hierarchy: its folders are keyed by this name.
UNIFIED = "unified"


def _controllers(path: Path) -> list[str]:
    return (path / "cgroup.controllers").read_text().split()


def _enable(path: Path, controllers: list[str]) -> None:
    (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))


def _counter(path: Path, key: str) -> int:
    """`key N` of a flat-keyed cgroup file; 0 when absent or unreadable."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(folder: Path) -> None:
    """SIGKILL every process of a cgroup (cgroup.kill where the kernel has it)."""
    kill = folder / "cgroup.kill"
    if kill.exists():
        with contextlib.suppress(OSError):
            kill.write_text("1")
            return
    with contextlib.suppress(OSError):
        for pid in (folder / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def _rmdir(folder: Path) -> None:
    """Remove an emptied cgroup (its processes take a moment to be gone)."""
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            _kill_all(folder)
            time.sleep(0.02)


def _remove_tree(folder: Path) -> None:
    with contextlib.suppress(OSError):
        for child in folder.iterdir():
            if child.is_dir():
                _remove_tree(child)
    _kill_all(folder)
    _rmdir(folder)


def _own_parent(base: Path) -> Path:
    """This worker's folder under `base`, after removing those of workers that are gone."""
    with contextlib.suppress(OSError):
        for folder in base.glob(f"{PREFIX}*"):
            pid = folder.name[len(PREFIX) :]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                _remove_tree(folder)
    parent = base / f"{PREFIX}{os.getpid()}"
    parent.mkdir(exist_ok=True)
    return parent


@dataclass(frozen=True)
class ActionCgroup:
    """The cgroup of one action process: one folder (v2) or one per controller (v1)."""

    version: int
    folders: dict[str, Path]
    #: The CPU account, kept open (read twice per execution).
    _usage: OpenFile = field(default_factory=OpenFile, compare=False, repr=False)

    @property
    def procs_files(self) -> tuple[Path, ...]:
        """Where the action's first process writes its pid to enter the cgroup (once per
        hierarchy: co-mounted controllers share a folder)."""
        return tuple(dict.fromkeys(folder / "cgroup.procs" for folder in self.folders.values()))

    def oom_killed(self) -> bool:
        if self.version == 2:
            return _counter(self.folders[UNIFIED] / "memory.events", "oom_kill") > 0
        memory = self.folders.get("memory")
        return memory is not None and _counter(memory / "memory.oom_control", "oom_kill") > 0

    def pids_maxed(self) -> bool:
        """A fork or thread was refused by pids.max."""
        folder = self.folders.get(UNIFIED if self.version == 2 else "pids")
        return folder is not None and _counter(folder / "pids.events", "max") > 0

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process that was in the cgroup (exited ones included), or
        None when this cgroup does not account it."""
        path = self._usage_path
        if not path:
            return None
        text = self._usage.read(path)
        if text is None:
            return None
        if self.version == 2:
            used = number_after(text, b"usage_usec")
            return used / 1e6 if used is not None else None
        try:
            return int(text) / 1e9
        except ValueError:
            return None

    @cached_property
    def _usage_path(self) -> str:
        """The file accounting CPU time ("" for none): v2 cpu.stat, v1 cpuacct.usage."""
        if self.version == 2:
            return str(self.folders[UNIFIED] / "cpu.stat")
        folder = self.folders.get("cpuacct")
        return str(folder / "cpuacct.usage") if folder is not None else ""

    def throttled(self) -> int:
        """How many CPU periods the quota held the action back (cpu.stat nr_throttled)."""
        folder = self.folders.get(UNIFIED if self.version == 2 else "cpu")
        return _counter(folder / "cpu.stat", "nr_throttled") if folder else 0

    def remove(self) -> None:
        """Kill what is left in it and remove it (best effort)."""
        self._usage.close()
        for folder in self.folders.values():
            _kill_all(folder)
        for folder in self.folders.values():
            _rmdir(folder)


class Cgroups:
    """Where action cgroups are made: `setup()` finds it, `create()` makes one per process."""

    def __init__(self, version: int, parents: dict[str, Path], controllers: list[str]) -> None:
        self.version = version
        self.parents = parents
        self.controllers = controllers
        self._count = 0

    def describe(self) -> str:
        where = ", ".join(sorted({str(p) for p in self.parents.values()}))
        return f"cgroups v{self.version} at {where} ({', '.join(self.controllers)})"

    @classmethod
    def setup(cls, root: Path = ROOT, self_cgroup: Path = Path("/proc/self/cgroup")) -> Cgroups:
        """The cgroups actions go under; OSError or RuntimeError says why there are none."""
        if (root / "cgroup.controllers").is_file():
            return cls._setup_v2(root, self_cgroup)
        if (root / "memory").is_dir() or (root / "pids").is_dir():
            return cls._setup_v1(root, self_cgroup)
        raise RuntimeError(f"{root} is neither a cgroup v2 mount nor cgroup v1 hierarchies")

    @classmethod
    def _setup_v2(cls, root: Path, self_cgroup: Path) -> Cgroups:
        own = next(
            (line[3:] for line in self_cgroup.read_text().splitlines() if line.startswith("0::")),
            None,
        )
        if own is None:
            raise RuntimeError("this process is in no cgroup v2")
        base = root / own.strip().lstrip("/")
        available = _controllers(base)
        missing = [c for c in NEEDED if c not in available]
        if missing:
            raise RuntimeError(f"controllers {', '.join(missing)} are not available in {base}")
        controllers = [c for c in WANTED if c in available]
        try:
            _enable(base, controllers)
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise
            # Processes in `base` (this worker): move them into a leaf, then enable.
            leaf = base / "ryax-worker"
            leaf.mkdir(exist_ok=True)
            for pid in (base / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, OSError):
                    (leaf / "cgroup.procs").write_text(pid)
            _enable(base, controllers)
        parent = _own_parent(base)
        _enable(parent, controllers)
        return cls(2, {UNIFIED: parent}, controllers)

    @classmethod
    def _setup_v1(cls, root: Path, self_cgroup: Path) -> Cgroups:
        own: dict[str, str] = {}
        for line in self_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                own[controller] = path
        parents: dict[str, Path] = {}
        problems: list[str] = []
        for controller in WANTED:
            hierarchy = root / controller
            if controller not in own or not (hierarchy / "cgroup.procs").is_file():
                problems.append(f"no {controller} hierarchy")
                continue
            try:
                parents[controller] = _own_parent(hierarchy / own[controller].lstrip("/"))
            except OSError as error:
                problems.append(f"{controller}: {error}")
        missing = [c for c in NEEDED if c not in parents]
        if missing:
            for parent in parents.values():
                _rmdir(parent)
            raise RuntimeError(f"cgroup v1: {'; '.join(problems)}")
        return cls(1, parents, [c for c in WANTED if c in parents])

    def close(self) -> None:
        """Remove this worker's folders once its actions are stopped (best effort: a folder
        still holding something is removed by the next worker's start)."""
        for parent in self.parents.values():
            with contextlib.suppress(OSError):
                parent.rmdir()

    def create(self, name: str, limits: Limits) -> ActionCgroup:
        """A fresh cgroup with the limits; the caller puts the process in (`procs_files`)."""
        self._count += 1
        leaf = f"{name}.{self._count}"
        made: dict[str, Path] = {}
        try:
            for key, parent in self.parents.items():
                folder = parent / leaf
                # Co-mounted controllers (cpu,cpuacct) are one folder: made once, one path.
                same = [m for m in made.values() if m.resolve() == folder.resolve()]
                if same:
                    folder = same[0]
                else:
                    folder.mkdir()
                made[key] = folder
            cgroup = ActionCgroup(self.version, made)
            self._limit(cgroup, limits)
        except OSError:
            for folder in made.values():
                _rmdir(folder)
            raise
        return cgroup

    def _limit(self, cgroup: ActionCgroup, limits: Limits) -> None:
        folders = cgroup.folders
        quota = max(int(limits.cpu * CPU_PERIOD_US), 1000)
        if self.version == 2:
            folder = folders[UNIFIED]
            if limits.memory_bytes > 0:
                (folder / "memory.max").write_text(str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    (folder / "memory.swap.max").write_text("0")
            if limits.max_processes > 0:
                (folder / "pids.max").write_text(str(limits.max_processes))
            if limits.cpu > 0 and "cpu" in self.controllers:
                (folder / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
                _set_burst(folder / "cpu.max.burst", quota)
            return
        if limits.memory_bytes > 0:
            (folders["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # no swap accounting on this kernel: no swap
                (folders["memory"] / "memory.memsw.limit_in_bytes").write_text(
                    str(limits.memory_bytes)
                )
        if limits.max_processes > 0:
            (folders["pids"] / "pids.max").write_text(str(limits.max_processes))
        if limits.cpu > 0 and "cpu" in folders:
            (folders["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (folders["cpu"] / "cpu.cfs_quota_us").write_text(str(quota))
            _set_burst(folders["cpu"] / "cpu.cfs_burst_us", quota)


def _set_burst(path: Path, quota_us: int) -> None:
    """The quota's burst (at most the quota, the kernel's bound), after the quota; a kernel
    without it (before 5.14) keeps the quota alone."""
    with contextlib.suppress(OSError):
        path.write_text(str(quota_us))
