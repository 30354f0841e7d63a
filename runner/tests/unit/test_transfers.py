"""Which objects a site's worker may move through presigned URLs (engine on fakes): the artefacts
of its steps, the input files of the executions it runs, outputs under those executions' own
prefix, a trigger's files under its own prefix; nothing of another site, nothing once ended."""

from __future__ import annotations

import pytest

from ryax_runner.application.engine import (
    TransferAsk,
    TransferDenied,
    TransferMethod,
    WorkerRefused,
)
from ryax_runner.application.messages import (
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    UndeployWorkflow,
)
from ryax_runner.domain.deployment import Deployment
from ryax_runner.domain.run import ExecutionResult, Outcome
from ryax_runner.domain.site import AuthFailure
from ryax_runner.domain.values import FileRef
from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    StepDefinition,
    StepSettings,
    TriggerDefinition,
    WorkflowDefinition,
)

from .fakes import site_credential
from .rig import Rig

GET, PUT = TransferMethod.GET, TransferMethod.PUT
INPUT = FileRef(key="runs/r0/e0/x/in.txt", name="in.txt", size=3, sha256="a" * 64)


def step(step_id: str, site: str, parent: str = "t", kind: str = "processor") -> StepDefinition:
    return StepDefinition(
        step_id=step_id,
        action_id=step_id,
        action_version="1",
        action_kind=kind,
        artefact_key=f"artefacts/{step_id}.tar.gz",
        artefact_sha256="0" * 64,
        inputs=(IO(name="x", type="file"),) if kind != "trigger" else (),
        outputs=(IO(name="x", type="file"),),
        input_values=(("x", ReferenceInput(step_id=parent, output_name="x")),)
        if kind != "trigger"
        else (),
        parent_step_ids=(parent,) if kind != "trigger" else (),
        settings=StepSettings(site_name=site),
    )


async def deploy(rig: Rig, *, http: bool = True) -> Deployment:
    """t (trigger, on s1 unless http) -> a (on s1) -> b (on s2)."""
    d = await rig.engine.deploy_workflow(
        DeployWorkflow(
            message_id="m1",
            deployment_id="d1",
            project_id="p",
            workflow_id="w",
            workflow_name="wf",
            snapshot_id="s",
            definition=WorkflowDefinition(
                steps=(step("t", "s1", kind="trigger"), step("a", "s1"), step("b", "s2", "a")),
                trigger=TriggerDefinition(step_id="t", http_endpoint=http),
            ),
        )
    )
    assert d is not None
    return d


def allowed(rig: Rig, site: str, method: TransferMethod, key: str) -> bool:
    try:
        rig.engine.authorise_transfers(
            site, site_credential(rig.engine, site), [TransferAsk(method=method, key=key)]
        )
    except TransferDenied as denied:
        assert key[:100] in denied.detail
        return False
    return True


@pytest.fixture
async def running(rig: Rig) -> tuple[Rig, ExecuteOrder]:
    rig.register("s1")
    rig.register("s2")
    d = await deploy(rig)
    rig.ready("s1", "a")
    rig.ready("s2", "b")
    rig.engine.start_run(d, {"x": INPUT}, origin="http")
    [order] = rig.executes("s1", "a")
    return rig, order


def test_a_site_reads_its_own_steps_artefacts_only(running: tuple[Rig, ExecuteOrder]) -> None:
    rig, _ = running
    assert allowed(rig, "s1", GET, "artefacts/a.tar.gz")
    assert allowed(rig, "s2", GET, "artefacts/b.tar.gz")
    assert not allowed(rig, "s1", GET, "artefacts/b.tar.gz")
    assert not allowed(rig, "s2", GET, "artefacts/a.tar.gz")
    assert not allowed(rig, "s1", GET, "sources/anything.tar.gz")


def test_inputs_and_outputs_of_a_running_execution_on_its_site_only(
    running: tuple[Rig, ExecuteOrder],
) -> None:
    rig, order = running
    prefix = f"runs/{order.run_id}/{order.execution_id}"
    assert allowed(rig, "s1", GET, INPUT.key)
    assert allowed(rig, "s1", PUT, f"{prefix}/x/out.txt")
    assert allowed(rig, "s1", PUT, f"{prefix}/x/0/out.txt")  # one set of a list of outputs
    # b (on s2) waits for a: nothing of this run is s2's yet.
    assert not allowed(rig, "s2", GET, INPUT.key)
    assert not allowed(rig, "s2", PUT, f"{prefix}/x/out.txt")
    # Not the execution's own prefix: another run, another execution, the prefix itself.
    assert not allowed(rig, "s1", PUT, f"runs/other-run/{order.execution_id}/x/out.txt")
    assert not allowed(rig, "s1", PUT, f"runs/{order.run_id}/other-execution/x/out.txt")
    assert not allowed(rig, "s1", PUT, prefix)
    assert not allowed(rig, "s1", PUT, INPUT.key)
    assert not allowed(rig, "s1", PUT, "artefacts/a.tar.gz")
    assert not allowed(rig, "s1", GET, f"{prefix}/x/out.txt")  # written, not read, by it


