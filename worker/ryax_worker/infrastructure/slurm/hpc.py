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
MAX_VALUE_CHARS = 256
# The syntax below is the studio's (its domain/hpc.py), which checks a step's parameters when
# they are set; here it also checks the action's own (`spec.addons.hpc`), which only the site
# reads. tests/contract/test_hpc_rules.py feeds both the same values: they must agree.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+:@/-]{0,127}$")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+:@/&|*\[\]()-]{0,255}$")
_GRES = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:,-]{0,127}$")
_NODES = re.compile(r"^[0-9]{1,6}(-[0-9]{1,6})?$")
_COUNT = re.compile(r"^[1-9][0-9]{0,5}$")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhd])$", re.I)
#: Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_SLURM_TIME = re.compile(r"^(?:[0-9]+-)?[0-9]+(?::[0-9]+){0,2}$")
_SLURM_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?$", re.I)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY_UNITS = {"K": 1024, "": MIB, "M": MIB, "G": 1024**3, "T": 1024**4}
_NAMES = {
    "partition": ("debug", _NAME),
    "account": ("project42", _NAME),
    "qos": ("normal", _NAME),
    "reservation": ("maint", _NAME),
    "constraint": ("skylake&ib", _CONSTRAINT),
    "gres": ("gpu:a100:2", _GRES),
}
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
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
#: Keys whose value is a whole number >= 1.
COUNT_KEYS = frozenset({"ntasks", "ntasks_per_node", "cpus_per_task", "gpus"})


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
    if isinstance(value, bool):
        if key != "exclusive":
            raise InvalidHpc(f"hpc.{key}: expected a text or a number, got a boolean")
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float | str):
        return str(value) if key == "custom_script" else str(value).strip()
    raise InvalidHpc(f"hpc.{key}: expected a text or a number, got {type(value).__name__}")


def check_value(key: str, value: object) -> str:
    """The value of a (canonical) key as text, normalised; InvalidHpc says what is wrong."""
    text = _text(key, value)
    field = f"hpc.{key}"
    if key == "custom_script":
        if not text.strip():
            raise InvalidHpc(f"{field}: the script is empty (remove the parameter instead)")
        if len(text) > MAX_SCRIPT_CHARS:
            raise InvalidHpc(f"{field}: longer than {MAX_SCRIPT_CHARS} characters")
        if "\x00" in text:
            raise InvalidHpc(f"{field}: holds a NUL character")
        return text
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidHpc(f"{field}: longer than {MAX_VALUE_CHARS} characters")
    if key in COUNT_KEYS:
        if not _COUNT.match(text):
            raise InvalidHpc(f"{field}: expected a whole number >= 1, got {text!r}")
        return text
    if key == "nodes":
        low, _, high = text.partition("-")
        if not _NODES.match(text) or int(low) < 1 or (high and int(high) < int(low)):
            raise InvalidHpc(f"{field}: {text!r} is not a node count (e.g. 2 or 1-4)")
        return f"{int(low)}-{int(high)}" if high else str(int(low))
    if key in ("mem", "mem_per_cpu"):
        match = _SLURM_MEMORY.match(text)
        if match is None or float(match.group(1)) <= 0:
            raise InvalidHpc(f"{field}: {text!r} is not a memory size (e.g. 512M, 4G)")
        return text
    if key == "time":
        match = _DURATION.match(text)
        valid = float(match.group(1)) > 0 if match else bool(_SLURM_TIME.match(text))
        if not valid or set(text) <= {"0", ":", "-"}:
            raise InvalidHpc(
                f"{field}: {text!r} is not a time (e.g. 30, 1:30:00, 2-00:00:00, 90m, 2h)"
            )
        return text
    if key == "exclusive":
        lowered = text.lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise InvalidHpc(f"{field}: expected true or false, got {text!r}")
    example, pattern = _NAMES[key]
    if not pattern.match(text):
        raise InvalidHpc(f"{field}: {text!r} is not a valid value (e.g. {example})")
    return text


def duration_seconds(text: str) -> float:
    """Seconds from a checked time: a Slurm time ("30" minutes, "1:30:00", "2-00:00:00") or
    "90m", "2h"."""
    match = _DURATION.match(text)
    if match:
        return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    return parse_slurm_time(text)


def memory_bytes(text: str) -> int:
    """Bytes from a checked Slurm size: "512M", "4G", "4GB", a bare number of MiB."""
    match = _SLURM_MEMORY.match(text)
    assert match is not None, text
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).upper()])


def canonical_key(raw: str) -> str:
    """The key in its canonical spelling (`-` as `_`, aliases resolved); InvalidHpc names an
    unknown one."""
    key = raw.strip().replace("-", "_").lower()
    key = ALIASES.get(key, key)
    if key not in KEYS:
        raise InvalidHpc(
            f"hpc.{raw}: unknown HPC parameter (known: {', '.join(KEYS)}; docs/slurm.md)"
        )
    return key


def checked(values: Mapping[str, object]) -> dict[str, str]:
    """One layer's parameters as checked texts under their canonical keys (a None value is no
    value); a key given twice (`tasks` and `ntasks`) is refused."""
    out: dict[str, str] = {}
    for raw, value in values.items():
        key = canonical_key(raw)
        if key in out:
            raise InvalidHpc(f"hpc.{raw}: {key!r} is given twice (as {raw!r} too)")
        if value is not None:
            out[key] = check_value(key, value)
    return out


def parse_hpc(*layers: Mapping[str, object]) -> HpcParams:
    """The add-on's parameters, later layers winning key by key; InvalidHpc names a bad one."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(checked(layer))
    get = merged.get
    count = {key: int(merged[key]) for key in COUNT_KEYS if key in merged}
    return HpcParams(
        partition=get("partition", ""),
        nodes=get("nodes", ""),
        ntasks=count.get("ntasks", 0),
        ntasks_per_node=count.get("ntasks_per_node", 0),
        cpus_per_task=count.get("cpus_per_task", 0),
        mem_bytes=memory_bytes(merged["mem"]) if "mem" in merged else 0,
        mem_per_cpu_bytes=memory_bytes(merged["mem_per_cpu"]) if "mem_per_cpu" in merged else 0,
        time_seconds=duration_seconds(merged["time"]) if "time" in merged else 0.0,
        gpus=count.get("gpus", 0),
        gres=get("gres", ""),
        account=get("account", ""),
        qos=get("qos", ""),
        constraint=get("constraint", ""),
        reservation=get("reservation", ""),
        exclusive=get("exclusive") == "true",
        custom_script=get("custom_script", "").strip(),
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
