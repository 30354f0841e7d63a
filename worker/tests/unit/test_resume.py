"""Executions that outlive the worker (a ResumableBackend, as Slurm jobs): a stopping worker
leaves them running unreported, the next one reports them running and follows them again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ryax_kit.testing import FakeClock
from ryax_worker.application.deployments import Deployments
from ryax_worker.application.executions import Executions
from ryax_worker.application.ports import (
    ActionEvent,
    ActionLog,
    ActionResult,
    ActionRunRequest,
    ActionStarted,
    ActionStatus,
    DetachedExecution,
    ResumableBackend,
)
from ryax_worker.application.reports import ReportQueue
from ryax_worker.application.staging import FileStaging
from ryax_worker.application.worker import Worker
from ryax_worker.domain.errors import ActionUnavailable
from ryax_worker.domain.model import (
    CancelExecution,
    ExecuteStep,
    ExecutionFinished,
    ExecutionId,
    ExecutionStatus,
    LogLine,
    LogStream,
    NodePool,
    ReportBuffer,
    RunId,
    SiteInfo,
    StepRef,
)
from ryax_worker.infrastructure.placement import FilestorePlacement

from .conftest import FakeBackend, FakeFileStore, Harness, deploy_order, ref

AT = datetime(2026, 1, 1, tzinfo=UTC)


class FakeJobs(FakeBackend):
    """A FakeBackend whose runs are jobs: they go on when the worker detaches from them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: tuple[DetachedExecution, ...] = ()
        self.detaching = False
        self.cancelled_jobs: list[str] = []
        self.abandoned: list[str] = []
        self.left_running: list[str] = []
        self.finish = asyncio.Event()

    def detached(self) -> tuple[DetachedExecution, ...]:
        return self.found

    def detach(self) -> None:
        self.detaching = True

    async def abandon(self, execution: DetachedExecution) -> None:
        self.abandoned.append(execution.handle)

    async def _job(self, job: str) -> AsyncGenerator[ActionEvent, None]:
        ended = False
        try:
            yield ActionStarted()
            yield ActionLog(stream=LogStream.STDOUT, line=f"job {job}", at=AT)
            await self.finish.wait()
            ended = True
            yield ActionResult(status=ActionStatus.COMPLETED, outputs={"job": job})
        finally:
            if not ended:
                (self.left_running if self.detaching else self.cancelled_jobs).append(job)

    async def run(
        self, ref: StepRef, request: ActionRunRequest
    ) -> AsyncGenerator[ActionEvent, None]:
        if ref not in self.deployed:
            raise ActionUnavailable(f"{ref} not deployed")
        self.requests.append(request)
        async for event in self._job(f"job-{request.execution_id}"):
            yield event

    async def resume(
        self, ref: StepRef, execution: DetachedExecution
    ) -> AsyncGenerator[ActionEvent, None]:
        if ref not in self.deployed:
            raise ActionUnavailable(f"{ref} not deployed")
        async for event in self._job(execution.handle):
            yield event


def make_harness(root: Path, backend: FakeJobs, clock: FakeClock) -> Harness:
    reports = ReportQueue(ReportBuffer())
    store = FakeFileStore()
    staging = FileStaging(store, root / "executions")
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
        site_name="hpc",
    )
    worker = Worker(
        site=SiteInfo(
            worker_id="w1",
            site_name="hpc",
            backend_kind="slurm",
            node_pools=(NodePool(name="debug", cpu=4, memory_bytes=2**32),),
            labels={},
            version="test",
        ),
        backend=backend,
        reports=reports,
        deployments=deployments,
        executions=executions,
    )
    return Harness(worker, reports, backend, store, deployments, executions, root)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def order(execution: str, seq: int = 2, timeout: float = 0.0) -> ExecuteStep:
    return ExecuteStep(
        order_seq=seq,
        execution_id=ExecutionId(execution),
        run_id=RunId("r1"),
        ref=ref(),
        timeout_seconds=timeout,
    )


def found(root: Path, execution: str, started: datetime) -> DetachedExecution:
    work = root / "executions" / "d1" / "s1" / execution / "work"
    work.mkdir(parents=True)
    (work / "partial.txt").write_text("written by the job")
    return DetachedExecution(
        order=order(execution), work_dir=work, handle=f"job-{execution}", started_at=started
    )


def results(h: Harness) -> dict[str, ExecutionFinished]:
    return {r.execution_id: r for r in h.of_type(ExecutionFinished)}


