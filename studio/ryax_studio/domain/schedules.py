"""The built-in timer triggers the runner runs itself, and the checks of their settings.

Names and versions follow published Ryax's default actions ("Emit Every" `emitgw` 1.2, "Cron
source" `crongw` 1.0, "Run once" `runonce` 1.1). Their settings are checked when a workflow is
validated: the interval is an integer number of seconds not below the platform's minimum, the
cron expression is standard five-field cron (each bad field named), the time zone is an IANA
name this machine knows.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping

from .actions import IO, ActionKind, ActionVersion, IOType, JsonValue, ProjectId

EVERY_ID, EVERY_VERSION = "emitgw", "1.2"
CRON_ID, CRON_VERSION = "crongw", "1.0"
ONCE_ID, ONCE_VERSION = "runonce", "1.1"
TIMER_IDS = frozenset({EVERY_ID, CRON_ID, ONCE_ID})

#: The smallest interval of `emitgw` when the platform sets none (RYAX_STUDIO_MIN_TIMER_INTERVAL).
DEFAULT_MIN_INTERVAL_SECONDS = 1
#: The largest interval of `emitgw` (ten years; the runner checks the same bound).
MAX_INTERVAL_SECONDS = 10 * 365 * 24 * 3600

#: What a timer's run starts with (its trigger outputs), the same for the three.
TIMER_OUTPUTS = (
    IO(
        name="scheduled_at",
        type=IOType.STRING,
        human_name="Scheduled time",
        help="When this run was due (ISO 8601, with the offset of the trigger's time zone).",
    ),
    IO(
        name="late_seconds",
        type=IOType.FLOAT,
        human_name="Lateness (seconds)",
        help="How long after its due time the run was started: more than a few seconds when "
        "the runner was down at that time (the missed fire is made once, on restart).",
    ),
    IO(
        name="missed",
        type=IOType.INTEGER,
        human_name="Missed fires",
        help="Due times that passed while the runner was down and were folded into this run "
        "(0 when the run started on time).",
    ),
)


def _timer(
    project_id: ProjectId,
    action_id: str,
    version: str,
    human_name: str,
    description: str,
    inputs: tuple[IO, ...],
) -> ActionVersion:
    return ActionVersion(
        project_id=project_id,
        action_id=action_id,
        version=version,
        kind=ActionKind.TRIGGER,
        human_name=human_name,
        description=description,
        type="internal",
        categories=("Trigger", "Timer"),
        inputs=inputs,
        outputs=TIMER_OUTPUTS,
        builtin=True,
    )


def timer_triggers(project_id: ProjectId) -> list[ActionVersion]:
    """The timer triggers every project has: the runner schedules them, nothing to build."""
    return [
        _timer(
            project_id,
            EVERY_ID,
            EVERY_VERSION,
            "Emit Every",
            "Create a new run at a given rate: every `time` seconds from the deployment.",
            (
                IO(
                    name="time",
                    type=IOType.INTEGER,
                    human_name="Time between runs (seconds)",
                    help="A run every this many seconds; the first one this long after the "
                    "deployment.",
                ),
            ),
        ),
        _timer(
            project_id,
            CRON_ID,
            CRON_VERSION,
            "Cron source",
            "Trigger a new run with regards to the cron expression provided, in a time zone.",
            (
                IO(
                    name="cron",
                    type=IOType.STRING,
                    human_name="Cron expression",
                    help="Five fields: minute hour day-of-month month day-of-week, e.g. "
                    "'30 6 * * MON-FRI' (numbers, names, *, ranges a-b, steps /n, lists).",
                ),
                IO(
                    name="timezone",
                    type=IOType.STRING,
                    human_name="Time zone",
                    help="The IANA time zone the expression is read in, e.g. Europe/Paris.",
                    has_default=True,
                    default="UTC",
                ),
            ),
        ),
        _timer(
            project_id,
            ONCE_ID,
            ONCE_VERSION,
            "Run once",
            "Launches a single run of the workflow once it is deployed.",
            (),
        ),
    ]


# ---- cron ---------------------------------------------------------------------------------------
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (name, low, high, names: name -> number)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)
_ITEM_RE = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>[0-9]+))?$")


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise ValueError(f"{text!r} is not a number{known}")
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range {low}-{high}")
    return number


def _check_field(text: str, low: int, high: int, names: dict[str, int]) -> None:
    for item in text.split(","):
        found = _ITEM_RE.match(item)
        if found is None:
            raise ValueError(f"{item!r} is not a value, a range a-b, * or one of those with /step")
        if found["step"] is not None and int(found["step"]) == 0:
            raise ValueError(f"{item!r}: the step must be at least 1")
        if found["range"] == "*":
            continue
        first, _, last = found["range"].partition("-")
        start = _value(first, low, high, names)
        if last:
            end = _value(last, low, high, names)
            if end < start:
                raise ValueError(f"{item!r}: the range ends before it starts")


def cron_problem(expression: str) -> str | None:
    """What is wrong with a five-field cron expression, naming the field; None when valid."""
    fields = expression.split()
    if len(fields) != len(_FIELDS):
        return (
            f"{len(fields)} fields; a cron expression has 5: minute hour day-of-month month "
            "day-of-week (e.g. '*/15 * * * *')"
        )
    for position, (text, (name, low, high, names)) in enumerate(zip(fields, _FIELDS, strict=True)):
        try:
            _check_field(text, low, high, names)
        except ValueError as exc:
            return f"field {position + 1} ({name}) {text!r}: {exc}"
    return None


def timezone_problem(name: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r} (an IANA name such as UTC or Europe/Paris)"
    return None


def timer_problems(
    action_id: str, values: Mapping[str, JsonValue], min_interval_seconds: int
) -> list[tuple[str, str, str]]:
    """(input, code, message) for each bad static setting of a timer trigger; values given
    by reference or secret are not checked here (the runner checks them at deploy)."""
    problems: list[tuple[str, str, str]] = []
    if action_id == EVERY_ID:
        interval = values.get("time")
        is_int = isinstance(interval, int) and not isinstance(interval, bool)
        if is_int and interval < min_interval_seconds:  # type: ignore[operator]
            problems.append(
                (
                    "time",
                    "interval_too_small",
                    f"{interval} s; the interval must be at least {min_interval_seconds} s",
                )
            )
        if is_int and interval > MAX_INTERVAL_SECONDS:  # type: ignore[operator]
            problems.append(
                (
                    "time",
                    "interval_too_large",
                    f"{interval} s; the interval must be at most {MAX_INTERVAL_SECONDS} s "
                    "(10 years)",
                )
            )
    elif action_id == CRON_ID:
        expression = values.get("cron")
        if isinstance(expression, str):
            found = cron_problem(expression)
            if found is not None:
                problems.append(("cron", "invalid_cron", found))
        zone = values.get("timezone", "UTC")
        if isinstance(zone, str):
            found = timezone_problem(zone)
            if found is not None:
                problems.append(("timezone", "invalid_timezone", found))
    return problems
