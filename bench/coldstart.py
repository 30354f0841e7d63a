"""Cold start of a step whose action process is not running, on the worker's local backend.

    sudo .venv/bin/python bench/coldstart.py [--runs 20] [--out .dev/bench/coldstart.json]

Runs in the platform's virtualenv (it uses ryax_worker) as root, with bubblewrap and the
sandbox a worker uses (RYAX_SANDBOX=bwrap), and no platform: a LocalBackend deploys a no-op
action built like the builder's artefacts (code/, wrapper/, deps/ = the wrapper's grpcio and
protobuf copied out of this venv, run.sh) and runs it directly, as the worker does on an
Execute order. The time measured is from the backend's run() call (the worker got the Execute
order and staged its inputs) to the handler's first line (`entered`, printed first thing
in handle()), for:

- warm: the process is running (the usual case within the retention time);
- cold, forked: its process was stopped (the retention policy); it is forked from the fork
  server into a new sandbox, then Init, then Run;
- cold, run.sh: the same without a fork server (RYAX_ACTION_FORK_SERVER=false): the
  interpreter starts and imports everything.

Then memory (RSS and PSS, bench/procinfo.py) of what the worker keeps for N deployed steps:
while they are warm, and once they all sleep (retention elapsed), with and without the fork
server. Prints one JSON document (also written to --out).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import site
import statistics
import sys
import tarfile
import tempfile
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import procinfo  # noqa: E402
from harness import percentile  # noqa: E402

HANDLER = """\
def handle(request):
    print("entered", flush=True)
    return {"out": request["text"]}
"""
WRAPPER_PACKAGE = REPO / "action-wrapper" / "ryax_action_wrapper"
WRAPPER_DEPS = ("grpc", "grpc_health", "google")


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "samples_ms": [round(s * 1000, 2) for s in samples],
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "p95_ms": round(percentile(samples, 95) * 1000, 2),
    }


def wrapper_deps(root: Path) -> Path:
    """The wrapper's runtime dependencies out of this venv, where the sandbox may read them."""
    target = root / "deps-layer"
    target.mkdir(mode=0o755)
    packages = Path(site.getsitepackages()[0])
    for name in WRAPPER_DEPS:
        shutil.copytree(
            packages / name, target / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for dist in packages.glob("*.dist-info"):
        if dist.name.lower().startswith(("grpcio", "protobuf")):
            shutil.copytree(dist, target / dist.name)
    return target


def unpack_artefact(cache: Path, deps: Path, sha: str) -> None:
    """A built no-op action, unpacked where the worker's artefact cache would have it."""
    interpreter = getattr(sys, "_base_executable", sys.executable)
    run_sh = textwrap.dedent(
        f"""\
        #!/bin/sh
        here="$(cd "$(dirname "$0")" && pwd)"
        PYTHONPATH="$here/wrapper:$here/deps:$here/code:{deps}"
        PYTHONNOUSERSITE=1
        export PYTHONPATH PYTHONNOUSERSITE
        exec {interpreter} -m ryax_action_wrapper "$@"
        """
    )
    target = cache / "artefacts" / sha
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:

        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))

        add("manifest.json", json.dumps({"python": "3.11", "wrapper_version": "bench"}).encode())
        add("run.sh", run_sh.encode(), 0o755)
        add("code/ryax_handler.py", HANDLER.encode())
        for path in sorted(WRAPPER_PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                relative = path.relative_to(WRAPPER_PACKAGE.parent).as_posix()
                add(f"wrapper/{relative}", path.read_bytes())
    buffer.seek(0)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=buffer) as archive:
        archive.extractall(target, filter="fully_trusted")
    (target / "deps").mkdir(mode=0o755, exist_ok=True)
    for folder, dirs, _ in os.walk(cache):
        os.chmod(folder, 0o755)
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
    (target / ".ryax-complete").write_text("")


def prepare(root: Path, cache: Path, sha: str) -> Path:
    root.chmod(0o755)
    deps = wrapper_deps(root)
    unpack_artefact(cache, deps, sha)
    return deps


async def local_backend(
    root: Path, cache: Path, sha: str, program: str, **process_options: Any
) -> Any:
    """A worker's LocalBackend, started, running the no-op action (artefact `sha`, unpacked in
    `cache`) in the sandbox a worker uses, with a fork server; SystemExit naming `program` when
    the sandbox does not work here."""
    from ryax_worker.domain.model import RestartPolicy
    from ryax_worker.infrastructure.local.artefacts import ArtefactCache
    from ryax_worker.infrastructure.local.backend import LocalBackend
    from ryax_worker.infrastructure.local.forkserver import ForkServers
    from ryax_worker.infrastructure.local.process import ProcessOptions
    from ryax_worker.infrastructure.local.sandbox import SandboxConfig, find_bwrap

    deps = await asyncio.to_thread(prepare, root, cache, sha)
    sandbox = SandboxConfig(
        mode="bwrap",
        bwrap=find_bwrap() or "bwrap",
        read_only_paths=(Path(sys.base_prefix), deps),
    )
    options = ProcessOptions(
        sandbox=sandbox, fork_servers=ForkServers(home=cache / "fork-servers"), **process_options
    )
    backend = LocalBackend(
        artefacts=ArtefactCache(None, cache),  # type: ignore[arg-type]  # never fetches
        instances_dir=cache / "instances",
        executions_dir=cache / "executions",
        options=options,
        policy=RestartPolicy(),
    )
    await backend.start()
    if backend.sandbox.problem:
        raise SystemExit(f"{program}: the sandbox does not work here: {backend.sandbox.problem}")
    return backend


