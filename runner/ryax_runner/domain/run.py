"""Runs and executions: the state machine of one run of a deployed workflow.

A run starts from the trigger's outputs. Every step runs once per *branch*: a handler that
returns a list of output sets forks the branch, one child branch per element, and every step
downstream runs once per branch. A branch is the set of (fan-out step, element index) pairs that
led to it. A step with several parents (fan-in) runs once for each combination of its parents'
outputs whose branches agree (same index for every fan-out step they share): so it waits for
all its parents in its branch, joins element-wise the branches of a shared fan-out, and crosses
independent fan-outs.

A run ends exactly once: completed (nothing left to run), failed (an execution failed with no
retry left: the reason names the step and its error) or cancelled.

Two retry budgets, kept apart: an execution that *failed* (its action raised, it timed out) is
retried while the step's `retries` allow, counting only those attempts; an execution *lost* with
its worker (crash, restart, partition) says nothing about the step, so it is run again at once,
up to the platform's infrastructure budget. Each attempt keeps its own record.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NewType

from .errors import Conflict
from .values import (
    MAX_INLINE_BYTES,
    SECRET_TYPES,
    FileRef,
    Value,
    held_files,
    refused_output,
    without_held,
)
from .workflow import (
    ReferenceInput,
    SecretInput,
    StaticInput,
    StepDefinition,
    WorkflowDefinition,
)

RunId = NewType("RunId", str)
ExecutionId = NewType("ExecutionId", str)
#: (fan-out step id, element index) pairs, sorted by step id.
Branch = tuple[tuple[str, int], ...]
MASK = "***"
#: The longest list a step may return (one branch per element): RYAX_RUNNER_MAX_FANOUT.
MAX_FANOUT = 1000
#: The most executions one run may create (nested fan-outs multiply): a run past it fails.
MAX_RUN_EXECUTIONS = 10_000


def branch_key(branch: Branch) -> str:
    return "/".join(f"{s}:{i}" for s, i in branch)


def merge_branches(branches: Iterable[Branch]) -> Branch | None:
    """The union of branches, or None when two disagree on a fan-out step's index."""
    merged: dict[str, int] = {}
    for branch in branches:
        for step, index in branch:
            if merged.setdefault(step, index) != index:
                return None
    return tuple(sorted(merged.items()))


def is_within(inner: Branch, outer: Branch) -> bool:
    """True when every fan-out choice of `inner` is also made by `outer`."""
    return set(inner) <= set(outer)


def execution_id_for(run_id: RunId, step_id: str, branch: Branch, attempt: int) -> ExecutionId:
    """Deterministic: re-creating an execution after a restart gives it the same id."""
    name = f"{step_id}|{branch_key(branch)}|{attempt}"
    return ExecutionId(str(uuid.uuid5(uuid.UUID(run_id), name)))


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED)


class ExecutionState(StrEnum):
    #: Created; waits for its step to be ready on a site, or for its retry time.
    WAITING = "waiting"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Lost with its worker; another attempt follows or the run failed.
    LOST = "lost"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION_STATES


_TERMINAL_EXECUTION_STATES = frozenset(
    {ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED, ExecutionState.LOST}
)


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    """How an execution ended, as reported by its worker."""

    outcome: Outcome
    outputs: dict[str, Value] | None = None
    outputs_list: list[dict[str, Value]] | None = None
    error: str = ""
    traceback: str = ""
    http_status: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    log_count: int = 0
    cpu_seconds: float = 0.0
    max_memory_bytes: int = 0


