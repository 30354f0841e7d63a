"""Memory of process trees, read from /proc (Linux; standard library only).

Shared by the Ryax side and the peers (each peer runs in its own virtualenv and imports this file
by path), so every system's memory is measured the same way:

- RSS (`VmRSS` of /proc/PID/status): what the issue asks for; summed over processes it counts
  shared pages (the Python interpreter, shared libraries) once per process.
- PSS (`Pss` of /proc/PID/smaps_rollup): shared pages divided among the processes sharing them;
  the sum over processes is the memory the tree really costs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def parent_of(pid: int) -> int | None:
    stat = _read(PROC / str(pid) / "stat")
    if not stat:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 else None


def all_pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def tree(root: int) -> list[int]:
    """`root` and all its descendants (those alive now), root first."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        parent = parent_of(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop(0)
        if not (PROC / str(pid)).exists():
            continue
        found.append(pid)
        pending.extend(sorted(children.get(pid, [])))
    return found


def _kib_field(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included), in seconds; 0 once it is gone."""
    stat = _read(PROC / str(pid) / "stat")
    if not stat:
        return 0.0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def context_switches(pid: int) -> int:
    """How many times the threads of one process alive now were switched out (voluntarily:
    each wait for a socket, a lock or a timer, then a wake-up; or preempted), from
    /proc/<pid>/task/*/status; 0 once it is gone."""
    total = 0
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return 0
    for task in tasks:
        for line in _read(task / "status").splitlines():
            if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                total += int(line.split()[1])
    return total


def command(pid: int) -> str:
    raw = _read(PROC / str(pid) / "cmdline")
    text = " ".join(part for part in raw.split("\0") if part)
    return text[:200] if text else _read(PROC / str(pid) / "comm").strip()


def process(pid: int) -> dict[str, Any] | None:
    status = _read(PROC / str(pid) / "status")
    if not status:
        return None
    rss = _kib_field(status, "VmRSS")
    pss = _kib_field(_read(PROC / str(pid) / "smaps_rollup"), "Pss") or rss
    return {"pid": pid, "command": command(pid), "rss_bytes": rss, "pss_bytes": pss}


def group(name: str, roots: list[int]) -> dict[str, Any]:
    """One named group: the process trees under `roots`, each process once."""
    seen: set[int] = set()
    processes: list[dict[str, Any]] = []
    for root in roots:
        for pid in tree(root):
            if pid in seen:
                continue
            seen.add(pid)
            info = process(pid)
            if info is not None:
                processes.append(info)
    return {
        "name": name,
        "processes": processes,
        "rss_bytes": sum(p["rss_bytes"] for p in processes),
        "pss_bytes": sum(p["pss_bytes"] for p in processes),
    }


def snapshot(groups: dict[str, list[int]]) -> dict[str, Any]:
    """Memory of several named groups of process trees, with totals."""
    parts = [group(name, roots) for name, roots in groups.items()]
    return {
        "groups": parts,
        "processes": sum(len(g["processes"]) for g in parts),
        "rss_bytes": sum(g["rss_bytes"] for g in parts),
        "pss_bytes": sum(g["pss_bytes"] for g in parts),
    }


def self_check() -> None:
    """Raise when /proc cannot be read as expected (not Linux)."""
    if process(os.getpid()) is None:
        raise RuntimeError("cannot read /proc/<pid>/status: memory needs Linux /proc")
