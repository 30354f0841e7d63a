"""`ryax workflow step-settings`: show a step's settings, change only what is given, and the
studio's own messages for a bad HPC parameter; `workflow show` lists each step's settings."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Ryax
from .fake_ryax import FakeRyax
from .test_cli import DEMO_YAML, single_line

WF = "Word count demo"


def imported(ryax: Ryax, tmp_path: Path) -> None:
    ryax.login()
    source = tmp_path / "demo.yaml"
    source.write_text(DEMO_YAML)
    assert ryax("workflow", "import", str(source)).exit_code == 0


def test_set_then_show_step_settings(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    imported(ryax, tmp_path)
    script = tmp_path / "job.sh"
    script.write_text("srun ./count\nexport counts=out.txt\n")
    out = ryax(
        "workflow", "step-settings", WF, "count",
        "--site", "hpc", "--node-pool", "debug", "--cpu", "2", "--memory", "1G",
        "--time", "10m", "--gpu", "1", "--timeout", "1h", "--retries", "2",
        "--label", "zone=eu", "--hpc", "partition=debug", "--hpc", "tasks=4",
        "--hpc-script", str(script), "-o", "json",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    [put] = fake.calls("PUT", "/studio/v1/projects/")
    assert json.loads(put.body) == {
        "timeout_seconds": 3600.0,
        "retries": 2,
        "site_name": "hpc",
        "node_pool": "debug",
        "labels": {"zone": "eu"},
        "resources": {"cpu": 2.0, "memory_bytes": 2**30, "time_seconds": 600.0, "gpu": 1},
        "hpc": {
            "partition": "debug",
            "ntasks": "4",
            "custom_script": "srun ./count\nexport counts=out.txt\n",
        },
        "always_warm": None,
    }
    saved = json.loads(out.stdout)
    assert saved["hpc"] == {
        "partition": "debug",
        "ntasks": "4",
        "custom_script": "srun ./count\nexport counts=out.txt\n",
    }

    # Only what is given changes; KEY= removes an HPC parameter, "" a site.
    out = ryax("workflow", "step-settings", WF, "count", "--hpc", "tasks=", "--site", "")
    assert out.exit_code == 0, out.stderr
    shown = ryax("workflow", "step-settings", WF, "count")
    assert shown.exit_code == 0, shown.stderr
    lines = [" ".join(line.split()) for line in shown.stdout.splitlines()]
    assert "site any" in lines and "node pool debug" in lines
    assert "memory 1G" in lines and "time 10m" in lines and "timeout 1h" in lines
    assert "hpc.partition debug" in lines
    assert not any(line.startswith("hpc.ntasks") for line in lines)

    table = ryax("workflow", "show", WF)
    row = next(line for line in table.stdout.splitlines() if "│ count" in line)
    assert "pool=debug cpu=2 memory=1G time=10m gpu=1 timeout=1h retries=2" in row
    assert "hpc=partition=debug,custom_script=<script>" in row


def test_bad_values_are_refused_with_the_studios_message(ryax: Ryax, tmp_path: Path) -> None:
    imported(ryax, tmp_path)
    out = ryax("workflow", "step-settings", WF, "count", "--hpc", "nodes=two")
    assert out.exit_code == 1
    assert single_line(out.stderr) == (
        "ryax: error: hpc.nodes: 'two' is not a node count (e.g. 2 or 1-4)"
    )
    out = ryax("workflow", "step-settings", WF, "count", "--hpc", "partitions=debug")
    assert out.exit_code == 1 and "hpc.partitions: unknown HPC parameter 'partitions'" in (
        out.stderr
    )
    out = ryax("workflow", "step-settings", WF, "count", "--memory", "1X")
    assert out.exit_code == 2 and "--memory: expected a number of bytes" in out.stderr
    out = ryax("workflow", "step-settings", WF, "count", "--hpc", "nodes")
    assert out.exit_code == 2 and "write KEY=VALUE" in out.stderr
    out = ryax("workflow", "step-settings", WF, "nope", "--cpu", "1")
    assert out.exit_code == 2 and "has no step 'nope' (its steps: api, count)" in out.stderr


def test_always_warm_is_set_shown_and_unset(ryax: Ryax, fake: FakeRyax, tmp_path: Path) -> None:
    imported(ryax, tmp_path)
    out = ryax("workflow", "step-settings", WF, "count", "--always-warm", "-o", "json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(fake.calls("PUT", "/studio/v1/projects/")[-1].body)["always_warm"] is True
    assert json.loads(out.stdout)["always_warm"] is True
    shown = ryax("workflow", "step-settings", WF, "count")
    assert "always warm yes" in [" ".join(line.split()) for line in shown.stdout.splitlines()]
    row = next(
        line for line in ryax("workflow", "show", WF).stdout.splitlines() if "│ count" in line
    )
    assert "always-warm" in row
    out = ryax("workflow", "step-settings", WF, "count", "--not-always-warm")
    assert out.exit_code == 0, out.stderr
    assert json.loads(fake.calls("PUT", "/studio/v1/projects/")[-1].body)["always_warm"] is None
