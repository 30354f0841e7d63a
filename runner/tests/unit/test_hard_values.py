"""Hard values reaching the runner (NUL characters, lone surrogates, NaN and infinities, JSON
nested too deep, keys that are not strings, oversized values, JSON that cannot be read) are
refused as the failure of their step, naming the output, before anything reaches the
recorder; text that is only shown (log lines, errors) is cleaned instead. Other runs go on."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest

from ryax_runner.application.messages import (
    CancelOrder,
    DeployWorkflow,
    ExecuteOrder,
    ExecutionEnded,
    LogLine,
    StepStateReported,
    TriggerFired,
)
from ryax_runner.domain.errors import InvalidInput
from ryax_runner.domain.run import ExecutionResult, ExecutionState, Outcome, RunState
from ryax_runner.domain.values import (
    MAX_JSON_DEPTH,
    FileRef,
    clean_text,
    coerce,
    refused_output,
    unstorable,
)
from ryax_runner.infrastructure.grpc.mappers import report_from_proto
from ryax_runner.infrastructure.proto import worker_service_pb2 as pb

from .rig import Rig, definition, execution, processor


def nested(depth: int) -> Any:
    doc: Any = "leaf"
    for _ in range(depth):
        doc = [doc]
    return doc


HARD = {
    "nul": ("a\x00b", "contains a NUL character (U+0000), which cannot be stored"),
    "surrogate": ("a\ud800b", "contains a lone surrogate (U+D800)"),
    "nan": (math.nan, "is NaN, which JSON cannot hold"),
    "infinity": (math.inf, "is an infinity, which JSON cannot hold"),
    "minus_infinity": (-math.inf, "is an infinity"),
    "nul_in_json": ({"k": ["x\x00"]}, "contains a NUL character"),
    "nan_in_json": ({"k": [1.0, math.nan]}, "is NaN"),
    "deep_json": (nested(MAX_JSON_DEPTH + 1), f"nested more than {MAX_JSON_DEPTH} levels"),
    "int_key": ({1: "x"}, "has a key that is not a string (int 1)"),
    "nul_key": ({"a\x00": 1}, "has a key that contains a NUL character"),
    "not_a_value": ({"k": {1, 2}}, "is a set, not a JSON value"),
    "file_name_nul": (FileRef(key="k", name="a\x00"), "a file reference whose name or key"),
}


@pytest.mark.parametrize("case", sorted(HARD))
def test_each_hard_value_is_unstorable_with_its_reason(case: str) -> None:
    value, reason = HARD[case]
    assert reason in unstorable(value)
    assert refused_output({"text": value}).startswith("output `text`: ")
    assert reason in refused_output({"text": value})


def test_ordinary_values_are_storable() -> None:
    for value in (None, True, 3, 2.5, "é ✓ 𝄞", [1, {"a": None}], nested(MAX_JSON_DEPTH)):
        assert unstorable(value) == ""
    assert refused_output({"a": "x"}, [{"b": 1}]) == ""


def test_an_oversized_output_is_refused_naming_it() -> None:
    assert refused_output({"big": "x" * 2000}, limit=1024) == (
        "output `big`: 2000 bytes, more than the 1 KiB inline limit: return a file"
    )


def test_a_hard_value_in_an_element_of_a_fanned_out_list_is_named() -> None:
    assert refused_output(None, [{"a": "ok"}, {"b": "\x00"}]).startswith("output `b`: ")


def test_text_that_is_only_shown_is_cleaned_not_refused() -> None:
    assert clean_text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
    assert clean_text("plain") == "plain"


def test_an_endpoint_input_with_a_hard_value_is_a_400_naming_it() -> None:
    with pytest.raises(InvalidInput) as caught:
        coerce("string", "text", "a\x00b")
    assert caught.value.detail.startswith("text: contains a NUL character")
    with pytest.raises(InvalidInput):
        coerce("json", "doc", {"x": math.nan})


@pytest.mark.parametrize("case", sorted(HARD))
async def test_a_hard_output_fails_its_step_and_run_naming_it_and_other_runs_go_on(
    rig: Rig, case: str
) -> None:
    value, reason = HARD[case]
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    poisoned = rig.engine.start_run(d, {"x": "1"}, origin="http")
    other = rig.engine.start_run(d, {"x": "2"}, origin="http")
    first, second = rig.executes("s1")
    result = ExecutionResult(outcome=Outcome.COMPLETED, outputs={"text": value})
    rig.report("s1", ExecutionEnded(execution_id=first.execution_id, result=result))

    failed = execution(poisoned, first)
    assert failed.state is ExecutionState.FAILED and failed.outputs is None
    assert failed.error.startswith("output `text`: ") and reason in failed.error
    assert poisoned.state is RunState.FAILED and poisoned.failed_step_id == "a"
    assert poisoned.reason == f"step a failed: {failed.error}"
    assert unstorable(poisoned.results) == ""
    rig.complete("s1", second)
    assert other.state is RunState.COMPLETED and other.results == {"y": "ok"}


async def deploy_with_trigger(rig: Rig) -> None:
    """A workflow whose trigger runs on site s1 (not the HTTP endpoint), deployed."""
    base = definition(processor("a"))
    d = await rig.engine.deploy_workflow(
        DeployWorkflow(
            message_id="m1",
            deployment_id="d1",
            project_id="p",
            workflow_id="w",
            workflow_name="wf",
            snapshot_id="s",
            definition=replace(base, trigger=replace(base.trigger, http_endpoint=False)),
        )
    )
    assert d is not None
    rig.ready("s1", "t", "a")


async def test_hard_trigger_outputs_fail_the_run_at_once_naming_the_output(rig: Rig) -> None:
    rig.register("s1")
    await deploy_with_trigger(rig)
    rig.report("s1", TriggerFired(deployment_id="d1", step_id="t", outputs={"x": "bad\x00"}))
    rig.report("s1", TriggerFired(deployment_id="d1", step_id="t", outputs={"x": "good"}))
    runs = list(rig.recorder.runs.values())
    bad, good = runs
    assert bad.state is RunState.FAILED and bad.failed_step_id == "t"
    assert bad.reason == (
        "step t failed: output `x`: contains a NUL character (U+0000), which cannot be stored"
    )
    [trigger] = bad.executions.values()
    assert trigger.state is ExecutionState.FAILED and trigger.outputs is None
    assert not good.state.is_terminal
    [order] = rig.executes("s1")
    assert order.run_id == good.id


async def test_an_unreadable_trigger_output_fails_the_run_naming_it(rig: Rig) -> None:
    rig.register("s1")
    await deploy_with_trigger(rig)
    message = pb.WorkerMessage(report_seq=1)
    message.new_run.deployment_id, message.new_run.step_id = "d1", "t"
    message.new_run.outputs["x"].json_value = "[" * 5000 + "]" * 5000
    fired = report_from_proto(message)
    assert isinstance(fired, TriggerFired) and fired.refused.startswith("output `x`: ")
    rig.report("s1", fired)
    [run] = rig.recorder.runs.values()
    assert run.state is RunState.FAILED and "output `x`: " in run.reason


def result_message(**outputs: str) -> pb.WorkerMessage:
    message = pb.WorkerMessage(report_seq=1)
    r = message.execution_result
    r.execution_id, r.status = "e1", pb.EXECUTION_STATUS_COMPLETED
    for name, text in outputs.items():
        r.outputs[name].json_value = text
    return message


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ("NaN", "JSON has no NaN"),
        ('{"a": Infinity}', "JSON has no NaN nor infinities"),
        ("[" * 5000 + "]" * 5000, "nested too deep"),
        ("{not json", "not a valid JSON document"),
        ("1" * 5000, "not a valid JSON document"),
    ],
)
def test_a_result_whose_value_cannot_be_read_is_a_failure_naming_the_output(
    document: str, why: str
) -> None:
    ended = report_from_proto(result_message(ok="1", text=document))
    assert isinstance(ended, ExecutionEnded)
    assert ended.result.outcome is Outcome.FAILED and ended.result.outputs is None
    assert ended.result.error.startswith("output `text`: ") and why in ended.result.error


def test_a_json_value_decoding_to_a_hard_value_is_left_to_the_domain() -> None:
    ended = report_from_proto(result_message(text=json.dumps({"s": "\ud800", "n": "\u0000"})))
    assert isinstance(ended, ExecutionEnded) and ended.result.outputs is not None
    assert refused_output(ended.result.outputs).startswith("output `text`: ")


def test_log_lines_and_error_texts_are_cleaned_never_refused() -> None:
    message = pb.WorkerMessage(report_seq=1)
    message.execution_log.execution_id, message.execution_log.line = "e1", "a\x00b"
    line = report_from_proto(message)
    assert isinstance(line, LogLine) and line.line == "a\ufffdb"
    failed = pb.WorkerMessage(report_seq=2)
    r = failed.execution_result
    r.execution_id, r.status = "e1", pb.EXECUTION_STATUS_FAILED
    r.error, r.traceback = "boom\x00", "tb\x00"
    ended = report_from_proto(failed)
    assert isinstance(ended, ExecutionEnded)
    assert (ended.result.error, ended.result.traceback) == ("boom\ufffd", "tb\ufffd")
    state = pb.WorkerMessage(report_seq=3)
    state.deployment_state.deployment_id, state.deployment_state.reason = "d1", "no\x00pe"
    reported = report_from_proto(state)
    assert isinstance(reported, StepStateReported) and reported.reason == "no\ufffdpe"


def test_a_date_no_calendar_holds_is_as_if_not_given() -> None:
    message = result_message()
    message.execution_result.started_at.seconds = 2**62
    ended = report_from_proto(message)
    assert isinstance(ended, ExecutionEnded) and ended.result.started_at is None


async def test_an_unrecordable_run_ends_failed_and_its_workers_are_told(rig: Rig) -> None:
    rig.register("s1")
    d = await rig.deploy(processor("a"))
    rig.ready("s1", "a")
    run = rig.engine.start_run(d, {"x": "1"}, origin="http")
    [order] = rig.executes("s1")
    rig.engine.abandon_run(run, "CharacterNotInRepertoireError: 0x00")
    assert run.state is RunState.FAILED
    assert run.reason == "could not be recorded: CharacterNotInRepertoireError: 0x00"
    assert execution(run, order).state is ExecutionState.CANCELLED
    assert run.id not in rig.engine.runs
    [cancel] = rig.channels["s1"].of(CancelOrder)
    assert cancel.execution_id == order.execution_id
    assert isinstance(order, ExecuteOrder)
