"""Benchmarks of Ryax against Prefect 3 and Celery on this machine: `make bench`.

    python bench/run.py [--runs 20] [--only chain,throughput,deploy,build,memory,coldstart]
                        [--systems ryax,prefect,celery] [--rounds 3] [--out .dev/bench]

Each system runs as its own process: Ryax through the platform's gateway (bench/ryax_bench.py in
.venv, against the platform `make demo` started), each peer in a virtualenv of its own that this
script creates and keeps up to date (.dev/bench/venv-<peer>, from bench/peers/requirements-*.txt).
Ryax runs first: when the platform is not reachable, nothing else is spent. The throughput levels
of Ryax and Celery are measured last, in `--rounds` rounds of the two in turn (the median round of
each level kept): a change in the machine's speed then moves both. Then the figures are
summarised (median, p95...), set against each other (ratio Ryax / peer, only between systems
measured in this run), written to <out>/results.json (raw samples included), and bench/report.py,
in .dev/bench/venv-report (matplotlib), prints the table, writes <out>/bench.txt and draws
<out>/bench.png.

Any system that cannot run stops everything with a non-zero status and a message naming the
system and the command; nothing is skipped silently. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import harness  # noqa: E402
from harness import percentile  # noqa: E402

SYSTEMS = ("ryax", "prefect", "celery")
PEERS = ("prefect", "celery")
SYSTEM_TIMEOUT = 4 * 3600.0
PYTHON_WANTED = "python3.11"
SCHEMA = 1
MIB = 2.0**20


@dataclass(frozen=True)
class Venv:
    name: str
    requirements: Path

    def folder(self, root: Path) -> Path:
        return root / f"venv-{self.name}"

    def python(self, root: Path) -> Path:
        return self.folder(root) / "bin" / "python"


VENVS = {
    "prefect": Venv("prefect", BENCH / "peers" / "requirements-prefect.txt"),
    "celery": Venv("celery", BENCH / "peers" / "requirements-celery.txt"),
    "report": Venv("report", BENCH / "requirements-report.txt"),
}
SCRIPTS = {
    "ryax": BENCH / "ryax_bench.py",
    "prefect": BENCH / "peers" / "prefect_chain.py",
    "celery": BENCH / "peers" / "celery_chain.py",
}


def say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- virtualenvs


def uv_command() -> list[str] | None:
    """uv as a module of python3 (the way dev/ensure-venv.sh uses it), else on PATH."""
    probe = subprocess.run(
        ["python3", "-m", "uv", "--version"], capture_output=True, timeout=60, check=False
    )
    if probe.returncode == 0:
        return ["python3", "-m", "uv"]
    found = shutil.which("uv")
    return [found] if found else None


def checked(what: str, command: Sequence[str], timeout: float = 1800) -> None:
    say(f"$ {shlex.join(command)}")
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise harness.BenchFailure(f"{what}: command failed: {shlex.join(command)}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-3000:]
        raise harness.BenchFailure(
            f"{what}: command failed (exit {done.returncode}): {shlex.join(command)}\n{output}"
        )


def ensure_venv(venv: Venv, root: Path) -> Path:
    """The venv with exactly its requirements file installed (a stamp records its hash)."""
    folder = venv.folder(root)
    python = venv.python(root)
    digest = hashlib.sha256(venv.requirements.read_bytes()).hexdigest()
    stamp = folder / ".bench-requirements.sha256"
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == digest:
        return python
    what = f"{venv.name} (virtualenv {folder})"
    say(f"setting up {what} from {venv.requirements.relative_to(REPO)}")
    uv = uv_command()
    interpreter = shutil.which(PYTHON_WANTED) or sys.executable
    if uv is not None:
        if not python.exists():
            checked(what, [*uv, "venv", "-q", "--python", interpreter, str(folder)])
        checked(
            what,
            [*uv, "pip", "install", "-q", "--python", str(python), "-r", str(venv.requirements)],
        )
    else:
        if not python.exists():
            checked(what, [interpreter, "-m", "venv", str(folder)])
        checked(what, [str(python), "-m", "pip", "install", "-q", "-r", str(venv.requirements)])
    stamp.write_text(digest + "\n")
    return python


def frozen(python: Path) -> list[str]:
    """`pip freeze` of a venv, for the record (what exactly was measured)."""
    uv = uv_command()
    command = (
        [*uv, "pip", "freeze", "--python", str(python)]
        if uv
        else [str(python), "-m", "pip", "freeze"]
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    return [line for line in done.stdout.splitlines() if line and not line.startswith("#")]


# --------------------------------------------------------------------------- running a system


def run_system(
    system: str, python: Path, args: argparse.Namespace, logs: Path, only: str | None = None
) -> dict[str, Any]:
    """Run one system's script (the benchmarks `only` names, by default those asked for); its
    progress is echoed, its JSON returned. A failure names the system and the command, with
    the script's own message."""
    command = [
        str(python),
        str(SCRIPTS[system]),
        "--only",
        only or args.only,
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--clients",
        args.clients,
        "--max-requests",
        str(args.max_requests),
        "--max-seconds",
        str(args.max_seconds),
        "--logs",
        str(logs),
    ]
    if system == "ryax":
        command += ["--deploy-runs", str(args.deploy_runs)]
        command += ["--history-runs", str(args.history_runs)]
    say(f"\n== {system}: $ {shlex.join(command)}")
    if not python.exists():
        raise harness.BenchFailure(
            f"{system}: interpreter {python} does not exist (for Ryax: `make venv` creates .venv)"
        )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    errors: list[str] = []
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=stdout,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )

        def echo() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
                errors.append(line.rstrip("\n"))

        echoing = threading.Thread(target=echo, daemon=True)
        echoing.start()
        try:
            proc.wait(timeout=SYSTEM_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise harness.BenchFailure(
                f"{system}: no result after {SYSTEM_TIMEOUT:.0f} s: {shlex.join(command)}"
            ) from None
        echoing.join(timeout=10)
        stdout.seek(0)
        out = stdout.read()
    if proc.returncode != 0:
        message = next(
            (line for line in reversed(errors) if line.startswith(f"{system}:")),
            "\n".join(errors[-20:]),
        )
        raise harness.BenchFailure(
            f"{system} cannot run: `{shlex.join(command)}` exited {proc.returncode}\n{message}"
        )
    lines = [line for line in out.splitlines() if line.strip()]
    try:
        document: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError) as exc:
        raise harness.BenchFailure(
            f"{system}: `{shlex.join(command)}` printed no JSON result: {out[-500:]!r}"
        ) from exc
    return document


