"""Run executions: pull inputs, run the action, forward logs and progress, push outputs, report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

from ryax_kit.core import Clock

from ..domain.errors import ActionCrashed, ActionUnavailable, DomainError
from ..domain.model import (
    CancelExecution,
    DeploymentStateKind,
    DeployStep,
    ExecuteStep,
    ExecutionFinished,
    ExecutionId,
    ExecutionProgressed,
    ExecutionStatus,
    FileRef,
    LogLine,
    StepRef,
    Values,
)
from .deployments import Deployments
from .ports import (
    ActionLog,
    ActionProgress,
    ActionResult,
    ActionRunRequest,
    ActionStatus,
    DetachedExecution,
    FilePlacement,
    ResumableBackend,
    SiteBackend,
)
from .reports import ReportQueue
from .staging import FileStaging, Workspace

log = logging.getLogger(__name__)
REMEMBERED_EXECUTIONS = 10_000
#: How long an execution found again after a restart waits for the runner to deploy its step
#: again before it is given up (its job cancelled).
REDEPLOY_WAIT_SECONDS = 120.0


class _Stopped(Exception):
    """A found-again execution was cancelled before it could be followed."""


@dataclass(eq=False)
class RunningExecution:
    order: ExecuteStep
    task: asyncio.Task[None] | None = None
    action: asyncio.Task[ActionResult] | None = None
    cancel_reason: str | None = None
    #: CANCELLED for a Cancel order; FAILED when the worker itself stops the execution.
    cancel_status: ExecutionStatus = ExecutionStatus.CANCELLED
    log_seq: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: Left running by a previous process of the worker, followed again (ResumableBackend).
    resumed: DetachedExecution | None = None
    #: The worker stopped following it and left it running on the backend: nothing reported.
    detached: bool = False


@dataclass(frozen=True, kw_only=True)
class Outcome:
    status: ExecutionStatus
    result: ActionResult | None = None
    error: str = ""
    traceback: str = ""


def _moves_files(order: ExecuteStep, spec: DeployStep) -> bool:
    """A file or directory among the execution's inputs, or among its step's outputs."""
    return any(isinstance(value, FileRef) for value in order.inputs.values()) or any(
        output.holds_a_file for output in spec.outputs
    )


def _placement(
    placement: FilePlacement, order: ExecuteStep, index: int | None
) -> Callable[[str, str], str]:
    def key_for(output: str, name: str) -> str:
        return placement.output_key(order.run_id, order.execution_id, output, name, index)

    return key_for


class Executions:
    """Executions of deployed steps, several at once; the backend serialises the ones that
    share an action instance. Each ends with exactly one ExecutionFinished, reported after
    every one of its log lines."""

    def __init__(
        self,
        *,
        backend: SiteBackend,
        deployments: Deployments,
        reports: ReportQueue,
        staging: FileStaging,
        placement: FilePlacement,
        clock: Clock,
        site_name: str,
    ) -> None:
        self._backend = backend
        self._deployments = deployments
        self._reports = reports
        self._staging = staging
        self._placement = placement
        self._clock = clock
        self._site_name = site_name
        self._running: dict[ExecutionId, RunningExecution] = {}
        self._seen: OrderedDict[ExecutionId, None] = OrderedDict()
        self.finished: Counter[str] = Counter()
        # A backend that finds its executions again by their folder (Slurm: a job record per
        # execution's folder) gets a fresh one per execution.
        self._reuse_workspaces = not isinstance(backend, ResumableBackend)
        deployments.on_undeploy = self.cancel_step

    # -- queries ---------------------------------------------------------------------------

    def running_ids(self) -> tuple[ExecutionId, ...]:
        return tuple(sorted(self._running))

    def running_count(self) -> int:
        return len(self._running)

    # -- orders ----------------------------------------------------------------------------

    def execute(self, order: ExecuteStep) -> None:
        """Take an Execute in charge (idempotent per execution_id)."""
        if order.execution_id in self._seen:
            log.info("execution already known", extra={"execution_id": order.execution_id})
            return
        self._seen[order.execution_id] = None
        while len(self._seen) > REMEMBERED_EXECUTIONS:
            self._seen.popitem(last=False)
        running = RunningExecution(order)
        self._running[order.execution_id] = running
        running.task = asyncio.create_task(
            self._execute(running), name=f"execution {order.execution_id}"
        )

    def adopt(self, executions: tuple[DetachedExecution, ...]) -> None:
        """Follow again, to their end, executions a previous process of this worker left
        running on the backend (they are reported running at Register)."""
        for detached in executions:
            order = detached.order
            if order.execution_id in self._seen:
                continue
            self._seen[order.execution_id] = None
            running = RunningExecution(order, resumed=detached, log_seq=detached.log_lines)
            self._running[order.execution_id] = running
            running.task = asyncio.create_task(
                self._execute(running), name=f"execution {order.execution_id} (resumed)"
            )
            log.info(
                "execution found again on the site",
                extra={"execution_id": order.execution_id, "handle": detached.handle},
            )

    def cancel(self, order: CancelExecution) -> None:
        """Stop a running execution; it reports CANCELLED (unknown or finished: ignored)."""
        running = self._running.get(order.execution_id)
        if running is None:
            return
        self._cancel(running, order.reason or "cancelled")

    async def cancel_step(self, ref: StepRef) -> None:
        """The step is going away: cancel its executions and wait for their reports."""
        doomed = [r for r in self._running.values() if r.order.ref == ref]
        for running in doomed:
            self._cancel(running, f"step {ref} was undeployed")
        for running in doomed:
            await running.done.wait()
        self._staging.forget_step(ref)

    def _cancel(self, running: RunningExecution, reason: str) -> None:
        if running.cancel_reason is not None:
            return
        running.cancel_reason = reason
        if running.action is not None:
            running.action.cancel()

    async def drain(self, grace_seconds: float) -> None:
        """Shutdown: let running executions finish for `grace_seconds`, then stop the rest
        (reported FAILED: the worker went away, not the user). On a backend whose executions
        outlive the worker (ResumableBackend) the rest are left running instead, unreported:
        the next process of the worker follows them again."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            log.info("waiting for executions", extra={"count": len(tasks), "grace": grace_seconds})
            await asyncio.wait(tasks, timeout=grace_seconds)
        if isinstance(self._backend, ResumableBackend) and self._running:
            self._backend.detach()
            log.info(
                "executions left running on the site for the next worker",
                extra={"execution_ids": sorted(self._running)},
            )
            for running in self._running.values():
                running.detached = True
        for running in list(self._running.values()):
            running.cancel_reason = "the worker shut down before the execution finished"
            running.cancel_status = ExecutionStatus.FAILED
            if running.action is not None:
                running.action.cancel()
        rest = [r.task for r in self._running.values() if r.task is not None]
        if rest:
            await asyncio.wait(rest, timeout=10)

    # -- one execution ---------------------------------------------------------------------

    async def _execute(self, running: RunningExecution) -> None:
        order = running.order
        resumed = running.resumed
        started = resumed.started_at if resumed is not None else self._clock.now()
        workspace: Workspace | None = None
        # Only a work directory whose action returned may serve again: after a cancel, a timeout
        # or a crash, the process being stopped might still write into it.
        returned = False
        outcome: Outcome
        outputs: Values = {}
        outputs_list: tuple[Values, ...] = ()
        try:
            if resumed is not None:
                workspace = Workspace(resumed.work_dir.parent)
                step = await self._deployments.redeployed(order.ref, REDEPLOY_WAIT_SECONDS)
                stopped = running.cancel_reason is not None
                if stopped or step is None or step.state != DeploymentStateKind.READY:
                    # Nothing will follow its job: cancel it.
                    await self._abandon(resumed)
                    running.resumed = resumed = None
                if stopped:
                    raise _Stopped
            else:
                step = await self._deployments.settled(order.ref)
            if step is None:
                raise ActionUnavailable(
                    f"step {order.ref.step_id} of deployment {order.ref.deployment_id} "
                    f"is not deployed on site {self._site_name}"
                )
            if step.state != DeploymentStateKind.READY:
                raise ActionUnavailable(
                    f"step {order.ref.step_id} of deployment {order.ref.deployment_id} "
                    f"is not ready on site {self._site_name} ({step.state}"
                    + (f": {step.reason})" if step.reason else ")")
                )
            if resumed is not None:
                workspace = Workspace(resumed.work_dir.parent)
                inputs: Values = {}
            elif self._reuse_workspaces and not _moves_files(order, step.spec):
                workspace = self._staging.reusable_workspace(order.ref, order.execution_id)
                inputs = order.inputs
            else:
                workspace = self._staging.workspace(order.ref, order.execution_id)
                inputs = await self._staging.fetch_inputs(order.inputs, workspace.inputs_dir)
            request = ActionRunRequest(
                execution_id=order.execution_id,
                inputs=inputs,
                work_dir=workspace.work_dir,
                order=order,
                work_dir_reused=workspace.reused,
            )
            outcome = await self._run_action(running, request)
            returned = outcome.result is not None
            if outcome.status == ExecutionStatus.COMPLETED and outcome.result is not None:
                outputs = await self._staging.publish_outputs(
                    outcome.result.outputs,
                    _placement(self._placement, order, None),
                    workspace.work_dir,
                    run_id=order.run_id,
                )
                outputs_list = tuple(
                    [
                        await self._staging.publish_outputs(
                            values,
                            _placement(self._placement, order, index),
                            workspace.work_dir,
                            run_id=order.run_id,
                        )
                        for index, values in enumerate(outcome.result.outputs_list)
                    ]
                )
        except _Stopped:
            outcome = Outcome(status=running.cancel_status, error=running.cancel_reason or "")
        except DomainError as error:
            outcome = Outcome(status=ExecutionStatus.FAILED, error=error.detail)
        except asyncio.CancelledError:
            if running.detached:
                self._forget(running)
                raise
            outcome = Outcome(
                status=ExecutionStatus.FAILED,
                error=running.cancel_reason or "the worker stopped the execution",
            )
            self._finish(running, started, outcome, {}, ())
            raise
        except Exception as error:
            log.exception("execution failed", extra={"execution_id": order.execution_id})
            outcome = Outcome(
                status=ExecutionStatus.FAILED,
                error=f"worker error: {type(error).__name__}: {error}",
            )
        finally:
            # A detached execution goes on in its workspace (its job still runs there).
            if workspace is not None and not running.detached:
                self._staging.release(workspace, reusable=returned)
        if running.detached:
            self._forget(running)
            return
        if outcome.status != ExecutionStatus.COMPLETED:
            outputs, outputs_list = {}, ()
        self._finish(running, started, outcome, outputs, outputs_list)

    async def _run_action(self, running: RunningExecution, request: ActionRunRequest) -> Outcome:
        order = running.order
        if running.cancel_reason is not None:
            return Outcome(status=running.cancel_status, error=running.cancel_reason)
        running.action = asyncio.create_task(self._stream(running, request))
        try:
            result = await running.action
        except asyncio.CancelledError:
            if running.action.cancelled() and running.cancel_reason is not None:
                current = asyncio.current_task()
                if current is None or not current.cancelling():
                    return Outcome(status=running.cancel_status, error=running.cancel_reason)
            raise
        except TimeoutError:
            return Outcome(
                status=ExecutionStatus.FAILED,
                error=f"timed out after {order.timeout_seconds:g} s",
            )
        except ActionCrashed as error:
            return Outcome(status=ExecutionStatus.FAILED, error=error.detail)
        finally:
            running.action = None
        if result.status == ActionStatus.COMPLETED:
            return Outcome(status=ExecutionStatus.COMPLETED, result=result)
        if result.status == ActionStatus.LOST:
            return Outcome(status=ExecutionStatus.LOST, error=result.error or "lost by the site")
        return Outcome(
            status=ExecutionStatus.FAILED,
            result=result,
            error=result.error or "the action failed",
            traceback=result.traceback,
        )

    async def _stream(self, running: RunningExecution, request: ActionRunRequest) -> ActionResult:
        order = running.order
        result: ActionResult | None = None
        timeout = order.timeout_seconds if order.timeout_seconds > 0 else None
        resumed = running.resumed
        if timeout is not None and resumed is not None:
            elapsed = (self._clock.now() - resumed.started_at).total_seconds()
            timeout = max(timeout - elapsed, 0.001)
        async with asyncio.timeout(timeout):
            if resumed is not None and isinstance(self._backend, ResumableBackend):
                events = self._backend.resume(order.ref, resumed)
            else:
                events = self._backend.run(order.ref, request)
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, ActionLog):
                        running.log_seq += 1
                        self._reports.report(
                            LogLine(
                                seq=running.log_seq,
                                stream=event.stream,
                                line=event.line,
                                at=event.at,
                                execution_id=order.execution_id,
                            )
                        )
                    elif isinstance(event, ActionProgress):
                        self._reports.report(
                            ExecutionProgressed(
                                execution_id=order.execution_id,
                                fraction=min(max(event.fraction, 0.0), 1.0),
                                message=event.message,
                            )
                        )
                    elif isinstance(event, ActionResult):
                        result = event
        if result is None:
            raise ActionCrashed("the action ended without a result")
        return result

    def _finish(
        self,
        running: RunningExecution,
        started: datetime,
        outcome: Outcome,
        outputs: Values,
        outputs_list: tuple[Values, ...],
    ) -> None:
        order = running.order
        result = outcome.result
        self._reports.report(
            ExecutionFinished(
                execution_id=order.execution_id,
                status=outcome.status,
                started_at=started,
                ended_at=self._clock.now(),
                outputs=outputs,
                outputs_list=outputs_list,
                outputs_is_list=(
                    outcome.status == ExecutionStatus.COMPLETED
                    and result is not None
                    and result.outputs_is_list
                ),
                error=outcome.error,
                traceback=outcome.traceback,
                http_status=result.http_status if result is not None else 0,
                log_line_count=running.log_seq,
                cpu_seconds=result.cpu_seconds if result is not None else 0.0,
                max_memory_bytes=result.max_memory_bytes if result is not None else 0,
            )
        )
        self.finished[str(outcome.status)] += 1
        # The run's record is the runner's: a completed execution's line is for debugging only
        # (at 400 executions a second it was a tenth of the worker's CPU); the others say why.
        log.log(
            logging.DEBUG if outcome.status == ExecutionStatus.COMPLETED else logging.INFO,
            "execution finished",
            extra={
                "execution_id": order.execution_id,
                "status": str(outcome.status),
                "error": outcome.error,
                "log_lines": running.log_seq,
            },
        )
        self._forget(running)

    async def _abandon(self, resumed: DetachedExecution) -> None:
        if isinstance(self._backend, ResumableBackend):
            await self._backend.abandon(resumed)

    def _forget(self, running: RunningExecution) -> None:
        self._running.pop(running.order.execution_id, None)
        running.done.set()

    async def close(self) -> None:
        for running in list(self._running.values()):
            if running.task is not None:
                running.task.cancel()
        for running in list(self._running.values()):
            if running.task is not None:
                with contextlib.suppress(BaseException):
                    await running.task
