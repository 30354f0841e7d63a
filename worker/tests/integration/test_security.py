"""Security: hostile actions against the real worker, real bubblewrap sandboxes, real wrapper
processes and the real S3 server (the fake runner is a real gRPC server). Each hostile action is
a small real action built like the others of these tests.

What must hold: a file output that is a platform file (or a link to one) fails the step naming
the output, even when the action switches off the wrapper's own check; platform files cannot be
opened; the environment has no platform setting; fork bombs, memory hogs and CPU spinners are
bounded, fail the step with the reason, and the worker goes on."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import ryax_worker
from ryax_worker.domain.model import DeploymentId, StepId, StepRef
from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb

pytestmark = pytest.mark.integration

REPO = Path(ryax_worker.__file__).resolve().parents[2]
COMPLETED = wpb.EXECUTION_STATUS_COMPLETED
FAILED = wpb.EXECUTION_STATUS_FAILED
SECRET = "TOKEN-SIGNING-KEY-do-not-publish"

HOSTILE_OUTPUT = {
    "ryax_handler.py": """
        import os
        import sys

        def switch_off_the_wrappers_check(target):
            # User code runs in the wrapper's process: it can replace the wrapper's validation.
            runtime = sys.modules["ryax_action_wrapper.application.runtime"]
            io = sys.modules["ryax_action_wrapper.domain.io"]

            def forged(declarations, returned, *, work_dir, probe):
                found = io.LocalFile(path=target, name="report.txt", size=1)
                return io.ValidatedOutputs(sets=[{"report": found}], single=True)

            runtime.validate_outputs = forged

        def handle(request):
            mode, target = request["mode"], request["target"]
            if mode.startswith("link"):
                os.symlink(target, "innocent.txt")
                target = os.path.abspath("innocent.txt")
            if mode.endswith("forged"):
                switch_off_the_wrappers_check(target)
            return {"report": target}
    """,
}
HOSTILE_INPUTS = [wpb.IO(name="mode", type="string"), wpb.IO(name="target", type="string")]
HOSTILE_OUTPUTS = [wpb.IO(name="report", type="file")]

SNOOP = {
    "ryax_handler.py": """
        import json
        import os

        def attempt(path, write=False):
            try:
                if write:
                    with open(path, "w") as target:
                        target.write("x")
                else:
                    with open(path, "rb") as source:
                        source.read(1)
                return "ok"
            except OSError as error:
                return type(error).__name__

        def handle(request):
            paths = json.loads(request["paths"])
            return {
                "report": json.dumps(
                    {
                        "read": {path: attempt(path) for path in paths},
                        "write": {
                            path: attempt(path, write=True)
                            for path in ("/ryax/action/code/x", "/usr/x", "/etc/x", "/x")
                        },
                        "uid": [os.getuid(), os.geteuid(), os.getgid(), os.getgroups()],
                        "root": sorted(os.listdir("/")),
                        "environ": dict(os.environ),
                        "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
                    }
                )
            }
    """,
}
SNOOP_IO = (
    [wpb.IO(name="paths", type="string")],
    [wpb.IO(name="report", type="longstring")],
)

FORK_BOMB = {
    "ryax_handler.py": """
        import os

        def handle(request):
            while True:
                os.fork()
    """,
}
MEMORY_HOG = {
    "ryax_handler.py": """
        def handle(request):
            hog = []
            while True:
                hog.append(bytearray(64 * 1024 * 1024))
    """,
}
CPU_SPINNER = {
    "ryax_handler.py": """
        def handle(request):
            n = 0
            while True:
                n += 1
    """,
}
CPU_BOUND = {
    "ryax_handler.py": """
        import time

        def handle(request):
            wall, cpu = time.monotonic(), time.process_time()
            while time.monotonic() - wall < 1.5:
                pass
            return {"used": str(time.process_time() - cpu)}
    """,
}
HEALTHY = {
    "ryax_handler.py": """
        def handle(request):
            with open("ok.txt", "w") as out:
                out.write("fine")
            return {"report": "ok.txt"}
    """,
}


def text(value: str) -> wpb.Value:
    return wpb.Value(string_value=value)


async def run(worker: Any, execution_id: str, step_id: str = "s1", **inputs: str) -> Any:
    worker.execute(
        execution_id, {k: text(v) for k, v in inputs.items()}, step_id=step_id, timeout=60
    )
    return await worker.runner.until(lambda: worker.runner.result(execution_id), within=60)


def uploaded(worker: Any) -> list[str]:
    return [o.object_name for o in worker.store.list_objects(worker.bucket, recursive=True)]


@pytest.fixture
def platform_file(tmp_path: Path) -> Path:
    """A platform file outside any work directory, readable by everyone on the host."""
    folder = tmp_path / "platform" / ".dev"
    folder.mkdir(parents=True)
    secret = folder / "secret-key"
    secret.write_text(SECRET)
    secret.chmod(0o644)
    return secret


async def test_security_a_platform_file_as_a_file_output_fails_the_step_naming_it(
    worker: Any, platform_file: Path
) -> None:
    worker.deploy(worker.artefact(HOSTILE_OUTPUT), inputs=HOSTILE_INPUTS, outputs=HOSTILE_OUTPUTS)
    await worker.ready()
    cases = [
        # (mode, target, what the error says): the wrapper's check first, then the worker's
        # own, with the wrapper's switched off by the action.
        ("plain", str(platform_file), "expected a file at"),  # not even visible inside
        ("plain", "/etc/passwd", "is outside the execution's work directory"),
        ("link", "/etc/passwd", "innocent.txt is outside the execution's work directory"),
        ("forged", "/etc/passwd", "/etc/passwd is outside the execution's work directory"),
        ("forged", str(platform_file), "secret-key is outside the execution's work directory"),
        # A link valid on the host only: the worker resolves it there, and refuses.
        ("link-forged", str(platform_file), f"leads to {platform_file}"),
        ("link-forged", "/etc/passwd", "leads to /etc/passwd"),
    ]
    for n, (mode, target, reason) in enumerate(cases):
        result = await run(worker, f"e{n}", mode=mode, target=target)
        assert result.status == FAILED, (mode, target)
        assert result.error.startswith("output 'report': "), result.error
        assert reason in result.error, (mode, target, result.error)
        assert SECRET not in str(result)
    assert not [key for key in uploaded(worker) if key.startswith("runs/")]
    assert await asyncio.to_thread(platform_file.read_text) == SECRET

    # The same action publishes a file it made in its work directory.
    worker.deploy(worker.artefact(HEALTHY), step_id="s2", outputs=HOSTILE_OUTPUTS)
    await worker.ready("s2")
    result = await run(worker, "fine", step_id="s2")
    assert result.status == COMPLETED, result.error
    assert worker.read(result.outputs["report"].file.key) == b"fine"


async def snoop(worker: Any, paths: list[str]) -> dict[str, Any]:
    inputs, outputs = SNOOP_IO
    worker.deploy(worker.artefact(SNOOP), inputs=inputs, outputs=outputs)
    await worker.ready()
    result = await run(worker, "snoop", paths=json.dumps(paths))
    assert result.status == COMPLETED, result.error
    report: dict[str, Any] = json.loads(result.outputs["report"].string_value)
    return report


async def test_security_platform_files_cannot_be_opened(worker: Any, platform_file: Path) -> None:
    other_step = worker.cache_dir / "instances" / "d1" / "other-step" / "home"
    other_step.mkdir(parents=True)
    (other_step / "state.json").write_text("{}")
    paths = [
        str(platform_file),
        str(REPO / ".dev" / "secret-key"),
        str(REPO / "Makefile"),
        str(REPO / "worker" / "ryax_worker" / "settings.py"),
        str(REPO / ".venv" / "pyvenv.cfg"),
        str(other_step / "state.json"),
        str(worker.cache_dir / "artefacts"),
        "/etc/shadow",
        f"/proc/{os.getpid()}/environ",  # the worker's own process
        "/proc/1/environ",  # the sandbox's init (bwrap, root)
    ]
    report = await snoop(worker, paths)
    for path in paths:
        assert report["read"][path] in ("FileNotFoundError", "PermissionError"), path
    assert set(report["write"].values()) <= {"OSError", "PermissionError", "FileNotFoundError"}
    assert "ok" not in report["write"].values()
    uid, euid, gid, groups = report["uid"]
    settings = worker.container.settings()
    assert (uid, euid, gid) == (settings.sandbox_uid, settings.sandbox_uid, settings.sandbox_gid)
    assert uid != 0 and groups in ([], [gid])
    assert REPO.parts[1] not in report["root"] or REPO.parts[1] == "root"
    assert report["processes"] <= 3  # its own pid namespace: bwrap's init, the wrapper


async def test_security_the_environment_has_no_platform_setting(
    worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RYAX_SECRET_KEY", "sekrit-signing-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit-aws-key")
    monkeypatch.setenv("RYAX_S3_SECRET_KEY", "sekrit-s3-key")
    environ = (await snoop(worker, []))["environ"]
    assert not [name for name in environ if name.startswith("RYAX_")], environ
    assert not [value for value in environ.values() if "sekrit" in value], environ
    assert "AWS_SECRET_ACCESS_KEY" not in environ
    assert environ["HOME"] == "/ryax/home" and environ["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert environ["TMPDIR"].startswith("/ryax/executions/")  # the run's work directory
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "PYTHONUNBUFFERED"}
    allowed |= {"PYTHONPATH", "PWD", "SHLVL", "_"}  # set by run.sh and its shell
    assert set(environ) <= allowed, set(environ) - allowed


async def test_security_a_fork_bomb_is_bounded_and_fails_the_step(worker: Any) -> None:
    backend = worker.container.backend()
    limit = 64
    before = _processes_of(worker)  # other sandboxes of this machine's user (other tests)
    backend._options = replace(
        backend._options, sandbox=replace(backend._options.sandbox, max_processes=limit)
    )
    worker.deploy(worker.artefact(FORK_BOMB), outputs=[])
    await worker.ready()
    result = await run(worker, "bomb")
    assert result.status == FAILED
    assert f"process limit of {limit} reached" in result.error, result.error
    # The sandbox that ran it is gone with every process the bomb made; the worker goes on.
    ref = StepRef(DeploymentId("d1"), StepId("s1"))
    await worker.runner.until(lambda: backend.instance(ref).restarts == 1, within=30)
    await worker.runner.until(lambda: _processes_of(worker) <= before + 12, within=30)
    worker.deploy(worker.artefact(HEALTHY), step_id="s2", outputs=HOSTILE_OUTPUTS)
    await worker.ready("s2")
    assert (await run(worker, "after", step_id="s2")).status == COMPLETED


def _processes_of(worker: Any) -> int:
    """Processes and threads of the sandbox's user on this machine."""
    uid = worker.container.settings().sandbox_uid
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid:
            count += int(fields["Threads"])
    return count


