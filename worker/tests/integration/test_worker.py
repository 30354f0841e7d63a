"""The worker against real action-wrapper processes, the real S3 server and a fake runner that
is a real gRPC WorkerService server."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ryax_worker.app import create_app
from ryax_worker.domain.model import DeploymentId, StepId, StepRef
from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb

pytestmark = pytest.mark.integration

READY = wpb.DEPLOYMENT_STATE_KIND_READY
FAILED = wpb.DEPLOYMENT_STATE_KIND_FAILED
REF = StepRef(DeploymentId("d1"), StepId("s1"))

HANDLER = {
    "ryax_handler.py": """
        import time

        import helper  # a module next to the handler: code/ is on the path

        def handle(request):
            lines = request["lines"] or 0
            for n in range(1, lines + 1):
                print(f"line {n}")
            if request["sleep"]:
                time.sleep(request["sleep"])
            out = None
            if request["data"]:
                with open(request["data"]) as source:
                    text = source.read()
                with open("upper.txt", "w") as target:
                    target.write(helper.shout(text))
                out = "upper.txt"
            return {"out": out, "count": lines}
    """,
    "helper.py": """
        def shout(text):
            return text.upper()
    """,
}
INPUTS = [
    wpb.IO(name="data", type="file", optional=True),
    wpb.IO(name="lines", type="integer", optional=True),
    wpb.IO(name="sleep", type="float", optional=True),
]
OUTPUTS = [wpb.IO(name="out", type="file", optional=True), wpb.IO(name="count", type="integer")]


def ints(**values: int) -> dict[str, wpb.Value]:
    return {name: wpb.Value(int_value=value) for name, value in values.items()}


async def deploy_handler(worker: Any, step_id: str = "s1") -> None:
    worker.deploy(worker.artefact(HANDLER), step_id=step_id, inputs=INPUTS, outputs=OUTPUTS)
    await worker.ready(step_id)


def wrapper_pid(worker: Any, ref: StepRef = REF) -> int:
    instance = worker.container.backend().instance(ref)
    assert instance is not None and instance.process is not None
    pid = instance.process.pid
    assert pid is not None
    return int(pid)


async def test_register_deploy_and_execute_with_a_file(worker: Any) -> None:
    runner = worker.runner
    register = runner.registers[0]
    assert (register.worker_id, register.site_name, register.backend_kind) == (
        "worker-a",
        "site-a",
        "local",
    )
    assert [(p.name, p.cpu, p.memory_bytes) for p in register.node_pools] == [
        ("small", 2.0, 4 * 2**30)
    ]
    assert dict(register.labels) == {"zone": "test"} and register.version
    assert register.last_seen_order_seq == 0

    await deploy_handler(worker)
    assert [s for s, _ in runner.states()] == [wpb.DEPLOYMENT_STATE_KIND_DEPLOYING, READY]

    content = b"hello ryax\n"
    worker.upload("runs/r0/e0/text/in.txt", content)
    data = wpb.Value(
        file=wpb.FileRef(
            key="runs/r0/e0/text/in.txt",
            name="in.txt",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
    )
    worker.execute("e1", {"data": data, **ints(lines=200)})
    result = await runner.until(lambda: runner.result("e1"))
    assert result.status == wpb.EXECUTION_STATUS_COMPLETED, result.error
    out = result.outputs["out"].file
    assert out.key == "runs/r1/e1/out/upper.txt"
    assert worker.read(out.key) == b"HELLO RYAX\n"
    assert out.sha256 == hashlib.sha256(b"HELLO RYAX\n").hexdigest() and out.size == 11
    assert result.outputs["count"].int_value == 200
    assert result.started_at.seconds > 0 and result.ended_at.seconds > 0

    # Logs: numbered 1..n, none lost, all before the result on the stream.
    logs = runner.logs("e1")
    assert [line.seq for line in logs] == list(range(1, 201))
    assert [line.line for line in logs[:2]] == ["line 1", "line 2"]
    assert result.log_line_count == 200
    kinds = [m.WhichOneof("message") for m in runner.applied]
    last_log = max(
        i
        for i, m in enumerate(runner.applied)
        if m.WhichOneof("message") == "execution_log" and m.execution_log.execution_id == "e1"
    )
    assert last_log < kinds.index("execution_result")

    # Orders were acknowledged; heartbeats flow; the execution's folder is gone (the step's
    # folder, which its sandbox sees, stays until it is undeployed).
    await runner.until(lambda: runner.acked_order >= 2)
    await runner.until(lambda: len(runner.applied_of("heartbeat")) >= 2, within=5)
    assert not any((worker.cache_dir / "executions" / "d1" / "s1").iterdir())


async def test_several_executions_at_once_across_processes(worker: Any) -> None:
    await deploy_handler(worker, "s1")
    await deploy_handler(worker, "s2")
    sleep = {"sleep": wpb.Value(float_value=1.5), **ints(lines=1)}
    worker.execute("a", sleep, step_id="s1")
    worker.execute("b", sleep, step_id="s2")
    worker.execute("c", sleep, step_id="s1")  # queued behind "a" on the same process
    runner = worker.runner
    await runner.until(lambda: all(runner.result(e) for e in "abc"))
    assert all(runner.result(e).status == wpb.EXECUTION_STATUS_COMPLETED for e in "abc")
    # When each one's code started (its first line), in seconds.
    began = {e: runner.logs(e)[0].at.ToNanoseconds() / 1e9 for e in "abc"}
    assert abs(began["a"] - began["b"]) < 1.0  # two processes: side by side
    assert began["c"] - began["a"] >= 1.5  # one process: one after the other


async def test_init_failure_is_reported(worker: Any) -> None:
    artefact = worker.artefact({"ryax_handler.py": "import not_a_module\n"})
    worker.deploy(artefact, inputs=INPUTS, outputs=OUTPUTS)
    runner = worker.runner
    state = await runner.until(lambda: [s for s in runner.states() if s[0] == FAILED])
    assert "Init failed" in state[0][1] and "not_a_module" in state[0][1]


async def test_a_corrupt_artefact_is_refused(worker: Any) -> None:
    artefact = worker.artefact(HANDLER)
    worker.upload(artefact.key, b"not the built action")
    worker.deploy(artefact, inputs=INPUTS, outputs=OUTPUTS)
    runner = worker.runner
    state = await runner.until(lambda: [s for s in runner.states() if s[0] == FAILED])
    assert "sha256" in state[0][1]


async def test_killed_process_is_restarted_then_failed_if_it_keeps_dying(worker: Any) -> None:
    runner = worker.runner
    await deploy_handler(worker)
    first = wrapper_pid(worker)
    os.kill(first, signal.SIGKILL)
    await runner.until(lambda: worker.container.backend().instance(REF).restarts == 1)
    second = wrapper_pid(worker)
    assert second != first
    worker.execute("after-restart", ints(lines=1))
    result = await runner.until(lambda: runner.result("after-restart"))
    assert result.status == wpb.EXECUTION_STATUS_COMPLETED
    assert [s for s, _ in runner.states()].count(FAILED) == 0  # one death: quiet restart

    # Dying again right away (the test policy gives up after 2 consecutive failures).
    os.kill(second, signal.SIGKILL)
    await runner.until(lambda: worker.container.backend().instance(REF).restarts == 2)
    os.kill(wrapper_pid(worker), signal.SIGKILL)
    state = await runner.until(lambda: [s for s in runner.states() if s[0] == FAILED])
    assert "killed by SIGKILL" in state[0][1] and "gave up" in state[0][1]
    worker.execute("after-failure", ints(lines=1))
    result = await runner.until(lambda: runner.result("after-failure"))
    assert result.status == wpb.EXECUTION_STATUS_FAILED
    assert "is not ready" in result.error


async def test_a_crash_during_an_execution_fails_it(worker: Any) -> None:
    runner = worker.runner
    await deploy_handler(worker)
    worker.execute("e1", {"sleep": wpb.Value(float_value=30), **ints(lines=1)})
    await runner.until(lambda: runner.logs("e1"))
    os.kill(wrapper_pid(worker), signal.SIGKILL)
    result = await runner.until(lambda: runner.result("e1"))
    assert result.status == wpb.EXECUTION_STATUS_FAILED
    assert "killed by SIGKILL" in result.error


async def test_timeout_and_cancel_stop_the_action(worker: Any) -> None:
    runner = worker.runner
    await deploy_handler(worker)
    first = wrapper_pid(worker)
    worker.execute("slow", {"sleep": wpb.Value(float_value=60)}, timeout=1.0)
    result = await runner.until(lambda: runner.result("slow"))
    assert (result.status, result.error) == (wpb.EXECUTION_STATUS_FAILED, "timed out after 1 s")

    worker.execute("cancelled", {"sleep": wpb.Value(float_value=60), **ints(lines=1)})
    await runner.until(lambda: runner.logs("cancelled"))
    runner.send(cancel=wpb.Cancel(execution_id="cancelled", reason="user"))
    result = await runner.until(lambda: runner.result("cancelled"))
    assert result.status == wpb.EXECUTION_STATUS_CANCELLED

    # The stuck code was killed with its process; a fresh one takes the next execution.
    worker.execute("next", ints(lines=1))
    result = await runner.until(lambda: runner.result("next"))
    assert result.status == wpb.EXECUTION_STATUS_COMPLETED
    assert wrapper_pid(worker) != first
    assert [s for s, _ in runner.states()].count(FAILED) == 0


async def test_reconnect_resumes_without_duplicates(worker: Any) -> None:
    runner = worker.runner
    await deploy_handler(worker, "s1")
    await deploy_handler(worker, "s2")
    # A long execution (on its own process) runs across the reconnect.
    worker.execute("long", {"sleep": wpb.Value(float_value=3), **ints(lines=5)}, step_id="s2")
    await runner.until(lambda: len(runner.logs("long")) == 5)
    runner.acking = False
    worker.execute("quick", ints(lines=3), step_id="s1")
    await runner.until(lambda: runner.result("quick"))
    assert not runner.result("long")
    runner.break_stream()
    await runner.until(lambda: len(runner.registers) == 2, within=15)
    runner.acking = True
    second = runner.registers[1]
    assert second.last_seen_order_seq == 4
    # "quick" finished but was not acknowledged: listed so the runner does not count it lost.
    assert set(second.running_execution_ids) == {"long", "quick"}
    assert [(d.step_id, d.state) for d in second.deployed_steps] == [("s1", READY), ("s2", READY)]

    result = await runner.until(lambda: runner.result("long"))
    assert result.status == wpb.EXECUTION_STATUS_COMPLETED
    assert [line.seq for line in runner.logs("long")] == [1, 2, 3, 4, 5]
    assert result.log_line_count == 5

    # Re-sent reports kept their report_seq: the runner received duplicates, applied each once.
    def copies(execution_id: str) -> list[int]:
        return [
            m.report_seq
            for m in runner.received
            if m.WhichOneof("message") == "execution_result"
            and m.execution_result.execution_id == execution_id
        ]

    quick = await runner.until(lambda: len(copies("quick")) == 2 and copies("quick"))
    assert quick[0] == quick[1]  # sent twice, with the same number...
    seqs = [m.report_seq for m in runner.applied]
    assert seqs == sorted(set(seqs))
    assert len(runner.applied_of("execution_result")) == 2  # ...and each result applied once
    assert len([s for s in runner.states("s1") if s[0] == READY]) == 1


async def test_undeploy_stops_the_process(worker: Any) -> None:
    runner = worker.runner
    await deploy_handler(worker)
    pid = wrapper_pid(worker)
    runner.send(undeploy=wpb.Undeploy(deployment_id="d1", step_id="s1"))
    await runner.until(
        lambda: any(s == wpb.DEPLOYMENT_STATE_KIND_UNDEPLOYED for s, _ in runner.states())
    )
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert worker.container.backend().instance(REF) is None


TRIGGER = {
    "ryax_run.py": """
        import asyncio

        async def run(service, input_values):
            for n in range(input_values["count"]):
                with open(f"event-{n}.txt", "w") as f:
                    f.write(f"event {n}")
                await service.create_run({"n": n, "file": f"event-{n}.txt"})
            print("trigger done")
            if input_values["crash"]:
                raise RuntimeError("the source went away")
            await asyncio.sleep(3600)
    """,
}


async def test_trigger_new_runs_and_crash(worker: Any) -> None:
    runner = worker.runner
    artefact = worker.artefact(TRIGGER, kind="trigger")
    worker.deploy(
        artefact,
        kind="trigger",
        inputs=[wpb.IO(name="count", type="integer"), wpb.IO(name="crash", type="boolean")],
        outputs=[wpb.IO(name="n", type="integer"), wpb.IO(name="file", type="file")],
        trigger_inputs={"count": wpb.Value(int_value=2), "crash": wpb.Value(bool_value=True)},
    )
    await worker.ready()
    runs = await runner.until(
        lambda: len(runner.applied_of("new_run")) >= 2 and runner.applied_of("new_run")
    )
    assert [r.outputs["n"].int_value for r in runs[:2]] == [0, 1]
    file = runs[1].outputs["file"].file
    assert file.key.startswith("triggers/d1/s1/") and file.key.endswith("/file/event-1.txt")
    assert worker.read(file.key) == b"event 1"
    state = await runner.until(lambda: [s for s in runner.states() if s[0] == FAILED])
    assert "the source went away" in state[0][1]
    step_logs = [m for m in runner.applied_of("execution_log") if m.step_id == "s1"]
    assert any(line.line == "trigger done" for line in step_logs)


async def test_health_endpoints(fake_runner: Any, make_settings: Any) -> None:
    from ryax_worker.container import Container

    runner, address = fake_runner
    container = Container(settings=make_settings(address))
    app = create_app(container)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200
        await runner.until(lambda: container.connection().connected, within=15)
        response = await client.get("/readyz")
        checks = {"registered": True, "accepting": True, "filestore": True, "sandbox": True}
        assert response.status == 200
        assert (await response.json()) == {"ready": True, "checks": checks}
        assert (await client.get("/worker/readyz")).status == 200
        metrics = await (await client.get("/metrics")).text()
        assert "ryax_worker_connected 1.0" in metrics
        assert "ryax_worker_running_executions 0.0" in metrics
    # Closing the app ran the graceful stop: the stream was closed from the worker's side.
    assert not container.connection().connected


async def test_a_killed_trigger_is_failed_then_restarted(worker: Any) -> None:
    runner = worker.runner
    artefact = worker.artefact(TRIGGER, kind="trigger")
    worker.deploy(
        artefact,
        kind="trigger",
        inputs=[wpb.IO(name="count", type="integer"), wpb.IO(name="crash", type="boolean")],
        outputs=[wpb.IO(name="n", type="integer"), wpb.IO(name="file", type="file")],
        trigger_inputs={"count": wpb.Value(int_value=1), "crash": wpb.Value(bool_value=False)},
    )
    await worker.ready()
    await runner.until(lambda: len(runner.applied_of("new_run")) == 1)
    os.kill(wrapper_pid(worker), signal.SIGKILL)
    state = await runner.until(lambda: [s for s in runner.states() if s[0] == FAILED])
    assert "killed by SIGKILL" in state[0][1]
    # Back after a backoff: READY again, and the new session yields again.
    await runner.until(lambda: [s for s, _ in runner.states()].count(READY) == 2)
    await runner.until(lambda: len(runner.applied_of("new_run")) == 2)


async def test_a_restarted_worker_stops_the_processes_its_predecessor_left(
    worker: Any, make_settings: Any
) -> None:
    from ryax_worker.container import Container

    await deploy_handler(worker)
    pid = wrapper_pid(worker)
    # A second worker on the same cache, as after `kill -9` of the first one.
    successor = Container(settings=worker.container.settings())
    await successor.backend().start()
    await asyncio.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
