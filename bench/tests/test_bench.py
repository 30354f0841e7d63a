"""The benchmark harness without any platform or peer: statistics, ratios, the generated
workflows, the no-op actions, the report, process memory, and the failure messages. No test
asserts on a duration."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
import procinfo  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402


def chain_doc(system: str, long_runs: list[float], short_runs: list[float]) -> dict[str, Any]:
    return {
        "system": system,
        "chain": {
            "steps": 40,
            "warmup": 0,
            "samples_s": long_runs,
            "chain1_samples_s": short_runs,
        },
    }


# --------------------------------------------------------------------------- statistics


def test_percentiles_interpolate_between_closest_ranks() -> None:
    samples = [float(v) for v in range(1, 21)]  # 1..20
    assert run.median(samples) == pytest.approx(10.5)
    assert harness.percentile(samples, 95) == pytest.approx(19.05)
    assert harness.percentile(samples, 0) == 1.0
    assert harness.percentile(samples, 100) == 20.0
    assert harness.percentile([3.0], 99) == 3.0
    assert math.isnan(harness.percentile([], 50))


def test_figures_give_ratios_against_each_peer_measured_in_the_run() -> None:
    systems = {
        "ryax": chain_doc("ryax", [4.0] * 20, [0.1] * 20),
        "prefect": chain_doc("prefect", [2.0] * 20, [1.0] * 20),
        "celery": chain_doc("celery", [0.5] * 20, [0.01] * 20),
    }
    rows = {f["key"]: f for f in (f.to_json(list(systems)) for f in run.figures(systems))}
    median = rows["chain.median"]
    assert median["values"] == {"ryax": 4.0, "prefect": 2.0, "celery": 0.5}
    assert median["ratios"] == {"prefect": pytest.approx(2.0), "celery": pytest.approx(8.0)}
    # per-step overhead: the slope between chain-1 and chain-40, in ms
    assert rows["chain.per_step"]["values"]["ryax"] == pytest.approx((4.0 - 0.1) / 39 * 1000)
    assert rows["chain.per_step"]["unit"] == "ms"


def test_in_run_rows_come_from_the_systems_own_view_of_a_run() -> None:
    ryax = chain_doc("ryax", [4.0] * 3, [0.1] * 3)
    ryax["chain"]["inrun_samples_s"] = [3.0] * 3
    ryax["chain"]["chain1_inrun_samples_s"] = [0.05] * 3
    prefect = chain_doc("prefect", [1.1] * 3, [1.1] * 3)
    prefect["chain"]["inrun_samples_s"] = [0.2] * 3
    prefect["chain"]["chain1_inrun_samples_s"] = [0.005] * 3
    systems = {"ryax": ryax, "prefect": prefect, "celery": chain_doc("celery", [0.4], [0.01])}
    rows = {f["key"]: f for f in (f.to_json(list(systems)) for f in run.figures(systems))}
    slope = rows["chain.inrun_per_step"]
    assert slope["values"]["prefect"] == pytest.approx((0.2 - 0.005) / 39 * 1000)
    assert set(slope["values"]) == {"ryax", "prefect"}
    assert set(slope["ratios"]) == {"prefect"}


def test_no_ratio_with_a_peer_that_was_not_part_of_the_run() -> None:
    systems = {
        "ryax": chain_doc("ryax", [4.0], [0.1]),
        "prefect": chain_doc("prefect", [2.0], [1.0]),
    }
    rows = [f.to_json(["ryax", "prefect"]) for f in run.figures(systems)]
    assert all(set(row["ratios"]) <= {"prefect"} for row in rows)
    peers_only = [f.to_json(["prefect"]) for f in run.figures({"prefect": systems["prefect"]})]
    assert all(row["ratios"] == {} for row in peers_only)


def test_throughput_figures() -> None:
    level = {
        "clients": 8,
        "ok": 100,
        "errors": 2,
        "error_samples": ["x"],
        "elapsed_s": 4.0,
        "latencies_s": [0.01 * i for i in range(1, 101)],
    }
    rows = {f.spec.key: f for f in run.figures({"celery": {"throughput": {"levels": [level]}}})}
    assert rows["tp.8.rate"].values["celery"] == pytest.approx(25.0)
    assert rows["tp.8.rate"].spec.better == "higher"
    assert rows["tp.8.p50"].values["celery"] == pytest.approx(505.0)
    assert rows["tp.8.errors"].values["celery"] == 2.0
    assert not rows["tp.8.errors"].spec.ratio


def _level(clients: int, ok: int, elapsed: float, errors: int = 0) -> dict[str, Any]:
    return {
        "clients": clients,
        "ok": ok,
        "errors": errors,
        "error_samples": [f"e{errors}"] if errors else [],
        "elapsed_s": elapsed,
        "latencies_s": [elapsed / ok] * ok,
    }


def test_rounds_keep_the_median_round_of_each_level_and_every_failure() -> None:
    rounds = [
        {"workflow": "w", "levels": [_level(8, 300, 1.0), _level(32, 900, 1.0, errors=1)]},
        {"workflow": "w", "levels": [_level(8, 500, 1.0), _level(32, 700, 1.0)]},
        {"workflow": "w", "levels": [_level(8, 400, 1.0, errors=2), _level(32, 800, 1.0)]},
    ]
    merged = run.median_round(rounds)
    eight, thirty_two = merged["levels"]
    assert (eight["ok"], thirty_two["ok"]) == (400, 800)  # the median rate of each level
    assert (eight["errors"], thirty_two["errors"]) == (2, 1)  # failures of every round count
    assert eight["round_rates"] == [300.0, 500.0, 400.0]
    assert merged["rounds"] == 3 and merged["workflow"] == "w"
    two = run.median_round(rounds[:2])
    assert two["levels"][0]["ok"] == 300  # an even count: the lower middle
    rows = {f.spec.key: f for f in run.figures({"ryax": {"throughput": merged}})}
    assert rows["tp.8.rate"].values["ryax"] == pytest.approx(400.0)


def test_rounds_alternate_which_system_goes_first() -> None:
    assert run.round_order(["ryax", "celery"], 0) == ["ryax", "celery"]
    assert run.round_order(["ryax", "celery"], 1) == ["celery", "ryax"]
    assert run.without("chain,throughput,memory", "throughput") == "chain,memory"
    assert run.without("throughput", "throughput") == ""


def test_the_stolen_cpu_and_the_context_switches_of_a_level_are_figures() -> None:
    assert harness.stolen_fraction((1000, 50), (2000, 150)) == pytest.approx(0.1)
    assert harness.stolen_fraction((1000, 50), (1000, 50)) is None
    total, stolen, switches = harness.machine_counters()
    assert total > 0 and 0 <= stolen <= total
    assert switches > 0
    assert procinfo.context_switches(os.getpid()) > 0
    assert procinfo.context_switches(2**22 + 1) == 0  # no such process
    level = {**_level(8, 100, 1.0), "stolen": 0.25, "context_switches": 1500}
    rows = {f.spec.key: f for f in run.figures({"ryax": {"throughput": {"levels": [level]}}})}
    assert rows["tp.8.stolen"].values["ryax"] == pytest.approx(25.0)
    assert not rows["tp.8.stolen"].spec.ratio
    assert rows["tp.8.switches"].values["ryax"] == pytest.approx(15.0)
    assert rows["tp.8.switches"].spec.ratio  # lower is better, set against the peers


# --------------------------------------------------------------------------- harness


def test_throughput_stops_at_the_request_budget_and_counts_errors() -> None:
    calls = 0
    lock = threading.Lock()

    def make_call() -> Any:
        def call() -> None:
            nonlocal calls
            with lock:
                calls += 1
                mine = calls
            if mine % 5 == 0:
                raise RuntimeError("boom")

        return call

    level = harness.throughput(make_call, clients=4, max_requests=50, max_seconds=600)
    assert calls == 50
    assert level["ok"] + level["errors"] == 50
    assert level["errors"] == 10
    assert level["error_samples"] == ["RuntimeError: boom"]
    assert len(level["latencies_s"]) == level["ok"]


def test_throughput_reports_clients_that_cannot_start() -> None:
    def make_call() -> Any:
        raise ConnectionError("no server")

    with pytest.raises(harness.BenchFailure, match="no server"):
        harness.throughput(make_call, clients=2, max_requests=10, max_seconds=5)


def test_unknown_benchmark_and_bad_clients_are_refused() -> None:
    with pytest.raises(harness.BenchFailure, match="unknown benchmark"):
        harness.selected("chain,speed")
    with pytest.raises(harness.BenchFailure, match="--clients"):
        harness.clients_of("1,x")
    assert harness.clients_of("1, 8,32") == [1, 8, 32]


def test_a_failing_command_is_named_with_its_output() -> None:
    with pytest.raises(harness.BenchFailure) as caught:
        harness.run_command("celery", [sys.executable, "-c", "import sys; sys.exit('nope')"])
    message = str(caught.value)
    assert message.startswith("celery: command failed (exit 1)")
    assert "nope" in message
    with pytest.raises(harness.BenchFailure, match="command not found"):
        harness.run_command("celery", ["/nonexistent/rabbitmqctl", "version"])


# --------------------------------------------------------------------------- procinfo


def test_memory_of_a_process_tree_includes_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        snapshot = procinfo.snapshot({"me": [os.getpid()]})
    finally:
        child.kill()
        child.wait()
    pids = [p["pid"] for p in snapshot["groups"][0]["processes"]]
    assert pids[0] == os.getpid()
    assert child.pid in pids
    assert snapshot["rss_bytes"] > 0
    assert snapshot["pss_bytes"] > 0
    assert snapshot["processes"] == len(pids)


def test_a_process_that_is_gone_is_skipped() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert procinfo.group("gone", [gone.pid])["processes"] == []


# --------------------------------------------------------------------------- Ryax side


def test_chain_workflow_links_every_step_to_the_previous_one() -> None:
    ryax_bench = pytest.importorskip("ryax_bench")
    document = ryax_bench.chain_workflow("bench-chain-40", 40, "/bench/chain-40")
    functions = document["spec"]["functions"]
    assert len(functions) == 41
    assert functions[0]["from"] == "httpapijson"
    assert functions[0]["streams_to"] == ["s1"]
    for index, step in enumerate(functions[1:], start=1):
        upstream = "api" if index == 1 else f"s{index - 1}"
        assert step["from"] == "bench-noop"
        assert step["inputs_values"]["value"] == {"reference_value": f"{upstream}.value"}
    assert functions[-1]["streams_to"] == []
    assert document["spec"]["results"] == [{"key": "value", "reference_value": "s40.value"}]


def test_the_studio_reads_the_generated_workflow_without_problems() -> None:
    ryax_bench = pytest.importorskip("ryax_bench")
    yaml_format = pytest.importorskip("ryax_studio.infrastructure.yaml_format")
    parsed = yaml_format.parse_workflow(ryax_bench.chain_yaml("bench-chain-3", 3, "/x").encode())
    assert parsed.problems == []
    assert [s.id for s in parsed.steps] == ["api", "s1", "s2", "s3"]


@pytest.mark.parametrize("folder", ["noop", "noop-dep"])
def test_the_bench_actions_are_valid_published_actions(folder: str) -> None:
    yaml_nodes = pytest.importorskip("ryax_repository.infrastructure.yaml_nodes")
    path = BENCH / "actions" / folder / "ryax_metadata.yaml"
    metadata = yaml_nodes.load_action_metadata(path.read_bytes(), str(path))
    assert metadata.id.startswith("bench-noop")


def test_the_noop_handler_passes_its_input_through() -> None:
    code = "from ryax_handler import handle; print(handle({'value': 'x'})['value'])"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BENCH / "actions" / "noop",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "x"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_ryax_side_says_what_is_not_reachable_without_a_traceback() -> None:
    env = {
        **os.environ,
        "RYAX_URL": f"http://127.0.0.1:{closed_port()}",
        "RYAX_ADMIN_PASSWORD": "x",
    }
    done = subprocess.run(
        [sys.executable, str(BENCH / "ryax_bench.py"), "--only", "chain"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("ryax: the Ryax gateway http://127.0.0.1:")
    assert "not reachable" in done.stderr
    assert "make demo" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_stops_before_any_peer_when_ryax_is_not_reachable(tmp_path: Path) -> None:
    env = {**os.environ, "RYAX_URL": f"http://127.0.0.1:{closed_port()}"}
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--out", str(tmp_path), "--no-chart"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "bench: ryax: the Ryax gateway" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("venv-*"))


# --------------------------------------------------------------------------- report


def sample_results() -> dict[str, Any]:
    systems = {
        "ryax": chain_doc("ryax", [4.0] * 3, [0.1] * 3),
        "prefect": chain_doc("prefect", [2.0] * 3, [1.0] * 3),
        "celery": chain_doc("celery", [0.5] * 3, [0.01] * 3),
    }
    systems["ryax"]["versions"] = {"ryax": "git abc", "python": "3.11.7"}
    systems["prefect"]["versions"] = {"prefect": "3.8.8", "python": "3.11.7"}
    names = list(systems)
    return {
        "started_at": "2026-01-01T00:00:00+00:00",
        "options": {"systems": names, "runs": 3, "warmup": 0, "clients": [1, 8, 32], "steps": 40},
        "environment": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "memory_bytes": 2**34,
            "python": "3.11.7",
            "versions": {"rabbitmq": "3.10.8", "prefect": "3.8.8", "python (prefect)": "3.11.7"},
        },
        "figures": [f.to_json(names) for f in run.figures(systems)],
        "systems": systems,
    }


def test_the_table_has_a_header_values_and_ratio_columns() -> None:
    text = report.table(sample_results())
    assert "Test CPU, 2 cores" in text
    assert "rabbitmq 3.10.8" in text
    assert "prefect 3.8.8" in text
    header = next(line for line in text.splitlines() if line.startswith("benchmark"))
    assert "Ryax/Prefect" in header and "Ryax/Celery" in header
    median = next(line for line in text.splitlines() if "chain-40 median" in line)
    assert median.split()[-2:] == ["2.00x", "8.00x"]


def test_report_renders_a_results_file(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(sample_results()))
    text = tmp_path / "bench.txt"
    assert report.main([str(results), "--text", str(text)]) == 0
    assert "chain-40 p95" in text.read_text()


def test_the_chart_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "bench.png"
    report.chart(sample_results(), target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_coldstart_figures_are_ryax_only() -> None:
    def part(median: float, p95: float) -> dict[str, Any]:
        return {"median_ms": median, "p95_ms": p95, "samples_ms": [median, p95]}

    def memory(pss_mib: float) -> dict[str, Any]:
        return {"processes": 3, "rss_bytes": 1, "pss_bytes": int(pss_mib * 1024 * 1024)}

    cold = {
        "runs": 2,
        "steps": 8,
        "warm": part(1.4, 2.0),
        "cold_forked": part(80.0, 140.0),
        "cold_runsh": part(300.0, 450.0),
        "memory_warm_forked": memory(112),
        "memory_warm_runsh": memory(181),
        "memory_asleep_forked": memory(27),
    }
    rows = {
        f["key"]: f
        for f in (f.to_json(["ryax"]) for f in run.figures({"ryax": {"coldstart": cold}}))
    }
    assert rows["cold.cold_forked"]["values"] == {"ryax": 80.0}
    assert rows["cold.cold_forked.p95"]["values"] == {"ryax": 140.0}
    assert rows["cold.cold_runsh"]["values"] == {"ryax": 300.0}
    assert rows["cold.memory_asleep_forked"]["values"] == {"ryax": 27.0}
    assert rows["cold.memory_asleep_forked"]["label"] == "8 steps asleep, PSS"
    assert all(not row["ratios"] for row in rows.values())


def test_runs100k_figures_are_ryax_only_percentiles_in_ms() -> None:
    doc = {
        "system": "ryax",
        "runs100k": {
            "runs": 100_000,
            "before_s": [0.010] * 10,
            "during_ingest_s": [0.012] * 9 + [0.100],
            "during_retention_s": [0.011] * 10,
            "list_first_page_s": [0.005] * 10,
            "list_by_workflow_s": [0.006] * 10,
            "list_paged_s": [0.007] * 10,
            "detail_s": [0.004] * 10,
            "ingest_s": 80.0,
            "retention": {"deleted": 5000, "runs_per_second": 90.0},
        },
    }
    rows = {
        f["key"]: f for f in (f.to_json(["ryax", "celery"]) for f in run.figures({"ryax": doc}))
    }
    assert rows["runs100k.list.p99"]["values"] == {"ryax": pytest.approx(5.0)}
    assert rows["runs100k.detail.p50"]["unit"] == "ms"
    assert rows["runs100k.ingest.p99"]["values"]["ryax"] == pytest.approx(12 + 0.91 * 88)
    assert rows["runs100k.ingest_s"]["values"] == {"ryax": 80.0}
    assert rows["runs100k.retention_rate"]["values"] == {"ryax": 90.0}
    assert all(r["ratios"] == {} for k, r in rows.items() if k.startswith("runs100k"))
    assert "100k runs" in rows["runs100k.list.p50"]["label"]


def test_runs100k_knows_the_runner_database_of_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import history

    monkeypatch.delenv("RYAX_BENCH_RUNNER_DATABASE_URL", raising=False)
    env = tmp_path / "runner.env"
    env.write_text("RYAX_AMQP_URL=x\nRYAX_DATABASE_URL='postgresql+asyncpg://u:p@h:5432/db'\n")
    monkeypatch.setattr(history, "RUNNER_ENV", env)
    assert history.runner_database_url() == "postgresql+asyncpg://u:p@h:5432/db"
    monkeypatch.setattr(history, "RUNNER_ENV", tmp_path / "missing.env")
    with pytest.raises(harness.BenchFailure, match="make demo"):
        history.runner_database_url()


def test_the_hop_profile_folds_stacks_into_shares_of_the_samples(tmp_path: Path) -> None:
    import profile_hops

    raw = tmp_path / "runner.txt"
    raw.write_text(
        'process 7:"python -m ryax_runner";run (asyncio/base_events.py:600);'
        "_dispatch (ryax_runner/engine.py:10);"
        "dumps (json/encoder.py:200) 30\n"
        "run (asyncio/base_events.py:600);_dispatch (ryax_runner/engine.py:12) 50\n"
        "run (asyncio/base_events.py:601);select (selectors.py:468) 20\n"
        "run (asyncio/base_events.py:601);EpollSelector.select (selectors.py:468) 40\n"
        "not a stack line\n"
    )
    found = profile_hops.tops(profile_hops.fold(raw), 3)
    assert (found["samples"], found["waiting"]) == (100, 40)
    assert found["processes"] == {"python -m ryax_runner": 30}
    assert found["self"] == [
        {"function": "_dispatch (ryax_runner/engine.py)", "share": 0.5, "own_code": True},
        {"function": "dumps (json/encoder.py)", "share": 0.3, "own_code": False},
        {"function": "select (selectors.py)", "share": 0.2, "own_code": False},
    ]
    assert found["inclusive_own_code"] == [
        {"function": "_dispatch (ryax_runner/engine.py)", "share": 0.8, "own_code": True}
    ]


def test_the_steady_load_counts_each_process_cpu_from_its_first_sample() -> None:
    import steady

    before = {"runner": {10: 5.0}, "worker children": {20: 1.0}}
    after = {
        "runner": {10: 5.5},
        "worker children": {20: 1.25, 21: 0.5, 22: 0.0},  # 21 started meanwhile, 22 ended
    }
    assert steady.spent(before, after) == {"runner": 0.5, "worker children": 0.75}
    assert steady.procinfo.cpu_seconds(os.getpid()) > 0.0
    assert steady.procinfo.cpu_seconds(2**22 + 7) == 0.0  # beyond pid_max: gone
