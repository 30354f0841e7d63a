"""Use cases through the Worker, with a fake backend and a fake filestore."""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ryax_worker.application.ports import (
    ActionEvent,
    ActionLog,
    ActionNewRun,
    ActionProgress,
    ActionResult,
    ActionRunRequest,
    ActionStatus,
)
from ryax_worker.application.worker import Worker
from ryax_worker.domain.errors import ActionCrashed
from ryax_worker.domain.model import (
    ActionKind,
    CancelExecution,
    DeploymentId,
    DeploymentStateChanged,
    DeploymentStateKind,
    DeployStep,
    ExecuteStep,
    ExecutionFinished,
    ExecutionId,
    ExecutionProgressed,
    ExecutionStatus,
    FileRef,
    IOSpec,
    LogLine,
    LogStream,
    OrderAck,
    RunId,
    StepId,
    StepRef,
    TriggerFired,
    UndeployStep,
    Values,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)
S = DeploymentStateKind
REF = StepRef(DeploymentId("d1"), StepId("s1"))


def deploy(seq: int, ref: StepRef = REF, *, trigger: bool = False, sha: str = "a" * 64) -> Any:
    return DeployStep(
        order_seq=seq,
        ref=ref,
        action_id="act",
        action_version="1.0",
        action_kind=ActionKind.TRIGGER if trigger else ActionKind.PROCESSOR,
        artefact_key=f"artefacts/{sha}.tar.gz",
        artefact_sha256=sha,
        is_trigger=trigger,
    )


def execute(
    seq: int, execution: str, inputs: Values | None = None, timeout: float = 0.0
) -> ExecuteStep:
    return ExecuteStep(
        order_seq=seq,
        execution_id=ExecutionId(execution),
        run_id=RunId("r1"),
        ref=REF,
        inputs=inputs or {},
        timeout_seconds=timeout,
    )


def states(h: Any, ref: StepRef = REF) -> list[tuple[DeploymentStateKind, str]]:
    return [(r.state, r.reason) for r in h.of_type(DeploymentStateChanged) if r.ref == ref]


def results(h: Any) -> dict[str, ExecutionFinished]:
    return {r.execution_id: r for r in h.of_type(ExecutionFinished)}


async def deployed(h: Any, ref: StepRef = REF, seq: int = 1, trigger: bool = False) -> None:
    assert h.worker.handle(deploy(seq, ref, trigger=trigger))
    await h.until(lambda: (S.READY, "") in states(h, ref))


def echo(lines: int = 3) -> Any:
    async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
        for n in range(1, lines + 1):
            yield ActionLog(stream=LogStream.STDOUT, line=f"line {n}", at=AT)
        yield ActionProgress(fraction=1.5, message="done")
        yield ActionResult(status=ActionStatus.COMPLETED, outputs=dict(request.inputs))

    return script


def make_files(out: Path, folder: Path) -> None:
    out.write_text("purr")
    folder.mkdir()
    (folder / "one.txt").write_text("1")


