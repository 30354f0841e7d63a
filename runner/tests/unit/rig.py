"""An engine on fakes whose time moves only with `timers.advance`, and the workflows the engine
tests deploy: a trigger `t` and processors that take its output `x`."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count
from typing import Any

from ryax_runner.application.engine import Engine, EngineSettings
from ryax_runner.application.messages import (
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    Heartbeat,
    RegisterWorker,
    Report,
    ReportedStep,
    StepStateReported,
)
from ryax_runner.domain.deployment import Deployment, StepState
from ryax_runner.domain.run import Execution, ExecutionId, ExecutionResult, Outcome, Run
from ryax_runner.domain.site import site_id_for
from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    StepDefinition,
    StepSettings,
    TriggerDefinition,
    WorkflowDefinition,
)

from .fakes import FakeChannel, FakeClock, FakeRecorder, FakeStore, FakeTimers, site_credential

HEARTBEAT_TIMEOUT = 6.0
BACKOFF = 10.0
GRACE = 5.0
INFRA_RETRIES = 2
SITE_WAIT = 100.0
REAP = 5.0


def processor(step_id: str, settings: StepSettings | None = None) -> StepDefinition:
    return StepDefinition(
        step_id=step_id,
        action_id=step_id,
        action_version="1",
        action_kind="processor",
        inputs=(IO(name="x", type="string"),),
        outputs=(IO(name="y", type="string"),),
        input_values=(("x", ReferenceInput(step_id="t", output_name="x")),),
        parent_step_ids=("t",),
        settings=settings or StepSettings(),
    )


def definition(*steps: StepDefinition) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="t",
        action_id="t",
        action_version="1",
        action_kind="trigger",
        outputs=(IO(name="x", type="string"),),
    )
    return WorkflowDefinition(
        steps=(trigger, *steps), trigger=TriggerDefinition(step_id="t", http_endpoint=True)
    )


@dataclass
class Rig:
    engine: Engine
    timers: FakeTimers
    recorder: FakeRecorder
    store: FakeStore
    channels: dict[str, FakeChannel] = field(default_factory=dict)
    seqs: dict[str, count[int]] = field(default_factory=dict)

    def register(
        self,
        site: str,
        *,
        worker: str = "",
        last_seen: int = 0,
        running: frozenset[str] = frozenset(),
        ready: tuple[str, ...] = (),
        credential: str | None = None,
        held: frozenset[tuple[str, str]] = frozenset(),
    ) -> FakeChannel:
        """A (new) stream of the site's worker, with what it says it has (`held`: its held
        files, (run_id, sha256)) and the site's credential (the site created the first time,
        unless `credential` is given)."""
        if credential is None:
            credential = site_credential(self.engine, site)
        channel = self.channels[site] = FakeChannel()
        self.engine.register_worker(
            RegisterWorker(
                worker_id=worker or f"w-{site}",
                site_name=site,
                backend_kind="local",
                credential=credential,
                last_seen_order_seq=last_seen,
                running_execution_ids=running,
                deployed_steps=tuple(
                    ReportedStep(deployment_id="d1", step_id=s, state=StepState.READY)
                    for s in ready
                ),
                held_files=held,
            ),
            channel,
        )
        return channel

    def report(self, site: str, message: Report) -> None:
        seq = self.seqs.setdefault(site, count(1))
        self.engine.report(site_id_for(site), next(seq), message)

    def ready(self, site: str, *steps: str) -> None:
        for step in steps:
            self.report(
                site, StepStateReported(deployment_id="d1", step_id=step, state=StepState.READY)
            )

    async def deploy(self, *steps: StepDefinition) -> Deployment:
        d = await self.engine.deploy_workflow(
            DeployWorkflow(
                message_id="m1",
                deployment_id="d1",
                project_id="p",
                workflow_id="w",
                workflow_name="wf",
                snapshot_id="s",
                definition=definition(*steps),
            )
        )
        assert d is not None
        return d

    def fail(self, site: str, order: ExecuteOrder) -> None:
        result = ExecutionResult(outcome=Outcome.FAILED, error="boom")
        self.report(site, ExecutionEnded(execution_id=order.execution_id, result=result))

    def complete(self, site: str, order: ExecuteOrder, value: str = "ok") -> None:
        result = ExecutionResult(outcome=Outcome.COMPLETED, outputs={"y": value})
        self.report(site, ExecutionEnded(execution_id=order.execution_id, result=result))

    def executes(self, site: str, step: str = "a") -> list[ExecuteOrder]:
        return [o for o in self.channels[site].of(ExecuteOrder) if o.step_id == step]

    def live_for(self, seconds: float, *, heard: tuple[str, ...] = ()) -> None:
        """Let time pass a second at a time, the `heard` sites sending heartbeats."""
        for _ in range(int(seconds)):
            self.timers.advance(1.0)
            for site in heard:
                self.report(site, Heartbeat(seq=0))


def make_rig(*, hold_orders: bool = False, **settings: Any) -> Rig:
    clock = FakeClock()
    timers, recorder, store = FakeTimers(clock), FakeRecorder(hold=hold_orders), FakeStore()
    values: dict[str, Any] = {
        "heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT,
        "retry_backoff_seconds": BACKOFF,
        "timeout_grace_seconds": GRACE,
        "infra_retries": INFRA_RETRIES,
        "site_wait_timeout_seconds": SITE_WAIT,
        "reap_interval_seconds": REAP,
    }
    values.update(settings)
    engine = Engine(
        recorder=recorder,
        store=store,
        clock=clock,
        timers=timers,
        settings=EngineSettings(**values),
    )
    return Rig(engine=engine, timers=timers, recorder=recorder, store=store)


def execution(run: Run, order: ExecuteOrder) -> Execution:
    return run.executions[ExecutionId(order.execution_id)]
