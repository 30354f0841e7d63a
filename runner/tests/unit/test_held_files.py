"""Files a site holds (RYAX_SITE_FILES=hold), on the engine with fakes: a step of the same site
takes the held file as is; a step of another site waits until the holding site published it
(Publish -> Published); a lost file fails it naming the file and the site; orders are derived
again when the holding site registers again; a run's end publishes its results and releases."""

from __future__ import annotations

from ryax_runner.application.engine import TransferAsk, TransferMethod
from ryax_runner.application.messages import (
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    FilesPublished,
    PublishOrder,
    RegisterWorker,
    ReleaseOrder,
)
from ryax_runner.domain.run import ExecutionId, ExecutionResult, ExecutionState, Outcome, RunState
from ryax_runner.domain.site import site_id_for
from ryax_runner.domain.values import FileRef
from ryax_runner.domain.workflow import ResultDefinition, TriggerDefinition, WorkflowDefinition

from .fakes import FakeChannel, site_credential
from .rig import Rig
from .test_transfers import INPUT, step

S1 = site_id_for("s1")


async def deploy(rig: Rig, *, results: tuple[ResultDefinition, ...] = ()) -> None:
    """t (http) -> a (s1) -> b (s2) and c (s1)."""
    d = await rig.engine.deploy_workflow(
        DeployWorkflow(
            message_id="m1",
            deployment_id="d1",
            project_id="p",
            workflow_id="w",
            workflow_name="wf",
            snapshot_id="s",
            definition=WorkflowDefinition(
                steps=(
                    step("t", "s1", kind="trigger"),
                    step("a", "s1"),
                    step("b", "s2", "a"),
                    step("c", "s1", "a"),
                ),
                trigger=TriggerDefinition(step_id="t", http_endpoint=True),
                results=results,
            ),
        )
    )
    assert d is not None
    rig.register("s1")
    rig.register("s2")
    rig.ready("s1", "a", "c")
    rig.ready("s2", "b")


def held_output(order: ExecuteOrder) -> FileRef:
    return FileRef(
        key=f"runs/{order.run_id}/{order.execution_id}/x/out.bin",
        name="out.bin",
        size=5,
        sha256="b" * 64,
        held_by=S1,
    )


async def start_and_finish_a(rig: Rig) -> tuple[ExecuteOrder, FileRef]:
    d = rig.engine.deployments[next(iter(rig.engine.deployments))]
    rig.engine.start_run(d, {"x": INPUT}, origin="http")
    [a] = rig.executes("s1", "a")
    out = held_output(a)
    result = ExecutionResult(outcome=Outcome.COMPLETED, outputs={"x": out})
    rig.report("s1", ExecutionEnded(execution_id=a.execution_id, result=result))
    return a, out


def may_put(rig: Rig, site: str, key: str) -> bool:
    try:
        rig.engine.authorise_transfers(
            site,
            site_credential(rig.engine, site),
            [TransferAsk(method=TransferMethod.PUT, key=key)],
        )
    except Exception:  # noqa: BLE001 - denied
        return False
    return True


async def test_a_step_of_the_holding_site_gets_the_file_as_is_nothing_published(rig: Rig) -> None:
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    [c] = rig.executes("s1", "c")
    assert c.inputs["x"] == out  # held_by kept: the worker copies it from its disk
    # b (another site) waits for the file; the only Publish is for it.
    assert rig.executes("s2", "b") == []
    [publish] = rig.channels["s1"].of(PublishOrder)
    assert [f.key for f in publish.files] == [out.key]


async def test_another_site_waits_for_the_publication_then_gets_the_published_file(
    rig: Rig,
) -> None:
    await deploy(rig)
    a, out = await start_and_finish_a(rig)
    run = rig.engine.runs[next(iter(rig.engine.runs))]
    [b_execution] = [e for e in run.executions.values() if e.step_id == "b"]
    assert b_execution.state is ExecutionState.WAITING
    [publish] = rig.channels["s1"].of(PublishOrder)
    assert (publish.files[0].sha256, publish.files[0].run_id) == (out.sha256, run.id)
    # The holding site may upload that key (presigned PUT) though a has ended; s2 may not.
    assert may_put(rig, "s1", out.key)
    assert not may_put(rig, "s2", out.key)
    rig.report("s1", FilesPublished(keys=(out.key,)))
    [b] = rig.executes("s2", "b")
    published = FileRef(key=out.key, name=out.name, size=out.size, sha256=out.sha256)
    assert b.inputs["x"] == published
    # The run shows it published (recorded again): a's output, b's and c's inputs.
    a_execution = run.executions[ExecutionId(a.execution_id)]
    assert a_execution.outputs == {"x": published}
    assert rig.recorder.runs[run.id] is run
    assert not may_put(rig, "s1", out.key)  # answered: no more writes


async def test_a_file_the_site_could_not_publish_fails_its_consumer_naming_both(
    rig: Rig,
) -> None:
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    rig.report("s1", FilesPublished(failures=((out.key, "this site no longer holds it"),)))
    run = next(iter(rig.recorder.runs.values()))
    [b_execution] = [e for e in run.executions.values() if e.step_id == "b"]
    assert b_execution.state is ExecutionState.FAILED
    assert out.key in b_execution.error and "site s1" in b_execution.error
    assert "no longer holds it" in b_execution.error
    assert rig.executes("s2", "b") == []


