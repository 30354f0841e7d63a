"""The chaos suite's short form, run by `make test`: dev/chaos.py (`make chaos`) with a reduced
set of faults (kill -9 of the worker and of the runner, a restart of the private RabbitMQ, a cut
of the worker's network for 10 s (as root: a network namespace), one poison output) and about
25 runs each, asserting the targets of issue 12 on each fault's row: no run lost, none failed,
no event lost, back to normal within 5 s of the program's (or the link's) return; the poison run
fails naming its output (or keeps its value intact) and wedges nothing.

It starts its own PostgreSQL, RabbitMQ node and platform (the fixed ports 8080, 8101-8118, so
it runs after tests/e2e, never beside it) and stops them after the last fault. It is skipped,
saying why, on a machine that cannot run it (fails in CI), and when the platform of this
checkout runs (`make down` first). Results: .dev/chaos/results-short.json.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

pytestmark = pytest.mark.chaos

REPO = Path(__file__).resolve().parents[2]
devlib: Any = sys.modules["ryax_devlib"]  # loaded by the root conftest.py


def _load_chaos() -> Any:
    # By path, under its own name: dev/ must never be on sys.path (dev/platform.py).
    name = "ryax_chaos"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "dev" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


chaos = _load_chaos()
OPTIONS = chaos.SHORT


def _unavailable(reason: str) -> NoReturn:
    if devlib.in_ci():
        pytest.fail(f"{reason} (CI=true: the chaos suite must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def suite() -> Iterator[Any]:
    problem = chaos.missing_requirements()
    if problem:
        _unavailable(problem)
    if chaos.platform_module().supervisord_pid() is not None and not chaos.MARKER.exists():
        _unavailable("the platform of this checkout is running (make demo): `make down` first")
    busy = chaos.wait_ports_free(OPTIONS.wait_ports, print)
    if busy:
        _unavailable("the platform's ports are busy: " + "; ".join(busy))
    running = chaos.Suite(OPTIONS)
    error = ""
    try:
        running.start()
    except chaos.ChaosError as exc:
        error = str(exc)
    try:
        if error:
            pytest.fail(f"the chaos suite could not start: {error}", pytrace=False)
        yield running
    finally:
        try:
            running.stop()
        finally:
            document = chaos.report(running, running.rows, OPTIONS, error)
            chaos.write_results(OPTIONS.out, document)
            print(chaos.table(running.rows))
            print(chaos.details(running.rows))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", chaos.SHORT_FAULTS)
def test_fault_meets_its_targets(suite: Any, fault: str) -> None:
    if fault == chaos.CUT_FAULT and chaos.netns_problem():
        _unavailable(f"{fault}: {chaos.netns_problem()}")
    row = suite.run_fault(fault)
    assert not row.misses, f"{fault}: " + "; ".join(row.misses) + "\n" + chaos.details([row])