#: The systems whose throughput levels are measured in alternating rounds (`--rounds`): those
#: that make hundreds of runs a second, where a minute's change in the machine's speed (this VM
#: has seen the same load take twice the CPU from one quarter of an hour to the next) would
#: otherwise move their ratio. Prefect (a few runs a second, its server started in 25 s) is
#: measured once, with its other benchmarks.
ALTERNATED = ("ryax", "celery")


def without(only: str, benchmark: str) -> str:
    """`only` without `benchmark` (the benchmarks, comma-separated)."""
    return ",".join(b for b in only.split(",") if b.strip() and b.strip() != benchmark)


def round_order(systems: Sequence[str], index: int) -> list[str]:
    """The systems in round `index`: in turn first, so that neither is always measured later."""
    return list(systems) if index % 2 == 0 else list(reversed(systems))


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's throughput from its rounds: per level (clients), the round of median rate
    (the lower middle for an even count) with its latencies; its failed requests are those of
    every round, and the rate of each round is kept (`round_rates`)."""
    by_clients: dict[int, list[dict[str, Any]]] = {}
    for doc in rounds:
        for level in doc.get("levels", []):
            by_clients.setdefault(int(level["clients"]), []).append(level)

    def rate(level: dict[str, Any]) -> float:
        return float(level["ok"]) / level["elapsed_s"] if level["elapsed_s"] > 0 else 0.0

    levels = []
    for measured in by_clients.values():
        ordered = sorted(measured, key=rate)
        chosen = dict(ordered[(len(ordered) - 1) // 2])
        chosen["errors"] = sum(int(level["errors"]) for level in measured)
        chosen["error_samples"] = sorted(
            {e for level in measured for e in level.get("error_samples", [])}
        )[:5]
        chosen["round_rates"] = [rate(level) for level in measured]
        levels.append(chosen)
    merged = {k: v for k, v in rounds[0].items() if k != "levels"} if rounds else {}
    merged["levels"] = levels
    merged["rounds"] = len(rounds)
    return merged


# --------------------------------------------------------------------------- statistics


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


@dataclass(frozen=True)
class Spec:
    """One row of the table: what is measured, in which unit, which way is better."""

    key: str
    benchmark: str
    label: str
    unit: str
    better: str = "lower"  # or "higher"
    ratio: bool = True  # compared with the peers (counts and Ryax-only details are not)


@dataclass
class Figure:
    spec: Spec
    values: dict[str, float]

    def to_json(self, systems: Sequence[str]) -> dict[str, Any]:
        ratios: dict[str, float] = {}
        ryax = self.values.get("ryax")
        if self.spec.ratio and ryax is not None and math.isfinite(ryax):
            for peer in PEERS:
                value = self.values.get(peer)
                if peer in systems and value is not None and math.isfinite(value) and value > 0:
                    ratios[peer] = ryax / value
        return {
            "key": self.spec.key,
            "benchmark": self.spec.benchmark,
            "label": self.spec.label,
            "unit": self.spec.unit,
            "better": self.spec.better,
            "values": {k: v for k, v in self.values.items() if math.isfinite(v)},
            "ratios": ratios,
        }


def figures(systems: dict[str, dict[str, Any]]) -> list[Figure]:
    """Every figure of every system, one row each, values in the row's unit; rows in the
    order they are first met."""
    rows: dict[str, Figure] = {}

    def put(spec: Spec, system: str, value: float) -> None:
        rows.setdefault(spec.key, Figure(spec, {})).values[system] = value

    for system, doc in systems.items():
        chain = doc.get("chain")
        if chain:
            n = int(chain["steps"])
            long_runs, short_runs = chain["samples_s"], chain["chain1_samples_s"]
            put(Spec("chain.median", "chain", f"chain-{n} median", "s"), system, median(long_runs))
            put(
                Spec("chain.p95", "chain", f"chain-{n} p95", "s"), system, percentile(long_runs, 95)
            )
            put(Spec("chain1.median", "chain", "chain-1 median", "s"), system, median(short_runs))
            # Per-step overhead: the slope between chain-1 and chain-N, fixed costs removed.
            slope = (median(long_runs) - median(short_runs)) / (n - 1) if n > 1 else math.nan
            put(Spec("chain.per_step", "chain", "per-step overhead", "ms"), system, slope * 1000)
            # In-run: the system's own view of a run (Ryax: the runner's run duration; Prefect:
            # the flow body), without what a call costs around it.
            inrun, inrun1 = chain.get("inrun_samples_s") or [], chain.get("chain1_inrun_samples_s")
            if inrun:
                label = f"chain-{n} median, in-run"
                put(Spec("chain.inrun_median", "chain", label, "s"), system, median(inrun))
            if inrun and inrun1 and n > 1:
                inrun_slope = (median(inrun) - median(inrun1)) / (n - 1)
                label = "per-step overhead, in-run"
                put(Spec("chain.inrun_per_step", "chain", label, "ms"), system, inrun_slope * 1000)
        for level in (doc.get("throughput") or {}).get("levels", []):
            c = level["clients"]
            latencies = level["latencies_s"]
            rate = level["ok"] / level["elapsed_s"] if level["elapsed_s"] > 0 else math.nan
            tp = "throughput"
            put(Spec(f"tp.{c}.rate", tp, f"runs/s, {c} clients", "runs/s", "higher"), system, rate)
            p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
            put(Spec(f"tp.{c}.p50", tp, f"p50, {c} clients", "ms"), system, p50)
            put(Spec(f"tp.{c}.p99", tp, f"p99, {c} clients", "ms"), system, p99)
            errors = Spec(f"tp.{c}.errors", tp, f"failed requests, {c} clients", "", ratio=False)
            put(errors, system, float(level["errors"]))
            if level.get("context_switches") and level["ok"]:
                label = f"context switches per run (machine), {c} clients"
                switches = Spec(f"tp.{c}.switches", tp, label, "")
                put(switches, system, level["context_switches"] / level["ok"])
            if level.get("stolen") is not None:
                label = f"CPU stolen by the hypervisor, {c} clients"
                stolen = Spec(f"tp.{c}.stolen", tp, label, "%", ratio=False)
                put(stolen, system, 100 * float(level["stolen"]))
        deploy = doc.get("deploy")
        if deploy:
            label = f"cold deploy, {deploy['actions']} actions, median"
            put(Spec("deploy.median", "deploy", label, "s"), system, median(deploy["samples_s"]))
        build = doc.get("build")
        if build:
            for key, label, field in (
                ("unchanged", "rebuild of an unchanged action", "unchanged_s"),
                ("new", "build of a new action, 1 dependency", "new_with_dependency_s"),
                ("new_store", "... until in the studio's store", "new_in_store_s"),
            ):
                put(Spec(f"build.{key}", "build", label, "s"), system, float(build[field]))
        mem = doc.get("memory")
        if mem:
            rss, pss = mem["rss_bytes"] / MIB, mem["pss_bytes"] / MIB
            put(Spec("mem.rss", "memory", "idle memory, RSS sum", "MiB"), system, rss)
            put(Spec("mem.pss", "memory", "idle memory, PSS sum", "MiB"), system, pss)
            # Without the processes of deployed actions (Ryax's worker children): the services
            # alone; the peers have no such processes, so their value is the same as above.
            alone = mem.get("services_rss_bytes", mem["rss_bytes"]) / MIB
            label = "idle memory, services only, RSS"
            put(Spec("mem.services_rss", "memory", label, "MiB"), system, alone)
            count = float(mem["processes"])
            spec = Spec("mem.processes", "memory", "processes", "", "-", ratio=False)
            put(spec, system, count)
        cold = doc.get("coldstart")
        if cold:
            for key, label in (
                ("warm", "warm step, run to handler, median"),
                ("cold_forked", "cold start (fork server), median"),
                ("cold_runsh", "cold start (run.sh), median"),
            ):
                spec = Spec(f"cold.{key}", "coldstart", label, "ms", ratio=False)
                put(spec, system, float(cold[key]["median_ms"]))
            for key, label in (
                ("cold_forked", "cold start (fork server), p95"),
                ("cold_runsh", "cold start (run.sh), p95"),
            ):
                spec = Spec(f"cold.{key}.p95", "coldstart", label, "ms", ratio=False)
                put(spec, system, float(cold[key]["p95_ms"]))
            steps = cold["steps"]
            for key, label in (
                ("memory_warm_forked", f"{steps} steps warm (forked), PSS"),
                ("memory_warm_runsh", f"{steps} steps warm (run.sh), PSS"),
                ("memory_asleep_forked", f"{steps} steps asleep, PSS"),
            ):
                spec = Spec(f"cold.{key}", "coldstart", label, "MiB", ratio=False)
                put(spec, system, cold[key]["pss_bytes"] / MIB)
        history = doc.get("runs100k")
        if history:
            h, stored = "runs100k", f"{history['runs'] // 1000}k runs"
            for key, label, samples in (
                ("before", "one-step run, before", history["before_s"]),
                (
                    "ingest",
                    f"one-step run, while {stored} are ingested",
                    history["during_ingest_s"],
                ),
                ("after", f"one-step run, {stored} stored", history.get("after_s") or []),
                (
                    "retention",
                    "one-step run, while retention deletes",
                    history.get("during_retention_s") or [],
                ),
                ("list", f"run list, first page, {stored} stored", history["list_first_page_s"]),
                ("workflow", "run list, by workflow", history["list_by_workflow_s"]),
                ("paged", "run list, next pages (cursor)", history["list_paged_s"]),
                ("detail", "run detail", history["detail_s"]),
            ):
                if not samples:
                    continue
                for q in (50, 99):
                    spec = Spec(f"{h}.{key}.p{q}", h, f"{label}, p{q}", "ms", ratio=False)
                    put(spec, system, percentile(samples, q) * 1000)
            put(
                Spec(f"{h}.ingest_s", h, f"ingest of {stored}", "s", ratio=False),
                system,
                float(history["ingest_s"]),
            )
            rate = float((history.get("retention") or {}).get("runs_per_second", math.nan))
            spec = Spec(
                f"{h}.retention_rate",
                h,
                "retention: runs deleted/s",
                "runs/s",
                "higher",
                ratio=False,
            )
            put(spec, system, rate)
        loaded = doc.get("memory_loaded")
        if loaded:
            label = "memory, bench workflows deployed, RSS sum"
            spec = Spec("mem.loaded_rss", "memory", label, "MiB", ratio=False)
            put(spec, system, loaded["rss_bytes"] / MIB)
    return list(rows.values())


# --------------------------------------------------------------------------- environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def rabbitmq_version() -> str:
    try:
        out = harness.run_command("rabbitmq", ["rabbitmqctl", "-q", "version"], timeout=60)
    except harness.BenchFailure as exc:
        return f"unknown ({str(exc).splitlines()[0]})"
    return out.strip().splitlines()[-1] if out.strip() else "unknown"


def environment(
    systems: dict[str, dict[str, Any]], packages: dict[str, list[str]]
) -> dict[str, Any]:
    versions: dict[str, str] = {"rabbitmq": rabbitmq_version()}
    for system, doc in systems.items():
        for name, value in (doc.get("versions") or {}).items():
            versions[name if name != "python" else f"python ({system})"] = str(value)
    return {
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 0,
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": memory_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": versions,
        "packages": packages,
    }


# --------------------------------------------------------------------------- main


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20, help="measured runs of each chain (>= 20)")
    p.add_argument("--warmup", type=int, default=2, help="discarded runs before measuring")
    p.add_argument(
        "--only",
        default=",".join(harness.BENCHMARKS),
        help=f"benchmarks, comma-separated: {','.join(harness.BENCHMARKS)}",
    )
    p.add_argument("--systems", default=",".join(SYSTEMS), help="ryax,prefect,celery")
    p.add_argument("--out", type=Path, default=REPO / ".dev" / "bench", help="output folder")
    p.add_argument("--steps", type=int, default=40, help="length of the long chain")
    p.add_argument("--clients", default="1,8,32", help="throughput: concurrent clients")
    p.add_argument("--max-requests", type=int, default=4000, help="throughput: per level")
    p.add_argument("--max-seconds", type=float, default=30.0, help="throughput: per level")
    p.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="throughput: rounds of Ryax and Celery in turn, the median round of each level kept",
    )
    p.add_argument("--deploy-runs", type=int, default=3, help="cold deploys measured")
    p.add_argument(
        "--history-runs", type=int, default=100_000, help="runs100k: runs stored (Ryax only)"
    )
    p.add_argument("--no-chart", action="store_true", help="table and JSON only (no venv-report)")
    args = p.parse_args(argv)
    harness.selected(args.only)
    harness.clients_of(args.clients)
    wanted = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SYSTEMS]
    if unknown or not wanted:
        p.error(f"--systems: expected some of {','.join(SYSTEMS)}, got {args.systems!r}")
    args.system_list = [s for s in SYSTEMS if s in wanted]
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    if args.runs < 1 or args.steps < 2:
        p.error("--runs must be >= 1 and --steps >= 2 (the per-step overhead needs 2 lengths)")
    if args.runs < 20:
        say(f"note: --runs {args.runs} is below the 20 runs the published figures use")
    return args


def main(argv: Sequence[str]) -> int:
    args = arguments(argv)
    out: Path = args.out.resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    systems: dict[str, dict[str, Any]] = {}
    packages: dict[str, list[str]] = {}
    # What fails fast first: the platform not running, a peer that cannot be installed. Then Ryax
    # (the platform otherwise idle), then the peers.
    if "ryax" in args.system_list and harness.selected(args.only) - {"coldstart"}:
        harness.check_reachable(harness.gateway_url())  # (coldstart needs no platform)
    pythons: dict[str, Path] = {"ryax": REPO / ".venv" / "bin" / "python"}
    for system in args.system_list:
        if system in PEERS:
            pythons[system] = ensure_venv(VENVS[system], out)
            packages[system] = frozen(pythons[system])
    report_python = None if args.no_chart else ensure_venv(VENVS["report"], out)
    wanted = harness.selected(args.only)
    alternated = [s for s in ALTERNATED if s in args.system_list]
    alternate = "throughput" in wanted and args.rounds > 1 and len(alternated) > 1
    try:
        for system in args.system_list:
            only = args.only
            if alternate and system in alternated:
                only = without(args.only, "throughput")
            if only:
                systems[system] = run_system(system, pythons[system], args, logs, only)
            else:
                systems[system] = {"system": system}
        if alternate:
            rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in alternated}
            for index in range(args.rounds):
                for system in round_order(alternated, index):
                    say(f"\n== throughput, round {index + 1} of {args.rounds}: {system}")
                    doc = run_system(system, pythons[system], args, logs, "throughput")
                    rounds[system].append(doc["throughput"])
                    for key in ("versions", "notes", "setup"):
                        systems[system].setdefault(key, doc.get(key))
            for system, measured in rounds.items():
                systems[system]["throughput"] = median_round(measured)
    except harness.BenchFailure:
        if systems:
            partial = out / "partial-results.json"
            partial.write_text(json.dumps({"systems": systems}, indent=1) + "\n")
            say(f"what was measured before the failure: {partial}")
        raise
    rows = [figure.to_json(args.system_list) for figure in figures(systems)]
    results = {
        "schema": SCHEMA,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/run.py", *argv]),
        "options": {
            "runs": args.runs,
            "warmup": args.warmup,
            "steps": args.steps,
            "only": args.only,
            "systems": args.system_list,
            "clients": harness.clients_of(args.clients),
            "max_requests": args.max_requests,
            "max_seconds": args.max_seconds,
            "rounds": args.rounds,
            "deploy_runs": args.deploy_runs,
        },
        "environment": environment(systems, packages),
        "figures": rows,
        "systems": systems,
    }
    target = out / "results.json"
    target.write_text(json.dumps(results, indent=1) + "\n")
    history = out / "history"
    history.mkdir(exist_ok=True)
    shutil.copyfile(target, history / f"results-{started.strftime('%Y%m%dT%H%M%SZ')}.json")
    report = [str(BENCH / "report.py"), str(target), "--text", str(out / "bench.txt")]
    if report_python is None:
        command = [sys.executable, *report]
    else:
        command = [str(report_python), *report, "--png", str(out / "bench.png")]
    say(f"\n$ {shlex.join(command)}")
    done = subprocess.run(command, cwd=REPO, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise harness.BenchFailure(
            f"report: command failed (exit {done.returncode}): {shlex.join(command)}"
        )
    say(f"results: {target}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except harness.BenchFailure as failure:
        print(f"bench: {failure}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