async def test_security_a_memory_hog_fails_with_the_memory_reason(worker: Any) -> None:
    worker.deploy(
        worker.artefact(MEMORY_HOG),
        outputs=[],
        resources=wpb.Resources(memory_bytes=256 * 1024 * 1024),
    )
    await worker.ready()
    result = await run(worker, "hog")
    assert result.status == FAILED
    assert result.error.startswith("memory limit of 256 MiB exceeded"), result.error
    assert result.max_memory_bytes < 300 * 1024 * 1024
    worker.execute("again", {}, timeout=60)
    again = await worker.runner.until(lambda: worker.runner.result("again"), within=60)
    assert again.error.startswith("memory limit of 256 MiB exceeded")  # the process lived


async def test_security_a_cpu_spinner_past_its_time_fails_with_the_time_reason(
    worker: Any,
) -> None:
    worker.deploy(worker.artefact(CPU_SPINNER), outputs=[], resources=wpb.Resources(time_seconds=1))
    await worker.ready()
    # The runner's timeout for the step is longer: the worker's own limit stops it.
    result = await run(worker, "spin")
    assert result.status == FAILED
    assert result.error == "killed: CPU time limit of 1 s exceeded (resources.time)"
    # A fresh process takes the next execution.
    ref = StepRef(DeploymentId("d1"), StepId("s1"))
    backend = worker.container.backend()
    await worker.runner.until(lambda: backend.instance(ref).restarts == 1, within=30)


