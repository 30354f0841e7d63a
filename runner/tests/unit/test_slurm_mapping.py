"""What a Slurm site's worker sends, read by the runner: partitions' time limits (placement
honours them), lost jobs."""

from __future__ import annotations

from datetime import UTC, datetime

from ryax_runner.application.messages import ExecutionEnded
from ryax_runner.domain.run import Outcome
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
from ryax_runner.infrastructure.grpc.mappers import register_from_proto, report_from_proto
from ryax_runner.infrastructure.proto import worker_service_pb2 as pb


def test_node_pools_carry_their_time_limit_a_negative_one_read_as_none() -> None:
    register = pb.Register(
        worker_id="w1",
        site_name="hpc",
        backend_kind="slurm",
        node_pools=[
            pb.NodePool(name="short", cpu=4, memory_bytes=2**32, gpu=2, max_time_seconds=60),
            pb.NodePool(name="odd", cpu=1, memory_bytes=2**30, max_time_seconds=-5),
        ],
    )
    pools = {p.name: p for p in register_from_proto(register).node_pools}
    assert pools["short"].max_time_seconds == 60 and pools["short"].gpu == 2
    assert pools["odd"].max_time_seconds == 0.0


def test_a_lost_execution_is_read_as_lost_with_its_reason() -> None:
    message = pb.WorkerMessage(report_seq=1)
    r = message.execution_result
    r.execution_id, r.status, r.error = "e1", pb.EXECUTION_STATUS_LOST, "slurm job 7 NODE_FAIL"
    ended = report_from_proto(message)
    assert isinstance(ended, ExecutionEnded) and ended.lost
    assert ended.result.outcome is Outcome.FAILED and ended.result.error == "slurm job 7 NODE_FAIL"
    r.status = pb.EXECUTION_STATUS_FAILED
    failed = report_from_proto(message)
    assert isinstance(failed, ExecutionEnded) and not failed.lost


def test_placement_skips_a_partition_whose_time_limit_is_shorter_than_the_step() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    hpc = Site(
        id=site_id_for("hpc"),
        name="hpc",
        worker_id="w1",
        backend_kind="slurm",
        node_pools=(
            NodePool(name="short", cpu=4, memory_bytes=2**32, max_time_seconds=60),
            NodePool(name="long", cpu=4, memory_bytes=2**32, max_time_seconds=86400),
        ),
        registered_at=now,
        last_seen_at=now,
        state=SiteState.ONLINE,
    )

    def step(seconds: float, pool: str = "") -> StepDefinition:
        return StepDefinition(
            step_id="sim",
            action_id="sim",
            action_version="1",
            action_kind="processor",
            settings=StepSettings(node_pool=pool, resources=Resources(time_seconds=seconds)),
        )

    assert place(step(60), [hpc]) == Placement(site_id=hpc.id, node_pool="short")
    assert place(step(3600), [hpc]) == Placement(site_id=hpc.id, node_pool="long")
    refused = place(step(3600, pool="short"), [hpc])
    assert isinstance(refused, NoPlacement)
    assert refused.reason == (
        "step sim: asks node pool 'short', 1 h; the closest node pool, short@hpc, allows 1 min"
    )
    assert isinstance(place(step(2 * 86400), [hpc]), NoPlacement)


def test_a_trigger_is_never_placed_on_a_slurm_site() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def online(name: str, kind: str) -> Site:
        return Site(
            id=site_id_for(name),
            name=name,
            worker_id=name,
            backend_kind=kind,
            node_pools=(NodePool(name="p", cpu=4, memory_bytes=2**32),),
            registered_at=now,
            last_seen_at=now,
            state=SiteState.ONLINE,
        )

    hpc, laptop = online("hpc", "slurm"), online("laptop", "local")
    trigger = StepDefinition(
        step_id="api", action_id="api", action_version="1", action_kind="trigger"
    )
    # The Slurm site is the least loaded: a processor would go there, the trigger does not.
    load = {laptop.id: 5}
    assert place(trigger, [hpc, laptop], load) == Placement(site_id=laptop.id, node_pool="p")
    processor = StepDefinition(
        step_id="p", action_id="p", action_version="1", action_kind="processor"
    )
    assert place(processor, [hpc, laptop], load) == Placement(site_id=hpc.id, node_pool="p")
    pinned = StepDefinition(
        step_id="api",
        action_id="api",
        action_version="1",
        action_kind="trigger",
        settings=StepSettings(site_name="hpc"),
    )
    refused = place(pinned, [hpc, laptop])
    assert isinstance(refused, NoPlacement)
    assert refused.reason == (
        "step api: a trigger cannot run on a Slurm site (place it on a local or Kubernetes site)"
    )