@dataclass(eq=False, kw_only=True)
class Execution:
    """One attempt of one step in one branch of a run."""

    id: ExecutionId
    run_id: RunId
    step_id: str
    branch: Branch = ()
    attempt: int = 1
    state: ExecutionState = ExecutionState.WAITING
    is_trigger: bool = False
    created_at: datetime
    #: Inputs as shown to users (secrets and passwords masked); Execute carries the real ones.
    inputs: dict[str, Value] = field(default_factory=dict)
    site_id: str | None = None
    order_seq: int = 0
    not_before: datetime | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outputs: dict[str, Value] | None = None
    outputs_list: list[dict[str, Value]] | None = None
    error: str = ""
    traceback: str = ""
    http_status: int = 0
    log_count: int = 0
    progress: float = 0.0
    progress_message: str = ""
    cpu_seconds: float = 0.0
    max_memory_bytes: int = 0
    #: Attempts of this step (in this branch) lost with their worker before this one.
    infra_retries: int = 0
    #: The attempt this one replaces (lost or failed), None for the first.
    retry_of: ExecutionId | None = None

    @property
    def is_active(self) -> bool:
        return not self.state.is_terminal

    @property
    def user_attempt(self) -> int:
        """The attempt number as the step's `retries` count it: lost attempts do not count."""
        return self.attempt - self.infra_retries


@dataclass(frozen=True, kw_only=True)
class Node:
    """Outputs of a step in a branch (one element of a returned list is one node)."""

    step_id: str
    branch: Branch
    outputs: dict[str, Value]


@dataclass(kw_only=True)
class RunUpdate:
    """What the engine must do after a change of a run."""

    #: New executions, ready to dispatch (their inputs are known).
    ready: list[Execution] = field(default_factory=list)
    #: Retries to dispatch at their `not_before` time.
    retries: list[Execution] = field(default_factory=list)
    #: Active executions to cancel on their workers.
    cancel: list[Execution] = field(default_factory=list)
    #: The run reached its terminal state with this change.
    ended: bool = False


