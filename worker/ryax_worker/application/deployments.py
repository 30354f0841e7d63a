"""Deploy and undeploy steps; follow their health; run triggers and forward what they yield."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from pathlib import Path

from ryax_kit.core import Clock

from ..domain.errors import ActionCrashed, ActionUnavailable, DeploymentFailed, DomainError
from ..domain.model import (
    DeployedStep,
    DeploymentStateChanged,
    DeploymentStateKind,
    DeployStep,
    LogLine,
    LogStream,
    StepRef,
    TriggerFired,
    UndeployStep,
    file_refs,
)
from .ports import (
    ActionLog,
    ActionNewRun,
    ActionResult,
    ActionRunRequest,
    ActionStarted,
    FilePlacement,
    SiteBackend,
)
from .reports import ReportQueue
from .staging import FileStaging

log = logging.getLogger(__name__)
State = DeploymentStateKind


class Deployments:
    """The steps deployed on this site, and the one rule that their reported state follows
    their action instance: DEPLOYING -> READY | FAILED, FAILED <-> READY as the instance dies
    and comes back, UNDEPLOYING -> UNDEPLOYED.

    Orders for one step apply in the order received (each waits for the previous one);
    different steps deploy concurrently.
    """

    def __init__(
        self,
        *,
        backend: SiteBackend,
        reports: ReportQueue,
        staging: FileStaging,
        placement: FilePlacement,
        clock: Clock,
    ) -> None:
        self._backend = backend
        self._reports = reports
        self._staging = staging
        self._placement = placement
        self._clock = clock
        self._steps: dict[StepRef, DeployedStep] = {}
        self._ops: dict[StepRef, asyncio.Task[None]] = {}
        self._deploying: dict[StepRef, asyncio.Task[None]] = {}
        self._triggers: dict[StepRef, asyncio.Task[None]] = {}
        self._step_log_seq: dict[StepRef, int] = {}
        self.on_undeploy: Callable[[StepRef], Awaitable[None]] | None = None
        #: Set when a Deploy of the step arrived (executions found again after a restart wait
        #: for the runner to deploy their step again).
        self._arrived: dict[StepRef, asyncio.Event] = {}
        backend.set_listener(self)

    # -- queries ---------------------------------------------------------------------------

    def get(self, ref: StepRef) -> DeployedStep | None:
        return self._steps.get(ref)

    def states(self) -> tuple[tuple[StepRef, DeploymentStateKind], ...]:
        return tuple(sorted((ref, step.state) for ref, step in self._steps.items()))

    async def settled(self, ref: StepRef) -> DeployedStep | None:
        """The step once every order received for it so far has been applied."""
        op = self._ops.get(ref)
        if op is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(op)
        return self._steps.get(ref)

    async def redeployed(self, ref: StepRef, within: float) -> DeployedStep | None:
        """The step once a Deploy of it arrived and was applied, waiting at most `within`
        seconds for the order (a restarted worker gets its steps again from the runner)."""
        arrived = self._arrived.setdefault(ref, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), within)
        return await self.settled(ref)

    # -- orders ----------------------------------------------------------------------------

    def deploy(self, order: DeployStep) -> None:
        """Take a Deploy in charge (idempotent per step)."""
        self._arrived.setdefault(order.ref, asyncio.Event()).set()
        self._deploying[order.ref] = self._chain(order.ref, lambda: self._deploy(order))

    def undeploy(self, order: UndeployStep) -> None:
        """Take an Undeploy in charge (an unknown step answers UNDEPLOYED). A deploy of the
        step still in progress (e.g. fetching a large artefact) is abandoned."""
        pending = self._deploying.pop(order.ref, None)
        if pending is not None and not pending.done():
            pending.cancel()
        self._chain(order.ref, lambda: self._undeploy(order.ref))

    def _chain(self, ref: StepRef, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        previous = self._ops.get(ref)

        async def after_previous() -> None:
            if previous is not None:
                with contextlib.suppress(BaseException):
                    await previous
            await work()

        task = asyncio.create_task(after_previous(), name=f"step-op {ref}")
        self._ops[ref] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._ops.get(ref) is done:
                del self._ops[ref]
            if not done.cancelled() and done.exception() is not None:
                log.error("step order failed", exc_info=done.exception(), extra={"step": str(ref)})

        task.add_done_callback(forget)
        return task

    async def _deploy(self, order: DeployStep) -> None:
        existing = self._steps.get(order.ref)
        if (
            existing is not None
            and existing.same_action(order)
            and existing.state in (State.READY, State.DEPLOYING)
        ):
            # A re-sent order (runner resync): say again where the step is.
            self._send_state(existing)
            return
        if existing is not None:
            await self._teardown(existing.ref)
        step = DeployedStep(spec=order)
        self._steps[order.ref] = step
        self._send_state(step)
        try:
            await self._backend.deploy(order)
        except asyncio.CancelledError:
            # Abandoned for an Undeploy (or shutdown): the step was never ready.
            self._steps.pop(order.ref, None)
            raise
        except DeploymentFailed as error:
            self._set(step, State.FAILED, error.detail)
            return
        except Exception as error:  # a bug or an unexpected I/O error: the step must not hang
            log.exception("deploy failed", extra={"step": str(order.ref)})
            self._set(step, State.FAILED, f"{type(error).__name__}: {error}")
            return
        if order.is_trigger:
            # READY once its Run started (the loop's first ActionStarted).
            self._triggers[order.ref] = asyncio.create_task(
                self._trigger_loop(step), name=f"trigger {order.ref}"
            )
        else:
            self._set(step, State.READY)

    async def _undeploy(self, ref: StepRef) -> None:
        step = self._steps.get(ref)
        if step is None:
            await self._backend.undeploy(ref)  # idempotent; covers an abandoned deploy
            self._reports.report(
                DeploymentStateChanged(
                    ref=ref, state=State.UNDEPLOYED, reason="", at=self._clock.now()
                )
            )
            return
        self._set(step, State.UNDEPLOYING)
        await self._teardown(ref)
        self._set(step, State.UNDEPLOYED)

    async def _teardown(self, ref: StepRef) -> None:
        """Stop the trigger, the step's executions and its action instance; forget the step."""
        trigger = self._triggers.pop(ref, None)
        if trigger is not None:
            trigger.cancel()
            with contextlib.suppress(BaseException):
                await trigger
        if self.on_undeploy is not None:
            await self.on_undeploy(ref)
        try:
            await self._backend.undeploy(ref)
        except Exception:
            log.exception("undeploy failed", extra={"step": str(ref)})
        self._steps.pop(ref, None)
        self._step_log_seq.pop(ref, None)

    async def close(self) -> None:
        """Stop following triggers (shutdown); the backend stops the instances."""
        for task in [*self._triggers.values(), *self._ops.values()]:
            task.cancel()
        for task in [*self._triggers.values(), *self._ops.values()]:
            with contextlib.suppress(BaseException):
                await task
        self._triggers.clear()

    # -- state reports ---------------------------------------------------------------------

    def _set(self, step: DeployedStep, state: DeploymentStateKind, reason: str = "") -> None:
        if step.change(state, reason):
            self._send_state(step)

    def _send_state(self, step: DeployedStep) -> None:
        log.info(
            "step state",
            extra={"step": str(step.ref), "state": str(step.state), "reason": step.reason},
        )
        self._reports.report(
            DeploymentStateChanged(
                ref=step.ref, state=step.state, reason=step.reason, at=self._clock.now()
            )
        )

    # -- StepListener ----------------------------------------------------------------------

    def step_down(self, ref: StepRef, reason: str, restarting: bool) -> None:
        step = self._steps.get(ref)
        if step is None or step.state in (State.UNDEPLOYING, State.UNDEPLOYED):
            return
        if step.spec.is_trigger:
            return  # the trigger loop sees its run end and reports it
        if restarting:
            log.warning(
                "action instance died, restarting", extra={"step": str(ref), "reason": reason}
            )
            return
        self._set(step, State.FAILED, reason)

    def step_up(self, ref: StepRef) -> None:
        step = self._steps.get(ref)
        if step is None or step.spec.is_trigger:
            return
        if step.state == State.FAILED:
            self._set(step, State.READY)

    def step_log(self, ref: StepRef, stream: LogStream, line: str) -> None:
        seq = self._step_log_seq.get(ref, 0) + 1
        self._step_log_seq[ref] = seq
        self._reports.report(
            LogLine(seq=seq, stream=stream, line=line, at=self._clock.now(), ref=ref)
        )

    # -- triggers --------------------------------------------------------------------------

    async def _trigger_loop(self, step: DeployedStep) -> None:
        """Run the trigger; whenever it stops, report FAILED and start it again on a fresh
        instance (the backend spaces restarts and gives up on a trigger that keeps dying)."""
        ref = step.ref
        while True:
            reason = await self._trigger_session(step)
            self._set(step, State.FAILED, reason)
            log.warning("trigger stopped", extra={"step": str(ref), "reason": reason})
            try:
                await self._backend.restart(ref, reason)
            except ActionUnavailable as error:
                self._set(step, State.FAILED, error.detail)
                return

    async def _trigger_session(self, step: DeployedStep) -> str:
        """One Run of the trigger; returns why it ended."""
        ref = step.ref
        session = f"trigger-{uuid.uuid4()}"
        work_dir = self._staging.trigger_dir(ref, session)
        request = ActionRunRequest(execution_id=session, inputs={}, work_dir=work_dir)
        try:
            async with aclosing(self._backend.run(ref, request)) as events:
                async for event in events:
                    if isinstance(event, ActionStarted):
                        self._set(step, State.READY)
                    elif isinstance(event, ActionNewRun):
                        await self._forward_new_run(ref, event, work_dir)
                    elif isinstance(event, ActionLog):
                        self.step_log(ref, event.stream, event.line)
                    elif isinstance(event, ActionResult):
                        detail = event.error or "it returned"
                        return f"trigger stopped: {detail}"
            return "trigger stopped without a result"
        except (ActionCrashed, ActionUnavailable) as error:
            return error.detail
        finally:
            self._staging.cleanup(work_dir)

    async def _forward_new_run(self, ref: StepRef, event: ActionNewRun, work_dir: Path) -> None:
        event_id = str(uuid.uuid4())
        try:
            outputs = await self._staging.publish_outputs(
                event.outputs,
                lambda output, name: self._placement.trigger_output_key(
                    ref, event_id, output, name
                ),
                work_dir,
            )
        except DomainError as error:
            # The run cannot start without its files: say why in the step's log, keep going.
            self.step_log(ref, LogStream.STDERR, f"ryax: new run dropped: {error.detail}")
            return
        finally:
            for value in file_refs(event.outputs).values():
                self._staging.remove(Path(value.key), work_dir)
        self._reports.report(TriggerFired(ref=ref, outputs=outputs, at=event.at))
