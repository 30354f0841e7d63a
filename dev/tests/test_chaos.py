"""dev/chaos.py (`make chaos`) without a platform: how a fault's row is judged against the
targets of issue 12, how it is printed, and the checks of results and poison values. The suite
itself runs in tests/chaos (short form) and `make chaos`."""

from __future__ import annotations

import importlib.util
import math
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

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


def test_a_fault_that_could_not_run_is_a_miss_naming_why() -> None:
    row = chaos.Row(chaos.CUT_FAULT, unable="a network namespace needs root (`ip netns add`)")
    row.judge()
    assert row.misses == ["could not run: a network namespace needs root (`ip netns add`)"]
    row = healthy_row(chaos.CUT_FAULT)
    row.problems.append("the worker in its namespace exited (log x)")
    row.judge()
    assert row.misses == ["the worker in its namespace exited (log x)"]


def test_the_network_cut_is_a_fault_with_its_length() -> None:
    assert chaos.CUT_FAULT in chaos.FAULTS
    assert chaos.parse([]).cut == 10.0
    assert chaos.parse(["--only", chaos.CUT_FAULT, "--cut", "4"]).cut == 4.0


def _connect_from(namespace: str, host: str, port: int, timeout: float) -> str:
    """Inside `namespace`: connect, send 'ping', read the answer ('timeout' when none came in
    `timeout`, 'error: ...' when the connection failed otherwise)."""
    script = (
        "import socket, sys\n"
        "try:\n"
        f"    s = socket.create_connection(({host!r}, {port}), timeout={timeout})\n"
        "    s.sendall(b'ping')\n"
        "    sys.stdout.write(s.recv(100).decode())\n"
        "except TimeoutError:\n"
        "    sys.stdout.write('timeout')\n"
        "except OSError as exc:\n"
        "    sys.stdout.write(f'error: {exc}')\n"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout + 20,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(bool(chaos.netns_problem()), reason=chaos.netns_problem() or "-")
def test_a_worker_namespace_reaches_the_host_through_relays_and_the_cut_silences_it(
    tmp_path: Path,
) -> None:
    """The pieces of cut-worker-network (and of the remote_site tests) on this machine: a
    namespace and its veth pair, a relay from the pair's host side to a loopback port, one
    inside from the namespace's own loopback to the pair, the cut and the restore, the
    clean-up."""
    devlib: Any = sys.modules["ryax_devlib"]
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen()
    port = echo.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = echo.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"pong:" + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    link = devlib.NetnsLink("t" + secrets.token_hex(3), prefix="ryax-chaos")
    relays = inside = None
    try:
        link.create()
        relays = devlib.Relays([(link.host_ip, port, "127.0.0.1", port)])
        relays.start()
        assert _connect_from(link.name, link.host_ip, port, 5) == "pong:ping"
        # The namespace's own 127.0.0.1:port leads to the host's, through both relays.
        routes = [("127.0.0.1", port, link.host_ip, port)]
        inside = devlib.relays_in_namespace(link.name, routes, tmp_path / "relay.log")
        assert _connect_from(link.name, "127.0.0.1", port, 5) == "pong:ping"
        link.cut()
        # Silent: the connection attempt gets no answer and no error (no 'No route to host').
        assert _connect_from(link.name, link.host_ip, port, 4) == "timeout"
        link.restore()
        assert _connect_from(link.name, link.host_ip, port, 5) == "pong:ping"
    finally:
        if inside is not None:
            inside.terminate()
            inside.wait(timeout=10)
        if relays is not None:
            relays.stop()
        link.destroy()
        echo.close()
    assert not link.exists()
    assert (
        link.host_if
        not in subprocess.run(
            ["ip", "-o", "link"], capture_output=True, text=True, check=True
        ).stdout
    )