class TestOrders:
    async def test_orders_are_acked_and_replays_ignored(self, harness: Any) -> None:
        harness.backend.scripts[REF] = echo()
        await deployed(harness)
        assert harness.worker.handle(execute(2, "e1"))
        assert harness.worker.handle(execute(2, "e-replayed"))  # same order_seq: ignored
        await harness.until(lambda: "e1" in results(harness))
        await asyncio.sleep(0.05)
        assert set(results(harness)) == {"e1"}
        assert [a.order_seq for a in harness.of_type(OrderAck)] == [1, 2, 2]
        assert harness.worker.registration().last_seen_order_seq == 2

    async def test_acks_are_folded_within_the_interval(self, harness: Any) -> None:
        now = [100.0]
        worker = Worker(
            site=harness.worker.site,
            backend=harness.backend,
            reports=harness.reports,
            deployments=harness.deployments,
            executions=harness.executions,
            ack_interval_seconds=0.5,
            monotonic=lambda: now[0],
        )
        harness.backend.scripts[REF] = echo(0)
        for seq in (1, 2, 3):
            assert worker.handle(deploy(seq, StepRef(DeploymentId(f"d{seq}"), StepId("s"))))
        # The first order is acknowledged at once, the next two wait for the interval.
        assert [a.order_seq for a in harness.of_type(OrderAck)] == [1]
        worker.flush_ack()  # the heartbeat: the orders handled since, in one ack
        worker.flush_ack()  # nothing new: no ack
        assert [a.order_seq for a in harness.of_type(OrderAck)] == [1, 3]
        now[0] += 0.5
        assert worker.handle(deploy(4, StepRef(DeploymentId("d4"), StepId("s"))))
        assert worker.handle(deploy(4, StepRef(DeploymentId("d4"), StepId("s"))))  # a repeat
        now[0] += 0.5
        assert worker.handle(deploy(2, StepRef(DeploymentId("d2"), StepId("s"))))  # older
        assert [a.order_seq for a in harness.of_type(OrderAck)] == [1, 3, 4, 4]

    async def test_refuses_orders_while_shutting_down(self, harness: Any) -> None:
        await harness.worker.shutdown(grace_seconds=0.1)
        assert not harness.worker.handle(deploy(1))
        assert harness.of_type(OrderAck) == []
        assert harness.backend.closed

    async def test_registration_lists_steps_and_unsettled_executions(self, harness: Any) -> None:
        harness.backend.scripts[REF] = echo()
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        await harness.until(lambda: harness.executions.running_count() == 0)
        # The result is reported but not acknowledged yet: the runner must not count it lost.
        registration = harness.worker.registration()
        assert registration.running_execution_ids == ("e1",)
        assert registration.deployed_steps == ((REF, S.READY),)
        harness.drain()
        assert harness.worker.registration().running_execution_ids == ()


