"""The studio consumer's handler: each studio event to its engine command; anything else is
poison (dead-lettered at once by the kit's consumer, never retried)."""

from __future__ import annotations

import pytest
from runner_testkit.harness import deploy_request, io, step

from ryax_kit.core import AsyncioTimers
from ryax_kit.messaging import PoisonMessage
from ryax_kit.messaging.consumer import is_poison
from ryax_kit.testing import FakeClock
from ryax_runner.application.engine import Engine
from ryax_runner.infrastructure.messaging.handlers import QUEUE, studio_consumer, studio_handler
from ryax_runner.infrastructure.messaging.mappers import DEPLOY_REQUESTED, UNDEPLOY_REQUESTED
from ryax_runner.infrastructure.messaging.studio_values import StudioValues
from ryax_runner.infrastructure.proto import studio_events_pb2 as spb

from .fakes import FakeRecorder, FakeStore

#: Never called: these deployments use no secret.
NO_STUDIO = StudioValues("http://127.0.0.1:9", "")


@pytest.fixture
def engine() -> Engine:
    return Engine(
        recorder=FakeRecorder(), store=FakeStore(), clock=FakeClock(), timers=AsyncioTimers()
    )


async def test_a_deploy_request_becomes_a_deployment_and_an_undeploy_request_ends_it(
    engine: Engine,
) -> None:
    handle = studio_handler(engine, NO_STUDIO)
    request = deploy_request(
        [step("t", kind="trigger", outputs=("x",))], fields=[io("x")], workflow_name="wf"
    )
    await handle("m1", DEPLOY_REQUESTED, request.SerializeToString())
    deployment = engine.deployments[request.deployment_id]
    assert deployment.workflow_name == "wf"
    undeploy = spb.WorkflowUndeployRequested(
        event_id="e2", deployment_id=request.deployment_id, project_id="proj-a"
    )
    await handle("m2", UNDEPLOY_REQUESTED, undeploy.SerializeToString())
    assert deployment.is_gone


async def test_an_unknown_message_type_is_poison(engine: Engine) -> None:
    with pytest.raises(PoisonMessage, match="unexpected message type 'WorkflowRenamed'"):
        await studio_handler(engine, NO_STUDIO)("m1", "WorkflowRenamed", b"")
    assert not engine.deployments


async def test_an_undecodable_body_is_poison(engine: Engine) -> None:
    with pytest.raises(Exception) as error:  # noqa: PT011 - whatever protobuf raises, poison
        await studio_handler(engine, NO_STUDIO)("m1", DEPLOY_REQUESTED, b"\xff\xff not protobuf")
    assert is_poison(error.value)


def test_the_consumer_reads_the_runner_queue(engine: Engine) -> None:
    consumer = studio_consumer(object(), engine, NO_STUDIO)  # type: ignore[arg-type]  # no I/O until start
    assert consumer.queue_name == QUEUE == "runner.events"
    assert consumer.dead_letter_queue == "runner.events.dead-letter"
