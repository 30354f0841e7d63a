"""The `slurm` backend against the checkout's real single-node Slurm (dev/ensure-slurm.sh:
node ryax1 with 4 CPUs, 4 GiB and 2 GPUs; partitions debug (default, 30 min) and short (1 min)),
real action-wrapper jobs in their bubblewrap sandbox, and, end to end, a worker wired by its
container with a fake runner and the real S3 server."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import Env
from ryax_worker.application.ports import (
    ActionEvent,
    ActionLog,
    ActionProgress,
    ActionResult,
    ActionRunRequest,
    ActionStarted,
    ActionStatus,
)
from ryax_worker.application.staging import FileStaging
from ryax_worker.container import Container
from ryax_worker.domain.errors import DeploymentFailed, FileTransferFailed
from ryax_worker.domain.model import (
    ActionKind,
    DeploymentId,
    DeployStep,
    FileRef,
    IOSpec,
    Resources,
    StepId,
    StepRef,
    Values,
)
from ryax_worker.infrastructure.local.artefacts import ArtefactCache
from ryax_worker.infrastructure.local.sandbox import SandboxConfig, nobody
from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb
from ryax_worker.infrastructure.slurm.backend import SlurmBackend, SlurmOptions
from ryax_worker.infrastructure.slurm.cluster import SlurmCluster
from ryax_worker.settings import Settings

from .conftest import FakeRunner, build_artefact, sandbox_read_only_paths

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
SLEEPER = {
    "ryax_handler.py": """
        import time

        def handle(request):
            print("sleeping", request["seconds"], flush=True)
            time.sleep(request["seconds"])
            return {"slept": request["seconds"]}
    """
}
SLEEPER_IO = {
    "inputs": (IOSpec(name="seconds", type="float"),),
    "outputs": (IOSpec(name="slept", type="float"),),
}


class DictStore:
    """A FileStore in memory (the backend only downloads artefacts)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def download(self, key: str, destination: Path) -> None:
        if key not in self.objects:
            raise FileTransferFailed(f"{key}: no such object")
        destination.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(destination.write_bytes, self.objects[key])

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        del content_type
        self.objects[key] = await asyncio.to_thread(source.read_bytes)


class Rig:
    def __init__(self, backend: SlurmBackend, store: DictStore, shared: Path, deps: Path) -> None:
        self.backend, self.store, self.shared, self.deps = backend, store, shared, deps
        self.staging = FileStaging(store, shared / "executions")
        self.cluster = SlurmCluster()

    def spec(
        self,
        files: dict[str, str],
        step: str = "s1",
        *,
        resources: Resources | None = None,
        hpc: dict[str, str] | None = None,
        node_pool: str = "",
        inputs: tuple[IOSpec, ...] = (),
        outputs: tuple[IOSpec, ...] = (),
    ) -> DeployStep:
        data = build_artefact(files, deps=self.deps)
        sha = hashlib.sha256(data).hexdigest()
        self.store.objects[f"artefacts/{sha}"] = data
        return DeployStep(
            order_seq=1,
            ref=StepRef(DeploymentId("d1"), StepId(step)),
            action_id="test-action",
            action_version="1.0",
            action_kind=ActionKind.PROCESSOR,
            artefact_key=f"artefacts/{sha}",
            artefact_sha256=sha,
            is_trigger=False,
            resources=resources or Resources(),
            node_pool=node_pool,
            hpc=hpc or {},
            inputs=inputs,
            outputs=outputs,
        )

    def request(self, spec: DeployStep, execution_id: str, inputs: Values) -> ActionRunRequest:
        space = self.staging.workspace(spec.ref, execution_id)
        return ActionRunRequest(execution_id=execution_id, inputs=inputs, work_dir=space.work_dir)

    async def run(
        self, spec: DeployStep, execution_id: str, inputs: Values | None = None
    ) -> list[ActionEvent]:
        events: list[ActionEvent] = []
        request = self.request(spec, execution_id, inputs or {})
        async with asyncio.timeout(240), aclosing(self.backend.run(spec.ref, request)) as run:
            async for event in run:
                events.append(event)
        return events

    async def job_of(self, events: list[ActionEvent], within: float = 60) -> str:
        async with asyncio.timeout(within):
            while True:
                for event in events:
                    if isinstance(event, ActionLog) and "slurm job" in event.line:
                        return event.line.split("slurm job ")[1].split()[0]
                await asyncio.sleep(0.05)

    async def until_state(self, job_id: str, *states: str, within: float = 60) -> str:
        async with asyncio.timeout(within):
            while True:
                status = (await self.cluster.statuses([job_id])).get(job_id)
                if status is not None and status.state in states:
                    return status.state
                await asyncio.sleep(0.2)


