"""The `slurm` site backend: every execution is a Slurm batch job that runs the action wrapper
once (`run.sh --once`), in the same bubblewrap sandbox as the `local` backend, on a directory
the worker (on a login node) and the compute nodes share (RYAX_SLURM_SHARED_DIR):

  <shared>/artefacts/<sha256>/                       the unpacked artefact (read-only)
  <shared>/executions/<deployment>/<step>/<id>/      inputs/ and work/ (the worker's staging)
  <shared>/jobs/<deployment>/<step>/<id>/            job.sh, job.out, job.err, home/ (request,
                                                     events, result), tmp/

Deploy fetches the artefact, reads the step's HPC add-on (the action's `addons.hpc`, then the
step's), picks the partition (hpc.partition, else the runner's node pool, else the default),
checks the resources against what `sinfo` says of it and asks `sbatch --test-only`: an unknown
partition or impossible resources fail the deploy with the reason. Nothing runs until an
execution comes.

An execution writes its request (InitRequest + RunRequest as JSON), submits `job.sh`, and
follows the job: `home/events.jsonl` (the wrapper's replies as they happen) and the job's
stdout/stderr files stream back as the step's log; its state comes from squeue, then sacct
(JobWatcher: one squeue call for every job of the worker at each poll). The job id is in the
step's log ("ryax: slurm job 42 submitted ...") and in its progress message. At the end:
COMPLETED or FAILED take the wrapper's result file; TIMEOUT fails "time limit: ..."; NODE_FAIL,
PREEMPTED, BOOT_FAIL and a job neither squeue nor sacct knows any more end LOST (the runner runs
the execution again); a job pending for a reason it can never leave (PartitionTimeLimit...) is
cancelled and fails. Closing the run early (cancel, timeout, shutdown) runs `scancel`.

A step with `hpc.custom_script` runs that script (bash, in the sandbox, in the run's work
directory) instead of the action's handler: inputs are environment variables, outputs the
variables it exports (published Ryax's convention).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import shutil
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from ryax_kit.safe_yaml import YamlError, load_yaml_python

from ...application.ports import (
    ActionEvent,
    ActionLog,
    ActionProgress,
    ActionResult,
    ActionRunRequest,
    ActionStarted,
    ActionStatus,
    DetachedExecution,
    StepListener,
)
from ...domain.errors import ActionUnavailable, DeploymentFailed, OutputRefused
from ...domain.model import (
    DeploymentId,
    DeployStep,
    ExecuteStep,
    ExecutionId,
    FileRef,
    JsonText,
    LogStream,
    NodePool,
    RunId,
    StepId,
    StepRef,
    Value,
    Values,
    step_dir_parts,
)
from ..grpc.mappers import init_request_to_proto, run_reply_from_proto, run_request_to_proto
from ..local.artefacts import ArtefactCache
from ..local.sandbox import (
    SANDBOX_PATH,
    Layout,
    Limits,
    SandboxConfig,
    SandboxState,
    command,
    environment,
    probe,
)
from ..proto import action_service_pb2 as apb
from .cluster import (
    IMPOSSIBLE_PENDING_REASONS,
    LOST_STATES,
    JobStatus,
    Partition,
    SlurmCluster,
    SlurmError,
)
from .hpc import HpcParams, InvalidHpc, JobRequest, job_request, parse_hpc

log = logging.getLogger(__name__)
#: Exit code of job.sh when the node cannot run the job at all (reason in `ryax-error`).
FATAL_EXIT = 97
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class SlurmOptions:
    shared_dir: Path
    site_name: str
    #: How often job states are asked (one squeue for every job) and output files read.
    poll_seconds: float = 2.0
    #: Options added to every sbatch (RYAX_SLURM_SBATCH_OPTIONS), e.g. --account=...
    sbatch_options: tuple[str, ...] = ()
    #: Partitions offered as node pools (RYAX_SLURM_PARTITIONS); empty = every partition up.
    partitions: tuple[str, ...] = ()
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    wrapper_log_level: str = "warning"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: After the job ended, how long its result file may take to show on the shared directory.
    result_grace_seconds: float = 15.0

    @property
    def job_prefix(self) -> str:
        return f"ryax.{self.site_name}."


@dataclass(eq=False, kw_only=True)
class SlurmStep:
    spec: DeployStep
    artefact_dir: Path
    params: HpcParams
    request: JobRequest
    jobs: set[str] = field(default_factory=set)


class _NullListener:
    def step_down(self, ref: StepRef, reason: str, restarting: bool) -> None:
        del ref, reason, restarting

    def step_up(self, ref: StepRef) -> None:
        del ref

    def step_log(self, ref: StepRef, stream: LogStream, line: str) -> None:
        del ref, stream, line


# -- job states ---------------------------------------------------------------------------------


class JobWatcher:
    """The states of the worker's jobs, asked with one squeue (then sacct) call per poll for all
    of them. A job neither knows twice in a row is UNKNOWN."""

    def __init__(self, cluster: SlurmCluster, interval: float) -> None:
        self._cluster = cluster
        self._interval = interval
        self._states: dict[str, JobStatus | None] = {}
        self._unseen: dict[str, int] = {}
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.problem = ""

    def watch(self, job_id: str) -> None:
        self._states[job_id] = None
        self._unseen[job_id] = 0
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="slurm job states")

    def forget(self, job_id: str) -> None:
        self._states.pop(job_id, None)
        self._unseen.pop(job_id, None)

    def state(self, job_id: str) -> JobStatus | None:
        return self._states.get(job_id)

    async def changed(self, within: float) -> None:
        """Wait for the next poll (at most `within` seconds)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), within)

    async def _poll(self) -> None:
        while self._states:
            ids = list(self._states)
            try:
                found = await self._cluster.statuses(ids)
                self.problem = ""
            except SlurmError as error:
                if self.problem != str(error):
                    log.warning("cannot read slurm job states", extra={"reason": str(error)})
                self.problem = str(error)
                await asyncio.sleep(self._interval)
                continue
            for job_id in ids:
                if job_id not in self._states:
                    continue
                status = found.get(job_id)
                if status is None:
                    self._unseen[job_id] = self._unseen.get(job_id, 0) + 1
                    if self._unseen[job_id] >= 2:
                        status = JobStatus(job_id=job_id, state="UNKNOWN")
                else:
                    self._unseen[job_id] = 0
                if status is not None:
                    self._states[job_id] = status
            async with self._changed:
                self._changed.notify_all()
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


