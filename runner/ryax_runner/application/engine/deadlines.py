"""Deadlines: nothing waits for ever. A periodic reaper ends the executions that outlived theirs.

- Dispatched (or running) without a result for longer than the step's timeout plus the grace
  (`EngineSettings.timeout_grace_seconds`), counted from the dispatch: timed out.
- Waiting for its step to be ready on a site (unplaced: no site matches; placed but not ready;
  its worker not connected) for longer than `site_wait_timeout_seconds`, counted from its
  creation or its retry time: failed, naming what placement said.

Deadlines are derived from the recorded times, so a run restored after a restart keeps them;
the first look after a start comes only once the sites had their heartbeat timeout to reconnect
(and re-send the results they kept), so a deadline that passed while the runner was down ends
only what is still without news.
"""

from __future__ import annotations

from datetime import timedelta

from ...domain.deployment import DeploymentId, StepState
from ...domain.run import Execution, ExecutionState, Run
from ..ports import Clock, TimerHandle, Timers
from .dispatch import Dispatcher
from .files import HeldFiles
from .state import EngineSettings, EngineState


class Reaper:
    """Every `reap_interval_seconds`, ends what is past its deadline, with the reason."""

    def __init__(
        self,
        state: EngineState,
        *,
        dispatcher: Dispatcher,
        clock: Clock,
        files: HeldFiles | None = None,
        timers: Timers,
        settings: EngineSettings,
    ) -> None:
        self._state = state
        self._dispatcher = dispatcher
        self._files = files
        self._clock = clock
        self._timers = timers
        self._settings = settings
        self._timer: TimerHandle | None = None

    def start(self, first_delay: float | None = None) -> None:
        delay = self._settings.reap_interval_seconds if first_delay is None else first_delay
        self._timer = self._timers.call_later(delay, self._due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        try:
            self.reap()
        finally:
            self.start()

    def reap(self) -> None:
        """End every active execution past its deadline."""
        now = self._clock.now()
        grace = timedelta(seconds=self._settings.timeout_grace_seconds)
        wait = timedelta(seconds=self._settings.site_wait_timeout_seconds)
        for eid, run in list(self._state.executions.items()):
            execution = run.executions.get(eid)
            if execution is None or not execution.is_active:
                continue
            if execution.state in (ExecutionState.DISPATCHED, ExecutionState.RUNNING):
                timeout = run.definition.step(execution.step_id).settings.timeout(
                    self._settings.default_step_timeout_seconds
                )
                since = execution.dispatched_at or execution.created_at
                if now >= since + timedelta(seconds=timeout) + grace:
                    self._dispatcher.timed_out(run, execution, timeout)
            elif execution.state is ExecutionState.WAITING:
                # A retry waits for its not_before time first; its wait for a site starts then.
                since = max(execution.created_at, execution.not_before or execution.created_at)
                if now >= since + wait:
                    self._dispatcher.waited_too_long(
                        run,
                        execution,
                        f"no site could run step {execution.step_id} for "
                        f"{self._settings.site_wait_timeout_seconds:g} s: "
                        f"{self._why_waiting(run, execution)}",
                    )

    def _why_waiting(self, run: Run, execution: Execution) -> str:
        parked = self._files.why_parked(execution) if self._files is not None else ""
        if parked:
            return parked
        d = self._state.deployments.get(DeploymentId(run.deployment_id))
        step = d.steps.get(execution.step_id) if d is not None else None
        if d is None or step is None:
            return "the workflow is not deployed any more"
        if step.state is StepState.UNPLACED:
            return step.reason or "no site matches the step"
        site = self._state.sites.get(step.site_id) if step.site_id is not None else None
        where = f"site {site.name}" if site is not None else "its site"
        if step.state is not StepState.READY:
            return f"the step is {step.state} on {where}" + (
                f" ({step.reason})" if step.reason else ""
            )
        return f"the worker of {where} is not connected"
