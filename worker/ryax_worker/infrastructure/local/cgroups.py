"""Per-action cgroups v2, where the machine offers them: memory.max, cpu.max and pids.max on a
cgroup made for each action process under the worker's own.

Used when /sys/fs/cgroup is a cgroup2 mount whose controllers include memory and pids, and the
worker may create cgroups under its own and enable those controllers there (as root, or in a
delegated subtree: systemd `Delegate=yes`). Cgroup v2 forbids processes in a cgroup whose
controllers are enabled for its children, so the worker first moves itself into a `ryax-worker`
child when its cgroup holds processes. Anything refused: rlimits instead (sandbox.py), and the
reason is logged.

Layout: <the worker's cgroup>/ryax-actions/<deployment>.<step>.<n>/
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from .sandbox import Limits

ROOT = Path("/sys/fs/cgroup")
NEEDED = ("memory", "pids")
WANTED = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000


def _controllers(path: Path) -> list[str]:
    return (path / "cgroup.controllers").read_text().split()


def _enable(path: Path, controllers: list[str]) -> None:
    (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers))


class Cgroups:
    def __init__(self, parent: Path, controllers: list[str]) -> None:
        self.parent = parent
        self.controllers = controllers
        self._count = 0

    @classmethod
    def setup(cls, root: Path = ROOT, self_cgroup: Path = Path("/proc/self/cgroup")) -> Cgroups:
        """The cgroup actions go under; OSError or RuntimeError says why there is none."""
        if not (root / "cgroup.controllers").is_file():
            raise RuntimeError(f"{root} is not a cgroup v2 mount (cgroup v1 or hybrid)")
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
        actions = base / "ryax-actions"
        actions.mkdir(exist_ok=True)
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
        _enable(actions, controllers)
        return cls(actions, controllers)

    def create(self, name: str, limits: Limits) -> Path:
        """A fresh cgroup with the limits; the caller puts the process in (cgroup.procs)."""
        self._count += 1
        path = self.parent / f"{name}.{self._count}"
        path.mkdir()
        if limits.memory_bytes > 0:
            (path / "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                (path / "memory.swap.max").write_text("0")
        if limits.max_processes > 0:
            (path / "pids.max").write_text(str(limits.max_processes))
        if limits.cpu > 0 and "cpu" in self.controllers:
            quota = max(int(limits.cpu * CPU_PERIOD_US), 1000)
            (path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        return path

    @staticmethod
    def oom_killed(path: Path) -> bool:
        try:
            for line in (path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            return False
        return False

    @staticmethod
    def pids_maxed(path: Path) -> bool:
        try:
            for line in (path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            return False
        return False

    @staticmethod
    def remove(path: Path) -> None:
        """Kill what is left in it and remove it (best effort)."""
        with contextlib.suppress(OSError):
            (path / "cgroup.kill").write_text("1")
        for _ in range(50):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)
        with contextlib.suppress(OSError):
            os.rmdir(path)
