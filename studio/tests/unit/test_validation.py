"""Workflow validation, exhaustively, without any infrastructure."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ryax_studio.domain.actions import IOType
from ryax_studio.domain.problems import Problem
from ryax_studio.domain.validation import validate_workflow
from ryax_studio.domain.workflow import (
    ReferenceValue,
    SecretValue,
    StaticValue,
    WorkflowResult,
)


def check(b: Any, wf: Any, secrets: set[str] | None = None) -> list[Problem]:
    return validate_workflow(wf, b.standard_store(), secrets or set())


def codes(problems: list[Problem]) -> list[tuple[str, str | None, str | None]]:
    return [(p.code, p.step_id, p.input_name) for p in problems]


def trigger(b: Any, to: list[str], **outputs: IOType) -> Any:
    api = b.step("api", "httpapijson", streams_to=to, path="/x", summary="s")
    api.outputs = tuple(b.io(n, t) for n, t in outputs.items())
    return api


def typed(b: Any, /, **values: Any) -> Any:
    """A workflow api -> t(typed) with the given input values on t (s is required)."""
    values.setdefault("s", "text")
    return b.workflow(trigger(b, ["t"], text=IOType.STRING), b.step("t", "typed", **values))


# ---- a valid workflow --------------------------------------------------------------------------
def test_the_demo_workflow_is_valid(b: Any) -> None:
    assert check(b, b.demo_workflow()) == []


def test_a_timer_workflow_is_valid_with_defaults(b: Any) -> None:
    wf = b.workflow(
        b.step("tick", "timer", streams_to=["shout"]),
        b.step("shout", "uppercase", text="@tick.time"),
    )
    assert check(b, wf) == []


def test_a_reference_to_a_grand_ancestor_is_upstream(b: Any) -> None:
    wf = b.demo_workflow()
    assert wf.step("log").inputs["text"] == ReferenceValue(step_id="join", output="text")
    wf.step("log").inputs["text"] = ReferenceValue(step_id="api", output="text")
    assert check(b, wf) == []


# ---- triggers ----------------------------------------------------------------------------------
def test_no_trigger(b: Any) -> None:
    wf = b.workflow(b.step("a", "uppercase", text="x"))
    problems = check(b, wf)
    assert codes(problems) == [("no_trigger", None, None)]
    assert "no trigger" in problems[0].message


def test_an_empty_workflow_has_no_trigger(b: Any) -> None:
    assert codes(check(b, b.workflow())) == [("no_trigger", None, None)]


def test_two_triggers(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a"]),
        b.step("tick", "timer", streams_to=["a"]),
        b.step("a", "uppercase", text="x"),
    )
    problems = check(b, wf)
    assert ("multiple_triggers", "tick", None) in codes(problems)
    assert "exactly one trigger" in problems[0].message
    assert "'api', 'tick'" in problems[0].message


def test_the_trigger_must_come_first(b: Any) -> None:
    wf = b.workflow(b.step("a", "uppercase", text="x"), trigger(b, ["a"]))
    assert codes(check(b, wf)) == [("trigger_not_first", "api", None)]


def test_a_trigger_has_no_parents(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "uppercase", text="x", streams_to=["api"]))
    found = codes(check(b, wf))
    assert ("trigger_has_parents", "api", None) in found
    assert ("cycle", "api", None) in found


def test_a_step_not_downstream_of_the_trigger(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a"]),
        b.step("a", "uppercase", text="x"),
        b.step("orphan", "uppercase", text="x"),
    )
    problems = check(b, wf)
    assert codes(problems) == [("not_connected", "orphan", None)]
    assert "not downstream of the trigger 'api'" in problems[0].message


def test_no_trigger_is_not_reported_while_an_action_is_unknown(b: Any) -> None:
    wf = b.workflow(b.step("t", "my-trigger", streams_to=["a"]), b.step("a", "uppercase", text="x"))
    assert codes(check(b, wf)) == [("unknown_action", "t", None)]


# ---- actions -----------------------------------------------------------------------------------
def test_unknown_action_version_lists_the_versions_in_the_store(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "uppercase", version="9.9", text="x"))
    problems = check(b, wf)
    assert codes(problems) == [("unknown_action", "a", None)]
    assert "'uppercase' version '9.9'" in problems[0].message
    assert "1.0, 2.0" in problems[0].message
    assert problems[0].location == ("step", "a", "from")


def test_unknown_action(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "nope", text="x"))
    problems = check(b, wf)
    assert codes(problems) == [("unknown_action", "a", None)]
    assert "no version of this action" in problems[0].message


# ---- links and cycles --------------------------------------------------------------------------
def test_dangling_link(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a", "ghost"]), b.step("a", "uppercase", text="x"))
    problems = check(b, wf)
    assert codes(problems) == [("dangling_link", "api", None)]
    assert "unknown step 'ghost'" in problems[0].message


def test_self_link(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "uppercase", text="x", streams_to=["a"]))
    assert codes(check(b, wf)) == [("self_link", "a", None)]


def test_duplicate_link(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a", "a"]), b.step("a", "uppercase", text="x"))
    assert codes(check(b, wf)) == [("duplicate_link", "api", None)]


def test_cycle_names_its_steps_in_order(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a"]),
        b.step("a", "uppercase", text="x", streams_to=["b"]),
        b.step("b", "uppercase", text="x", streams_to=["c"]),
        b.step("c", "uppercase", text="x", streams_to=["a"]),
    )
    problems = check(b, wf)
    assert codes(problems) == [("cycle", "a", None)]
    assert "'a' -> 'b' -> 'c' -> 'a'" in problems[0].message


def test_two_separate_cycles_are_both_reported(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a", "c"]),
        b.step("a", "uppercase", text="x", streams_to=["b"]),
        b.step("b", "uppercase", text="x", streams_to=["a"]),
        b.step("c", "uppercase", text="x", streams_to=["d"]),
        b.step("d", "uppercase", text="x", streams_to=["c"]),
    )
    assert codes(check(b, wf)) == [("cycle", "a", None), ("cycle", "c", None)]


def test_a_long_chain_validates_quickly_without_recursion(b: Any) -> None:
    steps = [trigger(b, ["s0"])]
    for i in range(999):
        nxt = [f"s{i + 1}"] if i < 998 else []
        src = "@api.text" if i == 0 else f"@s{i - 1}.upper"
        steps.append(b.step(f"s{i}", "uppercase", streams_to=nxt, text=src))
    steps[0].outputs = (b.io("text"),)
    wf = b.workflow(*steps)
    start = time.perf_counter()
    assert check(b, wf) == []
    assert time.perf_counter() - start < 2.0


def test_a_long_cycle_is_found(b: Any) -> None:
    steps = [trigger(b, ["s0"])]
    for i in range(500):
        steps.append(b.step(f"s{i}", "uppercase", text="x", streams_to=[f"s{(i + 1) % 500}"]))
    assert codes(check(b, b.workflow(*steps))) == [("cycle", "s0", None)]


# ---- steps -------------------------------------------------------------------------------------
def test_duplicate_and_invalid_step_ids(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a"]), b.step("a", "uppercase", text="x"), b.step("a", "uppercase", text="y")
    )
    wf.steps.append(b.step("Bad_Id", "uppercase", text="x"))
    wf.steps[0].streams_to.append("Bad_Id")
    found = codes(check(b, wf))
    assert ("duplicate_step", "a", None) in found
    assert ("invalid_step_id", "Bad_Id", None) in found


def test_too_many_steps(b: Any) -> None:
    steps = [trigger(b, [f"s{i}" for i in range(1001)])]
    steps += [b.step(f"s{i}", "uppercase", text="x") for i in range(1001)]
    assert ("too_many_steps", None, None) in codes(check(b, b.workflow(*steps)))


# ---- inputs ------------------------------------------------------------------------------------
def test_missing_required_inputs(b: Any) -> None:
    wf = b.workflow(trigger(b, ["j"]), b.step("j", "concat", left="x"))
    problems = check(b, wf)
    assert codes(problems) == [("missing_input", "j", "right")]
    assert problems[0].message == (
        "step 'j', input 'right': required string input has no value: give it a value or a "
        "reference"
    )
    assert problems[0].location == ("step", "j", "inputs_values", "right")


def test_trigger_inputs_are_required_too(b: Any) -> None:
    api = b.step("api", "httpapijson", streams_to=[])
    found = codes(check(b, b.workflow(api)))
    assert found == [("missing_input", "api", "path"), ("missing_input", "api", "summary")]


def test_unknown_input_lists_the_declared_ones(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "uppercase", text="x", colour="red"))
    problems = check(b, wf)
    assert codes(problems) == [("unknown_input", "a", "colour")]
    assert "inputs: 'text'" in problems[0].message


@pytest.mark.parametrize(
    ("name", "value", "code", "fragment"),
    [
        ("s", 3, "invalid_value", "expects a string, got integer 3 (quote it"),
        ("s", True, "invalid_value", "expects a string, got boolean True"),
        ("ls", 1.5, "invalid_value", "expects a longstring"),
        ("i", "3", "invalid_value", "expects an integer, got string '3'"),
        ("i", True, "invalid_value", "expects an integer, got boolean"),
        ("i", 1.5, "invalid_value", "expects an integer, got float 1.5"),
        ("i", 2**63, "invalid_value", "64 bits"),
        ("f", "1.5", "invalid_value", "expects a float"),
        ("f", False, "invalid_value", "expects a float"),
        ("f", float("nan"), "invalid_value", "finite"),
        ("b", "true", "invalid_value", "expects a boolean, got string 'true'"),
        ("b", 1, "invalid_value", "expects a boolean"),
        ("e", "z", "enum_out_of_range", "'z' is not one of 'a', 'b'"),
        ("e", 1, "enum_out_of_range", "quote it"),
        ("p", "hunter2", "password_needs_secret", "project secret only"),
        ("file", "/etc/passwd", "invalid_value", "reference to an upstream file output"),
        ("dir", "/tmp", "invalid_value", "directory"),
        ("s", None, "invalid_value", "null is not a value"),
        ("s", [1, 2], "invalid_value", "expects a string, got list"),
    ],
)
def test_static_values_are_checked_against_the_input_type(
    b: Any, name: str, value: Any, code: str, fragment: str
) -> None:
    wf = typed(b, **{name: StaticValue(value=value)})
    problems = check(b, wf)
    assert codes(problems) == [(code, "t", name)]
    assert fragment in problems[0].message
    assert problems[0].message.startswith(f"step 't', input '{name}': ")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("s", "x"),
        ("ls", "long\ntext"),
        ("i", -(2**63)),
        ("f", 3),
        ("f", 2.5),
        ("b", False),
        ("e", "b"),
    ],
)
def test_good_static_values(b: Any, name: str, value: Any) -> None:
    assert check(b, typed(b, **{name: StaticValue(value=value)})) == []


def test_secrets(b: Any) -> None:
    ok = typed(b, p=SecretValue(name="db-password"), s=SecretValue(name="db-password"))
    assert check(b, ok, {"db-password"}) == []
    unknown = typed(b, p=SecretValue(name="nope"))
    problems = check(b, unknown, {"db-password"})
    assert codes(problems) == [("unknown_secret", "t", "p")]
    assert "no secret or variable named 'nope'" in problems[0].message
    wrong = typed(b, i=SecretValue(name="db-password"))
    assert codes(check(b, wrong, {"db-password"})) == [("secret_not_allowed", "t", "i")]


# ---- references --------------------------------------------------------------------------------
def test_reference_to_an_unknown_step(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "uppercase", text="@ghost.out"))
    problems = check(b, wf)
    assert codes(problems) == [("dangling_reference", "a", "text")]
    assert "no step 'ghost'" in problems[0].message


def test_reference_to_an_unknown_output(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a"], text=IOType.STRING), b.step("a", "uppercase", text="@api.txt")
    )
    problems = check(b, wf)
    assert codes(problems) == [("unknown_output", "a", "text")]
    assert "step 'api' has no output 'txt' (outputs: 'text')" in problems[0].message


def test_reference_to_a_step_that_is_not_upstream(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a", "b"]),
        b.step("a", "uppercase", text="x"),
        b.step("b", "uppercase", text="@a.upper"),
    )
    problems = check(b, wf)
    assert codes(problems) == [("reference_not_upstream", "b", "text")]
    assert "step 'a' is not upstream of 'b'" in problems[0].message


def test_reference_to_a_downstream_step(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a"]),
        b.step("a", "uppercase", text="@b.upper", streams_to=["b"]),
        b.step("b", "uppercase", text="x"),
    )
    assert codes(check(b, wf)) == [("reference_not_upstream", "a", "text")]


def test_reference_to_itself(b: Any) -> None:
    wf = b.workflow(trigger(b, ["a"]), b.step("a", "uppercase", text="@a.upper"))
    assert codes(check(b, wf)) == [("self_reference", "a", "text")]


@pytest.mark.parametrize(
    ("name", "source", "ok"),
    [
        ("s", "src.s", True),
        ("i", "src.i", True),
        ("f", "src.f", True),
        ("f", "src.i", False),  # the same type only
        ("s", "src.i", False),
        ("i", "src.s", False),
        ("file", "src.file", True),
        ("dir", "src.file", False),
        ("e", "src.e2", True),  # enum values included in the input's
        ("e", "src.e", False),  # 'c' is not accepted by the input
        ("s", "src.e", False),
    ],
)
def test_reference_types(b: Any, name: str, source: str, ok: bool) -> None:
    values = {"s": "x", name: f"@{source}"}
    wf = b.workflow(
        trigger(b, ["src"]),
        b.step("src", "typed", s="x", streams_to=["t"]),
        b.step("t", "typed", **values),
    )
    found = codes(check(b, wf))
    assert found == ([] if ok else [("type_mismatch", "t", name)])


def test_a_password_input_refuses_a_reference(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["src"]),
        b.step("src", "typed", s="x", streams_to=["t"]),
        b.step("t", "typed", s="x", p="@src.s"),
    )
    assert codes(check(b, wf)) == [("password_needs_secret", "t", "p")]


# ---- dynamic outputs ---------------------------------------------------------------------------
def test_outputs_only_on_an_action_with_dynamic_outputs(b: Any) -> None:
    wf = b.demo_workflow()
    wf.step("report").outputs = (b.io("extra"),)
    assert codes(check(b, wf)) == [("outputs_not_allowed", "report", None)]


def test_bad_dynamic_outputs(b: Any) -> None:
    wf = b.demo_workflow()
    wf.step("api").outputs = (
        b.io("text"),
        b.io("text"),
        b.io("pw", IOType.PASSWORD),
        b.io("e", IOType.ENUM),
    )
    found = codes(check(b, wf))
    assert found.count(("duplicate_output", "api", None)) == 1
    assert found.count(("invalid_output", "api", None)) == 2


# ---- results -----------------------------------------------------------------------------------
def test_results(b: Any) -> None:
    wf = b.demo_workflow()
    wf.results = [
        WorkflowResult(key="summary", step_id="join", output="text"),
        WorkflowResult(key="summary", step_id="count", output="total"),
        WorkflowResult(key="ghost", step_id="nope", output="x"),
        WorkflowResult(key="bad", step_id="count", output="nope"),
    ]
    problems = check(b, wf)
    assert [p.code for p in problems] == [
        "duplicate_result",
        "dangling_reference",
        "unknown_output",
    ]
    assert [p.location for p in problems] == [("result", 1), ("result", 2), ("result", 3)]


# ---- everything at once ------------------------------------------------------------------------
def test_every_problem_is_reported_at_once(b: Any) -> None:
    wf = b.workflow(
        trigger(b, ["a", "b", "ghost"], text=IOType.STRING),
        b.step("a", "concat", left=3, streams_to=["c"]),  # bad type, missing right
        b.step("b", "uppercase", text="@a.text", extra=1),  # not upstream, unknown input
        b.step("c", "nope"),  # unknown action
        b.step("d", "uppercase", text="@api.text"),  # not connected, not upstream
    )
    found = codes(check(b, wf))
    assert found == [
        ("unknown_action", "c", None),
        ("dangling_link", "api", None),
        ("not_connected", "d", None),
        ("invalid_value", "a", "left"),
        ("missing_input", "a", "right"),
        ("reference_not_upstream", "b", "text"),
        ("unknown_input", "b", "extra"),
        ("reference_not_upstream", "d", "text"),
    ]
