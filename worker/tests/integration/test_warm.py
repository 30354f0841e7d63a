"""The retention policy and the fork server, with real sandboxed action processes: an idle
step's process stops, the next execution starts it again (forked into its sandbox), an
always-warm step never stops, and a dead fork server is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ryax_worker.application.retention import RetentionPolicy
from ryax_worker.domain.model import DeploymentId, StepId, StepRef
from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb

pytestmark = pytest.mark.integration

READY = wpb.DEPLOYMENT_STATE_KIND_READY
COMPLETED = wpb.EXECUTION_STATUS_COMPLETED
S1 = StepRef(DeploymentId("d1"), StepId("s1"))
S2 = StepRef(DeploymentId("d1"), StepId("s2"))

ECHO = {
    "ryax_handler.py": """
        import os

        def handle(request):
            print(f"handler {os.getpid()}")
            return {"out": request["text"], "uid": os.getuid()}
    """,
}
INPUTS = [wpb.IO(name="text", type="string")]
OUTPUTS = [wpb.IO(name="out", type="string"), wpb.IO(name="uid", type="integer")]


def retain(worker: Any, seconds: float, always_warm: frozenset[str] = frozenset()) -> None:
    worker.container.backend().retention.policy = RetentionPolicy(
        retention_seconds=seconds, always_warm=always_warm
    )


async def deploy(worker: Any, step_id: str = "s1") -> None:
    worker.deploy(worker.artefact(ECHO), step_id=step_id, inputs=INPUTS, outputs=OUTPUTS)
    await worker.ready(step_id)


def instance(worker: Any, ref: StepRef = S1) -> Any:
    found = worker.container.backend().instance(ref)
    assert found is not None
    return found


async def run(worker: Any, execution_id: str, step_id: str = "s1") -> tuple[Any, float]:
    started = time.monotonic()
    worker.execute(execution_id, {"text": wpb.Value(string_value=execution_id)}, step_id=step_id)
    result = await worker.runner.until(lambda: worker.runner.result(execution_id))
    return result, time.monotonic() - started


def status_file(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def descriptors(pid: int) -> set[str]:
    """The sockets and pipes a process has open, by inode."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return {link for link in found if link.startswith(("socket:", "pipe:"))}


def status(pid: int) -> dict[str, str]:
    text = status_file(pid, "status")
    return {k: v.strip() for k, v in (line.split(":", 1) for line in text.splitlines())}


def gone(pid: int) -> bool:
    """No such process, or a zombie (dead, its parent elsewhere has not reaped it yet)."""
    try:
        return status(pid)["State"].startswith(("Z", "X"))
    except (FileNotFoundError, ProcessLookupError):
        return True


async def test_an_idle_step_stops_and_the_next_execution_starts_it_again(worker: Any) -> None:
    retain(worker, 1.0)
    await deploy(worker)
    step = instance(worker)
    assert step.process.forked  # a root worker with bwrap forks from the fork server
    first = step.process.wrapper_pid
    # The forked process is the sandbox's: its user, no capability, no new privileges, the
    # holder's mount namespace.
    info = status(first)
    assert info["Uid"].split()[0] == "65534" and info["CapEff"] == "0" * 16
    assert info["CapBnd"] == "0" * 16 and info["NoNewPrivs"] == "1"
    holder = step.process.pid
    assert os.readlink(f"/proc/{first}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{first}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{first}/root") == "/"  # chrooted (seen from here: its root)
    assert not gone(holder)
    # Nothing of the fork server's is open in it (its socket to the worker above all).
    [server] = worker.container.backend().fork_server_pids()
    assert not descriptors(first) & descriptors(server)
    if worker.container.backend()._options.cgroups is not None:  # in the step's own cgroup
        assert "d1_s1" in status_file(first, "cgroup")
        assert os.readlink(f"/proc/{first}/ns/cgroup") != os.readlink("/proc/self/ns/cgroup")

    result, _ = await run(worker, "e1")
    assert result.status == COMPLETED
    # Its Session call stays open between executions: idle, it must not hold the graceful stop
    # back (the retention, 1 s, then SIGTERM; not the stop's grace, then SIGKILL).
    await worker.runner.until(lambda: step.asleep, within=4)
    assert gone(first) and gone(holder)
    assert worker.container.backend().process_count() == 0
    states = [s for s, _ in worker.runner.states()]
    assert states[-1] == READY  # asleep is still deployed: nothing reported

    result, elapsed = await run(worker, "e2")
    assert result.status == COMPLETED, result.error
    assert elapsed < 5.0
    assert step.wakes == 1 and step.process.alive and step.process.forked
    assert step.process.wrapper_pid != first
    logs = [line.line for line in worker.runner.logs("e2")]
    assert any(line.startswith("handler ") for line in logs)


async def test_an_execution_arriving_while_the_process_stops_is_not_lost(worker: Any) -> None:
    retain(worker, 3600)
    await deploy(worker)
    step = instance(worker)
    stopping = asyncio.create_task(step.sleep())
    await asyncio.sleep(0)  # the stop has begun
    result, _ = await run(worker, "during-stop")
    assert await stopping
    assert result.status == COMPLETED, result.error
    assert not step.asleep and step.process.alive


