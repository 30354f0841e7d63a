"""Security rules of the runner without I/O: fan-out bombs refused, secret values fetched from the
studio (never read from the event), password-type values sealed at rest and masked when shown,
definitions over the studio's limits refused."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from runner_testkit.harness import deploy_request, io, step

from ryax_kit.core import AsyncioTimers
from ryax_kit.messaging import PoisonMessage
from ryax_kit.testing import FakeClock
from ryax_runner.application.engine import Engine
from ryax_runner.domain.run import RunState
from ryax_runner.domain.workflow import IO, SecretInput, WorkflowDefinition
from ryax_runner.infrastructure.api.routes import present
from ryax_runner.infrastructure.database.serialization import (
    SecretBox,
    execution_from_row,
    execution_row,
    run_from_row,
    run_row,
)
from ryax_runner.infrastructure.messaging.handlers import studio_handler
from ryax_runner.infrastructure.messaging.mappers import DEPLOY_REQUESTED

from .fakes import FakeRecorder, FakeStore
from .test_domain import done, st, start, wf

# -- fan-out ------------------------------------------------------------------------------------


def test_security_a_fan_out_bomb_fails_its_step_without_retries() -> None:
    run, ready = start(wf(st("a", ("t",), retries=3), st("b", ("a",), {"x": ("a", "o")})))
    update = run.finish(
        ready[0].id, done(items=[{"o": str(i)} for i in range(1001)]), now=ready[0].created_at
    )
    [a] = [e for e in run.executions.values() if e.step_id == "a"]
    assert run.state is RunState.FAILED and update.ended and not update.retries
    assert "list of 1001 elements: more than the fan-out limit of 1000" in a.error
    assert "RYAX_RUNNER_MAX_FANOUT" in run.reason
    assert not [e for e in run.executions.values() if e.step_id == "b"]


def test_a_fan_out_within_its_limit_runs_each_branch() -> None:
    run, ready = start(wf(st("a", ("t",)), st("b", ("a",), {"x": ("a", "o")})))
    update = run.finish(
        ready[0].id, done(items=[{"o": "1"}, {"o": "2"}]), now=ready[0].created_at, max_fanout=2
    )
    assert [e.step_id for e in update.ready] == ["b", "b"]


def test_security_nested_fan_outs_stop_at_the_run_execution_cap() -> None:
    definition = wf(
        st("a", ("t",)), st("b", ("a",), {"x": ("a", "o")}), st("c", ("b",), {"x": ("b", "o")})
    )
    run, ready = start(definition)
    run.max_executions = 50
    now = ready[0].created_at
    u = run.finish(ready[0].id, done(items=[{"o": str(i)} for i in range(10)]), now=now)
    assert len(u.ready) == 10
    for e in u.ready[:5]:
        run.finish(e.id, done(items=[{"o": str(i)} for i in range(10)]), now=now)
        if run.state.is_terminal:
            break
    assert run.state is RunState.FAILED
    assert (
        "more than 50 executions" in run.reason and "RYAX_RUNNER_MAX_RUN_EXECUTIONS" in run.reason
    )
    assert len(run.executions) <= 50
    assert not [e for e in run.executions.values() if e.is_active]


# -- secrets from the studio ----------------------------------------------------------------------


class FakeValues:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values
        self.calls: list[str] = []

    async def fetch(self, deployment_id: str) -> dict[tuple[str, str], str]:
        self.calls.append(deployment_id)
        return self.values


@pytest.fixture
def engine() -> Engine:
    return Engine(
        recorder=FakeRecorder(), store=FakeStore(), clock=FakeClock(), timers=AsyncioTimers()
    )


def secret_request() -> Any:
    return deploy_request(
        [
            step("t", kind="trigger", outputs=("x",)),
            step(
                "use",
                parents=("t",),
                inputs={"key": ("secret", "api-key"), "pw": ("sensitive",)},
                input_types={"pw": "password"},
            ),
        ],
        fields=[io("x")],
    )


async def test_security_secret_values_come_from_the_studio_not_from_the_event(
    engine: Engine,
) -> None:
    request = secret_request()
    body = request.SerializeToString()
    values = FakeValues({("use", "key"): "s3cr3t-key", ("use", "pw"): "hunter2-pw"})
    handle = studio_handler(engine, values)  # type: ignore[arg-type]
    await handle("m1", DEPLOY_REQUESTED, body)
    assert values.calls == [request.deployment_id]
    d = engine.deployments[request.deployment_id]  # type: ignore[index]
    sources = dict(d.definition.step("use").input_values)
    assert sources["key"] == SecretInput(name="api-key", value="s3cr3t-key")
    assert sources["pw"] == SecretInput(name="", value="hunter2-pw")
    assert "s3cr3t" not in repr(d.definition) and "hunter2" not in repr(d.definition)
    # A redelivery does not ask again.
    await handle("m1", DEPLOY_REQUESTED, body)
    assert values.calls == [request.deployment_id]


async def test_a_value_the_studio_does_not_give_dead_letters_the_request(engine: Engine) -> None:
    handle = studio_handler(engine, FakeValues({("use", "key"): "k"}))  # type: ignore[arg-type]
    with pytest.raises(PoisonMessage, match=r"steps\.use\.pw: the studio gave no value"):
        await handle("m1", DEPLOY_REQUESTED, secret_request().SerializeToString())
    assert not engine.deployments


async def test_security_a_definition_over_the_limits_is_refused(engine: Engine) -> None:
    steps = [step("t", kind="trigger", outputs=("x",))]
    steps += [step(f"s{i}", parents=("t",)) for i in range(1001)]
    handle = studio_handler(engine, FakeValues({}))  # type: ignore[arg-type]
    with pytest.raises(PoisonMessage, match="1002 steps; at most 1000"):
        await handle("m1", DEPLOY_REQUESTED, deploy_request(steps).SerializeToString())
    wide = step("w", parents=("t",), inputs={f"i{n}": n for n in range(300)})
    with pytest.raises(PoisonMessage, match="more than 256 inputs"):
        await handle("m2", DEPLOY_REQUESTED, deploy_request([steps[0], wide]).SerializeToString())


# -- password-type values at rest and shown ------------------------------------------------------


def password_workflow(trigger_password: bool, step_password: bool) -> WorkflowDefinition:
    """t (its field `o`) -> a (input `x` from t.o, output `o`)."""
    plain = wf(st("a", ("t",), {"x": ("t", "o")}))
    t, a = plain.step("t"), plain.step("a")
    if trigger_password:
        t = replace(t, outputs=(IO(name="o", type="password"),))
    if step_password:
        a = replace(a, outputs=(IO(name="o", type="password"),))
    return replace(plain, steps=(t, a))


def test_security_password_fields_are_sealed_at_rest_and_masked_when_shown() -> None:
    definition = password_workflow(trigger_password=True, step_password=False)
    run, ready = start(definition, value="hunter2-field")
    run.finish(ready[0].id, done({"o": "A"}), now=ready[0].created_at)
    assert run.state is RunState.COMPLETED
    box = SecretBox("k" * 32)
    trigger = next(e for e in run.executions.values() if e.is_trigger)
    row = execution_row(trigger, box, definition.sensitive_outputs("t"))
    assert "hunter2" not in json.dumps(row, default=str)
    assert present(row["outputs"], lambda k: k) == {"o": "***"}
    # Opened again when the run is restored: downstream steps get the value.
    assert execution_from_row(SimpleNamespace(**row), box).outputs == {"o": "hunter2-field"}
    # A step that takes it gets it, and shows it masked.
    a = next(e for e in run.executions.values() if e.step_id == "a")
    assert a.inputs == {"x": "***"}
    assert run.resolve_inputs(definition.step("a"), ()) == {"x": "hunter2-field"}


def test_security_password_results_are_sealed_in_the_run_row() -> None:
    definition = password_workflow(trigger_password=False, step_password=True)
    run, ready = start(definition)
    run.finish(ready[0].id, done({"o": "hunter2-result"}), now=ready[0].created_at)
    assert run.results == {"o": "hunter2-result"}
    assert definition.sensitive_results == {"o"}
    box = SecretBox("k" * 32)
    row = run_row(run, box)
    assert "hunter2" not in json.dumps(row, default=str)
    assert present(row["results"], lambda k: k) == {"o": "***"}
    assert run_from_row(SimpleNamespace(**row), definition, box).results == run.results