async def test_a_stopping_worker_leaves_jobs_running_unreported(
    tmp_path: Path, clock: FakeClock
) -> None:
    backend = FakeJobs()
    assert isinstance(backend, ResumableBackend)
    h = make_harness(tmp_path, backend, clock)
    assert h.worker.handle(deploy_order(1, ref()))
    await h.until(lambda: ref() in backend.deployed)
    assert h.worker.handle(order("e1"))
    await h.until(lambda: bool(h.of_type(LogLine)))
    await h.worker.shutdown(grace_seconds=0.01)
    assert backend.detaching and backend.left_running == ["job-e1"]
    assert backend.cancelled_jobs == [] and results(h) == {}
    # Its workspace stays: the job goes on writing there.
    assert (tmp_path / "executions" / "d1" / "s1" / "e1" / "work").is_dir()


async def test_jobs_found_again_are_running_at_register_and_followed_to_their_end(
    tmp_path: Path, clock: FakeClock
) -> None:
    backend = FakeJobs()
    backend.found = (found(tmp_path, "e1", clock.now() - timedelta(seconds=30)),)
    h = make_harness(tmp_path, backend, clock)
    assert h.worker.resume_detached() == 1
    assert h.worker.registration().running_execution_ids == ("e1",)
    await asyncio.sleep(0.05)
    assert results(h) == {}  # waits for its step to be deployed again
    assert h.worker.handle(deploy_order(1, ref()))
    await h.until(lambda: any(line.line == "job job-e1" for line in h.of_type(LogLine)))
    backend.finish.set()
    await h.until(lambda: "e1" in results(h))
    result = results(h)["e1"]
    assert result.status is ExecutionStatus.COMPLETED and result.outputs == {"job": "job-e1"}
    assert result.started_at == clock.now() - timedelta(seconds=30)
    assert backend.requests == []  # followed, not submitted again
    assert not (tmp_path / "executions" / "d1" / "s1" / "e1").exists()


async def test_a_job_found_again_that_is_cancelled_meanwhile_is_abandoned(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ryax_worker.application.executions.REDEPLOY_WAIT_SECONDS", 0.05)
    backend = FakeJobs()
    backend.found = (found(tmp_path, "e1", clock.now()), found(tmp_path, "e2", clock.now()))
    h = make_harness(tmp_path, backend, clock)
    h.worker.resume_detached()
    assert h.worker.handle(CancelExecution(order_seq=1, execution_id=ExecutionId("e1")))
    await h.until(lambda: {"e1", "e2"} <= set(results(h)))
    # e1: cancelled; e2: its step never came back. Both jobs are given up.
    assert sorted(backend.abandoned) == ["job-e1", "job-e2"]
    assert results(h)["e1"].status is ExecutionStatus.CANCELLED
    assert results(h)["e2"].status is ExecutionStatus.FAILED
    assert "is not deployed on site hpc" in results(h)["e2"].error


async def test_the_timeout_of_a_job_found_again_counts_from_its_submission(
    tmp_path: Path, clock: FakeClock
) -> None:
    backend = FakeJobs()
    detached = found(tmp_path, "e1", clock.now() - timedelta(seconds=100))
    backend.found = (
        DetachedExecution(
            order=order("e1", timeout=100.05),
            work_dir=detached.work_dir,
            handle=detached.handle,
            started_at=detached.started_at,
        ),
    )
    h = make_harness(tmp_path, backend, clock)
    h.worker.resume_detached()
    assert h.worker.handle(deploy_order(1, ref()))
    await h.until(lambda: "e1" in results(h))
    assert results(h)["e1"].error == "timed out after 100.05 s"
    assert backend.cancelled_jobs == ["job-e1"]


async def test_a_backend_without_resumable_runs_has_nothing_to_resume(harness: Harness) -> None:
    assert not isinstance(harness.backend, ResumableBackend)
    assert harness.worker.resume_detached() == 0


async def test_an_execution_the_site_lost_is_reported_lost_with_the_reason(
    harness: Harness,
) -> None:
    async def node_failed(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
        del request
        yield ActionResult(status=ActionStatus.LOST, error="slurm job 7 NODE_FAIL on n1")

    harness.backend.scripts[ref()] = node_failed
    assert harness.worker.handle(deploy_order(1, ref()))
    await harness.until(lambda: ref() in harness.backend.deployed)
    assert harness.worker.handle(order("e1"))
    await harness.until(lambda: "e1" in results(harness))
    lost = results(harness)["e1"]
    assert lost.status is ExecutionStatus.LOST and lost.error == "slurm job 7 NODE_FAIL on n1"
    assert lost.outputs == {}