# -- files the job writes -----------------------------------------------------------------------


class _Tail:
    """New complete lines of a file another host appends to."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self._offset = offset
        self._pending = b""

    @property
    def read_up_to(self) -> int:
        """Where the next complete line starts (a partial line is read again)."""
        return self._offset - len(self._pending)

    def lines(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except OSError:
            data = b""
        self._offset += len(data)
        self._pending += data
        *complete, self._pending = self._pending.split(b"\n")
        if final and self._pending:
            complete.append(self._pending)
            self._pending = b""
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in complete]


@dataclass
class _Follow:
    """How far a job's output was followed, kept in its folder (`follow.json`) so the next
    process of the worker goes on from there: its log lines keep their numbers (the runner
    keeps one line per number) and no line is shown twice but those of the last poll."""

    offsets: tuple[int, int, int] = (0, 0, 0)
    #: Log lines yielded so far (the execution's log numbering).
    logs: int = 0
    #: The last job state shown.
    seen: str = ""

    def save(self, job_dir: Path) -> None:
        temporary = job_dir / (FOLLOW + ".tmp")
        data = {"offsets": list(self.offsets), "logs": self.logs, "seen": self.seen}
        try:
            temporary.write_text(json.dumps(data), encoding="utf-8")
            temporary.replace(job_dir / FOLLOW)
        except OSError as error:
            log.warning(
                "cannot record how far a slurm job was followed", extra={"reason": str(error)}
            )

    @classmethod
    def load(cls, job_dir: Path) -> _Follow:
        """What an earlier process recorded; from the start when nothing readable is there."""
        try:
            data = json.loads((job_dir / FOLLOW).read_text(encoding="utf-8"))
            offsets = tuple(int(x) for x in data["offsets"])
            logs, seen = int(data["logs"]), str(data["seen"])
        except (OSError, ValueError, KeyError, TypeError):
            return cls()
        if len(offsets) != 3 or min(offsets) < 0 or logs < 0:
            return cls()
        return cls(offsets=(offsets[0], offsets[1], offsets[2]), logs=logs, seen=seen)


def _events_of(lines: list[str], now: datetime) -> Iterator[ActionEvent]:
    """Log and progress events from the wrapper's events file (its result is read apart)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            reply = json_format.ParseDict(
                json.loads(line), apb.RunReply(), ignore_unknown_fields=True
            )
        except (ValueError, json_format.ParseError):
            continue
        event = run_reply_from_proto(reply, now)
        if isinstance(event, ActionLog | ActionProgress):
            yield event


def _shell_words(argv: list[str]) -> str:
    return " ".join(shlex.quote(word) for word in argv)


def _give(path: Path, uid: int, gid: int) -> None:
    """Hand a folder of a run (and what it holds) to the action's user."""
    os.chown(path, uid, gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def read_action_hpc(artefact_dir: Path) -> dict[str, object]:
    """`spec.addons.hpc` of the action's ryax_metadata.yaml inside its artefact ({} if none)."""
    path = artefact_dir / "code" / "ryax_metadata.yaml"
    try:
        data = load_yaml_python(path.read_bytes(), file="ryax_metadata.yaml")
    except OSError:
        return {}
    except YamlError as error:
        raise DeploymentFailed(
            f"the action's ryax_metadata.yaml cannot be read: {error}"
        ) from error
    spec = data.get("spec") if isinstance(data, dict) else None
    addons = spec.get("addons") if isinstance(spec, dict) else None
    hpc = addons.get("hpc") if isinstance(addons, dict) else None
    if hpc is None:
        return {}
    if not isinstance(hpc, dict):
        raise InvalidHpc("spec.addons.hpc: expected a mapping of parameters")
    return {str(key): value for key, value in hpc.items()}


def _env_text(value: Value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, JsonText):
        return value.text
    if isinstance(value, FileRef):
        return value.key
    return str(value)


def custom_script_runner(
    script_inside: str, inputs: Values, work_dir: str, outputs: list[str], outputs_file: str
) -> str:
    """The bash program around a custom script: inputs exported, the script sourced in the work
    directory (so its exports are seen), then the declared outputs written NUL-separated as
    name, "set" or "", value."""
    lines = ["#!/bin/bash", "# Ryax: a custom script's inputs, the script, its outputs."]
    for name, value in sorted(inputs.items()):
        text = _env_text(value)
        if text is not None and _IDENTIFIER.match(name):
            lines.append(f"export {name}={shlex.quote(text)}")
    lines += [
        f"cd {shlex.quote(work_dir)} || exit 1",
        f"source {shlex.quote(script_inside)}",
        "__ryax_status=$?",
        "{",
    ]
    for name in outputs:
        if _IDENTIFIER.match(name):
            lines.append(f'  printf \'%s\\0%s\\0%s\\0\' {name} "${{{name}+set}}" "${{{name}-}}"')
    lines += [f"}} > {shlex.quote(outputs_file)}", "exit $__ryax_status", ""]
    return "\n".join(lines)


def _typed(name: str, kind: str, text: str, layout: Layout, work_inside: str) -> Value:
    if kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"output '{name}': {text!r} is not an integer") from None
    if kind == "float":
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"output '{name}': {text!r} is not a number") from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in {"true", "1", "yes"}:
            return True
        if lowered in {"false", "0", "no", ""}:
            return False
        raise ValueError(f"output '{name}': {text!r} is not a boolean")
    if kind in {"file", "directory"}:
        inside = os.path.normpath(os.path.join(work_inside, text.strip()))
        host = layout.outside(inside)
        if host is None:
            raise OutputRefused(name, inside)
        return FileRef(
            key=str(host), name=os.path.basename(inside), is_directory=kind == "directory"
        )
    return text