@dataclass(eq=False, kw_only=True)
class Run:
    id: RunId
    project_id: str
    deployment_id: str
    workflow_id: str
    workflow_name: str
    definition: WorkflowDefinition = field(repr=False)
    origin: str  # "http" (endpoint), "trigger" (a trigger action) or "timer" (a built-in timer)
    state: RunState = RunState.PENDING
    reason: str = ""
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failed_step_id: str = ""
    http_status: int = 0
    results: dict[str, Value] | None = None
    executions: dict[ExecutionId, Execution] = field(default_factory=dict)
    nodes: dict[str, list[Node]] = field(default_factory=dict)
    instances: set[tuple[str, Branch]] = field(default_factory=set)
    #: Executions changed since the recorder last took them.
    touched: set[ExecutionId] = field(default_factory=set)
    #: The most executions this run may create (RYAX_RUNNER_MAX_RUN_EXECUTIONS).
    max_executions: int = field(default=MAX_RUN_EXECUTIONS, repr=False)

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        id: RunId,
        project_id: str,
        deployment_id: str,
        workflow_id: str,
        workflow_name: str,
        definition: WorkflowDefinition,
        trigger_outputs: dict[str, Value],
        origin: str,
        now: datetime,
        max_inline_bytes: int = MAX_INLINE_BYTES,
        refused: str = "",
        max_executions: int = MAX_RUN_EXECUTIONS,
    ) -> tuple[Run, RunUpdate]:
        """A run from a trigger's outputs; returns the first executions to dispatch.

        Outputs that cannot be kept (`values.refused_output`), or `refused` (why the trigger's
        outputs could not even be read), fail the trigger step and so the run, at once."""
        run = cls(
            id=id,
            project_id=project_id,
            deployment_id=deployment_id,
            workflow_id=workflow_id,
            workflow_name=workflow_name,
            definition=definition,
            origin=origin,
            created_at=now,
            max_executions=max_executions,
        )
        trigger_step = definition.trigger.step_id
        trigger = Execution(
            id=execution_id_for(id, trigger_step, (), 1),
            run_id=id,
            step_id=trigger_step,
            state=ExecutionState.COMPLETED,
            is_trigger=True,
            created_at=now,
            started_at=now,
            ended_at=now,
            outputs=dict(trigger_outputs),
        )
        run._add(trigger)
        run.instances.add((trigger_step, ()))
        update = RunUpdate()
        refused = refused or refused_output(trigger_outputs, None, max_inline_bytes)
        if refused:
            trigger.state, trigger.error, trigger.outputs = ExecutionState.FAILED, refused, None
            run.failed_step_id = trigger_step
            run._end(RunState.FAILED, f"step {trigger_step} failed: {refused}", now, update)
            return run, update
        run._complete_nodes(trigger, update, now)
        run._check_done(now, update)
        return run, update

    @classmethod
    def restore(cls, run: Run, executions: Iterable[Execution], now: datetime) -> RunUpdate:
        """Rebuild a run's branches from its recorded executions (after a restart).

        Returns the executions that should exist but were not recorded (still to dispatch).
        """
        latest: dict[tuple[str, Branch], Execution] = {}
        for e in executions:
            run.executions[e.id] = e
            key = (e.step_id, e.branch)
            run.instances.add(key)
            if key not in latest or latest[key].attempt < e.attempt:
                latest[key] = e
        update = RunUpdate()
        order = {s.step_id: i for i, s in enumerate(run.definition.steps)}
        done = sorted(
            (e for e in latest.values() if e.state is ExecutionState.COMPLETED),
            key=lambda e: (order.get(e.step_id, 0), len(e.branch)),
        )
        for e in done:
            run._complete_nodes(e, update, run.created_at, silent=True)
        # A crash may have lost executions created after a node completed: re-derive them.
        for e in done:
            run._complete_nodes(e, update, run.created_at, expand_only=True)
        run.touched.clear()
        run.touched.update(e.id for e in update.ready)
        active = any(e.is_active for e in run.executions.values())
        if not active and not update.ready:
            run._check_done(now, update)
        return update

    # -- queries -----------------------------------------------------------------------------

    @property
    def active_executions(self) -> list[Execution]:
        return [e for e in self.executions.values() if e.is_active]

    def _add(self, execution: Execution) -> None:
        self.executions[execution.id] = execution
        self.touched.add(execution.id)

    def _node_for(self, step_id: str, branch: Branch) -> Node | None:
        best: Node | None = None
        for node in self.nodes.get(step_id, ()):
            if is_within(node.branch, branch) and (
                best is None or len(node.branch) > len(best.branch)
            ):
                best = node
        return best

    def resolve_inputs(self, step: StepDefinition, branch: Branch) -> dict[str, Value]:
        """The real input values of a step in a branch (secrets in clear: for Execute only)."""
        values: dict[str, Value] = {}
        names = [io.name for io in step.inputs]
        names += [n for n, _ in step.input_values if n not in names]
        for name in names:
            source = step.source(name)
            io = next((i for i in step.inputs if i.name == name), None)
            if source is None:
                values[name] = io.default() if io is not None else None
            elif isinstance(source, (StaticInput, SecretInput)):
                values[name] = source.value
            else:
                node = self._node_for(source.step_id, branch)
                values[name] = node.outputs.get(source.output_name) if node else None
        return values

    def shown_inputs(self, step: StepDefinition, branch: Branch) -> dict[str, Value]:
        """Inputs as recorded and shown: secrets, password-typed values and values taken from
        a password-typed output masked."""
        shown = self.resolve_inputs(step, branch)
        for name in shown:
            io = next((i for i in step.inputs if i.name == name), None)
            source = step.source(name)
            from_password = isinstance(
                source, ReferenceInput
            ) and source.output_name in self.definition.sensitive_outputs(source.step_id)
            if (
                isinstance(source, SecretInput)
                or (io is not None and io.type in SECRET_TYPES)
                or from_password
            ):
                shown[name] = MASK
        return shown

    # -- transitions -------------------------------------------------------------------------

    def mark_dispatched(
        self, execution: Execution, *, site_id: str, order_seq: int, now: datetime
    ) -> None:
        execution.state = ExecutionState.DISPATCHED
        execution.site_id, execution.order_seq, execution.dispatched_at = site_id, order_seq, now
        self.touched.add(execution.id)
        if self.state is RunState.PENDING:
            self.state, self.started_at = RunState.RUNNING, now

    def mark_running(self, execution: Execution, now: datetime) -> None:
        if execution.state is ExecutionState.DISPATCHED:
            execution.state = ExecutionState.RUNNING
            execution.started_at = execution.started_at or now
            self.touched.add(execution.id)

    def held_files(self) -> list[FileRef]:
        """Files of the run's outputs (and results) a site holds, not published yet."""
        found: dict[str, FileRef] = {}
        for e in self.executions.values():
            for outputs in [e.outputs, *(e.outputs_list or [])]:
                for ref in held_files(outputs):
                    found.setdefault(ref.key, ref)
        for ref in held_files(self.results):
            found.setdefault(ref.key, ref)
        return list(found.values())

    def mark_published(self, keys: set[str] | frozenset[str]) -> bool:
        """The files under `keys` are in the filestore now: their `held_by` is cleared wherever
        the run shows them (outputs, the inputs of the steps that take them, results); the
        executions changed are touched (recorded again). True when something changed."""
        changed = False
        for e in self.executions.values():
            touched = without_held(e.outputs, keys) | without_held(e.inputs, keys)
            for outputs in e.outputs_list or []:
                touched |= without_held(outputs, keys)
            if touched:
                self.touched.add(e.id)
                changed = True
        return without_held(self.results, keys) or changed

    def progress(self, execution: Execution, fraction: float, message: str, now: datetime) -> None:
        self.mark_running(execution, now)
        execution.progress, execution.progress_message = fraction, message[:500]
        self.touched.add(execution.id)

    def finish(
        self,
        execution_id: ExecutionId,
        result: ExecutionResult,
        *,
        now: datetime,
        retry_backoff_seconds: float = 1.0,
        max_inline_bytes: int = MAX_INLINE_BYTES,
        max_fanout: int = MAX_FANOUT,
    ) -> RunUpdate:
        """Record how an execution ended; a result for an ended execution is ignored. A list
        longer than `max_fanout` fails the step (not retried: it would fan out as wide)."""
        update = RunUpdate()
        execution = self.executions.get(execution_id)
        if execution is None or execution.state.is_terminal:
            return update
        self.touched.add(execution.id)
        execution.started_at = result.started_at or execution.started_at or execution.dispatched_at
        execution.ended_at = result.ended_at or now
        execution.log_count = max(execution.log_count, result.log_count)
        execution.cpu_seconds, execution.max_memory_bytes = (
            result.cpu_seconds,
            result.max_memory_bytes,
        )
        outcome, error, http_status = result.outcome, result.error, result.http_status
        retryable = True
        if outcome is Outcome.COMPLETED:
            refused = refused_output(result.outputs, result.outputs_list, max_inline_bytes)
            if refused:
                outcome, error, http_status = Outcome.FAILED, refused, 0
            elif result.outputs_list is not None and len(result.outputs_list) > max_fanout:
                outcome, http_status, retryable = Outcome.FAILED, 0, False
                error = (
                    f"returned a list of {len(result.outputs_list)} elements: more than the "
                    f"fan-out limit of {max_fanout} branches (RYAX_RUNNER_MAX_FANOUT)"
                )
        if outcome is Outcome.COMPLETED:
            execution.state = ExecutionState.COMPLETED
            execution.outputs, execution.outputs_list = result.outputs, result.outputs_list
            if execution.outputs is None and execution.outputs_list is None:
                execution.outputs = {}
            execution.progress = 1.0
            if not self.state.is_terminal:
                self._complete_nodes(execution, update, now)
        elif outcome is Outcome.CANCELLED:
            execution.state = ExecutionState.CANCELLED
            execution.error = error or "cancelled"
            if not self.state.is_terminal:
                self._end(
                    RunState.CANCELLED, f"step {execution.step_id} was cancelled", now, update
                )
        else:
            execution.state = ExecutionState.FAILED
            execution.error, execution.traceback = error or "failed", result.traceback
            execution.http_status = http_status
            if not self.state.is_terminal:
                retryable = retryable and not (400 <= http_status < 500)
                self._failed(execution, update, now, retry_backoff_seconds, retryable)
        self._check_done(now, update)
        return update

    def lose(
        self, execution_id: ExecutionId, reason: str, *, now: datetime, infra_budget: int
    ) -> RunUpdate:
        """The execution was lost with its worker: LOST, and a new attempt is ready at once
        while the step's lost attempts stay within `infra_budget`; else the run fails."""
        update = RunUpdate()
        execution = self.executions.get(execution_id)
        if execution is None or execution.state.is_terminal:
            return update
        execution.state, execution.error = ExecutionState.LOST, reason
        execution.ended_at = now
        self.touched.add(execution.id)
        if self.state.is_terminal:
            return update
        if execution.infra_retries < infra_budget:
            again = self._next_attempt(
                execution, now, now, infra_retries=execution.infra_retries + 1
            )
            update.ready.append(again)
        else:
            step = execution.step_id
            self.failed_step_id, self.http_status = step, 0
            times = execution.infra_retries + 1
            self._end(
                RunState.FAILED,
                f"step {step} lost its worker {times} time{'s' if times > 1 else ''}: {reason}",
                now,
                update,
            )
        self._check_done(now, update)
        return update

    def fail(
        self,
        execution_id: ExecutionId,
        reason: str,
        *,
        now: datetime,
        retry_backoff_seconds: float = 1.0,
        retryable: bool = True,
    ) -> RunUpdate:
        """The runner ends the execution as a failure of the step (timed out, never deployed):
        FAILED, retried while the step's retries allow (if `retryable`)."""
        update = RunUpdate()
        execution = self.executions.get(execution_id)
        if execution is None or execution.state.is_terminal:
            return update
        execution.state, execution.error = ExecutionState.FAILED, reason
        execution.ended_at = now
        self.touched.add(execution.id)
        if not self.state.is_terminal:
            self._failed(execution, update, now, retry_backoff_seconds, retryable)
        self._check_done(now, update)
        return update

    def abandon(self, reason: str, now: datetime) -> RunUpdate:
        """The run's record could not be written (the write was set aside): whatever state it
        reached in memory, it ends FAILED with `reason`, its active executions cancelled, and
        every execution is to be recorded again (in a simpler form, by the recorder)."""
        update = RunUpdate()
        was_terminal = self.state.is_terminal
        for e in self.executions.values():
            if e.state is ExecutionState.WAITING:
                e.state, e.error, e.ended_at = ExecutionState.CANCELLED, reason, now
            elif e.is_active:
                update.cancel.append(e)
                e.state, e.error, e.ended_at = ExecutionState.CANCELLED, reason, now
            self.touched.add(e.id)
        self.state, self.reason, self.results = RunState.FAILED, reason, None
        self.ended_at = self.ended_at or now
        self.started_at = self.started_at or now
        update.ended = not was_terminal
        return update

    def cancel(self, reason: str, now: datetime) -> RunUpdate:
        """Cancel the run; active executions must be cancelled on their workers."""
        if self.state.is_terminal:
            raise Conflict(f"run {self.id} already ended ({self.state})")
        update = RunUpdate()
        self._end(RunState.CANCELLED, reason, now, update)
        return update

    # -- internals ---------------------------------------------------------------------------

    def _failed(
        self,
        execution: Execution,
        update: RunUpdate,
        now: datetime,
        backoff: float,
        retryable: bool,
    ) -> None:
        step = self.definition.step(execution.step_id)
        tried = execution.user_attempt
        if retryable and tried <= step.settings.retries:
            retry = self._next_attempt(
                execution,
                now,
                now + timedelta(seconds=backoff * 2 ** (tried - 1)),
                infra_retries=execution.infra_retries,
            )
            update.retries.append(retry)
            return
        self.failed_step_id, self.http_status = step.step_id, execution.http_status
        attempts = f" (after {execution.attempt} attempts)" if execution.attempt > 1 else ""
        self._end(
            RunState.FAILED,
            f"step {step.step_id} failed{attempts}: {execution.error}",
            now,
            update,
        )

    def _next_attempt(
        self, previous: Execution, now: datetime, not_before: datetime, *, infra_retries: int
    ) -> Execution:
        attempt = previous.attempt + 1
        execution = Execution(
            id=execution_id_for(self.id, previous.step_id, previous.branch, attempt),
            run_id=self.id,
            step_id=previous.step_id,
            branch=previous.branch,
            attempt=attempt,
            created_at=now,
            inputs=previous.inputs,
            not_before=not_before,
            infra_retries=infra_retries,
            retry_of=previous.id,
        )
        self._add(execution)
        return execution

    def _end(self, state: RunState, reason: str, now: datetime, update: RunUpdate) -> None:
        self.state, self.reason, self.ended_at = state, reason, now
        self.started_at = self.started_at or now
        update.ended = True
        for e in self.executions.values():
            if e.state is ExecutionState.WAITING:
                e.state, e.error, e.ended_at = ExecutionState.CANCELLED, reason, now
                self.touched.add(e.id)
            elif e.is_active:
                update.cancel.append(e)
        update.ready = [e for e in update.ready if e.is_active]
        update.retries = [e for e in update.retries if e.is_active]
        if state is RunState.COMPLETED:
            self.results = self._results()

    def _check_done(self, now: datetime, update: RunUpdate) -> None:
        if self.state.is_terminal:
            return
        if not any(e.is_active for e in self.executions.values()):
            self._end(RunState.COMPLETED, "", now, update)

    def _complete_nodes(
        self,
        execution: Execution,
        update: RunUpdate,
        now: datetime,
        *,
        silent: bool = False,
        expand_only: bool = False,
    ) -> None:
        step_id = execution.step_id
        if expand_only:
            new_nodes = [
                n for n in self.nodes.get(step_id, ()) if is_within(execution.branch, n.branch)
            ]
        else:
            if execution.outputs_list is not None:
                new_nodes = [
                    Node(
                        step_id=step_id,
                        outputs=outs,
                        branch=tuple(sorted((*execution.branch, (step_id, i)))),
                    )
                    for i, outs in enumerate(execution.outputs_list)
                ]
            else:
                new_nodes = [
                    Node(step_id=step_id, branch=execution.branch, outputs=execution.outputs or {})
                ]
            self.nodes.setdefault(step_id, []).extend(new_nodes)
            if silent:
                return
        for node in new_nodes:
            for child_id in self.definition.children[step_id]:
                self._expand(child_id, node, update, now)

    def _expand(self, child_id: str, node: Node, update: RunUpdate, now: datetime) -> None:
        if self.state.is_terminal:
            return
        lists: list[list[Node]] = []
        for parent in self.definition.parents(child_id):
            lists.append([node] if parent == node.step_id else self.nodes.get(parent, []))
        step = self.definition.step(child_id)
        for combo in itertools.product(*lists):
            branch = merge_branches(n.branch for n in combo)
            if branch is None or (child_id, branch) in self.instances:
                continue
            if len(self.executions) >= self.max_executions:
                self.failed_step_id = node.step_id
                self._end(
                    RunState.FAILED,
                    f"step {child_id} would make the run hold more than {self.max_executions} "
                    f"executions (fan-out after step {node.step_id}; "
                    "RYAX_RUNNER_MAX_RUN_EXECUTIONS)",
                    now,
                    update,
                )
                return
            self.instances.add((child_id, branch))
            execution = Execution(
                id=execution_id_for(self.id, child_id, branch, 1),
                run_id=self.id,
                step_id=child_id,
                branch=branch,
                created_at=now,
                inputs=self.shown_inputs(step, branch),
            )
            self._add(execution)
            update.ready.append(execution)

    def _results(self) -> dict[str, Value]:
        results: dict[str, Value] = {}
        for key, step_id, output_name in self.definition.result_specs:
            nodes = sorted(self.nodes.get(step_id, []), key=lambda n: n.branch)
            if not nodes:
                results[key] = None
            elif all(not n.branch for n in nodes):
                results[key] = nodes[-1].outputs.get(output_name)
            else:
                results[key] = [n.outputs.get(output_name) for n in nodes]
        return results
