"""The form portal (`postgw`): its route on the user API (domain/user_api.py), how a submission
is read (domain/forms.py: every problem kept by field) and the pages (form_pages.py: labels,
help, errors tied to their control, required marks, selects, file inputs, everything escaped)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ryax_runner.domain.forms import FORM_ERROR, read_submission
from ryax_runner.domain.user_api import RouteRefused, RouteTable, conflict, route_of
from ryax_runner.domain.values import FileRef
from ryax_runner.domain.workflow import (
    IO,
    StaticInput,
    StepDefinition,
    TriggerDefinition,
    WorkflowDefinition,
)
from ryax_runner.infrastructure.api.form_pages import (
    FormPage,
    RunView,
    form_page,
    login_page,
    run_page,
)

TEXT = IO(name="text", type="string", human_name="Your text", help="What to shout.")
COUNT = IO(name="count", type="integer", default_json="3")
RATIO = IO(name="ratio", type="float", optional=True)
LOUD = IO(name="loud", type="boolean", default_json="true")
MODE = IO(name="mode", type="enum", enum_values=("fast", "slow"))
NOTES = IO(name="notes", type="longstring", optional=True)
DOC = IO(name="doc", type="file")
EXTRA = IO(name="extra", type="file", optional=True)
FIELDS = (TEXT, COUNT, RATIO, LOUD, MODE, NOTES, DOC, EXTRA)
LIMIT = 64 * 1024


def definition(fields: tuple[IO, ...] = FIELDS, **settings: Any) -> WorkflowDefinition:
    trigger = StepDefinition(
        step_id="ask",
        action_id="postgw",
        action_version="1.5",
        action_kind="trigger",
        outputs=fields,
        input_values=tuple((k, StaticInput(value=v)) for k, v in settings.items()),
    )
    work = StepDefinition(
        step_id="work", action_id="a", action_version="1", action_kind="processor"
    )
    return WorkflowDefinition(
        steps=(trigger, work),
        trigger=TriggerDefinition(
            step_id="ask", http_endpoint=False, fields=fields, builtin="postgw"
        ),
    )


# -- the route -------------------------------------------------------------------------------------


def test_a_form_route_answers_get_and_post_with_its_settings() -> None:
    r = route_of(definition(path="/feedback/", title="Tell us", description="Be kind"))
    assert r is not None and r.form
    assert (r.path, r.methods, r.timeout_seconds) == ("/feedback", ("GET", "POST"), 30)
    assert (r.summary, r.description, r.fields) == ("Tell us", "Be kind", FIELDS)
    assert route_of(definition(path="/f", timeout=0)).timeout_seconds == 0  # type: ignore[union-attr]
    table = RouteTable({"d1": r})
    for method in ("GET", "post"):
        found = table.match(method, "/feedback")
        assert not isinstance(found, list) and found is not None and found.route is r
    assert table.match("PUT", "/feedback") == ["GET", "POST"]


@pytest.mark.parametrize(
    ("settings", "fields", "where", "why"),
    [
        ({}, FIELDS, "path", "a form needs the path"),
        ({"path": "/items/{id}"}, FIELDS, "path", "a form's path has no {parameters}"),
        ({"path": "/_login"}, FIELDS, "path", "served by the user API itself"),
        ({"path": "/f", "timeout": -1}, FIELDS, "timeout", "0 or more"),
        (
            {"path": "/f"},
            (IO(name="q", type="string", origin="query"),),
            "output q",
            "every field of a form comes from the form",
        ),
        ({"path": "/f"}, (IO(name="d", type="directory"),), "output d", "a form cannot send it"),
    ],
)
def test_settings_a_form_cannot_be_served_with(
    settings: dict[str, Any], fields: tuple[IO, ...], where: str, why: str
) -> None:
    with pytest.raises(RouteRefused) as refused:
        route_of(definition(fields, **settings))
    assert refused.value.field == where and why in refused.value.detail


def test_a_form_conflicts_with_an_api_route_of_either_method() -> None:
    form = route_of(definition(path="/f"))
    assert form is not None
    api = route_of(
        WorkflowDefinition(
            steps=(
                StepDefinition(
                    step_id="api",
                    action_id="httpapijson",
                    action_version="1.0",
                    action_kind="trigger",
                    input_values=(
                        ("path", StaticInput(value="/f")),
                        ("method", StaticInput(value="GET")),
                    ),
                ),
            ),
            trigger=TriggerDefinition(step_id="api", http_endpoint=True),
        )
    )
    assert api is not None
    assert conflict(form, [("workflow api", api)]) == (
        "GET /f is already served by workflow api (/f)"
    )
    assert conflict(api, [("workflow form", form)]) == (
        "GET /f is already served by workflow form (the form /f)"
    )
    other = route_of(definition(path="/g"))
    assert other is not None and conflict(form, [("workflow g", other)]) is None


# -- reading a submission --------------------------------------------------------------------------

PDF = FileRef(key="runs/r/e/doc/a.pdf", name="a.pdf", size=3, sha256="x")


def submit(texts: dict[str, list[str]], files: dict[str, list[FileRef]] | None = None) -> Any:
    return read_submission(FIELDS, texts, files or {}, LIMIT)


def test_a_good_submission_gives_typed_values_and_defaults() -> None:
    sub = submit(
        {
            "text": ["hello <b>"],
            "count": [""],
            "ratio": ["0.5"],
            "loud": ["false"],
            "mode": ["slow"],
        },
        {"doc": [PDF]},
    )
    assert sub.ok, sub.errors
    assert sub.values == {
        "text": "hello <b>",
        "count": 3,
        "ratio": 0.5,
        "loud": False,
        "mode": "slow",
        "notes": None,
        "doc": PDF,
        "extra": None,
    }


def test_every_problem_is_kept_next_to_its_field() -> None:
    sub = submit(
        {
            "text": [""],
            "count": ["many"],
            "ratio": ["1", "2"],
            "loud": ["perhaps"],
            "mode": ["medium"],
            "doc": ["not a file"],
            "sneaky": ["x"],
        },
        {"notes": [PDF], "extra": [PDF, PDF]},
    )
    assert not sub.ok and sub.values == {}
    assert sub.errors == {
        FORM_ERROR: "not fields of this form: sneaky (its fields: text, count, ratio, loud, "
        "mode, notes, doc, extra)",
        "text": "required",
        "count": "expected an integer, got 'many'",
        "ratio": "given more than once",
        "loud": "expected true or false, got 'perhaps'",
        "mode": "expected one of fast, slow",
        "notes": "expects a longstring, not a file",
        "doc": "expects a file: choose one (the form is sent as multipart/form-data)",
        "extra": "one file only",
    }
    missing = submit({"text": ["t"], "mode": ["fast"]})
    assert missing.errors == {"doc": "required: choose a file"}


def test_an_inline_value_over_the_limit_is_an_error_of_its_field() -> None:
    sub = read_submission((TEXT,), {"text": ["x" * 100]}, {}, 50)
    assert list(sub.errors) == ["text"] and "inline limit: send it as a file" in sub.errors["text"]


# -- the pages -------------------------------------------------------------------------------------

EVIL = '"><script>alert(1)</script>'


def test_the_form_page_is_labelled_and_escapes_everything() -> None:
    fields = (
        IO(name="text", type="string", human_name=EVIL, help=EVIL),
        *FIELDS[1:],
    )
    html = form_page(
        FormPage(
            title=EVIL,
            description=EVIL,
            action="/user-api/alpha/f",
            logout_action="/user-api/alpha/_logout",
            fields=fields,
            given={"text": EVIL},
        )
    )
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'enctype="multipart/form-data"' in html and 'action="/user-api/alpha/f"' in html
    for io in fields:  # every control has its label
        assert f'<label for="field-{io.name}">' in html
        assert f'id="field-{io.name}" name="{io.name}"' in html
    assert re.search(
        r'id="field-text" name="text" required aria-required="true" '
        r'aria-describedby="field-text-help"',
        html,
    )
    assert 'type="file"' in html and 'type="number" step="1" value="3"' in html
    assert 'type="number" step="any" value=""' in html  # the optional float
    assert '<textarea id="field-notes" name="notes"' in html
    # A boolean is a Yes/No choice with its default chosen; an enum lists its values, with a
    # blank first choice when it has no default.
    assert '<option value="true" selected>Yes</option><option value="false">No</option>' in html
    assert (
        '<option value="" selected>Choose…</option><option value="fast">fast</option>'
        '<option value="slow">slow</option>'
    ) in html
    assert "(required)" in html and "<script" not in html.split("<style>")[0]
    assert "<script" not in html


def test_a_form_shown_again_puts_each_error_next_to_its_field_and_lists_them() -> None:
    html = form_page(
        FormPage(
            title="T",
            description="",
            action="/f",
            logout_action="/o",
            fields=FIELDS,
            given={"count": "many", "mode": "slow"},
            errors={"count": "expected an integer, got 'many'", FORM_ERROR: "not fields: x"},
        )
    )
    assert 'role="alert"' in html and '<a href="#field-count">Count' not in html
    assert '<a href="#field-count">count: expected an integer, got &#x27;many&#x27;</a>' in html
    assert "not fields: x" in html and "Files are not kept: choose them again." in html
    assert '<p class="error" id="field-count-error">Error: expected an integer' in html
    assert (
        'id="field-count" name="count" aria-describedby="field-count-error" aria-invalid="true" '
        'type="number" step="1" value="many"'
    ) in html
    assert '<option value="slow" selected>slow</option>' in html


def test_the_login_and_run_pages_escape_and_hold_no_key() -> None:
    html = login_page("Sign in", "/user-api/alpha/_login", EVIL, "bad")
    assert "<script>" not in html and 'type="password"' in html and 'name="key"' in html
    done = run_page(
        "T",
        RunView(
            run_id="r1",
            state="completed",
            results={
                "summary": EVIL,
                "count": 7,
                "report": {"name": EVIL, "size": 3, "download_url": "/f?run=r1&file=k"},
            },
        ),
        "/f?run=r1",
        "/f",
        "/runner/v1/projects/alpha/results/r1",
    )
    assert "<script>" not in done and "<code>7</code>" in done
    assert '<a href="/f?run=r1&amp;file=k" download>' in done and 'http-equiv="refresh"' not in done
    going = run_page("T", RunView(run_id="r2", state="running"), "/f?run=r2", "/f", "/r")
    assert 'http-equiv="refresh"' in going and "the run goes on" in going
    failed = run_page(
        "T", RunView(run_id="r3", state="failed", error=EVIL, step_id="work"), "/a", "/f", "/r"
    )
    assert "The run failed (step work): &quot;&gt;&lt;script&gt;" in failed