# -- the backend --------------------------------------------------------------------------------


class SlurmBackend:
    """SiteBackend adapter running each execution as a Slurm job."""

    kind = "slurm"

    def __init__(
        self, *, cluster: SlurmCluster, artefacts: ArtefactCache, options: SlurmOptions
    ) -> None:
        self._cluster = cluster
        self._artefacts = artefacts
        self._options = options
        self._executions_dir = options.shared_dir / "executions"
        self._jobs_dir = options.shared_dir / "jobs"
        self._steps: dict[StepRef, SlurmStep] = {}
        self._partitions: tuple[Partition, ...] = ()
        self._watcher = JobWatcher(cluster, options.poll_seconds)
        self.listener: StepListener = _NullListener()
        self.sandbox = SandboxState(options.sandbox)
        self.jobs_submitted = 0
        self._detached: dict[str, DetachedExecution] = {}
        #: The worker is stopping: closing a run leaves its job running (found again later).
        self._detaching = False

    # -- what the worker shows ----------------------------------------------------------------

    def set_listener(self, listener: StepListener) -> None:
        self.listener = listener

    def process_count(self) -> int:
        """Jobs of this worker not ended yet."""
        return sum(len(step.jobs) for step in self._steps.values())

    def restart_count(self) -> int:
        return 0

    @property
    def partitions(self) -> tuple[Partition, ...]:
        return self._partitions

    def node_pools(self) -> tuple[NodePool, ...]:
        """The partitions offered (up, and named in RYAX_SLURM_PARTITIONS if given)."""
        wanted = set(self._options.partitions)
        return tuple(
            p.pool() for p in self._partitions if p.up and (not wanted or p.name in wanted)
        )

    def step(self, ref: StepRef) -> SlurmStep | None:
        return self._steps.get(ref)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the partitions, check the sandbox on this host, cancel jobs a previous worker of
        this site left (their executions are lost; the runner runs them again)."""
        self._artefacts.clean_partial()
        for folder in (self._executions_dir, self._jobs_dir):
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        try:
            await self.refresh_partitions()
        except SlurmError as error:
            log.error("cannot read the slurm partitions", extra={"reason": str(error)})
        config = self._options.sandbox
        if not config.active:
            log.warning(
                "ACTIONS ARE NOT SANDBOXED (RYAX_SANDBOX=none): Slurm jobs run them as this "
                "worker's user, with its view of the compute node"
            )
        self.sandbox.problem, self.sandbox.start_seconds = await probe(config)
        if self.sandbox.problem:
            log.error(
                "the action sandbox does not work here", extra={"reason": self.sandbox.problem}
            )
        self.sandbox.cgroups = "rlimits in the job (Slurm enforces --mem and --time)"
        await self._find_detached()
        log.info(
            "slurm site",
            extra={
                "partitions": [
                    f"{p.name}:{p.cpu}cpu:{p.memory_bytes // 2**20}M:{p.gpu}gpu"
                    for p in self._partitions
                ],
                "shared_dir": str(self._options.shared_dir),
                "sandbox": config.mode,
                "accounting": self._cluster.accounting,
            },
        )

    async def _find_detached(self) -> None:
        """Jobs a previous process of this worker left (their `job.json`): followed again if
        Slurm still knows them or their result is there; the site's other jobs are cancelled
        and the files of the rest removed."""
        records = {
            job_dir: record
            for job_dir, record in (await asyncio.to_thread(_job_records, self._jobs_dir)).items()
            # Its work directory is where the worker's staging put it, nowhere else.
            if record.work_dir.name == "work"
            and record.work_dir.parent.parent.parent.parent == self._executions_dir
        }
        try:
            active = {
                job_id
                for job_id, name in (await self._cluster.own_jobs()).items()
                if name.startswith(self._options.job_prefix)
            }
            known = await self._cluster.statuses([r.handle for r in records.values()])
        except SlurmError as error:
            # Nothing is removed: the next start looks again.
            log.warning("cannot list this site's slurm jobs", extra={"reason": str(error)})
            self._detached = {r.order.execution_id: r for r in records.values()}
            return
        kept: dict[str, DetachedExecution] = {}
        for job_dir, record in records.items():
            home = job_dir / "home"
            if (
                record.handle in active
                or record.handle in known
                or (home / "result.json").exists()
                or (home / "outputs").exists()
            ):
                kept[str(job_dir)] = record
        strays = active - {r.handle for r in kept.values()}
        for job_id in sorted(strays):
            with contextlib.suppress(SlurmError):
                await self._cluster.cancel(job_id)
        if strays:
            log.warning("cancelled slurm jobs of this site nobody follows", extra={"jobs": strays})
        await asyncio.to_thread(self._clean_files, {Path(d) for d in kept})
        self._detached = {r.order.execution_id: r for r in kept.values()}
        if self._detached:
            log.info(
                "slurm jobs of a previous worker found again",
                extra={"jobs": {e: r.handle for e, r in self._detached.items()}},
            )

    def _clean_files(self, kept: set[Path]) -> None:
        """Remove the job and execution folders of jobs not followed any more."""
        kept_executions = {
            self._executions_dir.joinpath(*d.relative_to(self._jobs_dir).parts) for d in kept
        }
        for root, keep in ((self._jobs_dir, kept), (self._executions_dir, kept_executions)):
            for folder in _execution_dirs(root):
                if folder not in keep:
                    shutil.rmtree(folder, ignore_errors=True)

    def detached(self) -> tuple[DetachedExecution, ...]:
        return tuple(self._detached.values())

    def detach(self) -> None:
        self._detaching = True

    async def abandon(self, execution: DetachedExecution) -> None:
        self._detached.pop(execution.order.execution_id, None)
        with contextlib.suppress(SlurmError):
            await self._cluster.cancel(execution.handle)
        job_dir = self._jobs_dir.joinpath(
            *step_dir_parts(execution.order.ref), execution.order.execution_id
        )
        await asyncio.to_thread(shutil.rmtree, job_dir, True)
        log.info(
            "slurm job of a previous worker given up",
            extra={"execution_id": execution.order.execution_id, "job_id": execution.handle},
        )

    async def refresh_partitions(self) -> tuple[Partition, ...]:
        self._partitions = await self._cluster.partitions()
        return self._partitions

    async def deploy(self, spec: DeployStep) -> None:
        site = self._options.site_name
        if spec.is_trigger:
            raise DeploymentFailed(
                f"a trigger cannot run on the Slurm site {site}: its steps are batch jobs; "
                "place the trigger on a local or Kubernetes site"
            )
        if self.sandbox.problem:
            raise DeploymentFailed(f"actions cannot be sandboxed here: {self.sandbox.problem}")
        artefact_dir = await self._artefacts.get(spec.artefact_key, spec.artefact_sha256)
        action_hpc = await asyncio.to_thread(read_action_hpc, artefact_dir)
        params = parse_hpc(action_hpc, spec.hpc)
        if params.custom_script and not shutil.which("bash"):
            log.warning("bash is not on this host: custom scripts need it on the compute nodes")
        try:
            partitions = self._partitions
            name = params.partition or spec.node_pool
            if not partitions or (name and name not in {p.name for p in partitions}):
                partitions = await self.refresh_partitions()
        except SlurmError as error:
            raise DeploymentFailed(
                f"the Slurm cluster of site {site} does not answer: {error}"
            ) from error
        request = job_request(spec, params, partitions, site)
        try:
            refusal = await self._cluster.test_submit(
                [*request.options(), *self._options.sbatch_options]
            )
        except SlurmError as error:
            raise DeploymentFailed(
                f"the Slurm cluster of site {site} does not answer: {error}"
            ) from error
        if refusal:
            raise DeploymentFailed(
                f"Slurm refuses the job of step {spec.ref.step_id} ({request.describe()}): "
                f"{refusal}"
            )
        previous = self._steps.get(spec.ref)
        self._steps[spec.ref] = SlurmStep(
            spec=spec,
            artefact_dir=artefact_dir,
            params=params,
            request=request,
            jobs=previous.jobs if previous is not None else set(),
        )
        log.info(
            "step ready for slurm",
            extra={
                "step": str(spec.ref),
                "job": request.describe(),
                "custom_script": bool(params.custom_script),
            },
        )

    async def undeploy(self, ref: StepRef) -> None:
        step = self._steps.pop(ref, None)
        if step is None:
            return
        for job_id in list(step.jobs):
            with contextlib.suppress(SlurmError):
                await self._cluster.cancel(job_id)

    async def restart(self, ref: StepRef, reason: str) -> None:
        """Nothing runs between executions: nothing to restart."""
        if ref not in self._steps:
            raise ActionUnavailable(f"step {ref} is not deployed on this site")
        log.info(
            "restart asked for a slurm step: nothing to do", extra={"step": str(ref), "why": reason}
        )

    async def close(self) -> None:
        steps = list(self._steps.values())
        self._steps.clear()
        if not self._detaching:
            for step in steps:
                for job_id in list(step.jobs):
                    with contextlib.suppress(SlurmError):
                        await self._cluster.cancel(job_id)
        await self._watcher.close()

    # -- one execution -------------------------------------------------------------------------

    def _layout(self, step: SlurmStep, job_dir: Path) -> Layout:
        return Layout(
            artefact=step.artefact_dir,
            home=job_dir / "home",
            tmp=job_dir / "tmp",
            executions=self._executions_dir.joinpath(*step_dir_parts(step.spec.ref)),
            sandboxed=self._options.sandbox.active,
        )

    def _job_script(self, step: SlurmStep, layout: Layout, job_dir: Path, execution_id: str) -> str:
        config = replace(self._options.sandbox, bwrap="bwrap")
        limits = Limits(
            memory_bytes=step.request.mem_bytes,
            max_processes=config.max_processes,
        )
        home = layout.inside(layout.home)
        if step.params.custom_script:
            argv = command(config, layout, [], limits)
            argv[-1:] = ["/bin/bash", f"{home}/custom.sh"]
        else:
            argv = command(
                config,
                layout,
                [
                    "--once",
                    f"{home}/request.json",
                    f"{home}/result.json",
                    "--events",
                    f"{home}/events.jsonl",
                    "--log-level",
                    self._options.wrapper_log_level,
                ],
                limits,
            )
        env = environment(config, layout, self._options.extra_env)
        env["RYAX_ACTION_DIR"] = layout.inside(layout.artefact)
        # The job is submitted with --export=NONE, which Slurm hands down to srun as
        # SLURM_EXPORT_ENV=NONE: the tasks of a custom script's srun would start with no
        # environment at all (no PATH). They get the script's own instead.
        env["SLURM_EXPORT_ENV"] = "ALL"
        error_file = shlex.quote(str(job_dir / "ryax-error"))
        checks = [
            f"[ -f {shlex.quote(str(layout.artefact / 'run.sh'))} ] || fail \"the action's "
            f"artefact is not visible on node $(hostname) at {layout.artefact}: "
            'RYAX_SLURM_SHARED_DIR must be shared by the login and compute nodes"'
        ]
        if config.active:
            checks.append(
                'command -v bwrap >/dev/null 2>&1 || fail "bubblewrap (bwrap) is not installed '
                'on node $(hostname): install it there, or run this site with RYAX_SANDBOX=none"'
            )
        return "\n".join(
            [
                "#!/bin/bash",
                f"# Ryax: execution {execution_id} of step {step.spec.ref} on site "
                f"{self._options.site_name}. Written by the worker, run once by Slurm.",
                f"PATH={SANDBOX_PATH}",
                "export PATH",
                f"fail() {{ printf '%s\\n' \"$1\" > {error_file}; "
                f"printf 'ryax: %s\\n' \"$1\" >&2; exit {FATAL_EXIT}; }}",
                *checks,
                "# The job's allocation (SLURM_*) and nothing else of this environment.",
                "slurm=()",
                "while IFS= read -r -d '' var; do",
                '  case "$var" in SLURM_*) slurm+=("$var") ;; esac',
                "done < <(env -0)",
                'exec env -i "${slurm[@]}" '
                + _shell_words([f"{k}={v}" for k, v in sorted(env.items())])
                + " "
                + _shell_words(argv),
                "",
            ]
        )

    def _prepare(
        self, step: SlurmStep, request: ActionRunRequest, job_dir: Path, layout: Layout
    ) -> None:
        """Write the job's files and hand the run's folders to the action's user (blocking)."""
        if job_dir.exists():
            shutil.rmtree(job_dir)
        for folder in (layout.home, layout.tmp):
            folder.mkdir(parents=True)
        inputs = {
            name: replace(value, key=layout.inside(Path(value.key)))
            if isinstance(value, FileRef)
            else value
            for name, value in request.inputs.items()
        }
        work_inside = layout.inside(request.work_dir)
        home = layout.inside(layout.home)
        if step.params.custom_script:
            (layout.home / "custom_script.sh").write_text(
                step.params.custom_script + "\n", encoding="utf-8"
            )
            (layout.home / "custom.sh").write_text(
                custom_script_runner(
                    f"{home}/custom_script.sh",
                    inputs,
                    work_inside,
                    [io.name for io in step.spec.outputs],
                    f"{home}/outputs",
                ),
                encoding="utf-8",
            )
        else:
            document = {
                "init": json_format.MessageToDict(
                    init_request_to_proto(
                        step.spec, Path(layout.inside(step.artefact_dir / "code"))
                    ),
                    preserving_proto_field_name=True,
                ),
                "run": json_format.MessageToDict(
                    run_request_to_proto(request.execution_id, inputs, Path(work_inside)),
                    preserving_proto_field_name=True,
                ),
            }
            (layout.home / "request.json").write_text(json.dumps(document), encoding="utf-8")
        script = job_dir / "job.sh"
        script.write_text(
            self._job_script(step, layout, job_dir, request.execution_id), encoding="utf-8"
        )
        script.chmod(0o700)
        config = self._options.sandbox
        if config.drops_to_uid:
            for folder in (layout.home, layout.tmp, request.work_dir):
                _give(folder, config.uid, config.gid)
            for value in request.inputs.values():
                if isinstance(value, FileRef):
                    _give(Path(value.key), config.uid, config.gid)
            for folder in (request.work_dir.parent, layout.executions):
                folder.chmod(0o755)
            inputs_dir = request.work_dir.parent / "inputs"
            if inputs_dir.is_dir():
                for root, dirs, _ in os.walk(inputs_dir):
                    os.chmod(root, 0o755)
                    for name in dirs:
                        os.chmod(os.path.join(root, name), 0o755)

    async def run(
        self, ref: StepRef, request: ActionRunRequest
    ) -> AsyncGenerator[ActionEvent, None]:
        step = self._steps.get(ref)
        if step is None:
            raise ActionUnavailable(f"step {ref} is not deployed on this site")
        job_dir = self._jobs_dir.joinpath(*step_dir_parts(ref), request.execution_id)
        layout = self._layout(step, job_dir)
        await asyncio.to_thread(self._prepare, step, request, job_dir, layout)
        options = [
            f"--job-name={self._options.job_prefix}{request.execution_id}",
            f"--output={job_dir / 'job.out'}",
            f"--error={job_dir / 'job.err'}",
            f"--chdir={job_dir}",
            "--export=NONE",
            "--no-requeue",
            *step.request.options(),
            *self._options.sbatch_options,
        ]
        try:
            job_id = await self._cluster.submit(job_dir / "job.sh", options)
        except SlurmError as error:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)
            yield ActionStarted()
            yield ActionResult(status=ActionStatus.FAILED, error=f"sbatch refused the job: {error}")
            return
        self.jobs_submitted += 1
        if request.order is not None:
            await asyncio.to_thread(_write_record, job_dir, job_id, request.order, request.work_dir)
        log.info(
            "slurm job submitted",
            extra={"execution_id": request.execution_id, "job_id": job_id, "step": str(ref)},
        )
        async for event in self._track(step, job_id, job_dir, layout, request):
            yield event

    def resume(
        self, ref: StepRef, execution: DetachedExecution
    ) -> AsyncGenerator[ActionEvent, None]:
        return self._resume(ref, execution)

    async def _resume(
        self, ref: StepRef, execution: DetachedExecution
    ) -> AsyncGenerator[ActionEvent, None]:
        step = self._steps.get(ref)
        if step is None:
            raise ActionUnavailable(f"step {ref} is not deployed on this site")
        self._detached.pop(execution.order.execution_id, None)
        job_dir = self._jobs_dir.joinpath(*step_dir_parts(ref), execution.order.execution_id)
        request = ActionRunRequest(
            execution_id=execution.order.execution_id,
            inputs={},
            work_dir=execution.work_dir,
            order=execution.order,
        )
        log.info(
            "following a slurm job again",
            extra={"execution_id": execution.order.execution_id, "job_id": execution.handle},
        )
        async for event in self._track(
            step, execution.handle, job_dir, self._layout(step, job_dir), request
        ):
            yield event

    async def _track(
        self,
        step: SlurmStep,
        job_id: str,
        job_dir: Path,
        layout: Layout,
        request: ActionRunRequest,
    ) -> AsyncGenerator[ActionEvent, None]:
        """Follow a submitted job to its end; closed early, cancel it (unless detaching)."""
        step.jobs.add(job_id)
        self._watcher.watch(job_id)
        ended = False
        # Followed again after a restart: from where the previous process got to.
        follow = _Follow.load(job_dir)
        try:
            yield ActionStarted()
            if follow.logs == 0:
                follow.logs += 1
                yield ActionLog(
                    stream=LogStream.LOG,
                    line=f"ryax: slurm job {job_id} submitted ({step.request.describe()})",
                    at=datetime.now(UTC),
                )
                yield ActionProgress(fraction=0.0, message=f"slurm job {job_id}: submitted")
            async for event in self._follow(step, job_id, job_dir, layout, request, follow):
                if isinstance(event, ActionLog):
                    follow.logs += 1
                yield event
            ended = True
        finally:
            self._watcher.forget(job_id)
            step.jobs.discard(job_id)
            if self._detaching and not ended:
                log.info("slurm job left running for the next worker", extra={"job_id": job_id})
            else:
                if not ended:
                    log.info("cancelling slurm job", extra={"job_id": job_id})
                    with contextlib.suppress(SlurmError, asyncio.CancelledError):
                        await asyncio.shield(self._cluster.cancel(job_id))
                await asyncio.to_thread(shutil.rmtree, job_dir, True)

    async def _follow(
        self,
        step: SlurmStep,
        job_id: str,
        job_dir: Path,
        layout: Layout,
        request: ActionRunRequest,
        follow: _Follow,
    ) -> AsyncGenerator[ActionEvent, None]:
        """The job's log, progress and result; `follow` (kept in `job_dir` after each poll,
        once the events before it were taken) says how far an earlier process got."""
        events_at, out_at, err_at = follow.offsets
        tails = (
            (_Tail(layout.home / "events.jsonl", events_at), None),
            (_Tail(job_dir / "job.out", out_at), LogStream.STDOUT),
            (_Tail(job_dir / "job.err", err_at), LogStream.STDERR),
        )

        saved: list[_Follow] = []

        def record() -> None:
            """Kept in the job's folder when it moved since the last poll (no write otherwise)."""
            follow.offsets = (
                tails[0][0].read_up_to,
                tails[1][0].read_up_to,
                tails[2][0].read_up_to,
            )
            if saved and saved[0] == follow:
                return
            follow.save(job_dir)
            saved[:] = [replace(follow)]

        def drain(final: bool = False) -> list[ActionEvent]:
            now = datetime.now(UTC)
            events: list[ActionEvent] = []
            for tail, stream in tails:
                lines = tail.lines(final)
                if stream is None:
                    events.extend(_events_of(lines, now))
                else:
                    events.extend(ActionLog(stream=stream, line=line, at=now) for line in lines)
            return events

        status: JobStatus | None = None
        while True:
            await asyncio.to_thread(record)
            await self._watcher.changed(self._options.poll_seconds)
            for event in await asyncio.to_thread(drain):
                yield event
            status = self._watcher.state(job_id)
            if status is None:
                continue
            shown = f"{status.state} {status.reason} {status.nodes}"
            if shown != follow.seen:
                follow.seen = shown
                where = f" on {status.nodes}" if status.nodes and status.state == "RUNNING" else ""
                why = f" ({status.reason})" if status.reason else ""
                yield ActionLog(
                    stream=LogStream.LOG,
                    line=f"ryax: slurm job {job_id} {status.state}{where}{why}",
                    at=datetime.now(UTC),
                )
                yield ActionProgress(
                    fraction=0.0, message=f"slurm job {job_id}: {status.state}{where}{why}"
                )
            if status.state == "PENDING" and status.reason in IMPOSSIBLE_PENDING_REASONS:
                with contextlib.suppress(SlurmError):
                    await self._cluster.cancel(job_id)
                yield ActionResult(
                    status=ActionStatus.FAILED,
                    error=f"slurm job {job_id} can never start: {status.reason} "
                    f"({step.request.describe()})",
                )
                return
            if status.terminal:
                break
        assert status is not None
        # Slurm may report the job's end before its last lines are in its files (slurmstepd's
        # "CANCELLED ... DUE TO TIME LIMIT"): read on until they stop growing, 2 s at most.
        deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
        quiet = 0
        while quiet < 2 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(SETTLE_POLL_SECONDS)
            settled = await asyncio.to_thread(drain)
            quiet = 0 if settled else quiet + 1
            for event in settled:
                yield event
        result = await self._outcome(step, job_id, job_dir, layout, request, status)
        for event in await asyncio.to_thread(drain, True):
            yield event
        yield result

    async def _outcome(
        self,
        step: SlurmStep,
        job_id: str,
        job_dir: Path,
        layout: Layout,
        request: ActionRunRequest,
        status: JobStatus,
    ) -> ActionResult:
        state = status.state
        job = f"slurm job {job_id}"
        if state == "TIMEOUT":
            limit = step.request.time_seconds
            text = f" of {max(1, -(-int(limit) // 60))} min" if limit else ""
            return ActionResult(
                status=ActionStatus.FAILED,
                error=f"time limit: {job} was killed by its time limit{text}",
            )
        if state in LOST_STATES:
            where = f" on {status.nodes}" if status.nodes else ""
            why = f": {status.reason}" if status.reason else ""
            return ActionResult(status=ActionStatus.LOST, error=f"{job} {state}{where}{why}")
        if state == "OUT_OF_MEMORY":
            return ActionResult(
                status=ActionStatus.FAILED,
                error=f"memory limit: {job} ran out of memory ({step.request.describe()})",
            )
        if state == "DEADLINE":
            return ActionResult(status=ActionStatus.FAILED, error=f"{job} reached its deadline")
        home = layout.home
        result_file = home / ("outputs" if step.params.custom_script else "result.json")
        if state in {"COMPLETED", "FAILED", "UNKNOWN", "SPECIAL_EXIT"}:
            # The shared directory may show the job's last writes a little later.
            deadline = asyncio.get_running_loop().time() + self._options.result_grace_seconds
            while not result_file.exists() and not (job_dir / "ryax-error").exists():
                if asyncio.get_running_loop().time() >= deadline:
                    break
                await asyncio.sleep(0.2)
        fatal = job_dir / "ryax-error"
        if fatal.exists():
            text = (await asyncio.to_thread(fatal.read_text, "utf-8", "replace")).strip()
            return ActionResult(status=ActionStatus.FAILED, error=f"{job}: {text}")
        if state == "CANCELLED":
            return ActionResult(
                status=ActionStatus.FAILED,
                error=f"{job} was cancelled outside Ryax"
                + (f" ({status.reason})" if status.reason else ""),
            )
        if step.params.custom_script and state == "COMPLETED" and result_file.exists():
            return await asyncio.to_thread(self._custom_result, step, job_id, layout, request)
        if not step.params.custom_script and result_file.exists():
            return await asyncio.to_thread(self._wrapper_result, step, result_file, layout)
        if state == "UNKNOWN":
            return ActionResult(
                status=ActionStatus.LOST,
                error=f"{job} is unknown to squeue and sacct: the scheduler no longer knows it",
            )
        exit_code = status.exit_code
        if not exit_code:
            with contextlib.suppress(SlurmError):
                exit_code = (await self._cluster.show_job(job_id)).get("ExitCode", "")
        last = await asyncio.to_thread(_last_lines, job_dir / "job.err")
        what = "the custom script of " if step.params.custom_script else ""
        return ActionResult(
            status=ActionStatus.FAILED,
            error=f"{what}{job} ended {state}"
            + (f" (exit code {exit_code})" if exit_code else "")
            + " without a result"
            + (f": {last}" if last else ""),
        )

    def _wrapper_result(self, step: SlurmStep, path: Path, layout: Layout) -> ActionResult:
        try:
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            init = json_format.ParseDict(
                document.get("init", {}), apb.InitReply(), ignore_unknown_fields=True
            )
            replies = [
                json_format.ParseDict(r, apb.RunReply(), ignore_unknown_fields=True)
                for r in document.get("replies", [])
            ]
        except (OSError, ValueError, json_format.ParseError) as error:
            return ActionResult(
                status=ActionStatus.FAILED, error=f"the job's result cannot be read: {error}"
            )
        if init.error:
            return ActionResult(
                status=ActionStatus.FAILED,
                error=f"the action could not be loaded: {init.error}",
                traceback=init.traceback,
            )
        now = datetime.now(UTC)
        result = next(
            (
                event
                for reply in reversed(replies)
                if isinstance(event := run_reply_from_proto(reply, now), ActionResult)
            ),
            None,
        )
        if result is None:
            return ActionResult(status=ActionStatus.FAILED, error="the job wrote no result")
        try:
            result = replace(
                result,
                outputs=_to_host(result.outputs, layout),
                outputs_list=tuple(_to_host(v, layout) for v in result.outputs_list),
            )
        except OutputRefused as refused:
            return ActionResult(status=ActionStatus.FAILED, error=refused.detail)
        text = f"{result.error}\n{result.traceback}"
        if step.request.mem_bytes and "MemoryError" in text:
            size = step.request.mem_bytes / 2**20
            result = replace(
                result, error=f"memory limit of {size:g} MiB exceeded ({result.error})"
            )
        return result

    def _custom_result(
        self, step: SlurmStep, job_id: str, layout: Layout, request: ActionRunRequest
    ) -> ActionResult:
        data = (layout.home / "outputs").read_bytes()
        fields = data.split(b"\0")
        exported: dict[str, str] = {}
        for index in range(0, len(fields) - 2, 3):
            name, is_set, value = (
                f.decode("utf-8", errors="replace") for f in fields[index : index + 3]
            )
            if is_set:
                exported[name] = value
        work_inside = layout.inside(request.work_dir)
        outputs: Values = {}
        missing: list[str] = []
        try:
            for io in step.spec.outputs:
                if io.name not in exported:
                    if not io.optional:
                        missing.append(io.name)
                    continue
                outputs[io.name] = _typed(io.name, io.type, exported[io.name], layout, work_inside)
        except OutputRefused as refused:
            return ActionResult(status=ActionStatus.FAILED, error=refused.detail)
        except ValueError as error:
            return ActionResult(status=ActionStatus.FAILED, error=str(error))
        if missing:
            return ActionResult(
                status=ActionStatus.FAILED,
                error="the custom script did not export "
                + ", ".join(f"'{name}'" for name in missing)
                + f" (slurm job {job_id})",
            )
        return ActionResult(status=ActionStatus.COMPLETED, outputs=outputs)


