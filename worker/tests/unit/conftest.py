"""Fakes for the worker's ports and a harness wiring the real use cases to them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from ryax_kit.filestore import check_key
from ryax_kit.testing import FakeClock
from ryax_worker.application.deployments import Deployments
from ryax_worker.application.executions import Executions
from ryax_worker.application.ports import (
    ActionEvent,
    ActionRunRequest,
    ActionStarted,
    StepListener,
)
from ryax_worker.application.reports import ReportQueue
from ryax_worker.application.staging import FileStaging
from ryax_worker.application.worker import Worker
from ryax_worker.domain.errors import ActionUnavailable, DeploymentFailed, FileTransferFailed
from ryax_worker.domain.model import (
    ActionKind,
    DeploymentId,
    DeployStep,
    NodePool,
    Report,
    ReportBuffer,
    SiteInfo,
    StepId,
    StepRef,
    Values,
)
from ryax_worker.infrastructure.placement import FilestorePlacement

T = TypeVar("T")
Script = Callable[[ActionRunRequest], AsyncIterator[ActionEvent]]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class FakeFileStore:
    """Objects in a dict; keys must follow the kit's key rule, as on the real filestores."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def download(self, key: str, destination: Path) -> None:
        if check_key(key) not in self.objects:
            raise FileTransferFailed(f"{key} is not in the filestore")
        await asyncio.to_thread(_write, destination, self.objects[key])

    async def upload(
        self, key: str, source: Path, content_type: str = "application/octet-stream"
    ) -> None:
        self.objects[check_key(key)] = await asyncio.to_thread(source.read_bytes)


class FakeBackend:
    kind = "fake"

    def __init__(self) -> None:
        self.deployed: dict[StepRef, DeployStep] = {}
        self.deploy_errors: dict[StepRef, str] = {}
        self.scripts: dict[StepRef, Script] = {}
        self.requests: list[ActionRunRequest] = []
        self.undeployed: list[StepRef] = []
        self.restarts: list[str] = []
        self.give_up_after_restarts = 99
        self.deploy_gate: asyncio.Event | None = None
        self.closed = False
        self.listener: StepListener | None = None

    def set_listener(self, listener: StepListener) -> None:
        self.listener = listener

    async def deploy(self, spec: DeployStep) -> None:
        await asyncio.sleep(0)
        if self.deploy_gate is not None:
            await self.deploy_gate.wait()
        if spec.ref in self.deploy_errors:
            raise DeploymentFailed(self.deploy_errors[spec.ref])
        self.deployed[spec.ref] = spec

    async def undeploy(self, ref: StepRef) -> None:
        self.deployed.pop(ref, None)
        self.undeployed.append(ref)

    async def run(
        self, ref: StepRef, request: ActionRunRequest
    ) -> AsyncGenerator[ActionEvent, None]:
        if ref not in self.deployed:
            raise ActionUnavailable(f"{ref} not deployed")
        self.requests.append(request)
        yield ActionStarted()
        async for event in self.scripts[ref](request):
            yield event

    async def restart(self, ref: StepRef, reason: str) -> None:
        self.restarts.append(reason)
        if len(self.restarts) > self.give_up_after_restarts:
            raise ActionUnavailable(f"{reason} (gave up)")
        await asyncio.sleep(0)

    async def close(self) -> None:
        self.closed = True


@dataclass
class Harness:
    worker: Worker
    reports: ReportQueue
    backend: FakeBackend
    store: FakeFileStore
    deployments: Deployments
    executions: Executions
    root: Path
    sent: list[Report] = field(default_factory=list)

    def drain(self) -> list[Report]:
        """Everything reported so far (taken and acknowledged as a runner would)."""
        while (numbered := self.reports.buffer.take()) is not None:
            self.sent.append(numbered.report)
            self.reports.ack(numbered.seq)
        return self.sent

    def of_type(self, kind: type[T]) -> list[T]:
        return [report for report in self.drain() if isinstance(report, kind)]

    async def until(self, predicate: Callable[[], bool], within: float = 3.0) -> None:
        async with asyncio.timeout(within):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.005)


def ref(step: str = "s1", deployment: str = "d1") -> StepRef:
    return StepRef(DeploymentId(deployment), StepId(step))


def deploy_order(
    seq: int,
    step: StepRef,
    *,
    trigger: bool = False,
    sha: str = "a" * 64,
    trigger_inputs: Values | None = None,
) -> DeployStep:
    return DeployStep(
        order_seq=seq,
        ref=step,
        action_id="act",
        action_version="1.0",
        action_kind=ActionKind.TRIGGER if trigger else ActionKind.PROCESSOR,
        artefact_key=f"artefacts/{sha}.tar.gz",
        artefact_sha256=sha,
        is_trigger=trigger,
        trigger_inputs=trigger_inputs or {},
    )


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    clock = FakeClock()
    reports = ReportQueue(ReportBuffer())
    backend = FakeBackend()
    store = FakeFileStore()
    staging = FileStaging(store, tmp_path / "executions")
    placement = FilestorePlacement()
    deployments = Deployments(
        backend=backend, reports=reports, staging=staging, placement=placement, clock=clock
    )
    executions = Executions(
        backend=backend,
        deployments=deployments,
        reports=reports,
        staging=staging,
        placement=placement,
        clock=clock,
        site_name="site-a",
    )
    worker = Worker(
        site=SiteInfo(
            worker_id="w1",
            site_name="site-a",
            backend_kind="fake",
            node_pools=(NodePool(name="default", cpu=2, memory_bytes=2**30),),
            labels={},
            version="test",
        ),
        backend=backend,
        reports=reports,
        deployments=deployments,
        executions=executions,
        ack_interval_seconds=0.0,
    )
    return Harness(worker, reports, backend, store, deployments, executions, tmp_path)
