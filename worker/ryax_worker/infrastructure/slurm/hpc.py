"""Ryax's HPC add-on (Ryax's docs/reference/hpc.md) and the Slurm job a step asks for
(docs/slurm.md).

Published Ryax declares the add-on in `ryax_metadata.yaml` (`spec.addons: {hpc: {}}`) and lets
the sbatch parameters (nodes, tasks...) and a `custom_script` be set when the action is used in
a workflow. Here the parameters come from two places, the later winning key by key: the
action's own `spec.addons.hpc` (read from the `code/ryax_metadata.yaml` of its artefact), then
the step's (`Deploy.hpc`). Keys (`-` and `_` alike):

  partition                      --partition (else the runner's node pool, else the default)
  nodes                          --nodes ("2" or "1-4")
  ntasks (tasks)                 --ntasks
  ntasks_per_node (tasks_per_node)  --ntasks-per-node
  cpus_per_task                  --cpus-per-task (else ceil(resources.cpu))
  mem (memory)                   --mem (Slurm units: 512M, 4G; a bare number is MiB; else
                                 resources.memory)
  mem_per_cpu                    --mem-per-cpu
  time                           --time (Slurm times: 30, 1:30:00, 2-00:00:00, or 90m, 2h;
                                 else resources.time), rounded up to whole minutes
  gpus (gpu)                     --gres=gpu:N (else resources.gpu)
  gres                           --gres as written (e.g. gpu:a100:2)
  account, qos, constraint, reservation   --account, --qos, --constraint, --reservation
  exclusive                      --exclusive (true/false)
  custom_script                  a shell script run in the job instead of the action's handler

Nothing else reaches sbatch from an action: no output paths, no user or working directory (the
job runs as the worker's user). The operator adds options for every job with
RYAX_SLURM_SBATCH_OPTIONS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...domain.errors import DeploymentFailed
from ...domain.model import DeployStep
from .cluster import Partition, format_mebibytes, format_minutes, parse_slurm_time

MIB = 1024 * 1024
MAX_SCRIPT_CHARS = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+:@/-]{0,127}$")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+:@/&|*\[\]()-]{0,255}$")
_GRES = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:,-]{0,127}$")
_NODES = re.compile(r"^\d{1,6}(-\d{1,6})?$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$", re.I)
_SLURM_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$", re.I)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY_UNITS = {"K": 1024, "": MIB, "M": MIB, "G": 1024**3, "T": 1024**4}
ALIASES = {
    "tasks": "ntasks",
    "tasks_per_node": "ntasks_per_node",
    "memory": "mem",
    "gpu": "gpus",
}
KEYS = (
    "partition",
    "nodes",
    "ntasks",
    "ntasks_per_node",
    "cpus_per_task",
    "mem",
    "mem_per_cpu",
    "time",
    "gpus",
    "gres",
    "account",
    "qos",
    "constraint",
    "reservation",
    "exclusive",
    "custom_script",
)


class InvalidHpc(DeploymentFailed):
    """A parameter of the HPC add-on that cannot be used."""


@dataclass(frozen=True, kw_only=True)
class HpcParams:
    partition: str = ""
    nodes: str = ""
    ntasks: int = 0
    ntasks_per_node: int = 0
    cpus_per_task: int = 0
    mem_bytes: int = 0
    mem_per_cpu_bytes: int = 0
    time_seconds: float = 0.0
    gpus: int = 0
    gres: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    reservation: str = ""
    exclusive: bool = False
    custom_script: str = ""


def _text(key: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidHpc(f"hpc.{key}: expected a value, got {type(value).__name__}")
    return str(value).strip()


def _positive(key: str, value: object) -> int:
    text = _text(key, value)
    if not text.isdigit() or int(text) < 1:
        raise InvalidHpc(f"hpc.{key}: expected a whole number >= 1, got {text!r}")
    return int(text)


def _match(key: str, value: object, pattern: re.Pattern[str], example: str) -> str:
    text = _text(key, value)
    if not pattern.match(text):
        raise InvalidHpc(f"hpc.{key}: {text!r} is not a valid value (e.g. {example})")
    return text


def parse_duration(key: str, value: object) -> float:
    """Seconds from a Slurm time ("30" minutes, "1:30:00", "2-00:00:00") or "90m", "2h"."""
    text = _text(key, value)
    match = _DURATION.match(text)
    if match:
        return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    try:
        seconds = parse_slurm_time(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise InvalidHpc(f"hpc.{key}: {text!r} is not a time (e.g. 30, 1:30:00, 2-00:00:00, 2h)")
    return seconds


def parse_slurm_memory(key: str, value: object) -> int:
    """Bytes from a Slurm size: "512M", "4G", "4GB", a bare number of MiB."""
    text = _text(key, value)
    match = _SLURM_MEMORY.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise InvalidHpc(f"hpc.{key}: {text!r} is not a memory size (e.g. 512M, 4G)")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).upper()])


def _flag(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(key, value).lower()
    if text in {"true", "yes", "1", "on"}:
        return True
    if text in {"false", "no", "0", "off", ""}:
        return False
    raise InvalidHpc(f"hpc.{key}: expected true or false, got {text!r}")


def normalise(values: Mapping[str, object]) -> dict[str, object]:
    """Keys in their canonical spelling (`-` as `_`, aliases resolved); unknown keys refused."""
    out: dict[str, object] = {}
    for raw, value in values.items():
        key = ALIASES.get(raw.strip().replace("-", "_").lower(), raw.strip().replace("-", "_"))
        key = ALIASES.get(key, key)
        if key not in KEYS:
            raise InvalidHpc(
                f"hpc.{raw}: unknown HPC parameter (known: {', '.join(KEYS)}; docs/slurm.md)"
            )
        if value is None:
            continue
        out[key] = value
    return out


def parse_hpc(*layers: Mapping[str, object]) -> HpcParams:
    """The add-on's parameters, later layers winning key by key; InvalidHpc names a bad one."""
    merged: dict[str, object] = {}
    for layer in layers:
        merged.update(normalise(layer))
    script = merged.get("custom_script")
    if script is not None and not isinstance(script, str):
        raise InvalidHpc("hpc.custom_script: expected the text of a shell script")
    if isinstance(script, str) and len(script) > MAX_SCRIPT_CHARS:
        raise InvalidHpc(f"hpc.custom_script: longer than {MAX_SCRIPT_CHARS} characters")
    if isinstance(script, str) and "\x00" in script:
        raise InvalidHpc("hpc.custom_script: holds a NUL character")
    get = merged.get
    return HpcParams(
        partition=_match("partition", get("partition"), _NAME, "debug")
        if "partition" in merged
        else "",
        nodes=_match("nodes", get("nodes"), _NODES, "2 or 1-4") if "nodes" in merged else "",
        ntasks=_positive("ntasks", get("ntasks")) if "ntasks" in merged else 0,
        ntasks_per_node=(
            _positive("ntasks_per_node", get("ntasks_per_node"))
            if "ntasks_per_node" in merged
            else 0
        ),
        cpus_per_task=(
            _positive("cpus_per_task", get("cpus_per_task")) if "cpus_per_task" in merged else 0
        ),
        mem_bytes=parse_slurm_memory("mem", get("mem")) if "mem" in merged else 0,
        mem_per_cpu_bytes=(
            parse_slurm_memory("mem_per_cpu", get("mem_per_cpu")) if "mem_per_cpu" in merged else 0
        ),
        time_seconds=parse_duration("time", get("time")) if "time" in merged else 0.0,
        gpus=_positive("gpus", get("gpus")) if "gpus" in merged else 0,
        gres=_match("gres", get("gres"), _GRES, "gpu:a100:2") if "gres" in merged else "",
        account=_match("account", get("account"), _NAME, "project42")
        if "account" in merged
        else "",
        qos=_match("qos", get("qos"), _NAME, "normal") if "qos" in merged else "",
        constraint=(
            _match("constraint", get("constraint"), _CONSTRAINT, "skylake&ib")
            if "constraint" in merged
            else ""
        ),
        reservation=(
            _match("reservation", get("reservation"), _NAME, "maint")
            if "reservation" in merged
            else ""
        ),
        exclusive=_flag("exclusive", get("exclusive")) if "exclusive" in merged else False,
        custom_script=script.strip() if isinstance(script, str) else "",
    )


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """What every job of a deployed step asks Slurm for."""

    partition: str
    cpus_per_task: int = 0
    mem_bytes: int = 0
    mem_per_cpu_bytes: int = 0
    time_seconds: float = 0.0
    gpus: int = 0
    gres: str = ""
    nodes: str = ""
    ntasks: int = 0
    ntasks_per_node: int = 0
    account: str = ""
    qos: str = ""
    constraint: str = ""
    reservation: str = ""
    exclusive: bool = False

    def options(self) -> list[str]:
        """sbatch options, in a fixed order."""
        options = [f"--partition={self.partition}"]
        if self.nodes:
            options.append(f"--nodes={self.nodes}")
        if self.ntasks:
            options.append(f"--ntasks={self.ntasks}")
        if self.ntasks_per_node:
            options.append(f"--ntasks-per-node={self.ntasks_per_node}")
        if self.cpus_per_task:
            options.append(f"--cpus-per-task={self.cpus_per_task}")
        if self.mem_bytes:
            options.append(f"--mem={format_mebibytes(self.mem_bytes)}")
        if self.mem_per_cpu_bytes:
            options.append(f"--mem-per-cpu={format_mebibytes(self.mem_per_cpu_bytes)}")
        if self.time_seconds:
            options.append(f"--time={format_minutes(self.time_seconds)}")
        if self.gres:
            options.append(f"--gres={self.gres}")
        elif self.gpus:
            options.append(f"--gres=gpu:{self.gpus}")
        for name in ("account", "qos", "constraint", "reservation"):
            value = getattr(self, name)
            if value:
                options.append(f"--{name}={value}")
        if self.exclusive:
            options.append("--exclusive")
        return options

    def describe(self) -> str:
        return " ".join(option.removeprefix("--") for option in self.options())