def test_once_the_execution_ended_its_files_are_closed_and_the_next_sites_open(
    running: tuple[Rig, ExecuteOrder],
) -> None:
    rig, order = running
    output = FileRef(key=f"runs/{order.run_id}/{order.execution_id}/x/out.txt", name="out.txt")
    result = ExecutionResult(outcome=Outcome.COMPLETED, outputs={"x": output})
    rig.report("s1", ExecutionEnded(execution_id=order.execution_id, result=result))
    assert not allowed(rig, "s1", GET, INPUT.key)
    assert not allowed(rig, "s1", PUT, output.key)
    [next_order] = rig.executes("s2", "b")
    assert allowed(rig, "s2", GET, output.key)  # a's output is b's input
    assert not allowed(rig, "s1", GET, output.key)
    assert allowed(rig, "s2", PUT, f"runs/{order.run_id}/{next_order.execution_id}/x/f")


async def test_a_trigger_writes_under_its_own_prefix_on_its_site(rig: Rig) -> None:
    rig.register("s1")
    rig.register("s2")
    await deploy(rig, http=False)
    rig.ready("s1", "t", "a")
    rig.ready("s2", "b")
    assert allowed(rig, "s1", GET, "artefacts/t.tar.gz")
    assert allowed(rig, "s1", PUT, "triggers/d1/t/ev-1/x/file.csv")
    assert not allowed(rig, "s2", PUT, "triggers/d1/t/ev-1/x/file.csv")
    assert not allowed(rig, "s1", PUT, "triggers/d1/a/ev-1/x/file.csv")  # a is no trigger
    assert not allowed(rig, "s1", PUT, "triggers/other/t/ev-1/x/file.csv")
    await rig.engine.undeploy_workflow(
        UndeployWorkflow(message_id="m2", deployment_id="d1", project_id="p")
    )
    assert not allowed(rig, "s1", PUT, "triggers/d1/t/ev-2/x/file.csv")
    assert not allowed(rig, "s1", GET, "artefacts/t.tar.gz")


async def test_an_http_trigger_runs_in_the_runner_no_site_writes_for_it(rig: Rig) -> None:
    rig.register("s1")
    await deploy(rig, http=True)
    assert not allowed(rig, "s1", PUT, "triggers/d1/t/ev-1/x/file.csv")


def test_all_or_nothing_and_the_denial_names_the_key(running: tuple[Rig, ExecuteOrder]) -> None:
    rig, _ = running
    asks = [
        TransferAsk(method=GET, key="artefacts/a.tar.gz"),
        TransferAsk(method=GET, key="artefacts/b.tar.gz"),
    ]
    with pytest.raises(TransferDenied) as denied:
        rig.engine.authorise_transfers("s1", site_credential(rig.engine, "s1"), asks)
    assert denied.value.key == "artefacts/b.tar.gz"
    assert "may not read 'artefacts/b.tar.gz'" in denied.value.detail


def test_the_site_credential_is_checked_first(running: tuple[Rig, ExecuteOrder]) -> None:
    rig, _ = running
    ask = [TransferAsk(method=GET, key="artefacts/a.tar.gz")]
    for credential, reason in (
        ("", AuthFailure.MISSING),
        ("wrong" * 10, AuthFailure.WRONG),
        (site_credential(rig.engine, "s2"), AuthFailure.WRONG),  # another site's credential
    ):
        with pytest.raises(WorkerRefused) as refused:
            rig.engine.authorise_transfers("s1", credential, ask)
        assert refused.value.reason is reason
    with pytest.raises(WorkerRefused) as refused:
        rig.engine.authorise_transfers("nowhere", "x" * 40, ask)
    assert refused.value.reason is AuthFailure.UNKNOWN_SITE
    issued = site_credential(rig.engine, "s1")
    rig.engine.authorise_transfers("s1", issued, ask)
    rig.engine.revoke_site_credential("s1", "tests")
    with pytest.raises(WorkerRefused) as refused:
        rig.engine.authorise_transfers("s1", issued, ask)
    assert refused.value.reason is AuthFailure.REVOKED
