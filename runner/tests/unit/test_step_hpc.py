"""Step-level HPC parameters (studio's event -> definition -> stored -> Deploy.hpc), the
partition they name in placement, and placement reasons that name the step, what it asks and
the closest node pool."""

from __future__ import annotations

from datetime import UTC, datetime

from ryax_runner.application.messages import DeployOrder
from ryax_runner.domain.deployment import StepState
from ryax_runner.domain.site import (
    NodePool,
    NoPlacement,
    Placement,
    Site,
    SiteState,
    place,
    site_id_for,
)
from ryax_runner.domain.workflow import Resources, StepDefinition, StepSettings
from ryax_runner.infrastructure.database.serialization import (
    SecretBox,
    definition_from_json,
    definition_to_json,
)
from ryax_runner.infrastructure.grpc.mappers import outgoing_to_proto
from ryax_runner.infrastructure.messaging.mappers import definition_from_proto
from ryax_runner.infrastructure.proto import studio_events_pb2 as studio_pb

from .rig import definition, make_rig, processor

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HPC = (("custom_script", "srun ./sim\nexport out=r.txt"), ("nodes", "2"), ("partition", "debug"))


def site(name: str, kind: str, *pools: NodePool) -> Site:
    return Site(
        id=site_id_for(name),
        name=name,
        worker_id=f"w-{name}",
        backend_kind=kind,
        node_pools=pools,
        registered_at=NOW,
        last_seen_at=NOW,
        state=SiteState.ONLINE,
    )


def step(step_id: str = "train", **settings: object) -> StepDefinition:
    return StepDefinition(
        step_id=step_id,
        action_id=step_id,
        action_version="1",
        action_kind="processor",
        settings=StepSettings(**settings),  # type: ignore[arg-type]
    )


def test_the_closest_node_pool_is_named_with_what_it_lacks() -> None:
    gpu = site("hpc-1", "slurm", NodePool(name="gpu", cpu=4, memory_bytes=2**34, gpu=2))
    small = site("laptop", "local", NodePool(name="default", cpu=2, memory_bytes=2**32))
    no = place(step(resources=Resources(cpu=8)), [small, gpu])
    assert isinstance(no, NoPlacement)
    assert no.reason == "step train: asks 8 cpu; the closest node pool, gpu@hpc-1, has 4 cpu"
    # Fewest shortfalls first: the laptop lacks cpu and memory, hpc-1 only cpu.
    no = place(step(resources=Resources(cpu=8, memory_bytes=2**33)), [small, gpu])
    assert isinstance(no, NoPlacement)
    assert no.reason == (
        "step train: asks 8 cpu, 8 GiB of memory; the closest node pool, gpu@hpc-1, has 4 cpu"
    )
    no = place(step(resources=Resources(cpu=16, gpu=4)), [small, gpu])
    assert isinstance(no, NoPlacement)
    assert no.reason == (
        "step train: asks 16 cpu, 4 gpu; the closest node pool, gpu@hpc-1, has 4 cpu, has 2 gpu"
    )


def test_a_reason_when_no_candidate_declares_node_pools() -> None:
    bare = site("laptop", "local")
    no = place(step(resources=Resources(gpu=1)), [bare])
    assert isinstance(no, NoPlacement)
    assert no.reason == (
        "step train: asks 1 gpu; no online site that fits its other constraints declares node "
        "pools (laptop)"
    )


def test_hpc_partition_picks_that_partition_of_a_slurm_site() -> None:
    hpc = site(
        "hpc",
        "slurm",
        NodePool(name="debug", cpu=4, max_time_seconds=1800),
        NodePool(name="long", cpu=4, max_time_seconds=86400),
    )
    wants_long = step(hpc=(("partition", "long"),))
    assert place(wants_long, [hpc]) == Placement(site_id=hpc.id, node_pool="long")
    assert place(step(), [hpc]) == Placement(site_id=hpc.id, node_pool="debug")
    # A partition the site lacks: the step waits, and the reason says which it asked for.
    no = place(step(hpc=(("partition", "gpu"),)), [hpc])
    assert isinstance(no, NoPlacement)
    assert no.reason == (
        "step train: asks partition 'gpu'; the closest node pool, debug@hpc, is not partition 'gpu'"
    )
    # Other sites ignore the HPC add-on, its partition included.
    local = site("laptop", "local")
    assert place(step(hpc=(("partition", "gpu"),)), [local]) == Placement(
        site_id=local.id, node_pool=""
    )


def test_hpc_parameters_go_from_the_studio_event_to_the_stored_definition() -> None:
    snapshot = studio_pb.WorkflowSnapshot()
    trigger = snapshot.steps.add(
        step_id="t", action_id="t", action_version="1", action_kind="trigger"
    )
    trigger.outputs.add(name="x", type="string")
    sim = snapshot.steps.add(step_id="sim", action_id="sim", action_version="1")
    sim.action_kind = "processor"
    sim.parent_step_ids.append("t")
    sim.settings.hpc.update(dict(HPC))
    snapshot.trigger.step_id = "t"
    snapshot.trigger.http_endpoint = True
    parsed = definition_from_proto(snapshot)
    assert parsed.step("sim").settings.hpc == HPC
    assert parsed.step("t").settings.hpc == ()
    box = SecretBox("k" * 32)
    stored = definition_to_json(parsed, box)
    assert definition_from_json(stored, box) == parsed
    # A definition recorded before step-level HPC parameters existed reads as having none.
    for s in stored["steps"]:
        del s["settings"]["hpc"]
    assert definition_from_json(stored, box).step("sim").settings.hpc == ()


async def test_the_deploy_order_carries_the_steps_hpc_parameters() -> None:
    rig = make_rig()
    channel = rig.register("hpc")
    d = await rig.deploy(processor("a", StepSettings(hpc=HPC)), processor("b"))
    assert d.steps["a"].state is StepState.DEPLOYING
    orders = {o.step_id: o for o in channel.of(DeployOrder)}
    assert orders["a"].hpc == HPC and orders["b"].hpc == ()
    message = outgoing_to_proto(orders["a"])
    assert dict(message.deploy.hpc) == dict(HPC)
    assert dict(outgoing_to_proto(orders["b"]).deploy.hpc) == {}


def test_definition_helper_keeps_settings() -> None:
    wf = definition(processor("a", StepSettings(hpc=(("nodes", "2"),))))
    assert wf.step("a").settings.partition == ""
    assert StepSettings(hpc=HPC).partition == "debug"
