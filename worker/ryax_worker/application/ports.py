"""Ports the worker's use cases need; adapters live in infrastructure, fakes in tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..domain.model import DeployStep, ExecuteStep, LogStream, StepRef, Values


class FileStore(Protocol):
    """The platform's shared filestore (S3 API or a local directory), addressed by key: the part
    of `ryax_kit.filestore.Filestore` the worker uses, with its signatures. Every failure (a
    missing object, an invalid key, the filestore unreachable) raises FileTransferFailed."""

    async def download(self, key: str, destination: Path) -> None:
        """Write the object at `key` to `destination` (parents created, whole or not at all)."""
        ...

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        """Copy the file `source` in at `key`, replacing any object there."""
        ...


class SiteFiles(Protocol):
    """Copies of the files this site published, by sha256, kept on the site's disk so that a
    step of the same site reads a file another one wrote without downloading it again. Best
    effort: never raises; the filestore keeps the reference copy."""

    async def keep(self, sha256: str, source: Path) -> None:
        """Keep a copy of `source` (just published, of that sha256)."""
        ...

    async def copy_to(self, sha256: str, destination: Path) -> bool:
        """Write the kept copy to `destination` (whole or not at all); False when none."""
        ...

    def forget(self, sha256: str) -> None:
        """Drop a copy found wrong."""
        ...


class HeldStore(Protocol):
    """Files this site holds for runs (RYAX_SITE_FILES=hold): on its disk, durable, pinned (the
    size bound never drops them) until their runs are released; found again after a restart."""

    async def hold(self, sha256: str, source: Path, run_id: str) -> None:
        """Keep `source` (of that sha256) for the run: written, flushed to the disk and renamed,
        its pin recorded the same way, before this returns. OSError if it cannot be."""
        ...

    def held(self) -> tuple[tuple[str, str], ...]:
        """(run_id, sha256) of every pinned file."""
        ...

    def held_path(self, sha256: str) -> Path | None:
        """The site's copy of that content (pinned or not), None if it has none."""
        ...

    def busy(self, sha256: str, busy: bool) -> None:
        """Mark a copy being published (never dropped meanwhile), or no longer."""
        ...

    async def release(self, run_ids: tuple[str, ...]) -> int:
        """Unpin the files of those runs (they stay as cache copies); how many pins went."""
        ...


class FilePlacement(Protocol):
    """Where published files go in the filestore. Ids and output names must be plain key
    segments (else InvalidInput); any file name an action chose gives a valid key (the FileRef
    keeps the name itself)."""

    def output_key(
        self, run_id: str, execution_id: str, output: str, name: str, index: int | None = None
    ) -> str:
        """`runs/<run_id>/<execution_id>/<output>/<name>`; for the i-th set of a list of
        outputs `runs/<run_id>/<execution_id>/<output>/<i>/<name>`. A directory's name ends
        with .tar."""
        ...

    def trigger_output_key(self, ref: StepRef, event_id: str, output: str, name: str) -> str:
        """Files of a run a trigger yielded, before the runner gives the run an id:
        `triggers/<deployment_id>/<step_id>/<event_id>/<output>/<name>`."""
        ...


# ---------------------------------------------------------------------------------------------
# What an action instance streams back while it runs (the backend translates its protocol).


@dataclass(frozen=True, kw_only=True)
class ActionRunRequest:
    """One execution (or a trigger's session). File values carry absolute local paths."""

    execution_id: str
    inputs: Values
    work_dir: Path
    #: The order it comes from (a backend whose executions outlive the worker keeps it, to be
    #: followed again after a restart: ResumableBackend). None for a trigger's session.
    order: ExecuteStep | None = None
    #: `work_dir` served an earlier execution of the step on this backend and was left as it was
    #: given (empty): what the backend did to it for that one still holds.
    work_dir_reused: bool = False


@dataclass(frozen=True, kw_only=True)
class ActionStarted:
    """The instance is up and the run call was issued (first event of every run)."""


@dataclass(frozen=True, kw_only=True)
class ActionLog:
    stream: LogStream
    line: str
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ActionProgress:
    fraction: float
    message: str


class ActionStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    #: The site lost the run through no fault of the action (a Slurm job's node failed, it was
    #: preempted or vanished): reported LOST, the runner runs it again.
    LOST = "lost"


