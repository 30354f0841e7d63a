"""The HPC add-on's parameters are checked three times, by services that share no domain code:
the studio when a step's parameters are set (studio/ryax_studio/domain/hpc.py), the repository
when it scans an action whose metadata sets its own (`spec.addons.hpc`,
repository/ryax_repository/domain/hpc.py), and the worker of a Slurm site when it deploys the
step, for both (worker/ryax_worker/infrastructure/slurm/hpc.py). Copies drift (they did: the
worker took `nodes: 0`, `ntasks: 2.0` and `time: 1_0` the studio refused, and refused `Partition`
the studio took). All are fed the same values here: each is refused by all or taken by all, and
what the studio keeps is read by the worker as the value itself is.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ryax_repository.domain import hpc as repository
from ryax_repository.domain.action_metadata import InvalidActionMetadata
from ryax_repository.infrastructure.yaml_nodes import load_action_metadata
from ryax_studio.domain import hpc as studio
from ryax_studio.domain.errors import InvalidInput
from ryax_worker.infrastructure.slurm import hpc as worker

CASES: list[dict[str, Any]] = [
    {"partition": "debug"},
    {"Partition": "debug"},
    {"partition": True},
    {"partition": "a b"},
    {"partition": ""},
    {"nodes": "2"},
    {"nodes": "01-04"},
    {"nodes": "0"},
    {"nodes": "4-2"},
    {"nodes": 3},
    {"ntasks": 2},
    {"ntasks": 2.0},
    {"ntasks": 2.5},
    {"ntasks": "0"},
    {"ntasks": "02"},
    {"ntasks": "1234567"},
    {"tasks": "2", "ntasks": "2"},
    {"tasks-per-node": 4},
    {"cpus_per_task": "\u0663"},
    {"gpu": 1},
    {"gpus": False},
    {"mem": "4G"},
    {"memory": "512 MiB"},
    {"mem": "0"},
    {"mem": "1.5T"},
    {"mem": "4X"},
    {"mem_per_cpu": 2048},
    {"time": "30"},
    {"time": "1:30:00"},
    {"time": "2-00:00:00"},
    {"time": "90m"},
    {"time": "0:00"},
    {"time": "1_0"},
    {"time": "1:2:3:4"},
    {"time": 1.5},
    {"gres": "gpu:a100:2"},
    {"constraint": "skylake&ib"},
    {"account": "project42", "qos": "normal", "reservation": "maint"},
    {"exclusive": True},
    {"exclusive": "yes"},
    {"exclusive": "maybe"},
    {"exclusive": ""},
    {"custom_script": "srun hostname\n"},
    {"custom_script": "   "},
    {"custom_script": "a\x00b"},
    {"custom_script": 3},
    {"output": "/etc/passwd"},
    {"partition": "x" * 300},
]


def studio_view(values: dict[str, Any]) -> tuple[str, Any]:
    """("ok", the kept texts) or ("refused", the field named)."""
    try:
        return "ok", studio.hpc_params(values)
    except InvalidInput as error:
        return "refused", error.field


def worker_view(values: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", worker.parse_hpc(values)
    except worker.InvalidHpc as error:
        return "refused", str(error.detail).partition(":")[0]


def repository_view(values: dict[str, Any]) -> tuple[str, Any]:
    """The metadata file of an action with these parameters, scanned."""
    spec: dict[str, Any] = {"id": "demo", "version": "1.0", "human_name": "Demo action"}
    spec["type"] = "python3"
    document = {"apiVersion": "ryax.tech/v2.0", "kind": "Processor", "spec": spec}
    spec["addons"] = {"hpc": values}
    try:
        load_action_metadata(yaml.safe_dump(document), "ryax_metadata.yaml")
    except InvalidActionMetadata as error:
        paths = [e.field_path for e in error.errors]
        assert all(p.startswith("spec.addons.hpc.") for p in paths), error.errors
        return "refused", paths[0].replace("spec.addons.", "", 1)
    return "ok", None


def assert_agree(values: dict[str, Any]) -> None:
    by_studio, kept = studio_view(values)
    by_worker, read = worker_view(values)
    by_repository, named = repository_view(values)
    assert by_studio == by_worker == by_repository, (values, kept, read, named)
    if by_studio == "refused":
        # Both name a parameter given (as written, or in its canonical spelling).
        spelled = {raw.strip().replace("-", "_").lower() for raw in values}
        keys = {f"hpc.{name}" for name in [*values, *spelled]}
        keys |= {f"hpc.{worker.ALIASES.get(name, name)}" for name in spelled}
        assert kept in keys, (values, kept)
        assert read in keys, (values, read)
        assert named in keys, (values, named)
        return
    # The worker reads what the studio keeps as it reads the value itself.
    assert worker.parse_hpc(dict(kept)) == read, (values, kept)


@pytest.mark.parametrize("values", CASES, ids=[repr(c)[:40] for c in CASES])
def test_the_studio_and_the_worker_agree_on_each_case(values: dict[str, Any]) -> None:
    assert_agree(values)


def test_the_same_keys_and_aliases() -> None:
    assert tuple(studio.HPC_KEYS) == tuple(worker.KEYS) == tuple(repository.HPC_KEYS)
    assert dict(studio.ALIASES) == dict(worker.ALIASES) == dict(repository.ALIASES)
    assert set(studio.COUNT_KEYS) == set(worker.COUNT_KEYS) == set(repository.COUNT_KEYS)
    limits = (studio.MAX_VALUE_CHARS, studio.MAX_SCRIPT_CHARS)
    assert limits == (worker.MAX_VALUE_CHARS, worker.MAX_SCRIPT_CHARS)
    assert limits == (repository.MAX_VALUE_CHARS, repository.MAX_SCRIPT_CHARS)


_KEYS = st.sampled_from([*worker.KEYS, *worker.ALIASES, "NTasks", "cpus-per-task", "output"])
_TEXT = st.text(
    alphabet="0123456789-:._ smhdKMGTiBbtruefalsyonx@/&|*[](),\u0663\n", min_size=0, max_size=12
)
_VALUES = st.one_of(
    _TEXT,
    st.integers(min_value=-3, max_value=10**7),
    st.floats(min_value=-2, max_value=1e6, allow_nan=False),
    st.booleans(),
)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=3))
def test_the_studio_and_the_worker_agree_on_any_value(values: dict[str, Any]) -> None:
    assert_agree(values)
