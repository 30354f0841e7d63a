"""The retention policy of action processes, with a fake clock."""

from __future__ import annotations

from datetime import timedelta

from ryax_kit.testing import FakeClock
from ryax_worker.application.retention import Retention, RetentionPolicy
from ryax_worker.domain.model import ActionKind, DeploymentId, DeployStep, StepId, StepRef

A = StepRef(DeploymentId("d1"), StepId("a"))
B = StepRef(DeploymentId("d1"), StepId("b"))
OTHER = StepRef(DeploymentId("d2"), StepId("a"))


def spec(
    ref: StepRef, *, action: str = "act", trigger: bool = False, warm: bool = False
) -> DeployStep:
    return DeployStep(
        order_seq=1,
        ref=ref,
        action_id=action,
        action_version="1.0",
        action_kind=ActionKind.TRIGGER if trigger else ActionKind.PROCESSOR,
        artefact_key="artefacts/x.tar.gz",
        artefact_sha256="a" * 64,
        is_trigger=trigger,
        always_warm=warm,
    )


def books(seconds: float = 30.0, warm: frozenset[str] = frozenset()) -> tuple[Retention, FakeClock]:
    clock = FakeClock()
    return Retention(RetentionPolicy(retention_seconds=seconds, always_warm=warm), clock), clock


def later(clock: FakeClock, seconds: float) -> None:
    clock.current += timedelta(seconds=seconds)


def test_a_step_is_due_once_idle_for_the_retention_time() -> None:
    retention, clock = books(30)
    retention.track(spec(A))
    later(clock, 29.9)
    assert retention.due() == []
    assert retention.next_due_in() is not None and 0 < retention.next_due_in() <= 0.1 + 1e-9
    later(clock, 0.1)
    assert retention.due() == [A]
    assert retention.next_due_in() == 0.0


def test_a_running_step_is_never_due_and_its_idle_time_starts_at_the_end() -> None:
    retention, clock = books(30)
    retention.track(spec(A))
    retention.begin(A)
    later(clock, 120)
    assert retention.due() == []
    assert retention.next_due_in() is None
    retention.end(A)
    later(clock, 29)
    assert retention.due() == []
    later(clock, 1)
    assert retention.due() == [A]


def test_two_executions_at_once_keep_it_busy_until_both_end() -> None:
    retention, clock = books(10)
    retention.track(spec(A))
    retention.begin(A)
    retention.begin(A)
    retention.end(A)
    later(clock, 60)
    assert retention.due() == []
    retention.end(A)
    later(clock, 10)
    assert retention.due() == [A]


def test_a_sleeping_step_is_not_due_again_until_it_woke_and_idled() -> None:
    retention, clock = books(5)
    retention.track(spec(A))
    later(clock, 5)
    retention.slept(A)
    assert retention.asleep(A)
    assert retention.due() == []
    retention.begin(A)  # an execution wakes it
    assert not retention.asleep(A)
    retention.end(A)
    later(clock, 4)
    assert retention.due() == []
    later(clock, 1)
    assert retention.due() == [A]


def test_an_execution_arriving_while_it_stops_keeps_it_awake() -> None:
    retention, clock = books(5)
    retention.track(spec(A))
    later(clock, 5)
    assert retention.due() == [A]
    retention.begin(A)  # arrives while the backend stops the process
    retention.slept(A)  # the stop finished: the run will start it again
    assert not retention.asleep(A)


def test_triggers_always_warm_steps_and_zero_retention_never_stop() -> None:
    retention, clock = books(1, warm=frozenset({"keep-me", "d2", "d1/b"}))
    retention.track(spec(A, trigger=True))
    retention.track(spec(B))
    retention.track(spec(OTHER))
    retention.track(spec(StepRef(DeploymentId("d3"), StepId("x")), action="keep-me"))
    retention.track(spec(StepRef(DeploymentId("d3"), StepId("y"))))
    retention.track(spec(StepRef(DeploymentId("d3"), StepId("z")), warm=True))
    later(clock, 3600)
    assert retention.due() == [StepRef(DeploymentId("d3"), StepId("y"))]

    never, clock = books(0)
    never.track(spec(A))
    later(clock, 3600)
    assert never.due() == []
    assert never.next_due_in() is None


def test_an_undeployed_step_is_forgotten() -> None:
    retention, clock = books(1)
    retention.track(spec(A))
    retention.forget(A)
    later(clock, 10)
    assert retention.due() == []
    retention.begin(A)
    retention.end(A)
    assert retention.due() == []


def test_a_deploy_order_marked_always_warm_gives_a_step_that_never_stops() -> None:
    """Deploy.always_warm (the studio's step setting, through the runner) reaches the policy."""
    from ryax_worker.infrastructure.grpc.mappers import order_from_proto
    from ryax_worker.infrastructure.proto import worker_service_pb2 as wpb

    def deploy(warm: bool) -> DeployStep:
        message = wpb.RunnerMessage(
            order_seq=1,
            deploy=wpb.Deploy(
                deployment_id="d1",
                step_id="s1",
                action_id="a",
                action_version="1",
                action_kind="processor",
                always_warm=warm,
            ),
        )
        order = order_from_proto(message)
        assert isinstance(order, DeployStep)
        return order

    policy = RetentionPolicy(retention_seconds=30)
    assert policy.keeps_warm(deploy(True)) and not policy.keeps_warm(deploy(False))
