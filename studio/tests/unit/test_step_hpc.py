"""Step settings with Ryax's HPC add-on: the domain's checks (unknown key, bad value, each
named), the use cases (kept, deployed in the snapshot, in the event to the runner), and the
YAML document (located problems, export == import)."""

from __future__ import annotations

from typing import Any

import pytest

from ryax_studio.domain.actions import Resources
from ryax_studio.domain.deployment import WorkflowDeployRequested
from ryax_studio.domain.errors import InvalidInput, InvalidWorkflow
from ryax_studio.domain.hpc import hpc_params
from ryax_studio.domain.workflow import StepSettings
from ryax_studio.infrastructure.messaging.mappers import snapshot_to_proto

from .test_use_cases import build_demo, fill_store

SCRIPT = "srun ./simulate > out.txt\nexport report=out.txt\n"


# ---- domain ------------------------------------------------------------------------------------
def test_keys_are_canonical_and_in_a_fixed_order() -> None:
    given: dict[str, object] = {
        "custom-script": SCRIPT,
        "tasks": 4,
        "Partition": " debug ",
        "nodes": "01-4",
        "exclusive": "yes",
        "memory": "4G",
        "gpu": 2,
        "time": "1:30:00",
    }
    assert hpc_params(given) == (
        ("partition", "debug"),
        ("nodes", "1-4"),
        ("ntasks", "4"),
        ("mem", "4G"),
        ("time", "1:30:00"),
        ("gpus", "2"),
        ("exclusive", "true"),
        ("custom_script", SCRIPT),
    )
    assert hpc_params({}) == ()


@pytest.mark.parametrize(
    ("given", "field", "says"),
    [
        ({"partitions": "debug"}, "hpc.partitions", "unknown HPC parameter 'partitions'"),
        ({"tasks": 2, "ntasks": 3}, "hpc.ntasks", "'ntasks' is given twice"),
        ({"nodes": "two"}, "hpc.nodes", "'two' is not a node count (e.g. 2 or 1-4)"),
        ({"nodes": "4-2"}, "hpc.nodes", "is not a node count"),
        ({"nodes": 0}, "hpc.nodes", "is not a node count"),
        ({"ntasks": 0}, "hpc.ntasks", "expected a whole number >= 1, got '0'"),
        ({"cpus_per_task": 1.5}, "hpc.cpus_per_task", "expected a whole number >= 1"),
        ({"mem": "lots"}, "hpc.mem", "'lots' is not a memory size (e.g. 512M, 4G)"),
        ({"time": "soon"}, "hpc.time", "'soon' is not a time"),
        ({"time": "0"}, "hpc.time", "'0' is not a time"),
        ({"partition": "a b"}, "hpc.partition", "'a b' is not a valid value (e.g. debug)"),
        ({"gres": "gpu;rm -rf"}, "hpc.gres", "is not a valid value"),
        ({"exclusive": "maybe"}, "hpc.exclusive", "expected true or false, got 'maybe'"),
        ({"custom_script": "  \n"}, "hpc.custom_script", "the script is empty"),
        ({"custom_script": "a\x00b"}, "hpc.custom_script", "holds a NUL character"),
        ({"custom_script": "x" * 70_000}, "hpc.custom_script", "longer than 65536"),
        ({"qos": ["a"]}, "hpc.qos", "expected a text or a number, got list"),
    ],
)
def test_each_bad_parameter_is_named(given: dict[str, object], field: str, says: str) -> None:
    with pytest.raises(InvalidInput) as error:
        hpc_params(given)
    assert error.value.field == field
    assert says in error.value.detail


def test_set_settings_refuses_a_bad_parameter_and_keeps_the_old_settings(b: Any) -> None:
    wf = b.demo_workflow()
    good = StepSettings(hpc=hpc_params({"partition": "debug"}))
    wf.set_settings("count", good, b.T0)
    with pytest.raises(InvalidInput) as error:
        wf.set_settings("count", StepSettings(hpc=(("nodes", "many"),)), b.T0)
    assert error.value.field == "hpc.nodes"
    assert wf.step("count").settings == good