async def test_publish_orders_are_sent_again_when_the_holding_site_registers_again(
    rig: Rig,
) -> None:
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    channel = rig.register("s1", ready=("a", "c"))  # a new stream: the answer was not seen
    [again] = channel.of(PublishOrder)
    assert [f.key for f in again.files] == [out.key]
    rig.report("s1", FilesPublished(keys=(out.key,)))
    assert len(rig.executes("s2", "b")) == 1


async def test_archiving_the_holding_site_fails_the_waiting_consumer_naming_file_and_site(
    rig: Rig,
) -> None:
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    rig.engine.archive_site("s1", "admin")
    run = next(iter(rig.recorder.runs.values()))
    [b_execution] = [e for e in run.executions.values() if e.step_id == "b"]
    assert b_execution.state is ExecutionState.FAILED
    assert out.key in b_execution.error and "site s1" in b_execution.error
    assert "archived" in b_execution.error


async def test_a_waiting_consumer_past_the_site_wait_says_which_file_and_site(rig: Rig) -> None:
    await rig.engine.start()  # arms the heartbeat monitor and the reaper
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    rig.live_for(150, heard=("s2",))  # s1 goes silent: offline, never publishes
    run = next(iter(rig.recorder.runs.values()))
    [b_execution] = [e for e in run.executions.values() if e.step_id == "b"]
    assert b_execution.state is ExecutionState.FAILED
    assert f"its input file {out.key} is held by site s1" in b_execution.error


async def test_the_runs_end_publishes_its_held_results_then_releases_its_files(rig: Rig) -> None:
    await deploy(rig, results=(ResultDefinition(key="out", step_id="c", output_name="x"),))
    _, out = await start_and_finish_a(rig)
    rig.report("s1", FilesPublished(keys=(out.key,)))
    [b] = rig.executes("s2", "b")
    [c] = rig.executes("s1", "c")
    c_out = held_output(c)
    for site, order, value in (("s2", b, FileRef(key="k", name="n")), ("s1", c, c_out)):
        result = ExecutionResult(outcome=Outcome.COMPLETED, outputs={"x": value})
        rig.report(site, ExecutionEnded(execution_id=order.execution_id, result=result))
    run = next(iter(rig.recorder.runs.values()))
    assert run.state is RunState.COMPLETED
    orders = [m for m in rig.channels["s1"].sent if isinstance(m, PublishOrder | ReleaseOrder)]
    assert isinstance(orders[-2], PublishOrder) and [f.key for f in orders[-2].files] == [c_out.key]
    assert orders[-1] == ReleaseOrder(order_seq=orders[-1].order_seq, run_ids=(run.id,))


async def test_a_registering_site_is_told_to_release_the_files_of_ended_runs(rig: Rig) -> None:
    await deploy(rig)
    channel = FakeChannel()
    rig.engine.register_worker(
        RegisterWorker(
            worker_id="w-s1",
            site_name="s1",
            backend_kind="local",
            credential=site_credential(rig.engine, "s1"),
            held_files=frozenset({("gone-run", "c" * 64)}),
        ),
        channel,
    )
    [release] = channel.of(ReleaseOrder)
    assert release.run_ids == ("gone-run",)


async def test_a_site_whose_held_file_was_published_for_another_is_released_at_the_runs_end(
    rig: Rig,
) -> None:
    """The hand-over to another site cleared the file's `held_by` (published); the site still
    pins it for the run: the run's end releases it there too."""
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    rig.report("s1", FilesPublished(keys=(out.key,)))
    [b] = rig.executes("s2", "b")
    [c] = rig.executes("s1", "c")
    for site, order in (("s2", b), ("s1", c)):
        result = ExecutionResult(
            outcome=Outcome.COMPLETED, outputs={"x": FileRef(key="k", name="k")}
        )
        rig.report(site, ExecutionEnded(execution_id=order.execution_id, result=result))
    run = next(iter(rig.recorder.runs.values()))
    assert run.state is RunState.COMPLETED and run.held_files() == []
    [release] = rig.channels["s1"].of(ReleaseOrder)
    assert release.run_ids == (run.id,)
    assert rig.channels["s2"].of(ReleaseOrder) == []  # s2 held nothing for the run


async def test_a_site_that_lists_a_running_runs_files_at_registration_is_released_at_its_end(
    rig: Rig,
) -> None:
    """After a runner restart the run's record shows the file published: only the site's
    registration (held_files) says it still pins it; the run's end releases it."""
    await deploy(rig)
    _, out = await start_and_finish_a(rig)
    rig.report("s1", FilesPublished(keys=(out.key,)))
    run = next(iter(rig.recorder.runs.values()))
    [b] = rig.executes("s2", "b")
    [c] = rig.executes("s1", "c")
    channel = rig.register(
        "s1",
        ready=("a", "c"),
        running=frozenset({c.execution_id}),
        held=frozenset({(run.id, out.sha256)}),
    )
    assert channel.of(ReleaseOrder) == []  # the run goes on
    for site, order in (("s2", b), ("s1", c)):
        result = ExecutionResult(
            outcome=Outcome.COMPLETED, outputs={"x": FileRef(key="k", name="k")}
        )
        rig.report(site, ExecutionEnded(execution_id=order.execution_id, result=result))
    assert run.state is RunState.COMPLETED
    [release] = channel.of(ReleaseOrder)
    assert release.run_ids == (run.id,)
