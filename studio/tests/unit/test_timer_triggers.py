"""The built-in timer triggers: offered in every store, their settings validated, frozen in the
snapshot as built-ins (the runner schedules them itself)."""

from __future__ import annotations

from typing import Any

import pytest

from ryax_studio.domain.actions import ActionRef, ActionVersion, ProjectId
from ryax_studio.domain.builtins import builtin_actions
from ryax_studio.domain.deployment import SnapshotId, take_snapshot
from ryax_studio.domain.errors import InvalidWorkflow
from ryax_studio.domain.schedules import cron_problem, timezone_problem
from ryax_studio.domain.validation import validate_workflow


def store(b: Any) -> dict[ActionRef, ActionVersion]:
    found = b.standard_store()
    for a in builtin_actions(ProjectId(b.PROJECT)):
        found[a.ref] = a
    return found


def every(b: Any, **values: Any) -> Any:
    return b.workflow(
        b.step("tick", "emitgw", version="1.2", streams_to=["shout"], **values),
        b.step("shout", "uppercase", text="@tick.scheduled_at"),
    )


def cron(b: Any, **values: Any) -> Any:
    return b.workflow(
        b.step("tick", "crongw", version="1.0", streams_to=["shout"], **values),
        b.step("shout", "uppercase", text="@tick.scheduled_at"),
    )


def problems(b: Any, wf: Any, minimum: int = 1) -> list[tuple[str, str | None, str]]:
    return [
        (p.code, p.input_name, p.message)
        for p in validate_workflow(wf, store(b), set(), min_interval_seconds=minimum)
    ]


def test_every_project_offers_the_timers_with_ryax_names(b: Any) -> None:
    found = {(a.action_id, a.version): a for a in builtin_actions(ProjectId("p"))}
    assert {("emitgw", "1.2"), ("crongw", "1.0"), ("runonce", "1.1")} <= set(found)
    assert [i.name for i in found[("emitgw", "1.2")].inputs] == ["time"]
    assert [i.name for i in found[("crongw", "1.0")].inputs] == ["cron", "timezone"]
    assert found[("runonce", "1.1")].inputs == ()
    for key in (("emitgw", "1.2"), ("crongw", "1.0"), ("runonce", "1.1")):
        assert found[key].builtin and found[key].type == "internal"
        assert [o.name for o in found[key].outputs] == ["scheduled_at", "late_seconds", "missed"]


def test_an_interval_workflow_is_valid_and_snapshots_as_a_builtin(b: Any) -> None:
    wf = every(b, time=5)
    assert problems(b, wf) == []
    snap = take_snapshot(wf, store(b), set(), SnapshotId("s1"), b.T0)
    assert snap.builtin_trigger == "emitgw" and not snap.http_endpoint
    assert dict(snap.steps[0].input_values)["time"].value == 5


def test_the_interval_is_required_and_bounded_below_by_the_setting(b: Any) -> None:
    assert [(c, i) for c, i, _ in problems(b, every(b))] == [("missing_input", "time")]
    found = problems(b, every(b, time=5), minimum=10)
    assert found == [
        (
            "interval_too_small",
            "time",
            "step 'tick', input 'time': 5 s; the interval must be at least 10 s",
        )
    ]
    assert [c for c, _, _ in problems(b, every(b, time=0))] == ["interval_too_small"]
    assert [c for c, _, _ in problems(b, every(b, time=10**12))] == ["interval_too_large"]
    assert [c for c, _, _ in problems(b, every(b, time="5"))] == ["invalid_value"]
    with pytest.raises(InvalidWorkflow):
        take_snapshot(every(b, time=0), store(b), set(), SnapshotId("s1"), b.T0)


def test_a_cron_workflow_takes_the_utc_default(b: Any) -> None:
    wf = cron(b, cron="*/15 6-18 * JAN-MAR mon-fri")
    assert problems(b, wf) == []
    snap = take_snapshot(wf, store(b), set(), SnapshotId("s1"), b.T0)
    values = dict(snap.steps[0].input_values)
    assert snap.builtin_trigger == "crongw"
    assert (values["cron"].value, values["timezone"].value) == (
        "*/15 6-18 * JAN-MAR mon-fri",
        "UTC",
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "4 fields; a cron expression has 5"),
        ("61 * * * *", "field 1 (minute) '61': 61 is out of range 0-59"),
        ("0 24 * * *", "field 2 (hour) '24': 24 is out of range 0-23"),
        ("0 0 0 * *", "field 3 (day of month) '0': 0 is out of range 1-31"),
        ("0 0 * FOO *", "field 4 (month) 'FOO': 'FOO' is not a number or a name (JAN,"),
        ("0 0 * * 1-8", "field 5 (day of week) '1-8': 8 is out of range 0-7"),
        ("*/0 * * * *", "field 1 (minute) '*/0': '*/0': the step must be at least 1"),
        ("5-1 * * * *", "field 1 (minute) '5-1': '5-1': the range ends before it starts"),
        ("0 0 ? * *", "field 3 (day of month) '?': '?' is not a value"),
    ],
)
def test_a_bad_cron_expression_names_its_field(b: Any, expression: str, message: str) -> None:
    found = cron_problem(expression)
    assert found is not None and found.startswith(message)
    codes = problems(b, cron(b, cron=expression))
    assert [(c, i) for c, i, _ in codes] == [("invalid_cron", "cron")]


@pytest.mark.parametrize(
    "expression", ["* * * * *", "0 0 1,15 * *", "0 */2 * * 0,7", "5 4 * * SUN", "0 0 1-7/2 * *"]
)
def test_good_cron_expressions(expression: str) -> None:
    assert cron_problem(expression) is None


def test_the_time_zone_must_exist(b: Any) -> None:
    assert timezone_problem("Europe/Paris") is None
    assert timezone_problem("Mars/Olympus") is not None
    found = problems(b, cron(b, cron="0 6 * * *", timezone="Mars/Olympus"))
    assert [(c, i) for c, i, _ in found] == [("invalid_timezone", "timezone")]
    assert "unknown time zone 'Mars/Olympus'" in found[0][2]
    assert problems(b, cron(b, cron="0 6 * * *", timezone="../../etc/passwd"))[0][0] == (
        "invalid_timezone"
    )


def test_run_once_needs_nothing(b: Any) -> None:
    wf = b.workflow(
        b.step("once", "runonce", version="1.1", streams_to=["shout"]),
        b.step("shout", "uppercase", text="@once.scheduled_at"),
    )
    assert problems(b, wf) == []
    assert take_snapshot(wf, store(b), set(), SnapshotId("s"), b.T0).builtin_trigger == "runonce"
