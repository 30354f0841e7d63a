"""The published workflow YAML: line-numbered problems, exact round trips, and how a document
the safe YAML loader refuses becomes InvalidDocument."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryax_studio.domain.actions import IO, ActionRef, IOType, Origin, ProjectId, Resources
from ryax_studio.domain.errors import InvalidDocument
from ryax_studio.domain.hpc import HPC_KEYS
from ryax_studio.domain.workflow import (
    Position,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    Workflow,
    WorkflowId,
    WorkflowResult,
)
from ryax_studio.infrastructure.yaml_format import parse_workflow, render_workflow

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
HEAD = 'apiVersion: "ryax.tech/v2.0"\nkind: Workflows\nspec:\n  human_name: w\n  functions:\n'


def as_workflow(parsed: Any, name: str | None = None) -> Workflow:
    return Workflow(
        id=WorkflowId("w"),
        project_id=ProjectId("p"),
        name=name or parsed.name,
        description=parsed.description,
        steps=parsed.steps,
        results=parsed.results,
        created_at=T0,
        updated_at=T0,
    )


def refused(data: bytes | str) -> InvalidDocument:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(InvalidDocument) as error:
        parse_workflow(raw)
    return error.value


def messages(text: str) -> list[tuple[int | None, str]]:
    return [(p.line, p.message) for p in parse_workflow(text.encode()).problems]


# ---- the examples ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_read_without_problems_and_round_trip(path: Path) -> None:
    parsed = parse_workflow(path.read_bytes())
    assert parsed.problems == []
    text = render_workflow(as_workflow(parsed))
    again = parse_workflow(text.encode())
    assert again.problems == []
    assert as_workflow(again).definition_equals(as_workflow(parsed))
    assert render_workflow(as_workflow(again)) == text


def test_the_demo_example_in_detail() -> None:
    parsed = parse_workflow((EXAMPLES / "demo.yaml").read_bytes())
    api = parsed.steps[0]
    assert (api.id, api.action) == ("api", ActionRef(action_id="httpapijson", version="1.0"))
    assert api.position == Position(x=0, y=0)
    assert api.inputs["timeout"] == StaticValue(value=30)
    assert api.inputs["success_code"] == StaticValue(value="200")
    assert api.outputs[0].origin is Origin.BODY
    assert parsed.steps[2].streams_to == ["shout", "slug"]
    assert parsed.steps[1].inputs["text"] == ReferenceValue(step_id="api", output="text")
    assert parsed.results[1] == WorkflowResult(key="words", step_id="count", output="total")
    lines = (EXAMPLES / "demo.yaml").read_text().splitlines()
    document_line = lines.index("      document:", lines.index("  - id: count")) + 1
    assert parsed.lines[("step", "count", "inputs_values", "document")][0] == document_line


def test_export_looks_like_the_documentation() -> None:
    parsed = parse_workflow((EXAMPLES / "timer-to-log.yaml").read_bytes())
    text = render_workflow(as_workflow(parsed))
    assert text.startswith('apiVersion: "ryax.tech/v2.0"\nkind: Workflows\nspec:\n')
    assert '  - id: tick\n    from: timer\n    version: "1.0"\n' in text
    assert "    streams_to: []\n" in text
    assert "      text:\n        reference_value: tick.time\n" in text


def test_export_names_what_the_format_cannot_hold() -> None:
    parsed = parse_workflow((EXAMPLES / "timer-to-log.yaml").read_bytes())
    wf = as_workflow(parsed)
    wf.steps[1].settings = StepSettings(retries=3)
    wf.steps[2].human_name = "Log it"
    text = render_workflow(wf)
    assert text.startswith("# Not in the published workflow format, so not exported:\n")
    assert "#   step log: human name" in text and "step shout" not in text.split("apiVersion")[0]
    back = parse_workflow(text.encode())
    assert back.problems == [] and back.steps[1].settings == StepSettings(retries=3)


# ---- refusing broken documents (the YAML rules themselves: kit/tests/unit/test_safe_yaml.py) ----
def test_syntax_errors_name_the_line() -> None:
    error = refused(HEAD + "  - id: [unclosed\n")
    assert error.code == "invalid_yaml"
    assert error.problems[0].line == 7
    assert "YAML syntax error" in error.problems[0].message


def test_duplicate_keys_are_refused() -> None:
    error = refused(HEAD + "  - id: a\n    id: b\n")
    assert error.code == "invalid_document"
    assert error.problems[0].line == 7
    assert error.problems[0].path == "spec.functions[0].id"
    assert "duplicate key 'id' (first given on line 6)" in error.problems[0].message


def test_not_utf8_and_too_large() -> None:
    assert "UTF-8" in refused(b"a: 1\nb: \xff\xfe\n").problems[0].message
    big = refused(b"a: " + b"x" * (1024 * 1024) + b"\n")
    assert big.code == "too_large"  # answered 413
    assert "1 MiB" in big.problems[0].message


def test_deep_nesting_is_refused() -> None:
    error = refused("a: " + "[" * 100 + "]" * 100 + "\n")
    assert "nested more than 32 levels deep" in error.problems[0].message


def test_one_value_may_be_as_large_as_the_document_allows() -> None:
    text = HEAD + '  - id: a\n    from: b\n    version: "1"\n    inputs_values:\n      v: '
    parsed = parse_workflow((text + "x" * 512 * 1024 + "\n").encode())
    assert parsed.steps[0].inputs["v"] == StaticValue(value="x" * 512 * 1024)


def test_ten_thousand_steps_are_refused_quickly() -> None:
    doc = HEAD + "".join(f'  - {{id: s{i}, from: a, version: "1"}}\n' for i in range(10_000))
    start = time.perf_counter()
    error = refused(doc)
    assert time.perf_counter() - start < 1.0
    assert error.code == "too_many_steps"
    assert error.problems[0].line == 1006
    assert error.problems[0].message == (
        "spec.functions: more than 1000 steps: a workflow has at most 1000"
    )


def test_a_thousand_steps_are_read() -> None:
    doc = HEAD + "".join(f'  - {{id: s{i}, from: a, version: "1"}}\n' for i in range(1000))
    assert len(parse_workflow(doc.encode()).steps) == 1000


# ---- format problems, all at once, with their lines --------------------------------------------
def test_unknown_fields_at_every_level_are_named() -> None:
    text = (
        'apiVersion: "ryax.tech/v2.0"\nkind: Workflows\nmetadata: {}\nspec:\n'
        "  human_name: w\n  owner: me\n  functions:\n"
        '  - id: a\n    from: b\n    version: "1"\n    constraints: {site: x}\n'
        "    outputs:\n    - {name: o, human_name: O, help: h, type: string, default_value: 1}\n"
        "  results:\n  - {key: k, reference_value: a.o, extra: 1}\n"
    )
    found = messages(text)
    assert [line for line, _ in found] == [3, 6, 11, 13, 15]
    assert "unknown field 'metadata' (allowed: apiVersion, kind, spec)" in found[0][1]
    assert "spec: unknown field 'owner'" in found[1][1]
    assert "spec.functions[0]: unknown field 'constraints'" in found[2][1]
    assert "spec.functions[0] (a).outputs[0]: unknown field 'default_value'" in found[3][1]
    assert "spec.results[0]: unknown field 'extra'" in found[4][1]


def test_required_fields_and_wrong_types() -> None:
    text = (
        'apiVersion: "ryax.tech/v1"\nkind: Workflow\nspec:\n  functions:\n'
        "  - id: a\n    version: 1.0\n    position: {x: left, y: 1}\n"
        "    inputs_values: [1]\n    streams_to: b\n"
        "  - 3\n"
    )
    found = messages(text)
    assert found == [
        (1, "apiVersion: must be 'ryax.tech/v2.0'"),
        (2, "kind: must be 'Workflows'"),
        (4, "spec: the field 'human_name' is required"),
        (5, "spec.functions[0]: the field 'from' is required"),
        (6, "spec.functions[0].version: expected a string, got a float (quote it)"),
        (7, "spec.functions[0] (a).position.x: expected a number, got a string"),
        (
            8,
            "spec.functions[0] (a).inputs_values: expected a mapping of input names to values, "
            "got a list",
        ),
        (9, "spec.functions[0] (a).streams_to: expected a list, got a string"),
        (10, "spec.functions[1]: expected a mapping, got an integer"),
    ]


def test_input_value_forms() -> None:
    text = HEAD + (
        '  - id: a\n    from: b\n    version: "1"\n    inputs_values:\n'
        "      ok: 3\n"
        "      ref: {reference_value: x.y}\n"
        "      var: {project_variable_value: token}\n"
        "      bad_ref: {reference_value: nodot}\n"
        "      two: {reference_value: x.y, project_variable_value: z}\n"
        "      other: {static_value: 1}\n"
        "      nothing: null\n"
        "      alist: [1]\n"
    )
    parsed = parse_workflow(text.encode())
    assert parsed.steps[0].inputs == {
        "ok": StaticValue(value=3),
        "ref": ReferenceValue(step_id="x", output="y"),
        "var": SecretValue(name="token"),
    }
    assert [p.line for p in parsed.problems] == [13, 14, 15, 16, 17]


def test_duplicate_step_ids_name_both_lines() -> None:
    text = HEAD + '  - {id: a, from: b, version: "1"}\n  - {id: a, from: c, version: "1"}\n'
    parsed = parse_workflow(text.encode())
    assert [s.action.action_id for s in parsed.steps] == ["b"]
    assert parsed.problems[0].line == 7
    assert "already used by the step at line 6" in parsed.problems[0].message


def test_outputs_fields() -> None:
    text = HEAD + (
        '  - id: a\n    from: b\n    version: "1"\n    outputs:\n'
        "    - {name: o, human_name: O, help: h, type: blob}\n"
        "    - {name: p, human_name: P, help: h, type: string, origin: cookie}\n"
        "    - {name: q, human_name: Q, help: h, type: string, enum_values: [a]}\n"
        "    - {name: r, human_name: R, help: h, type: enum, enum_values: [a, b], optional: yes}\n"
    )
    parsed = parse_workflow(text.encode())
    assert [p.line for p in parsed.problems] == [10, 11, 12]
    assert "unknown type 'blob'" in parsed.problems[0].message
    assert "'cookie' is not one of body, path, query, header" in parsed.problems[1].message
    assert parsed.steps[0].outputs[-1] == IO(
        name="r", type=IOType.ENUM, human_name="R", help="h", optional=True, enum_values=("a", "b")
    )


def test_each_origin_of_a_trigger_field_is_read_and_kept() -> None:
    text = HEAD + (
        '  - id: a\n    from: b\n    version: "1"\n    outputs:\n'
        + "".join(
            f"    - {{name: f{i}, human_name: F, help: h, type: string, origin: {o}}}\n"
            for i, o in enumerate(("body", "path", "QUERY", "header"))
        )
    )
    parsed = parse_workflow(text.encode())
    assert parsed.problems == []
    origins = [o.origin for o in parsed.steps[0].outputs]
    assert origins == [Origin.BODY, Origin.PATH, Origin.QUERY, Origin.HEADER]
    again = parse_workflow(render_workflow(as_workflow(parsed)).encode())
    assert [o.origin for o in again.steps[0].outputs] == origins


def test_yaml_11_scalars_are_read_as_published_ryax_reads_them() -> None:
    text = HEAD + (
        '  - id: a\n    from: b\n    version: "1"\n    inputs_values:\n'
        "      y: yes\n      n: ~\n      h: 0x10\n      d: 2024-01-01\n      f: 1.0e+3\n"
    )
    parsed = parse_workflow(text.encode())
    values = parsed.steps[0].inputs
    assert values["y"] == StaticValue(value=True)
    assert values["h"] == StaticValue(value=16)
    assert values["d"] == StaticValue(value="2024-01-01")
    assert values["f"] == StaticValue(value=1000.0)
    assert "null is not a value" in parsed.problems[0].message
    assert "finite" in refused(HEAD + "  - {id: a, x: .inf}\n").problems[0].message


# ---- the round trip, property-tested -----------------------------------------------------------
ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,20}\Z")
names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z")
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
scalars = st.one_of(
    text,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
numbers = st.one_of(st.integers(-10_000, 10_000), st.floats(-1e6, 1e6, allow_nan=False))
values = st.one_of(
    scalars.map(lambda v: StaticValue(value=v)),
    st.builds(ReferenceValue, step_id=ids, output=names),
    st.builds(SecretValue, name=names),
)
outputs = st.builds(
    IO,
    name=names,
    type=st.sampled_from([t for t in IOType if t is not IOType.ENUM]),
    human_name=text,
    help=text,
    optional=st.booleans(),
    origin=st.one_of(st.none(), st.sampled_from(list(Origin))),
)


hpc_values = {
    "partition": st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,10}\Z"),
    "nodes": st.one_of(
        st.integers(1, 64).map(str),
        st.tuples(st.integers(1, 4), st.integers(4, 8)).map(lambda t: f"{t[0]}-{t[1]}"),
    ),
    "ntasks": st.integers(1, 999).map(str),
    "cpus_per_task": st.integers(1, 64).map(str),
    "mem": st.sampled_from(["512M", "4G", "1000", "2.5G"]),
    "time": st.sampled_from(["30", "1:30:00", "2-00:00:00", "90m", "2h"]),
    "gpus": st.integers(1, 8).map(str),
    "gres": st.sampled_from(["gpu:a100:2", "gpu:1"]),
    "exclusive": st.sampled_from(["true", "false"]),
    "custom_script": st.lists(
        st.text(st.sampled_from("ab $=\"'#:-{}[]"), max_size=12), min_size=1, max_size=4
    )
    .map("\n".join)
    .filter(lambda s: s.strip() != ""),
}


@st.composite
def step_settings(draw: st.DrawFn) -> StepSettings:
    keys = draw(st.lists(st.sampled_from(sorted(hpc_values)), max_size=5, unique=True))
    hpc = {k: draw(hpc_values[k]) for k in keys}
    maybe = st.one_of
    return StepSettings(
        timeout_seconds=draw(maybe(st.none(), st.sampled_from([0.5, 1.0, 90.0, 3600.0, 7.25]))),
        retries=draw(maybe(st.none(), st.integers(0, 100))),
        site_name=draw(maybe(st.none(), names)),
        node_pool=draw(maybe(st.none(), names)),
        labels=tuple(draw(st.dictionaries(names, text, max_size=2)).items()),
        resources=draw(
            maybe(
                st.none(),
                st.builds(
                    Resources,
                    cpu=maybe(st.none(), st.sampled_from([0.0, 0.5, 2.0, 64.0])),
                    memory_bytes=maybe(st.none(), st.sampled_from([0, 1000, 2**20, 3 * 2**30])),
                    time_seconds=maybe(st.none(), st.sampled_from([0.0, 1.5, 60.0, 86400.0])),
                    gpu=maybe(st.none(), st.integers(0, 8)),
                ).filter(lambda r: not r.is_empty()),
            )
        ),
        hpc=tuple((k, hpc[k]) for k in HPC_KEYS if k in hpc),
    )


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    step_ids = draw(st.lists(ids, min_size=1, max_size=8, unique=True))
    steps = []
    for sid in step_ids:
        steps.append(
            Step(
                id=sid,
                action=ActionRef(
                    action_id=draw(ids), version=draw(st.one_of(text.filter(bool), st.just("1.0")))
                ),
                position=draw(st.one_of(st.none(), st.builds(Position, x=numbers, y=numbers))),
                inputs=draw(st.dictionaries(names, values, max_size=5)),
                outputs=tuple(draw(st.lists(outputs, max_size=3, unique_by=lambda o: o.name))),
                streams_to=draw(st.lists(st.sampled_from(step_ids), max_size=3, unique=True)),
                settings=draw(st.one_of(st.just(StepSettings()), step_settings())),
            )
        )
    results = draw(
        st.lists(st.builds(WorkflowResult, key=names, step_id=ids, output=names), max_size=3)
    )
    return Workflow(
        id=WorkflowId("w"),
        project_id=ProjectId("p"),
        name=draw(text.filter(lambda s: s.strip() != "")),
        description=draw(text),
        steps=steps,
        results=results,
        created_at=T0,
        updated_at=T0,
    )


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(workflows())
def test_export_then_import_gives_back_the_same_workflow(wf: Workflow) -> None:
    text_out = render_workflow(wf)
    parsed = parse_workflow(text_out.encode())
    assert parsed.problems == []
    back = as_workflow(parsed)
    assert back.definition_equals(wf)
    assert render_workflow(back) == text_out


def test_static_files_are_paths_in_the_zip() -> None:
    text = HEAD + (
        '  - id: a\n    from: b\n    version: "1"\n    inputs_values:\n'
        "      doc: {static_file: files/a/doc/words.txt}\n"
        "      data: {static_directory: files/a/data/set/}\n"
        "      up: {static_file: ../../etc/passwd}\n"
        "      abs: {static_file: /etc/passwd}\n"
        "      num: {static_file: 3}\n"
    )
    parsed = parse_workflow(text.encode())
    inputs = parsed.steps[0].inputs
    assert set(inputs) == {"doc", "data"}
    assert {k: (v.path, v.directory, v.line) for k, v in parsed.files.items()} == {
        ("a", "doc"): ("files/a/doc/words.txt", False, 10),
        ("a", "data"): ("files/a/data/set/", True, 11),
    }
    assert [(p.line, p.path) for p in parsed.problems] == [
        (12, "spec.functions[0] (a).inputs_values.up.static_file"),
        (13, "spec.functions[0] (a).inputs_values.abs.static_file"),
        (14, "spec.functions[0] (a).inputs_values.num.static_file"),
    ]
    assert "it would escape the archive" in parsed.problems[0].message
    assert "absolute" in parsed.problems[1].message