class TestDeployments:
    async def test_deploy_reports_deploying_then_ready(self, harness: Any) -> None:
        await deployed(harness)
        assert states(harness) == [(S.DEPLOYING, ""), (S.READY, "")]
        assert REF in harness.backend.deployed

    async def test_a_second_identical_deploy_answers_the_state_again(self, harness: Any) -> None:
        await deployed(harness)
        harness.worker.handle(deploy(2))
        await harness.until(lambda: len(states(harness)) == 3)
        assert states(harness)[-1] == (S.READY, "")
        assert harness.backend.undeployed == []

    async def test_a_new_version_replaces_the_old_one(self, harness: Any) -> None:
        await deployed(harness)
        harness.worker.handle(deploy(2, sha="b" * 64))
        await harness.until(lambda: states(harness).count((S.READY, "")) == 2)
        assert harness.backend.undeployed == [REF]
        assert harness.backend.deployed[REF].artefact_sha256 == "b" * 64

    async def test_failed_deploy_reports_the_reason(self, harness: Any) -> None:
        harness.backend.deploy_errors[REF] = "Init failed: ModuleNotFoundError: pandas"
        harness.worker.handle(deploy(1))
        await harness.until(lambda: len(states(harness)) == 2)
        assert states(harness)[-1] == (S.FAILED, "Init failed: ModuleNotFoundError: pandas")

    async def test_undeploy(self, harness: Any) -> None:
        await deployed(harness)
        harness.worker.handle(UndeployStep(order_seq=2, ref=REF))
        await harness.until(lambda: (S.UNDEPLOYED, "") in states(harness))
        assert states(harness)[-2:] == [(S.UNDEPLOYING, ""), (S.UNDEPLOYED, "")]
        assert harness.backend.undeployed == [REF]
        assert harness.worker.registration().deployed_steps == ()

    async def test_undeploy_of_an_unknown_step_answers_undeployed(self, harness: Any) -> None:
        harness.worker.handle(UndeployStep(order_seq=1, ref=REF))
        await harness.until(lambda: states(harness) == [(S.UNDEPLOYED, "")])

    async def test_orders_for_one_step_apply_in_order(self, harness: Any) -> None:
        await deployed(harness)
        harness.worker.handle(UndeployStep(order_seq=2, ref=REF))
        harness.worker.handle(deploy(3))
        await harness.until(lambda: states(harness).count((S.READY, "")) == 2)
        assert [s for s, _ in states(harness)] == [
            S.DEPLOYING,
            S.READY,
            S.UNDEPLOYING,
            S.UNDEPLOYED,
            S.DEPLOYING,
            S.READY,
        ]

    async def test_undeploy_abandons_a_deploy_in_progress(self, harness: Any) -> None:
        harness.backend.deploy_gate = asyncio.Event()  # the artefact download never ends
        harness.worker.handle(deploy(1))
        await harness.until(lambda: states(harness) == [(S.DEPLOYING, "")])
        harness.worker.handle(UndeployStep(order_seq=2, ref=REF))
        await harness.until(lambda: (S.UNDEPLOYED, "") in states(harness))
        assert REF not in harness.backend.deployed
        assert harness.worker.registration().deployed_steps == ()

    async def test_a_trigger_is_ready_once_its_run_started(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            yield ActionResult(status=ActionStatus.FAILED, error="bad token")

        harness.backend.scripts[REF] = script
        harness.backend.give_up_after_restarts = 0
        harness.worker.handle(deploy(1, trigger=True))
        await harness.until(lambda: any(r.endswith("(gave up)") for _, r in states(harness)))
        assert states(harness)[:3] == [
            (S.DEPLOYING, ""),
            (S.READY, ""),
            (S.FAILED, "trigger stopped: bad token"),
        ]

    async def test_processor_state_follows_its_instance(self, harness: Any) -> None:
        await deployed(harness)
        listener = harness.backend.listener
        listener.step_down(REF, "action process exited with code 1", True)  # restarting: quiet
        assert states(harness)[-1] == (S.READY, "")
        listener.step_down(REF, "exited with code 1 (gave up)", False)
        assert states(harness)[-1] == (S.FAILED, "exited with code 1 (gave up)")
        listener.step_up(REF)
        assert states(harness)[-1] == (S.READY, "")

    async def test_step_logs_are_numbered_per_step(self, harness: Any) -> None:
        await deployed(harness)
        harness.backend.listener.step_log(REF, LogStream.STDERR, "a")
        harness.backend.listener.step_log(REF, LogStream.STDERR, "b")
        lines = harness.of_type(LogLine)
        assert [(line.seq, line.ref, line.execution_id) for line in lines] == [
            (1, REF, None),
            (2, REF, None),
        ]


class TestExecutions:
    async def test_logs_numbered_before_the_result(self, harness: Any) -> None:
        harness.backend.scripts[REF] = echo(lines=50)
        await deployed(harness)
        harness.worker.handle(execute(2, "e1", {"n": 3}))
        await harness.until(lambda: "e1" in results(harness))
        mine = [
            r
            for r in harness.drain()
            if isinstance(r, LogLine | ExecutionFinished) and getattr(r, "execution_id", "") == "e1"
        ]
        assert [r.seq for r in mine[:-1] if isinstance(r, LogLine)] == list(range(1, 51))
        result = mine[-1]
        assert isinstance(result, ExecutionFinished)
        assert result.status == ExecutionStatus.COMPLETED
        assert result.outputs == {"n": 3}
        assert result.log_line_count == 50
        progress = harness.of_type(ExecutionProgressed)
        assert progress[0].fraction == 1.0

    async def test_input_files_are_placed_and_outputs_uploaded(self, harness: Any) -> None:
        harness.store.objects["runs/r0/e0/image/cat.png"] = b"meow"
        seen: dict[str, Any] = {}

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            image = request.inputs["image"]
            assert isinstance(image, FileRef)
            seen["path"] = Path(image.key)
            seen["content"] = await asyncio.to_thread(Path(image.key).read_bytes)
            out = request.work_dir / "result.txt"
            folder = request.work_dir / "album"
            await asyncio.to_thread(make_files, out, folder)
            yield ActionResult(
                status=ActionStatus.COMPLETED,
                outputs={
                    "text": FileRef(key=str(out), name="result.txt"),
                    "album": FileRef(key=str(folder), name="album", is_directory=True),
                },
            )

        harness.backend.scripts[REF] = script
        await deployed(harness)
        image = FileRef(key="runs/r0/e0/image/cat.png", name="cat.png", size=4)
        harness.worker.handle(execute(2, "e1", {"image": image}))
        await harness.until(lambda: "e1" in results(harness))
        result = results(harness)["e1"]
        assert result.status == ExecutionStatus.COMPLETED, result.error
        assert seen["content"] == b"meow"
        assert seen["path"].parts[-3:] == ("inputs", "image", "cat.png")
        assert not seen["path"].exists()  # the work dir is removed after the execution
        text = result.outputs["text"]
        assert isinstance(text, FileRef)
        assert text.key == "runs/r1/e1/text/result.txt"
        assert text.size == 4 and len(text.sha256) == 64
        assert harness.store.objects[text.key] == b"purr"
        album = result.outputs["album"]
        assert isinstance(album, FileRef) and album.is_directory
        assert album.key == "runs/r1/e1/album/album.tar" and album.name == "album"
        with tarfile.open(fileobj=io.BytesIO(harness.store.objects[album.key])) as archive:
            assert archive.getnames() == ["one.txt"]

    async def test_directory_inputs_are_extracted(self, harness: Any) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            info = tarfile.TarInfo("sub/a.txt")
            info.size = 1
            archive.addfile(info, io.BytesIO(b"A"))
        harness.store.objects["runs/r0/e0/d/data.tar"] = buffer.getvalue()

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            data = request.inputs["data"]
            assert isinstance(data, FileRef) and data.is_directory
            text = (Path(data.key) / "sub" / "a.txt").read_text()
            yield ActionResult(status=ActionStatus.COMPLETED, outputs={"text": text})

        harness.backend.scripts[REF] = script
        await deployed(harness)
        ref = FileRef(key="runs/r0/e0/d/data.tar", name="data", is_directory=True)
        harness.worker.handle(execute(2, "e1", {"data": ref}))
        await harness.until(lambda: "e1" in results(harness))
        assert results(harness)["e1"].outputs == {"text": "A"}

    async def test_a_missing_or_corrupt_input_fails_the_execution(self, harness: Any) -> None:
        harness.backend.scripts[REF] = echo()
        harness.store.objects["k"] = b"data"
        await deployed(harness)
        harness.worker.handle(execute(2, "e1", {"f": FileRef(key="absent", name="a")}))
        harness.worker.handle(execute(3, "e2", {"f": FileRef(key="k", name="a", sha256="0" * 64)}))
        await harness.until(lambda: {"e1", "e2"} <= set(results(harness)))
        assert results(harness)["e1"].error == "input f: absent is not in the filestore"
        assert "expected 0000" in results(harness)["e2"].error
        assert harness.backend.requests == []

    async def test_outputs_list_places_each_set(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            sets: list[Values] = []
            for n in range(2):
                path = request.work_dir / f"f{n}.txt"
                path.write_text(str(n))
                sets.append({"f": FileRef(key=str(path), name="f.txt")})
            yield ActionResult(status=ActionStatus.COMPLETED, outputs_list=tuple(sets))

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        await harness.until(lambda: "e1" in results(harness))
        keys = [s["f"].key for s in results(harness)["e1"].outputs_list]  # type: ignore[union-attr]
        assert keys == ["runs/r1/e1/f/0/f.txt", "runs/r1/e1/f/1/f.txt"]

    async def test_any_output_file_name_gives_a_valid_key(self, harness: Any) -> None:
        names = ("résumé final.pdf", ".hidden")

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            outputs: Values = {}
            for n, name in enumerate(names):
                path = request.work_dir / name
                path.write_text(name)
                outputs[f"f{n}"] = FileRef(key=str(path), name=name)
            yield ActionResult(status=ActionStatus.COMPLETED, outputs=outputs)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        await harness.until(lambda: "e1" in results(harness))
        result = results(harness)["e1"]
        assert result.status == ExecutionStatus.COMPLETED, result.error
        files = [result.outputs[f"f{n}"] for n in range(len(names))]
        assert [(f.key, f.name) for f in files if isinstance(f, FileRef)] == [
            ("runs/r1/e1/f0/u=r=C3=A9sum=C3=A9=20final.pdf", "résumé final.pdf"),
            ("runs/r1/e1/f1/u=.hidden", ".hidden"),
        ]
        assert harness.store.objects["runs/r1/e1/f1/u=.hidden"] == b".hidden"

    async def test_action_failure_is_reported(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            yield ActionLog(stream=LogStream.STDERR, line="Traceback...", at=AT)
            yield ActionResult(
                status=ActionStatus.FAILED,
                error="ValueError: bad image",
                traceback="tb",
                http_status=422,
            )

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        await harness.until(lambda: "e1" in results(harness))
        result = results(harness)["e1"]
        assert (result.status, result.error, result.traceback, result.http_status) == (
            ExecutionStatus.FAILED,
            "ValueError: bad image",
            "tb",
            422,
        )
        assert result.log_line_count == 1

    async def test_execute_is_idempotent_per_execution_id(self, harness: Any) -> None:
        harness.backend.scripts[REF] = echo()
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        harness.worker.handle(execute(3, "e1"))
        await harness.until(lambda: "e1" in results(harness))
        await asyncio.sleep(0.05)
        assert len(harness.of_type(ExecutionFinished)) == 1

    async def test_execute_on_an_unknown_step_fails_fast(self, harness: Any) -> None:
        harness.worker.handle(execute(1, "e1"))
        await harness.until(lambda: "e1" in results(harness))
        assert results(harness)["e1"].error == (
            "step s1 of deployment d1 is not deployed on site site-a"
        )

    async def test_timeout(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            yield ActionLog(stream=LogStream.STDOUT, line="working", at=AT)
            await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "e1", timeout=0.1))
        await harness.until(lambda: "e1" in results(harness))
        result = results(harness)["e1"]
        assert (result.status, result.error) == (ExecutionStatus.FAILED, "timed out after 0.1 s")
        assert result.log_line_count == 1

    async def test_cancel(self, harness: Any) -> None:
        started = asyncio.Event()

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            started.set()
            await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        await started.wait()
        harness.worker.handle(CancelExecution(order_seq=3, execution_id=ExecutionId("e1")))
        harness.worker.handle(CancelExecution(order_seq=4, execution_id=ExecutionId("nope")))
        await harness.until(lambda: "e1" in results(harness))
        assert results(harness)["e1"].status == ExecutionStatus.CANCELLED

    async def test_undeploy_cancels_running_executions(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "e1"))
        await harness.until(lambda: len(harness.backend.requests) == 1)
        harness.worker.handle(UndeployStep(order_seq=3, ref=REF))
        await harness.until(lambda: (S.UNDEPLOYED, "") in states(harness))
        assert results(harness)["e1"].status == ExecutionStatus.CANCELLED

    async def test_shutdown_lets_executions_finish_then_stops_the_rest(self, harness: Any) -> None:
        other = StepRef(DeploymentId("d1"), StepId("slow"))

        async def quick(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            await asyncio.sleep(0.05)
            yield ActionResult(status=ActionStatus.COMPLETED)

        async def slow(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = quick
        harness.backend.scripts[other] = slow
        await deployed(harness)
        await deployed(harness, other, seq=2)
        harness.worker.handle(execute(3, "quick"))
        harness.worker.handle(
            ExecuteStep(order_seq=4, execution_id=ExecutionId("slow"), run_id=RunId("r"), ref=other)
        )
        await harness.until(lambda: len(harness.backend.requests) == 2)
        await harness.worker.shutdown(grace_seconds=0.3)
        found = results(harness)
        assert found["quick"].status == ExecutionStatus.COMPLETED
        assert found["slow"].status == ExecutionStatus.FAILED
        assert "shut down" in found["slow"].error


class TestWorkspaces:
    """An execution that moves no file takes a work directory an earlier one left empty; any
    other gets its own, removed after it."""

    @staticmethod
    def workspaces(h: Any) -> list[Path]:
        return sorted((h.root / "executions" / "d1" / "s1").iterdir())

    async def run(self, h: Any, seq: int, execution: str, inputs: Values | None = None) -> None:
        h.worker.handle(execute(seq, execution, inputs))
        await h.until(lambda: execution in results(h))
        assert results(h)[execution].status == ExecutionStatus.COMPLETED, results(h)[execution]

    async def test_executions_moving_no_file_reuse_one_empty_work_dir(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            assert request.work_dir.is_dir()
            assert not any(request.work_dir.iterdir())
            if request.inputs.get("scratch"):
                await asyncio.to_thread((request.work_dir / "scratch.txt").write_text, "x")
            yield ActionResult(status=ActionStatus.COMPLETED, outputs={"n": 1})

        harness.backend.scripts[REF] = script
        await deployed(harness)
        for n in range(3):
            await self.run(harness, 2 + n, f"e{n}", {"text": "a"})
        requests = harness.backend.requests
        assert [r.work_dir_reused for r in requests] == [False, True, True]
        assert len({r.work_dir for r in requests}) == 1
        assert requests[0].work_dir.parent.name == "e0"  # named after the execution that made it
        assert self.workspaces(harness) == [requests[0].work_dir.parent]
        assert [p.name for p in requests[0].work_dir.parent.iterdir()] == ["work"]

        # Left with a file in it: removed; the next execution gets a new, empty one.
        await self.run(harness, 5, "scratch", {"scratch": True})
        await self.run(harness, 6, "after", {"text": "a"})
        scratch, after = requests[-2:]
        assert scratch.work_dir == requests[0].work_dir and not scratch.work_dir.exists()
        assert after.work_dir.parent.name == "after" and not after.work_dir_reused
        assert self.workspaces(harness) == [after.work_dir.parent]

    async def test_a_work_dir_whose_mode_changed_is_not_reused(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            if request.inputs.get("lock"):
                request.work_dir.chmod(0o500)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        await self.run(harness, 2, "e1", {"lock": True})
        await self.run(harness, 3, "e2")
        first, second = harness.backend.requests
        assert not first.work_dir.exists()
        assert second.work_dir != first.work_dir and not second.work_dir_reused

    async def test_moving_a_file_gives_a_fresh_workspace_removed_after(self, harness: Any) -> None:
        harness.store.objects["runs/r0/e0/image/cat.png"] = b"meow"

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        image = FileRef(key="runs/r0/e0/image/cat.png", name="cat.png", size=4)
        await self.run(harness, 2, "in1", {"image": image})
        await self.run(harness, 3, "in2", {"image": image})
        # A step declaring a file output: the same, even when this execution gives none.
        step = replace(deploy(4, sha="b" * 64), outputs=(IOSpec(name="report", type="file"),))
        assert harness.worker.handle(step)
        await harness.until(lambda: len([s for s in states(harness) if s[0] == S.READY]) >= 2)
        await self.run(harness, 5, "out1")
        await self.run(harness, 6, "out2")
        requests = harness.backend.requests
        assert [r.work_dir.parent.name for r in requests] == ["in1", "in2", "out1", "out2"]
        assert not any(r.work_dir_reused for r in requests)
        assert not any(r.work_dir.parent.exists() for r in requests)
        assert self.workspaces(harness) == []

    async def test_a_work_dir_of_a_cancelled_or_crashed_execution_is_not_reused(
        self, harness: Any
    ) -> None:
        started = asyncio.Event()

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            if request.inputs.get("crash"):
                raise ActionCrashed("the action process died")
            if request.inputs.get("hang"):
                started.set()
                await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "hang", {"hang": True}))
        await started.wait()
        harness.worker.handle(CancelExecution(order_seq=3, execution_id=ExecutionId("hang")))
        await harness.until(lambda: "hang" in results(harness))
        harness.worker.handle(execute(4, "crash", {"crash": True}))
        await harness.until(lambda: "crash" in results(harness))
        assert results(harness)["crash"].status == ExecutionStatus.FAILED
        await self.run(harness, 5, "next")
        hang, crash, after = harness.backend.requests
        assert [r.work_dir.parent.name for r in (hang, crash, after)] == ["hang", "crash", "next"]
        assert not any(r.work_dir_reused for r in (hang, crash, after))
        assert self.workspaces(harness) == [after.work_dir.parent]

    async def test_executions_at_once_get_different_work_dirs(self, harness: Any) -> None:
        gate = asyncio.Event()

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            await gate.wait()
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness)
        harness.worker.handle(execute(2, "a"))
        harness.worker.handle(execute(3, "b"))
        await harness.until(lambda: len(harness.backend.requests) == 2)
        gate.set()
        await harness.until(lambda: {"a", "b"} <= set(results(harness)))
        await self.run(harness, 4, "c")
        await self.run(harness, 5, "d")
        a, b, c, d = harness.backend.requests
        assert a.work_dir != b.work_dir
        assert {c.work_dir, d.work_dir} <= {a.work_dir, b.work_dir}
        assert c.work_dir_reused and d.work_dir_reused
        assert len(self.workspaces(harness)) == 2

    async def test_an_undeployed_step_reuses_nothing_it_had(self, harness: Any) -> None:
        harness.backend.scripts[REF] = echo(0)
        await deployed(harness)
        await self.run(harness, 2, "e1")
        assert harness.worker.handle(UndeployStep(order_seq=3, ref=REF))
        await harness.until(lambda: (S.UNDEPLOYED, "") in states(harness))
        await deployed(harness, seq=4)
        await self.run(harness, 5, "e2")
        first, second = harness.backend.requests
        assert not second.work_dir_reused and second.work_dir != first.work_dir


class TestTriggers:
    async def test_new_runs_are_forwarded_with_their_files(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            path = request.work_dir / "upload.csv"
            path.write_text("a,b")
            yield ActionNewRun(outputs={"file": FileRef(key=str(path), name="upload.csv")}, at=AT)
            yield ActionNewRun(outputs={"n": 2}, at=AT)
            await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness, trigger=True)
        await harness.until(lambda: len(harness.of_type(TriggerFired)) == 2)
        first, second = harness.of_type(TriggerFired)
        file = first.outputs["file"]
        assert isinstance(file, FileRef)
        assert file.key.startswith("triggers/d1/s1/") and file.key.endswith("/file/upload.csv")
        assert harness.store.objects[file.key] == b"a,b"
        assert second.outputs == {"n": 2}
        harness.worker.handle(UndeployStep(order_seq=5, ref=REF))
        await harness.until(lambda: (S.UNDEPLOYED, "") in states(harness))

    async def test_a_trigger_that_stops_is_failed_then_restarted(self, harness: Any) -> None:
        sessions = 0

        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            nonlocal sessions
            sessions += 1
            if sessions == 1:
                yield ActionResult(status=ActionStatus.FAILED, error="ConnectionError: gone")
                return
            await asyncio.sleep(60)
            yield ActionResult(status=ActionStatus.COMPLETED)

        harness.backend.scripts[REF] = script
        await deployed(harness, trigger=True)
        await harness.until(lambda: states(harness).count((S.READY, "")) >= 2)
        assert (S.FAILED, "trigger stopped: ConnectionError: gone") in states(harness)
        assert harness.backend.restarts == ["trigger stopped: ConnectionError: gone"]
        harness.worker.handle(UndeployStep(order_seq=9, ref=REF))
        await harness.until(lambda: (S.UNDEPLOYED, "") in states(harness))

    async def test_a_trigger_that_keeps_dying_stays_failed(self, harness: Any) -> None:
        async def script(request: ActionRunRequest) -> AsyncIterator[ActionEvent]:
            yield ActionResult(status=ActionStatus.FAILED, error="boom")

        harness.backend.scripts[REF] = script
        harness.backend.give_up_after_restarts = 2
        await deployed(harness, trigger=True)
        await harness.until(lambda: len(harness.backend.restarts) == 3)
        await harness.until(lambda: any(r.endswith("(gave up)") for _, r in states(harness)))
        assert states(harness)[-1][0] == S.FAILED