async def test_security_resources_cpu_is_a_quota_when_the_machine_has_cgroups(worker: Any) -> None:
    backend = worker.container.backend()
    if backend.sandbox.cgroups.startswith("rlimits"):
        pytest.skip(f"no cgroups here: {backend.sandbox.cgroups}")
    worker.deploy(
        worker.artefact(CPU_BOUND),
        outputs=[wpb.IO(name="used", type="string")],
        resources=wpb.Resources(cpu=0.2),
    )
    await worker.ready()
    result = await run(worker, "busy")
    assert result.status == COMPLETED, result.error
    used = float(result.outputs["used"].string_value)
    # 1.5 s of spinning on a fifth of a core: about 0.3 s of CPU (unlimited: up to 1.5 s).
    assert used < 0.6, used
    process = backend.instance(StepRef(DeploymentId("d1"), StepId("s1"))).process
    assert process._cgroup.throttled() > 0  # the quota held it back, not a busy machine
    # With a burst of as much as the quota, where the kernel has it (5.14 and later).
    cgroup = process._cgroup
    if cgroup.version == 2:
        burst = cgroup.folders["unified"] / "cpu.max.burst"
    else:
        burst = cgroup.folders["cpu"] / "cpu.cfs_burst_us"
    if burst.exists():
        assert burst.read_text().strip() == "20000"
