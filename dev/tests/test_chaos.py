"""dev/chaos.py (`make chaos`) without a platform: how a fault's row is judged against the
targets of issue 12, how it is printed, and the checks of results and poison values. The suite
itself runs in tests/chaos (short form) and `make chaos`."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_chaos() -> Any:
    name = "ryax_chaos"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "dev" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


chaos: Any = _load_chaos()


def healthy_row(fault: str = "kill-runner") -> Any:
    return chaos.Row(
        fault,
        accepted=150,
        completed=150,
        events_expected=4,
        down_s=2.0,
        recover_run_s=1.0,
        recover_ready_s=0.5,
        restarted=True,
    )


def test_a_row_within_the_targets_has_no_miss() -> None:
    row = healthy_row()
    row.judge()
    assert row.misses == []


def test_every_target_missed_is_named() -> None:
    row = healthy_row("kill-worker")
    row.completed, row.failed, row.lost, row.events_lost = 10, 137, 3, 1
    row.recover_run_s, row.recover_ready_s, row.restarted = 7.5, None, False
    row.judge()
    assert row.misses == [
        "3 run(s) lost",
        "137 run(s) failed",
        "1/4 event(s) lost",
        "supervisord did not start the program again",
        "a run: back to normal after 7.5 s > 5 s",
        "/readyz: not back to normal",
    ]


def test_a_poison_row_is_judged_on_its_poison_runs_and_the_wedge() -> None:
    row = chaos.Row("poison-nul", accepted=20, completed=20, wedged=True)
    row.poison = {"runs": 3, "bad": 2, "summary": "2x not ended (running)"}
    row.judge()
    assert row.misses == [
        "wedged: no run completed for 30 s after the poison run",
        "2/3 poison run(s) handled badly",
    ]


def test_the_table_has_one_line_per_fault() -> None:
    ok, bad = healthy_row(), healthy_row("kill-worker")
    bad.failed = 5
    for row in (ok, bad):
        row.judge()
    lines = chaos.table([ok, bad]).splitlines()
    assert lines[0].split()[:5] == ["fault", "accepted", "completed", "failed", "lost"]
    assert lines[2].startswith("kill-runner") and lines[2].endswith("ok")
    assert lines[3].startswith("kill-worker") and lines[3].endswith("MISS")
    assert "kill-worker: 5 run(s) failed" in chaos.details([ok, bad])


def test_demo_results_and_poison_values() -> None:
    # examples/workflows/demo.yaml documents this answer for this text.
    answer = {"summary": "THE CAT AND THE HAT | the-cat-and-the-hat", "words": 7}
    assert chaos.demo_results_ok("The cat and the hat", answer)
    assert not chaos.demo_results_ok("The cat and the hat", {**answer, "words": 5})
    mine = {"summary": "CHAOS KILL-RUNNER 7 | chaos-kill-runner-7", "words": 5}
    assert chaos.demo_results_ok("chaos kill-runner 7", mine)
    assert chaos.poison_value_intact("nan", math.nan)
    assert not chaos.poison_value_intact("nan", None)
    assert chaos.poison_value_intact("nul", "before\x00after")
    assert not chaos.poison_value_intact("nul", "beforeafter")


def test_options() -> None:
    assert chaos.parse([]).faults == chaos.FAULTS
    short = chaos.parse(["--short", "--runs", "10"])
    assert short.faults == chaos.SHORT_FAULTS and short.runs == 10
    only = chaos.parse(["--only", "kill-worker, poison-nul"])
    assert only.faults == ("kill-worker", "poison-nul")
    assert set(chaos.SHORT_FAULTS) <= set(chaos.FAULTS)
    assert chaos.FAULTS[-1] == "poison-nul"  # the known wedge last: it stops what follows
