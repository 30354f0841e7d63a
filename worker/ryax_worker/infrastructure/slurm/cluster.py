"""Slurm's client commands, as the worker uses them: `sinfo` (partitions), `sbatch` (submit, and
`--test-only` at deploy), `squeue` then `sacct` (job states), `scontrol show job` (details),
`scancel`. They run as subprocesses with the worker's environment (PATH, SLURM_CONF): the worker
runs where these commands work, a login node. The parsers are plain functions (tested alone).

`squeue --states=all` knows a job until the controller purges it (`MinJobAge`, 300 s by
default); `sacct` knows it afterwards where accounting is on. Where it is off ("Slurm accounting
storage is disabled") sacct is not asked again. A command that cannot reach the controller
raises SlurmUnavailable (callers wait and ask again); any other failure SlurmError.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...domain.model import NodePool

log = logging.getLogger(__name__)
MIB = 1024 * 1024
#: One line per partition and node configuration (`--exact`: values are not merged into "4+").
SINFO_FORMAT = "%P|%a|%c|%m|%G|%l|%D"
SQUEUE_FORMAT = "%i|%T|%r|%N"
SACCT_FIELDS = "JobIDRaw,State,ExitCode,Reason,NodeList"
#: What the client commands print when the controller does not answer (transient).
_UNREACHABLE = (
    "unable to contact slurm controller",
    "connection refused",
    "socket timed out",
    "connection timed out",
    "slurm_receive_msg",
    "zero bytes were transmitted",
    "communication connection failure",
    "authentication",
)
_UNKNOWN_JOB = "invalid job id"
_NO_ACCOUNTING = "accounting storage is disabled"

#: States in which a job will not run any more (squeue/sacct long names).
TERMINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
        "CANCELLED",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "REVOKED",
        "SPECIAL_EXIT",
    }
)
#: The job's node failed or it was preempted: the execution is lost (run again by the runner).
LOST_STATES = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "REVOKED"})
#: A job pending for one of these reasons will never start as submitted.
IMPOSSIBLE_PENDING_REASONS = frozenset(
    {
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "AccountNotAllowed",
        "QOSMaxWallDurationPerJobLimit",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxMemoryPerJob",
        "QOSMaxNodePerJobLimit",
        "QOSMaxGRESPerJob",
    }
)


class SlurmError(Exception):
    """A Slurm command failed; the message is what it printed."""


class SlurmUnavailable(SlurmError):
    """The Slurm controller does not answer (try again later)."""


@dataclass(frozen=True, kw_only=True)
class Partition:
    """A partition as `sinfo` shows it: its largest node, how many nodes, its time limit."""

    name: str
    up: bool
    default: bool
    cpu: int
    memory_bytes: int
    gpu: int
    #: 0 = unlimited.
    max_time_seconds: float
    nodes: int

    def pool(self) -> NodePool:
        return NodePool(
            name=self.name,
            cpu=float(max(self.cpu, 1)),
            memory_bytes=max(self.memory_bytes, MIB),
            gpu=self.gpu,
            max_time_seconds=self.max_time_seconds,
        )


@dataclass(frozen=True, kw_only=True)
class JobStatus:
    job_id: str
    #: Long state name (PENDING, RUNNING, COMPLETED, TIMEOUT, ...); "UNKNOWN" when neither squeue
    #: nor sacct knows the job.
    state: str
    reason: str = ""
    nodes: str = ""
    #: "exit:signal" when sacct gave it.
    exit_code: str = ""

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES or self.state == "UNKNOWN"


# -- parsers ------------------------------------------------------------------------------------


def parse_slurm_time(text: str) -> float:
    """Seconds from a Slurm time: "minutes", "minutes:seconds", "hours:minutes:seconds",
    "days-hours", "days-hours:minutes", "days-hours:minutes:seconds"; 0 for UNLIMITED, infinite,
    NONE or an empty text. ValueError otherwise."""
    text = text.strip()
    if text.upper() in {"", "UNLIMITED", "INFINITE", "NONE", "N/A"}:
        return 0.0
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = [int(p) for p in text.split(":")]
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"not a Slurm time: {text!r}")
        hours, minutes, seconds = [*parts, 0, 0][:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:
            raise ValueError(f"not a Slurm time: {text!r}")
    if min(days, hours, minutes, seconds) < 0:
        raise ValueError(f"not a Slurm time: {text!r}")
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def format_minutes(seconds: float) -> str:
    """A wall time for `--time`: whole minutes, rounded up (Slurm's granularity), at least 1."""
    return str(max(1, math.ceil(seconds / 60)))


def format_mebibytes(size: int) -> str:
    """A memory size for `--mem`: MiB rounded up, with Slurm's `M` suffix."""
    return f"{max(1, math.ceil(size / MIB))}M"


def parse_gres_gpus(text: str) -> int:
    """GPUs in a GRES text: "gpu:2", "gpu:a100:4(S:0-1)", "gpu:2,license:1"; 0 for "(null)"."""
    total = 0
    for item in text.split(","):
        item = re.sub(r"\(.*?\)", "", item.strip())
        parts = item.split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        count = parts[-1]
        if count.isdigit():
            total += int(count)
        elif len(parts) == 2:
            total += 1  # "gpu:a100": one of that type
    return total


def _number(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match.group(0)) if match else 0


def parse_sinfo(text: str) -> tuple[Partition, ...]:
    """`sinfo -h -e -o SINFO_FORMAT`: one Partition per name, from its largest node config."""
    merged: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 7 or not fields[0]:
            continue
        raw_name, avail, cpus, memory, gres, limit, nodes = fields
        name = raw_name.rstrip("*")
        try:
            max_time = parse_slurm_time(limit)
        except ValueError:
            max_time = 0.0
        partition = Partition(
            name=name,
            up=avail.strip().lower() == "up",
            default=raw_name.endswith("*"),
            cpu=_number(cpus),
            memory_bytes=_number(memory) * MIB,
            gpu=parse_gres_gpus(gres),
            max_time_seconds=max_time,
            nodes=_number(nodes),
        )
        seen = merged.get(name)
        if seen is not None:
            partition = Partition(
                name=name,
                up=seen.up or partition.up,
                default=seen.default or partition.default,
                cpu=max(seen.cpu, partition.cpu),
                memory_bytes=max(seen.memory_bytes, partition.memory_bytes),
                gpu=max(seen.gpu, partition.gpu),
                max_time_seconds=seen.max_time_seconds,
                nodes=seen.nodes + partition.nodes,
            )
        merged[name] = partition
    return tuple(merged.values())


def parse_squeue(text: str) -> dict[str, JobStatus]:
    """`squeue -h -t all -o SQUEUE_FORMAT`."""
    found: dict[str, JobStatus] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 4 or not fields[0]:
            continue
        job_id, state, reason, nodes = fields
        found[job_id] = JobStatus(
            job_id=job_id,
            state=state.strip().upper(),
            reason="" if reason in {"None", "(null)"} else reason,
            nodes=nodes,
        )
    return found


def parse_sacct(text: str) -> dict[str, JobStatus]:
    """`sacct -n -P -X -o SACCT_FIELDS`: "CANCELLED by 0" is CANCELLED."""
    found: dict[str, JobStatus] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5 or not fields[0]:
            continue
        job_id, state, exit_code, reason, nodes = fields
        found[job_id] = JobStatus(
            job_id=job_id,
            state=(state.split() or ["UNKNOWN"])[0].upper(),
            reason="" if reason in {"None", "(null)"} else reason,
            nodes="" if nodes in {"None assigned", "(null)"} else nodes,
            exit_code=exit_code,
        )
    return found


def parse_scontrol_job(text: str) -> dict[str, str]:
    """`scontrol show job -o ID`: its Key=Value fields (values without spaces but Command...)."""
    fields: dict[str, str] = {}
    for token in re.finditer(r"(\S+?)=(\S*)", text):
        fields.setdefault(token.group(1), token.group(2))
    return fields


# -- the commands -------------------------------------------------------------------------------


class SlurmCluster:
    def __init__(
        self, *, command_timeout: float = 60.0, env: Mapping[str, str] | None = None
    ) -> None:
        self._timeout = command_timeout
        self._env = dict(env) if env is not None else None
        self.accounting = True

    async def _run(self, *argv: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env if self._env is not None else dict(os.environ),
            )
        except OSError as error:
            raise SlurmError(f"cannot run {argv[0]}: {error.strerror or error}") from error
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), self._timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SlurmUnavailable(f"{argv[0]} did not answer within {self._timeout:g} s") from None
        assert process.returncode is not None
        return (
            process.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace").strip(),
        )

    @staticmethod
    def _failure(command: str, code: int, err: str) -> SlurmError:
        text = err or f"exit code {code}"
        lowered = text.lower()
        if any(marker in lowered for marker in _UNREACHABLE):
            return SlurmUnavailable(f"{command}: {text}")
        return SlurmError(f"{command}: {text}")

    async def partitions(self) -> tuple[Partition, ...]:
        code, out, err = await self._run("sinfo", "-h", "-e", "-o", SINFO_FORMAT)
        if code != 0:
            raise self._failure("sinfo", code, err)
        return parse_sinfo(out)

    async def submit(self, script: Path, options: Sequence[str]) -> str:
        """The job id of the submitted batch script."""
        code, out, err = await self._run("sbatch", "--parsable", *options, str(script))
        if code != 0:
            raise self._failure("sbatch", code, err)
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {out.strip()!r}, not a job id")
        return job_id

    async def test_submit(self, options: Sequence[str]) -> str:
        """What Slurm says of a job with these options without submitting it (`--test-only`):
        "" when it would run, else its error."""
        code, _, err = await self._run("sbatch", "--test-only", *options, "--wrap", "true")
        if code == 0:
            return ""
        failure = self._failure("sbatch --test-only", code, err)
        if isinstance(failure, SlurmUnavailable):
            raise failure
        lines = [line.strip() for line in err.splitlines() if line.strip()]
        return "; ".join(dict.fromkeys(lines)) or f"exit code {code}"

    async def statuses(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """States of these jobs: squeue first, sacct for the ones squeue no longer knows; a job
        neither knows is left out."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        code, out, err = await self._run(
            "squeue", "-h", "--states=all", "-j", ",".join(ids), "-o", SQUEUE_FORMAT
        )
        if code != 0 and _UNKNOWN_JOB not in err.lower():
            raise self._failure("squeue", code, err)
        found = parse_squeue(out) if code == 0 else {}
        missing = [job_id for job_id in ids if job_id not in found]
        if missing and self.accounting:
            found.update(await self._sacct(missing))
        return {job_id: status for job_id, status in found.items() if job_id in ids}

    async def _sacct(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        code, out, err = await self._run(
            "sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", SACCT_FIELDS
        )
        if code != 0:
            if _NO_ACCOUNTING in err.lower():
                log.info("slurm accounting is off: job states come from squeue only")
                self.accounting = False
                return {}
            raise self._failure("sacct", code, err)
        return parse_sacct(out)

    async def show_job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` fields ({} once the controller forgot the job)."""
        code, out, err = await self._run("scontrol", "show", "job", "-o", job_id)
        if code != 0:
            if _UNKNOWN_JOB in err.lower():
                return {}
            raise self._failure("scontrol show job", code, err)
        return parse_scontrol_job(out)

    async def cancel(self, job_id: str) -> None:
        code, _, err = await self._run("scancel", job_id)
        if code != 0 and _UNKNOWN_JOB not in err.lower():
            raise self._failure("scancel", code, err)

    async def own_jobs(self) -> dict[str, str]:
        """Id -> name of this user's jobs that are not finished."""
        code, out, err = await self._run(
            "squeue", "-h", "--me", "--states=PENDING,RUNNING,SUSPENDED,CONFIGURING", "-o", "%i|%j"
        )
        if code != 0:
            raise self._failure("squeue", code, err)
        jobs: dict[str, str] = {}
        for line in out.splitlines():
            job_id, _, name = line.strip().partition("|")
            if job_id:
                jobs[job_id] = name
        return jobs