async def test_an_always_warm_step_never_stops(worker: Any) -> None:
    retain(worker, 0.5, always_warm=frozenset({"d1/s2"}))
    await deploy(worker, "s1")
    await deploy(worker, "s2")
    warm = instance(worker, S2)
    pid = warm.process.wrapper_pid
    await worker.runner.until(lambda: instance(worker, S1).asleep, within=10)
    await asyncio.sleep(1.5)
    assert not warm.asleep and warm.process.wrapper_pid == pid and not gone(pid)
    result, _ = await run(worker, "warm", step_id="s2")
    assert result.status == COMPLETED


async def test_a_dead_fork_server_is_replaced(worker: Any) -> None:
    retain(worker, 3600)
    await deploy(worker)
    step = instance(worker)
    servers = worker.container.backend()._options.fork_servers
    assert servers is not None
    [server_pid] = servers.pids()
    first = step.process.wrapper_pid
    os.kill(server_pid, signal.SIGKILL)
    # What it forked dies with it; the supervisor starts the step again, from a new one.
    await worker.runner.until(lambda: step.restarts == 1 and step.process.alive, within=30)
    assert gone(first)
    assert servers.started == 2 and servers.pids() and servers.pids() != [server_pid]
    result, _ = await run(worker, "after-crash")
    assert result.status == COMPLETED, result.error

    # A sleeping step whose fork server died is started by a new one too.
    await step.sleep()
    [second] = servers.pids()
    os.kill(second, signal.SIGKILL)
    await worker.runner.until(lambda: not servers.pids(), within=10)
    result, _ = await run(worker, "cold-after-crash")
    assert result.status == COMPLETED, result.error
    assert servers.started == 3 and step.process.forked


OWN_DEPENDENCY = {
    "ryax_handler.py": """
        import ryax_action_wrapper
        import tinydep

        def handle(request):
            return {"out": f"{tinydep.VALUE} {ryax_action_wrapper.__file__}", "uid": 0}
    """,
}


async def test_an_action_forked_from_another_artefacts_fork_server_imports_its_own_deps(
    worker: Any,
) -> None:
    retain(worker, 3600)
    await deploy(worker, "s1")  # the fork server starts from this artefact
    servers = worker.container.backend()._options.fork_servers
    assert servers is not None and servers.started == 1
    artefact = worker.artefact(
        OWN_DEPENDENCY, deps_files={"tinydep/__init__.py": "VALUE = 'own dependency'\n"}
    )
    worker.deploy(artefact, step_id="s2", inputs=INPUTS, outputs=OUTPUTS)
    await worker.ready("s2")
    assert servers.started == 1 and instance(worker, S2).process.forked  # the same one
    result, _ = await run(worker, "own-deps", step_id="s2")
    assert result.status == COMPLETED, result.error
    out = result.outputs["out"].string_value
    # Its own package, and the preloaded wrapper seen at its own artefact's path.
    assert out == "own dependency /ryax/action/wrapper/ryax_action_wrapper/__init__.py"


SCRATCH = {
    "ryax_handler.py": """
        import json
        import os
        import tempfile

        def handle(request):
            seen = sorted(os.listdir("."))
            owner = os.stat(".").st_uid
            if request["text"] == "scratch":
                open("scratch.txt", "w").write("x")
                tempfile.mkstemp()  # the temporary directory is the work directory
            print(json.dumps({"cwd": os.getcwd(), "seen": seen, "owner": owner}))
            return {"out": request["text"], "uid": os.getuid()}
    """,
}


async def test_executions_moving_no_file_reuse_an_empty_work_dir_in_the_sandbox(
    worker: Any,
) -> None:
    """Each execution sees an empty work directory of its own user, whether the one an earlier
    execution left empty (no folder made, nothing handed over) or a new one after an execution
    left files in it."""
    retain(worker, 3600)
    worker.deploy(worker.artefact(SCRATCH), step_id="s1", inputs=INPUTS, outputs=OUTPUTS)
    await worker.ready("s1")
    seen = []
    for n, text in enumerate(["a", "b", "scratch", "c", "d"]):
        worker.execute(f"x{n}", {"text": wpb.Value(string_value=text)})
        result = await worker.runner.until(lambda n=n: worker.runner.result(f"x{n}"))
        assert result.status == COMPLETED, result.error
        [line] = [json.loads(log.line) for log in worker.runner.logs(f"x{n}")]
        seen.append(line)
    assert all(s["seen"] == [] and s["owner"] == 65534 for s in seen)
    cwds = [s["cwd"] for s in seen]
    assert cwds[0] == cwds[1] == cwds[2] == "/ryax/executions/x0/work"
    assert cwds[3] == cwds[4] == "/ryax/executions/x3/work"
    step_dir = worker.cache_dir / "executions" / "d1" / "s1"
    assert sorted(p.name for p in step_dir.iterdir()) == ["x3"]
    assert not any((step_dir / "x3" / "work").iterdir())