def result_of(events: list[ActionEvent]) -> ActionResult:
    assert isinstance(events[0], ActionStarted)
    last = events[-1]
    assert isinstance(last, ActionResult), events
    return last


def log_lines(events: list[ActionEvent]) -> list[str]:
    return [event.line for event in events if isinstance(event, ActionLog)]


@pytest.fixture
async def rig(slurm_conf: Path, shared_dir: Path, wrapper_deps: Path) -> AsyncIterator[Rig]:
    del slurm_conf
    store = DictStore()
    uid, gid = nobody()
    backend = SlurmBackend(
        cluster=SlurmCluster(),
        artefacts=ArtefactCache(store, shared_dir),
        options=SlurmOptions(
            shared_dir=shared_dir,
            site_name=f"hpc-{shared_dir.name}",
            poll_seconds=0.3,
            sandbox=SandboxConfig(
                mode="bwrap",
                uid=uid,
                gid=gid,
                read_only_paths=sandbox_read_only_paths(wrapper_deps),
            ),
        ),
    )
    await backend.start()
    try:
        yield Rig(backend, store, shared_dir, wrapper_deps)
    finally:
        await backend.close()


# --------------------------------------------------------------------------- the cluster


async def test_slurm_node_pools_are_the_partitions_read_from_sinfo(rig: Rig) -> None:
    partitions = {p.name: p for p in await rig.cluster.partitions()}
    debug, short = partitions["debug"], partitions["short"]
    assert debug.default and debug.up and not short.default
    assert (debug.cpu, debug.memory_bytes, debug.gpu, debug.nodes) == (4, 4096 * MIB, 2, 1)
    assert debug.max_time_seconds == 30 * 60 and short.max_time_seconds == 60
    pools = {pool.name: pool for pool in rig.backend.node_pools()}
    assert pools["debug"].cpu == 4 and pools["debug"].memory_bytes == 4096 * MIB
    assert pools["debug"].gpu == 2 and pools["short"].max_time_seconds == 60


