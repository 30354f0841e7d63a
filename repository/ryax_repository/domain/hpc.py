"""Parameters of Ryax's HPC add-on in an action's own metadata (`spec.addons.hpc`, docs/slurm.md).

Published Ryax declares the add-on in `ryax_metadata.yaml` (`addons: {hpc: {}}`); the worker of
a Slurm site also takes the sbatch parameters written there as the action's defaults (a step's
own, set in the studio, win key by key). The repository checks them when it scans the action,
so that a bad one is refused naming the file, its line and the key, and not only when a Slurm
site deploys the step. Services share no domain code: the studio and the worker keep a copy of
these rules each, and tests/contract/test_hpc_rules.py feeds the three the same values.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import InvalidInput

#: The keys, in their canonical spelling; `-` and `_` are alike, and ALIASES are accepted.
HPC_KEYS: Final = (
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
ALIASES: Final = {
    "tasks": "ntasks",
    "tasks_per_node": "ntasks_per_node",
    "memory": "mem",
    "gpu": "gpus",
}
#: Keys whose value is a whole number >= 1 (written as a number in the YAML export).
COUNT_KEYS: Final = frozenset({"ntasks", "ntasks_per_node", "cpus_per_task", "gpus"})
MAX_SCRIPT_CHARS: Final = 64 * 1024
MAX_VALUE_CHARS: Final = 256

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+:@/-]{0,127}$")
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+:@/&|*\[\]()-]{0,255}$")
_GRES = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:,-]{0,127}$")
_NODES = re.compile(r"^[0-9]{1,6}(-[0-9]{1,6})?$")
_COUNT = re.compile(r"^[1-9][0-9]{0,5}$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?$", re.I)
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhd])$", re.I)
#: Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_SLURM_TIME = re.compile(r"^(?:[0-9]+-)?[0-9]+(?::[0-9]+){0,2}$")
_NAMES: Final = {
    "partition": ("debug", _NAME),
    "account": ("project42", _NAME),
    "qos": ("normal", _NAME),
    "reservation": ("maint", _NAME),
    "constraint": ("skylake&ib", _CONSTRAINT),
    "gres": ("gpu:a100:2", _GRES),
}
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def canonical_key(raw: str) -> str:
    """The key in its canonical spelling; InvalidInput names an unknown one."""
    key = raw.strip().replace("-", "_").lower()
    key = ALIASES.get(key, key)
    if key not in HPC_KEYS:
        raise InvalidInput(
            f"hpc.{raw}",
            f"unknown HPC parameter {raw!r} (known: {', '.join(HPC_KEYS)}; docs/slurm.md)",
        )
    return key


def _text(key: str, value: object) -> str:
    if isinstance(value, bool):
        if key != "exclusive":  # YAML's `partition: yes` is a boolean, not the name "yes"
            raise InvalidInput(f"hpc.{key}", "expected a text or a number, got a boolean")
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float | str):
        return str(value) if key == "custom_script" else str(value).strip()
    raise InvalidInput(f"hpc.{key}", f"expected a text or a number, got {type(value).__name__}")


def check_value(key: str, value: object) -> str:
    """The value of a (canonical) key as text, normalised; InvalidInput says what is wrong."""
    text = _text(key, value)
    field = f"hpc.{key}"
    if key == "custom_script":
        if not text.strip():
            raise InvalidInput(field, "the script is empty (remove the parameter instead)")
        if len(text) > MAX_SCRIPT_CHARS:
            raise InvalidInput(field, f"longer than {MAX_SCRIPT_CHARS} characters")
        if "\x00" in text:
            raise InvalidInput(field, "holds a NUL character")
        return text
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidInput(field, f"longer than {MAX_VALUE_CHARS} characters")
    if key in COUNT_KEYS:
        if not _COUNT.match(text):
            raise InvalidInput(field, f"expected a whole number >= 1, got {text!r}")
        return text
    if key == "nodes":
        low, _, high = text.partition("-")
        if not _NODES.match(text) or int(low) < 1 or (high and int(high) < int(low)):
            raise InvalidInput(field, f"{text!r} is not a node count (e.g. 2 or 1-4)")
        return f"{int(low)}-{int(high)}" if high else str(int(low))
    if key in ("mem", "mem_per_cpu"):
        match = _MEMORY.match(text)
        if match is None or float(match.group(1)) <= 0:
            raise InvalidInput(field, f"{text!r} is not a memory size (e.g. 512M, 4G)")
        return text
    if key == "time":
        match = _DURATION.match(text)
        valid = float(match.group(1)) > 0 if match else bool(_SLURM_TIME.match(text))
        if not valid or set(text) <= {"0", ":", "-"}:
            raise InvalidInput(
                field, f"{text!r} is not a time (e.g. 30, 1:30:00, 2-00:00:00, 90m, 2h)"
            )
        return text
    if key == "exclusive":
        lowered = text.lower()
        if lowered in _TRUE:
            return "true"
        if lowered in _FALSE:
            return "false"
        raise InvalidInput(field, f"expected true or false, got {text!r}")
    example, pattern = _NAMES[key]
    if not pattern.match(text):
        raise InvalidInput(field, f"{text!r} is not a valid value (e.g. {example})")
    return text