@dataclass(frozen=True, kw_only=True)
class ActionResult:
    """Last event of a run. File outputs carry absolute local paths in FileRef.key."""

    status: ActionStatus
    outputs: Values = field(default_factory=dict)
    outputs_list: tuple[Values, ...] = ()
    outputs_is_list: bool = False  # a list was returned (maybe empty: nothing downstream)
    error: str = ""
    traceback: str = ""
    http_status: int = 0
    cpu_seconds: float = 0.0
    max_memory_bytes: int = 0


@dataclass(frozen=True, kw_only=True)
class ActionNewRun:
    """A run a trigger yielded. File outputs carry absolute local paths in FileRef.key."""

    outputs: Values
    at: datetime


ActionEvent = ActionStarted | ActionLog | ActionProgress | ActionResult | ActionNewRun


class StepListener(Protocol):
    """What a backend tells the worker about deployed steps outside of any call."""

    def step_down(self, ref: StepRef, reason: str, restarting: bool) -> None:
        """The step's action instance stopped on its own; `restarting` says whether the
        backend tries again (False: it gave up, the step stays down)."""
        ...

    def step_up(self, ref: StepRef) -> None:
        """The step's action instance is back (restarted and initialised)."""
        ...

    def step_log(self, ref: StepRef, stream: LogStream, line: str) -> None:
        """A line the step's process printed outside of any execution."""
        ...


class SiteBackend(Protocol):
    """Runs actions on one site: `local` processes, `slurm` jobs; Kubernetes pods later.

    Rules every adapter keeps: deploy and undeploy are idempotent per StepRef; run() yields
    ActionStarted first and ActionResult last (for a trigger, only when it stops); closing the
    run() iterator early (cancel, timeout) stops the execution, killing what runs it if needed.
    """

    kind: str

    def set_listener(self, listener: StepListener) -> None: ...

    async def deploy(self, spec: DeployStep) -> None:
        """Make the step's action ready to run; raises DeploymentFailed with a reason."""
        ...

    async def undeploy(self, ref: StepRef) -> None:
        """Stop the step's action and release what it holds; unknown refs are fine."""
        ...

    def run(self, ref: StepRef, request: ActionRunRequest) -> AsyncGenerator[ActionEvent, None]:
        """Run one execution (or a trigger session). Waits while the instance restarts; raises
        ActionUnavailable if there is none, ActionCrashed if it dies meanwhile."""
        ...

    async def restart(self, ref: StepRef, reason: str) -> None:
        """Replace the step's instance by a fresh one (counts as a failure for the backoff)."""
        ...

    async def close(self) -> None:
        """Stop every action instance."""
        ...


@dataclass(frozen=True, kw_only=True)
class DetachedExecution:
    """An execution a previous process of this worker left running on the backend (a Slurm job
    goes on without the worker), found again at start."""

    #: The order as it was received (its inputs already staged: `inputs` is empty).
    order: ExecuteStep
    work_dir: Path
    #: What the backend runs it as (the Slurm job id).
    handle: str
    started_at: datetime
    #: Log lines of it already reported by the previous process: the next one is numbered
    #: from there, so the runner (which keeps one line per number) drops none after a restart.
    log_lines: int = 0


@runtime_checkable
class ResumableBackend(Protocol):
    """A backend whose executions outlive the worker process (Slurm jobs): a worker that stops
    detaches from them instead of stopping them, and the next one follows them to their end."""

    def detached(self) -> tuple[DetachedExecution, ...]:
        """Executions left by a previous process, found by start()."""
        ...

    def resume(
        self, ref: StepRef, execution: DetachedExecution
    ) -> AsyncGenerator[ActionEvent, None]:
        """Follow a detached execution to its end, like run() after its start (the step must be
        deployed again first; raises ActionUnavailable otherwise)."""
        ...

    async def abandon(self, execution: DetachedExecution) -> None:
        """Stop a detached execution that will not be followed (its step is not deployed
        again, or it was cancelled meanwhile) and remove what it left."""
        ...

    def detach(self) -> None:
        """From now on, closing a run leaves its execution running (the worker is stopping)."""
        ...
