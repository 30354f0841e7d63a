"""A step's HPC parameters from the studio's event (real RabbitMQ) to the stored deployment
(real PostgreSQL) and the worker's Deploy order (real gRPC), and a waiting deployment's
reason naming the closest node pool."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from runner_testkit.fake_worker import FakeWorker
from runner_testkit.harness import RunningRunner, publish

from ryax_runner.infrastructure.database.tables import deployments

from .test_flow import deployed, greet, simple_workflow, until

pytestmark = pytest.mark.integration

HPC = {"partition": "debug", "nodes": "2", "custom_script": "srun ./greet\nexport greeting=hi\n"}


async def test_hpc_parameters_and_always_warm_reach_the_worker_and_are_stored(
    runner: RunningRunner, amqp_url: str
) -> None:
    worker = FakeWorker(runner.grpc_address, credential=await runner.credential(), handler=greet)
    await worker.start()
    try:
        request = simple_workflow("hpc")
        greet_step = next(s for s in request.snapshot.steps if s.step_id == "greet")
        greet_step.settings.hpc.update(HPC)
        greet_step.settings.always_warm = True
        await deployed(runner, amqp_url, request)
        deploys = [o.deploy for o in worker.orders if o.WhichOneof("message") == "deploy"]
        assert [(d.step_id, dict(d.hpc), d.always_warm) for d in deploys] == [("greet", HPC, True)]
        async with runner.container.db().connect() as conn:
            row = (
                await conn.execute(
                    sa.select(deployments.c.definition).where(
                        deployments.c.id == request.deployment_id
                    )
                )
            ).one()
        stored = {s["step_id"]: s["settings"]["hpc"] for s in row.definition["steps"]}
        assert stored == {"trigger": [], "greet": [[k, HPC[k]] for k in sorted(HPC)]}
        warm = {s["step_id"]: s["settings"]["always_warm"] for s in row.definition["steps"]}
        assert warm == {"trigger": False, "greet": True}
    finally:
        await worker.stop()


async def test_a_step_that_fits_nowhere_waits_with_the_closest_pool(
    runner: RunningRunner, amqp_url: str
) -> None:
    worker = FakeWorker(
        runner.grpc_address,
        credential=await runner.credential(),
        handler=greet,
        node_pools=[("small", 2, 2**30, 0), ("big", 8, 2**34, 1)],
    )
    await worker.start()
    try:
        request = simple_workflow("big")
        greet_step = next(s for s in request.snapshot.steps if s.step_id == "greet")
        greet_step.settings.resources.cpu = 4096
        await publish(amqp_url, request)
        engine = runner.container.engine()

        def waiting() -> bool:
            d = engine.deployments.get(request.deployment_id)
            return d is not None and d.state == "waiting_for_site"

        await until(waiting)
        reason = engine.deployments[request.deployment_id].reason
        assert reason == "step greet: asks 4096 cpu; the closest node pool, big@site-1, has 8 cpu"
    finally:
        await worker.stop()