def _gpus_of(gres: str) -> int:
    total = 0
    for item in gres.split(","):
        parts = item.split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def job_request(
    spec: DeployStep, params: HpcParams, partitions: Sequence[Partition], site: str
) -> JobRequest:
    """The step's job: its resources and add-on parameters, checked against the partition it
    goes to. DeploymentFailed for an unknown or down partition, or resources no node of the
    partition has (the scheduler would keep the job pending forever)."""
    res = spec.resources
    known = {p.name: p for p in partitions}
    name = params.partition or spec.node_pool
    if not name:
        default = next((p for p in partitions if p.default and p.up), None)
        if default is None:
            raise DeploymentFailed(
                f"site {site}: no partition given (hpc.partition or a node pool) and the cluster "
                "has no default partition"
            )
        name = default.name
    partition = known.get(name)
    if partition is None:
        offered = ", ".join(sorted(p.name for p in partitions if p.up)) or "none"
        raise DeploymentFailed(
            f"unknown partition {name!r} on site {site} (its partitions: {offered})"
        )
    if not partition.up:
        raise DeploymentFailed(f"partition {name!r} of site {site} is not up")
    request = JobRequest(
        partition=name,
        cpus_per_task=params.cpus_per_task or (math.ceil(res.cpu) if res.cpu > 0 else 0),
        mem_bytes=params.mem_bytes or res.memory_bytes,
        mem_per_cpu_bytes=params.mem_per_cpu_bytes,
        time_seconds=params.time_seconds or res.time_seconds,
        gpus=params.gpus or res.gpu,
        gres=params.gres,
        nodes=params.nodes,
        ntasks=params.ntasks,
        ntasks_per_node=params.ntasks_per_node,
        account=params.account,
        qos=params.qos,
        constraint=params.constraint,
        reservation=params.reservation,
        exclusive=params.exclusive,
    )
    problems: list[str] = []
    cpus_per_node = request.cpus_per_task * max(request.ntasks_per_node, 1)
    if partition.cpu and cpus_per_node > partition.cpu:
        problems.append(f"{cpus_per_node} CPUs per node, its nodes have {partition.cpu}")
    if partition.memory_bytes and request.mem_bytes > partition.memory_bytes:
        problems.append(
            f"{format_mebibytes(request.mem_bytes)} of memory, its nodes have "
            f"{format_mebibytes(partition.memory_bytes)}"
        )
    gpus = _gpus_of(request.gres) if request.gres else request.gpus
    if gpus > partition.gpu:
        problems.append(f"{gpus} GPUs, its nodes have {partition.gpu}")
    wall = math.ceil(request.time_seconds / 60) * 60 if request.time_seconds else 0
    if partition.max_time_seconds and wall > partition.max_time_seconds:
        problems.append(
            f"a time limit of {format_minutes(wall)} min, its limit is "
            f"{format_minutes(partition.max_time_seconds)} min"
        )
    wanted_nodes = int(request.nodes.split("-")[0]) if request.nodes else 1
    if partition.nodes and wanted_nodes > partition.nodes:
        problems.append(f"{wanted_nodes} nodes, it has {partition.nodes}")
    if problems:
        raise DeploymentFailed(
            f"impossible resources for partition {name!r} of site {site}: the step asks for "
            + "; ".join(problems)
        )
    return request