def _to_host(values: Values, layout: Layout) -> Values:
    mapped: Values = dict(values)
    for name, value in values.items():
        if isinstance(value, FileRef):
            host = layout.outside(value.key)
            if host is None:
                raise OutputRefused(name, value.key)
            mapped[name] = replace(value, key=str(host))
    return mapped


def _last_lines(path: Path, count: int = 3) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return " | ".join([line for line in lines if line][-count:])[:1000]


#: After a job's end: how long its files are read on for its last lines, and how often.
SETTLE_SECONDS = 2.0
SETTLE_POLL_SECONDS = 0.2
RECORD = "job.json"
FOLLOW = "follow.json"


def _write_record(job_dir: Path, job_id: str, order: ExecuteStep, work_dir: Path) -> None:
    """What a later process of the worker needs to follow the job again."""
    record = {
        "job_id": job_id,
        "execution_id": order.execution_id,
        "run_id": order.run_id,
        "deployment_id": order.ref.deployment_id,
        "step_id": order.ref.step_id,
        "timeout_seconds": order.timeout_seconds,
        "work_dir": str(work_dir),
        "submitted_at": datetime.now(UTC).isoformat(),
    }
    temporary = job_dir / (RECORD + ".tmp")
    temporary.write_text(json.dumps(record), encoding="utf-8")
    temporary.replace(job_dir / RECORD)