# ---- use cases ---------------------------------------------------------------------------------
async def test_settings_with_hpc_reach_the_deploy_event(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    settings = StepSettings(
        site_name="hpc",
        resources=Resources(cpu=2.0),
        hpc=hpc_params({"partition": "debug", "nodes": 2, "custom_script": SCRIPT}),
    )
    view = await app.workflows.set_settings(b.PROJECT, wid, "count", settings)
    assert view.workflow.step("count").settings == settings
    shown = await app.workflows.show(b.PROJECT, wid)
    assert shown.workflow.step("count").settings.hpc == settings.hpc
    await app.deployments.deploy(b.PROJECT, wid, "alice")
    [event] = app.state.outbox
    assert isinstance(event, WorkflowDeployRequested)
    count = next(s for s in event.snapshot.steps if s.step_id == "count")
    assert count.settings.hpc == settings.hpc and count.settings.site_name == "hpc"
    proto = snapshot_to_proto(event.snapshot)
    sent = next(s for s in proto.steps if s.step_id == "count")
    assert dict(sent.settings.hpc) == {"partition": "debug", "nodes": "2", "custom_script": SCRIPT}
    assert sent.settings.site_name == "hpc"
    others = [dict(s.settings.hpc) for s in proto.steps if s.step_id != "count"]
    assert others == [{}] * 4


async def test_always_warm_reaches_the_deploy_event(app: Any, b: Any) -> None:
    wid = await build_demo(app, b)
    await app.workflows.set_settings(b.PROJECT, wid, "count", StepSettings(always_warm=True))
    await app.deployments.deploy(b.PROJECT, wid, "alice")
    [event] = app.state.outbox
    proto = snapshot_to_proto(event.snapshot)
    warm = {s.step_id: s.settings.always_warm for s in proto.steps}
    assert warm == {**dict.fromkeys(warm, False), "count": True}


async def test_hpc_survives_the_actions_own_resources(app: Any, b: Any) -> None:
    """An action that declares resources lends them to a step that sets none; the step's HPC
    parameters are kept."""
    wid = await build_demo(app, b)
    hpc = hpc_params({"nodes": 2})
    await app.workflows.set_settings(b.PROJECT, wid, "shout", StepSettings(hpc=hpc))
    await app.deployments.deploy(b.PROJECT, wid, "alice")
    [event] = app.state.outbox
    shout = next(s for s in event.snapshot.steps if s.step_id == "shout")
    assert shout.settings.hpc == hpc


# ---- the YAML document -------------------------------------------------------------------------
DOCUMENT = """apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: hpc demo
  functions:
  - id: api
    from: httpapijson
    version: "1.0"
    inputs_values:
      path: /x
      summary: s
    outputs:
    - name: text
      human_name: T
      help: h
      type: string
    streams_to: [up]
  - id: up
    from: uppercase
    version: "1.0"
    inputs_values:
      text:
        reference_value: api.text
    streams_to: []
    resources: {cpu: 2, memory: 1G, time: 10m, gpu: 1}
    addons:
      hpc:
        partition: debug
        nodes: 2
        ntasks: 4
        custom_script: |
          srun ./simulate > out.txt
          export report=out.txt
    placement:
      site: hpc
      node_pool: debug
      labels: {zone: eu}
    timeout: 1h
    retries: 2
    always_warm: true
"""


async def test_import_keeps_the_settings_and_export_gives_the_same_document(
    app: Any, b: Any
) -> None:
    await fill_store(app, b)
    view = await app.workflows.import_document(b.PROJECT, DOCUMENT.encode())
    settings = view.workflow.step("up").settings
    assert settings == StepSettings(
        timeout_seconds=3600.0,
        retries=2,
        site_name="hpc",
        node_pool="debug",
        labels=(("zone", "eu"),),
        resources=Resources(cpu=2.0, memory_bytes=2**30, time_seconds=600.0, gpu=1),
        hpc=(("partition", "debug"), ("nodes", "2"), ("ntasks", "4"), ("custom_script", SCRIPT)),
        always_warm=True,
    )
    _, text = await app.workflows.export_document(b.PROJECT, str(view.workflow.id))
    assert text == DOCUMENT


async def test_bad_settings_in_a_document_are_refused_at_their_lines(app: Any, b: Any) -> None:
    await fill_store(app, b)
    bad = (
        DOCUMENT.replace("cpu: 2, memory: 1G", "cpu: 2, memory: 1X")
        .replace("nodes: 2", "nodes: two")
        .replace("ntasks: 4", "ntask: 4")
        .replace("retries: 2", "retries: -1")
        .replace("always_warm: true", "always_warm: sometimes")
    )
    with pytest.raises(InvalidWorkflow) as error:
        await app.workflows.import_document(b.PROJECT, bad.encode())
    found = [(p.line, p.path) for p in error.value.problems]
    assert found == [
        (25, "spec.functions[1] (up).resources.memory"),
        (29, "spec.functions[1] (up).addons.hpc.nodes"),
        (30, "spec.functions[1] (up).addons.hpc.ntask"),
        (39, "spec.functions[1] (up).retries"),
        (40, "spec.functions[1] (up).always_warm"),
    ]
    messages = [p.message for p in error.value.problems]
    assert "'two' is not a node count" in messages[1]
    assert "unknown HPC parameter 'ntask'" in messages[2]
    assert messages[4].endswith("always_warm: expected true or false, got 'sometimes'")
    assert app.state.workflows == {}