async def test_slurm_submit_runs_a_batch_job_to_completion(rig: Rig, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hello from $SLURM_JOB_ID\n")
    out = tmp_path / "out.txt"
    job_id = await rig.cluster.submit(script, [f"--output={out}", "--job-name=ryax-test"])
    assert await rig.until_state(job_id, "COMPLETED", "FAILED") == "COMPLETED"
    assert out.read_text().strip() == f"hello from {job_id}"


# --------------------------------------------------------------------------- the backend


async def test_slurm_resources_are_honoured_and_read_back_from_scontrol(rig: Rig) -> None:
    spec = rig.spec(
        SLEEPER,
        resources=Resources(cpu=1.5, memory_bytes=512 * MIB, time_seconds=270, gpu=1),
        hpc={"ntasks": "1", "exclusive": "false"},
        **SLEEPER_IO,
    )
    await rig.backend.deploy(spec)
    step = rig.backend.step(spec.ref)
    assert step is not None and step.request.partition == "debug"  # the default partition
    events: list[ActionEvent] = []

    async def run() -> None:
        request = rig.request(spec, "e-res", {"seconds": 3.0})
        async with aclosing(rig.backend.run(spec.ref, request)) as stream:
            async for event in stream:
                events.append(event)

    task = asyncio.create_task(run())
    job_id = await rig.job_of(events)
    job = await rig.cluster.show_job(job_id)
    assert job["Partition"] == "debug"
    assert job["CPUs/Task"] == "2"  # ceil(1.5)
    assert job["MinMemoryNode"] == "512M"
    assert job["TimeLimit"] == "00:05:00"  # 270 s rounded up to whole minutes
    assert job["TresPerNode"] == "gres:gpu:1"
    assert job["NumTasks"] == "1" and job["Requeue"] == "0"
    assert job["JobName"] == f"ryax.hpc-{rig.shared.name}.e-res"
    await asyncio.wait_for(task, 120)
    result = result_of(events)
    assert result.status is ActionStatus.COMPLETED and result.outputs == {"slept": 3.0}
    lines = log_lines(events)
    assert lines[0].startswith(f"ryax: slurm job {job_id} submitted (partition=debug ")
    assert "sleeping 3.0" in lines
    assert any(f"slurm job {job_id} RUNNING on ryax1" in line for line in lines)
    assert any(
        isinstance(e, ActionProgress) and e.message.startswith(f"slurm job {job_id}")
        for e in events
    )
    assert rig.backend.process_count() == 0
    assert not (rig.shared / "jobs" / "d1" / "s1" / "e-res").exists()


async def test_slurm_cancel_closes_the_run_and_scancels_the_job(rig: Rig) -> None:
    spec = rig.spec(SLEEPER, **SLEEPER_IO)
    await rig.backend.deploy(spec)
    events: list[ActionEvent] = []
    request = rig.request(spec, "e-cancel", {"seconds": 300.0})
    stream = rig.backend.run(spec.ref, request)

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    task = asyncio.create_task(consume())
    job_id = await rig.job_of(events)
    await rig.until_state(job_id, "RUNNING")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()
    assert await rig.until_state(job_id, "CANCELLED", within=30) == "CANCELLED"
    assert rig.backend.process_count() == 0


async def test_slurm_time_limit_fails_the_step_with_time_limit(rig: Rig) -> None:
    spec = rig.spec(SLEEPER, resources=Resources(time_seconds=60), **SLEEPER_IO)
    await rig.backend.deploy(spec)
    events = await rig.run(spec, "e-time", {"seconds": 600.0})
    result = result_of(events)
    assert result.status is ActionStatus.FAILED
    assert result.error.startswith("time limit: slurm job ")
    assert result.error.endswith("was killed by its time limit of 1 min")
    assert any("DUE TO TIME LIMIT" in line for line in log_lines(events))


async def test_slurm_a_failing_job_fails_the_step_with_the_action_error(rig: Rig) -> None:
    raising = rig.spec(
        {"ryax_handler.py": "def handle(request):\n    raise ValueError('bad input')\n"},
        "raising",
    )
    await rig.backend.deploy(raising)
    result = result_of(await rig.run(raising, "e-raise"))
    assert result.status is ActionStatus.FAILED
    assert "ValueError: bad input" in result.error and "Traceback" in result.traceback

    broken = rig.spec({"ryax_handler.py": "import not_installed_here\n"}, "broken")
    await rig.backend.deploy(broken)
    result = result_of(await rig.run(broken, "e-broken"))
    assert result.status is ActionStatus.FAILED
    assert result.error.startswith("the action could not be loaded: ")
    assert "not_installed_here" in result.error

    hog = rig.spec(
        {"ryax_handler.py": "def handle(request):\n    return {'n': len(bytearray(600 << 20))}\n"},
        "hog",
        resources=Resources(memory_bytes=256 * MIB),
        outputs=(IOSpec(name="n", type="integer"),),
    )
    await rig.backend.deploy(hog)
    result = result_of(await rig.run(hog, "e-hog"))
    assert result.status is ActionStatus.FAILED
    assert result.error.startswith("memory limit of 256 MiB exceeded")


async def test_slurm_deploy_refuses_unknown_partitions_and_impossible_resources(rig: Rig) -> None:
    cases = {
        "unknown partition 'gpu-h100' on site": rig.spec(SLEEPER, node_pool="gpu-h100"),
        "impossible resources for partition 'debug'": rig.spec(SLEEPER, resources=Resources(cpu=8)),
        "3 GPUs, its nodes have 2": rig.spec(SLEEPER, hpc={"gpus": "3"}),
        "a time limit of 90 min, its limit is 30 min": rig.spec(SLEEPER, hpc={"time": "90"}),
        "a time limit of 2 min, its limit is 1 min": rig.spec(
            SLEEPER, hpc={"partition": "short", "time": "2m"}
        ),
        "5 nodes, it has 1": rig.spec(SLEEPER, hpc={"nodes": "5"}),
        "hpc.cpus_per_task: expected a whole number": rig.spec(
            SLEEPER, hpc={"cpus_per_task": "two"}
        ),
        "hpc.output: unknown HPC parameter": rig.spec(SLEEPER, hpc={"output": "/etc/x"}),
        "Slurm refuses the job": rig.spec(SLEEPER, hpc={"constraint": "no-such-feature"}),
    }
    for expected, spec in cases.items():
        with pytest.raises(DeploymentFailed) as refused:
            await rig.backend.deploy(spec)
        assert expected in refused.value.detail, refused.value.detail
    assert rig.backend.step(StepRef(DeploymentId("d1"), StepId("s1"))) is None


async def test_slurm_hpc_addon_of_the_action_and_of_the_step(rig: Rig) -> None:
    metadata = """
        apiVersion: "ryax.tech/v2.0"
        kind: Processor
        spec:
          id: mpi-like
          human_name: MPI-like
          type: python3
          version: "1.0"
          addons:
            hpc:
              partition: short
              ntasks: 2
              custom_script: |
                echo "tasks: $SLURM_NTASKS, n=$n, cwd=$(basename $PWD)"
                [ -f "$RYAX_ACTION_DIR/run.sh" ] && echo "the artefact is in RYAX_ACTION_DIR"
                printf 'from %s\\n' "$n" > result.txt
                export total=$((n * 2))
                export report=result.txt
          inputs: []
          outputs: []
    """
    files = {**SLEEPER, "ryax_metadata.yaml": metadata}
    io = {
        "inputs": (IOSpec(name="n", type="integer"),),
        "outputs": (IOSpec(name="total", type="integer"), IOSpec(name="report", type="file")),
    }
    spec = rig.spec(files, "mpi", hpc={"partition": "debug", "cpus_per_task": "1"}, **io)
    await rig.backend.deploy(spec)
    step = rig.backend.step(spec.ref)
    assert step is not None
    assert step.request.partition == "debug" and step.request.ntasks == 2  # the step wins
    events = await rig.run(spec, "e-mpi", {"n": 21})
    result = result_of(events)
    assert result.status is ActionStatus.COMPLETED, result.error
    assert result.outputs["total"] == 42
    report = result.outputs["report"]
    assert isinstance(report, FileRef) and report.name == "result.txt"
    assert await asyncio.to_thread(Path(report.key).read_text) == "from 21\n"
    assert "tasks: 2, n=21, cwd=work" in log_lines(events)
    assert "the artefact is in RYAX_ACTION_DIR" in log_lines(events)

    failing = rig.spec(files, "mpi-fail", hpc={"custom_script": "echo oops >&2; exit 3"}, **io)
    await rig.backend.deploy(failing)
    result = result_of(await rig.run(failing, "e-mpi-fail", {"n": 1}))
    assert result.status is ActionStatus.FAILED
    assert "ended FAILED (exit code 3:0)" in result.error and result.error.endswith("oops")


# --------------------------------------------------------------------------- end to end


@pytest.fixture
async def slurm_worker(
    slurm_conf: Path,
    shared_dir: Path,
    fake_runner: tuple[FakeRunner, str],
    s3_server: Any,
    s3_env: dict[str, str],
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
) -> AsyncIterator[tuple[Container, FakeRunner, Any]]:
    del slurm_conf
    runner, address = fake_runner
    settings = Settings(
        runner_address=address,
        site_name=f"hpc-{shared_dir.name}",
        worker_id="worker-hpc",
        backend="slurm",
        cache_dir=tmp_path / "cache",
        filestore=FilestoreSettings.read(Env(s3_env), default_dir=tmp_path / "unused"),
        heartbeat_seconds=0.3,
        sandbox="bwrap",
        sandbox_read_only_paths=sandbox_read_only_paths(wrapper_deps),
        slurm_shared_dir=shared_dir,
        slurm_poll_seconds=0.3,
    )
    container = await start_worker(settings, runner)
    try:
        yield container, runner, s3_server.client()
    finally:
        await stop_worker(container, grace_seconds=5)


async def start_worker(settings: Settings, runner: FakeRunner) -> Container:
    """A worker as app.py starts it: backend, node pools from sinfo, jobs found again, dial."""
    container = Container(settings=settings)
    backend = container.backend()
    assert isinstance(backend, SlurmBackend)
    await container.filestore().ensure_ready()
    await backend.start()
    worker = container.worker()
    worker.site = replace(worker.site, node_pools=backend.node_pools())
    worker.resume_detached()
    connection = container.connection()
    registered = len(runner.registers)
    connection.start()
    await runner.until(
        lambda: connection.connected and len(runner.registers) > registered, within=15
    )
    return container


async def stop_worker(container: Container, grace_seconds: float) -> None:
    await container.worker().shutdown(grace_seconds=grace_seconds)
    await container.connection().close(flush_timeout=2)


UPPER = {
    "ryax_handler.py": """
        def handle(request):
            with open(request["data"]) as source:
                text = source.read()
            print("read", len(text), "characters")
            with open("upper.txt", "w") as target:
                target.write(text.upper())
            return {"out": "upper.txt"}
    """
}


async def test_slurm_end_to_end_execution_through_the_worker(
    slurm_worker: tuple[Container, FakeRunner, Any], fresh_bucket: str, wrapper_deps: Path
) -> None:
    _, runner, s3 = slurm_worker
    [register] = runner.registers
    assert register.backend_kind == "slurm"
    pools = {pool.name: pool for pool in register.node_pools}
    assert pools["debug"].cpu == 4 and pools["debug"].gpu == 2
    assert pools["short"].max_time_seconds == 60

    def put(key: str, data: bytes) -> None:
        s3.put_object(fresh_bucket, key, io.BytesIO(data), len(data))

    artefact = build_artefact(UPPER, deps=wrapper_deps)
    sha = hashlib.sha256(artefact).hexdigest()
    put(f"artefacts/{sha}.tar.gz", artefact)
    put("in/data.txt", b"hello slurm")
    runner.send(
        deploy=wpb.Deploy(
            deployment_id="d1",
            step_id="s1",
            action_id="upper",
            action_version="1.0",
            action_kind="processor",
            artefact_key=f"artefacts/{sha}.tar.gz",
            artefact_sha256=sha,
            inputs=[wpb.IO(name="data", type="file")],
            outputs=[wpb.IO(name="out", type="file")],
            resources=wpb.Resources(cpu=1, memory_bytes=256 * MIB),
            node_pool="debug",
            hpc={"ntasks": "1"},
        )
    )
    await runner.until(
        lambda: any(s == wpb.DEPLOYMENT_STATE_KIND_READY for s, _ in runner.states()), within=60
    )
    data = hashlib.sha256(b"hello slurm").hexdigest()
    runner.send(
        execute=wpb.Execute(
            execution_id="e2e",
            run_id="r1",
            deployment_id="d1",
            step_id="s1",
            inputs={
                "data": wpb.Value(
                    file=wpb.FileRef(key="in/data.txt", name="data.txt", size=11, sha256=data)
                )
            },
            timeout_seconds=120,
        )
    )
    result = await runner.until(lambda: runner.result("e2e"), within=120)
    assert result.status == wpb.EXECUTION_STATUS_COMPLETED, result.error
    out = result.outputs["out"].file
    assert out.name == "upper.txt"
    response = s3.get_object(fresh_bucket, out.key)
    try:
        assert response.read() == b"HELLO SLURM"
    finally:
        response.close()
        response.release_conn()
    lines = [line.line for line in runner.logs("e2e")]
    assert lines[0].startswith("ryax: slurm job ") and "partition=debug" in lines[0]
    assert "read 11 characters" in lines
    assert [line.seq for line in runner.logs("e2e")] == list(range(1, len(lines) + 1))
    assert result.log_line_count == len(lines)
    progress = [
        m.execution_progress
        for m in runner.received
        if m.WhichOneof("message") == "execution_progress"
    ]
    assert any(p.message.startswith("slurm job ") for p in progress)


def deploy_order(sha: str, step: str = "s1") -> wpb.Deploy:
    return wpb.Deploy(
        deployment_id="d1",
        step_id=step,
        action_id="sleeper",
        action_version="1.0",
        action_kind="processor",
        artefact_key=f"artefacts/{sha}.tar.gz",
        artefact_sha256=sha,
        inputs=[wpb.IO(name="seconds", type="float")],
        outputs=[wpb.IO(name="slept", type="float")],
        resources=wpb.Resources(cpu=1, memory_bytes=256 * MIB),
    )


async def test_slurm_jobs_outlive_a_worker_restart_and_are_followed_again(
    slurm_worker: tuple[Container, FakeRunner, Any],
    fresh_bucket: str,
    wrapper_deps: Path,
) -> None:
    first, runner, s3 = slurm_worker
    artefact = build_artefact(SLEEPER, deps=wrapper_deps)
    sha = hashlib.sha256(artefact).hexdigest()
    s3.put_object(fresh_bucket, f"artefacts/{sha}.tar.gz", io.BytesIO(artefact), len(artefact))
    runner.send(deploy=deploy_order(sha))
    await runner.until(
        lambda: any(s == wpb.DEPLOYMENT_STATE_KIND_READY for s, _ in runner.states()), within=60
    )
    runner.send(
        execute=wpb.Execute(
            execution_id="e-restart",
            run_id="r1",
            deployment_id="d1",
            step_id="s1",
            inputs={"seconds": wpb.Value(float_value=6.0)},
            timeout_seconds=300,
        )
    )
    line = await runner.until(
        lambda: next((x.line for x in runner.logs("e-restart") if " RUNNING on " in x.line), None),
        within=60,
    )
    job_id = line.split("slurm job ")[1].split()[0]
    # The worker stops while the job runs: the job goes on, nothing is reported for it.
    await stop_worker(first, grace_seconds=0)
    cluster = SlurmCluster()
    assert (await cluster.statuses([job_id]))[job_id].state == "RUNNING"
    assert runner.result("e-restart") is None
    # The next worker of the site finds it again: running at Register, followed to its end
    # once the runner deployed its step again.
    second = await start_worker(first.settings(), runner)
    try:
        assert list(runner.registers[-1].running_execution_ids) == ["e-restart"]
        runner.send(deploy=deploy_order(sha))
        result = await runner.until(lambda: runner.result("e-restart"), within=120)
        assert result.status == wpb.EXECUTION_STATUS_COMPLETED, result.error
        assert result.outputs["slept"].float_value == 6.0
        assert any(x.line == "sleeping 6.0" for x in runner.logs("e-restart"))
        # The second process numbers its lines after the first one's: the runner, which keeps
        # the first line of each number, keeps them all, the job's end included.
        kept: dict[int, str] = {}
        for x in runner.logs("e-restart"):
            kept.setdefault(x.seq, x.line)
        assert any(f"slurm job {job_id} COMPLETED" in line for line in kept.values()), kept
        assert sum(f"slurm job {job_id} submitted" in line for line in kept.values()) == 1, kept
        assert sum(" RUNNING on " in line for line in kept.values()) == 1, kept
        assert (await cluster.statuses([job_id]))[job_id].state == "COMPLETED"
        backend = second.backend()
        assert isinstance(backend, SlurmBackend) and backend.jobs_submitted == 0
    finally:
        await stop_worker(second, grace_seconds=5)


async def test_slurm_a_job_nobody_follows_is_cancelled_at_start(rig: Rig) -> None:
    spec = rig.spec(SLEEPER, **SLEEPER_IO)
    await rig.backend.deploy(spec)
    events: list[ActionEvent] = []
    request = rig.request(spec, "e-stray", {"seconds": 300.0})  # no order: no job.json
    stream = rig.backend.run(spec.ref, request)

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    task = asyncio.create_task(consume())
    job_id = await rig.job_of(events)
    rig.backend.detach()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()
    assert (await rig.cluster.statuses([job_id]))[job_id].state in {"PENDING", "RUNNING"}
    again = SlurmBackend(
        cluster=SlurmCluster(),
        artefacts=ArtefactCache(rig.store, rig.shared),
        options=SlurmOptions(shared_dir=rig.shared, site_name=f"hpc-{rig.shared.name}"),
    )
    await again.start()
    try:
        assert again.detached() == ()
        assert await rig.until_state(job_id, "CANCELLED", within=30) == "CANCELLED"
        assert not any((rig.shared / "jobs").rglob("job.sh"))
    finally:
        await again.close()


def test_slurm_follow_record_read_back_or_started_afresh(tmp_path: Path) -> None:
    from ryax_worker.infrastructure.slurm.backend import _Follow

    _Follow(offsets=(10, 20, 30), logs=7, seen="RUNNING  node1").save(tmp_path)
    assert _Follow.load(tmp_path) == _Follow(offsets=(10, 20, 30), logs=7, seen="RUNNING  node1")
    for bad in (
        "{",
        '{"offsets": [1, 2], "logs": 1, "seen": ""}',
        '{"offsets": [1, 2, -3], "logs": 1, "seen": ""}',
        '{"offsets": [1, 2, 3], "logs": "x", "seen": ""}',
    ):
        (tmp_path / "follow.json").write_text(bad)
        assert _Follow.load(tmp_path) == _Follow(), bad
    (tmp_path / "follow.json").unlink()
    assert _Follow.load(tmp_path) == _Follow()


async def test_slurm_srun_in_a_custom_script_without_the_sandbox(
    slurm_conf: Path, shared_dir: Path, wrapper_deps: Path
) -> None:
    """srun starts its tasks through slurmd, outside any sandbox of the script: a custom script
    that uses srun (or mpirun) needs a site with RYAX_SANDBOX=none (docs/slurm.md), and works
    there: the tasks run in the allocation, in the execution's work directory."""
    del slurm_conf
    store = DictStore()
    backend = SlurmBackend(
        cluster=SlurmCluster(),
        artefacts=ArtefactCache(store, shared_dir),
        options=SlurmOptions(
            shared_dir=shared_dir, site_name=f"hpc-{shared_dir.name}", poll_seconds=0.3
        ),
    )
    await backend.start()
    rig = Rig(backend, store, shared_dir, wrapper_deps)
    try:
        script = (
            "srun --ntasks=2 bash -c 'echo \"task $SLURM_PROCID of $SLURM_NTASKS in $(basename "
            '$PWD)" > "task-$SLURM_PROCID.txt"\'\n'
            "cat task-*.txt\n"
            "export tasks=$(cat task-*.txt | wc -l)\n"
        )
        spec = rig.spec(
            SLEEPER,
            "srun",
            hpc={"ntasks": "2", "custom_script": script},
            inputs=(),
            outputs=(IOSpec(name="tasks", type="integer"),),
        )
        await backend.deploy(spec)
        events = await rig.run(spec, "e-srun", {})
        result = result_of(events)
        assert result.status is ActionStatus.COMPLETED, (result.error, log_lines(events))
        assert result.outputs["tasks"] == 2, log_lines(events)
        assert {"task 0 of 2 in work", "task 1 of 2 in work"} <= set(log_lines(events))
    finally:
        await backend.close()