def _read_record(path: Path) -> DetachedExecution | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        order = ExecuteStep(
            order_seq=0,
            execution_id=ExecutionId(str(data["execution_id"])),
            run_id=RunId(str(data["run_id"])),
            ref=StepRef(DeploymentId(str(data["deployment_id"])), StepId(str(data["step_id"]))),
            timeout_seconds=float(data.get("timeout_seconds", 0.0)),
        )
        job_id = str(data["job_id"])
        started = datetime.fromisoformat(str(data["submitted_at"]))
        work_dir = Path(str(data["work_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not job_id.isdigit() or path.parent.name != order.execution_id:
        return None
    return DetachedExecution(
        order=order,
        work_dir=work_dir,
        handle=job_id,
        started_at=started,
        log_lines=_Follow.load(path.parent).logs,
    )


def _execution_dirs(root: Path) -> list[Path]:
    """`<root>/<deployment>/<step>/<execution>` folders."""
    if not root.is_dir():
        return []
    return [path for path in root.glob("*/*/*") if path.is_dir()]


def _job_records(jobs_dir: Path) -> dict[Path, DetachedExecution]:
    found: dict[Path, DetachedExecution] = {}
    for job_dir in _execution_dirs(jobs_dir):
        record = _read_record(job_dir / RECORD)
        if record is not None:
            found[job_dir] = record
    return found