def tree_memory(pids: list[int]) -> dict[str, Any]:
    snap = procinfo.snapshot({"actions": pids})
    return {
        "processes": snap["processes"],
        "rss_bytes": snap["rss_bytes"],
        "pss_bytes": snap["pss_bytes"],
        "commands": sorted({p["command"][:60] for g in snap["groups"] for p in g["processes"]}),
    }


async def measure(runs: int, steps: int) -> dict[str, Any]:
    from ryax_worker.application.ports import ActionLog, ActionRunRequest
    from ryax_worker.domain.model import (
        ActionKind,
        DeploymentId,
        DeployStep,
        IOSpec,
        StepId,
        StepRef,
        Values,
    )

    root = Path(tempfile.mkdtemp(prefix="ryax-coldstart-"))
    try:
        cache = root / "cache"
        sha = "b" * 64
        backend = await local_backend(root, cache, sha, "coldstart", stop_grace_seconds=5)
        options = backend._options
        sandbox = options.sandbox
        servers = options.fork_servers

        def spec(step: str) -> DeployStep:
            return DeployStep(
                order_seq=1,
                ref=StepRef(DeploymentId("bench"), StepId(step)),
                action_id="bench-noop",
                action_version="1.0",
                action_kind=ActionKind.PROCESSOR,
                artefact_key=f"artefacts/{sha}.tar.gz",
                artefact_sha256=sha,
                is_trigger=False,
                inputs=(IOSpec(name="text", type="string"),),
                outputs=(IOSpec(name="out", type="string"),),
            )

        counter = 0

        async def to_handler(step: str) -> float:
            nonlocal counter
            counter += 1
            work = cache / "executions" / "bench" / step / f"e{counter}" / "work"
            work.mkdir(parents=True)
            os.chown(work, sandbox.uid, sandbox.gid)
            inputs: Values = {"text": "x"}
            request = ActionRunRequest(execution_id=f"e{counter}", inputs=inputs, work_dir=work)
            started = time.perf_counter()
            entered = 0.0
            async for event in backend.run(StepRef(DeploymentId("bench"), StepId(step)), request):
                if isinstance(event, ActionLog) and event.line == "entered" and not entered:
                    entered = time.perf_counter()
            if not entered:
                raise SystemExit("coldstart: the handler's first line never came")
            return entered - started

        async def cold(step: str) -> float:
            instance = backend.instance(StepRef(DeploymentId("bench"), StepId(step)))
            assert instance is not None
            if not await instance.sleep():
                raise SystemExit(f"coldstart: step {step} would not sleep")
            return await to_handler(step)

        result: dict[str, Any] = {"runs": runs, "steps": steps}
        await backend.deploy(spec("forked"))
        await to_handler("forked")  # a first run: imports of the handler's own modules cached
        result["warm"] = summary([await to_handler("forked") for _ in range(runs)])
        result["cold_forked"] = summary([await cold("forked") for _ in range(runs)])
        backend._options = replace(options, fork_servers=None)
        await backend.deploy(spec("runsh"))
        await to_handler("runsh")
        result["cold_runsh"] = summary([await cold("runsh") for _ in range(runs)])
        await backend.undeploy(StepRef(DeploymentId("bench"), StepId("runsh")))
        timed = backend.instance(StepRef(DeploymentId("bench"), StepId("forked")))
        assert timed is not None
        await timed.sleep()  # out of the memory figures

        # Memory: N steps warm, then asleep; forked (one fork server) or each from run.sh.
        for mode, fork in (("forked", True), ("runsh", False)):
            backend._options = replace(options, fork_servers=servers if fork else None)
            names = [f"{mode}-{n}" for n in range(steps)]
            for name in names:
                await backend.deploy(spec(name))
                await to_handler(name)
            me = os.getpid()
            children = [p for p in procinfo.all_pids() if procinfo.parent_of(p) == me]
            result[f"memory_warm_{mode}"] = tree_memory(children)
            for name in names:
                instance = backend.instance(StepRef(DeploymentId("bench"), StepId(name)))
                assert instance is not None
                await instance.sleep()
            children = [p for p in procinfo.all_pids() if procinfo.parent_of(p) == me]
            result[f"memory_asleep_{mode}"] = tree_memory(children)
            for name in names:
                await backend.undeploy(StepRef(DeploymentId("bench"), StepId(name)))
        await backend.undeploy(StepRef(DeploymentId("bench"), StepId("forked")))
        # The last mode set none: the fork server is stopped with the backend, not left running
        # for the rest of the bench (it outlived this loop and warned at exit).
        backend._options = replace(backend._options, fork_servers=servers)
        await backend.close()
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8, help="steps deployed for the memory part")
    parser.add_argument("--out", type=Path, default=REPO / ".dev" / "bench" / "coldstart.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print(
            "coldstart: run as root (the worker's sandbox drops actions to nobody)", file=sys.stderr
        )
        return 1
    result = asyncio.run(measure(args.runs, args.steps))
    text = json.dumps(result, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
