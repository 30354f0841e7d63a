"""The HTML of the form portal (`postgw`): the form, the sign-in page, a run's page and an
error page. Plain server-rendered HTML, usable without JavaScript: each control has its
label, its help and its error tied to it (`aria-describedby`), required fields are marked in
text and with `required`, errors are listed first with links to their fields. Every text that
comes from a workflow, a run or a request is escaped here (`_e`); nothing else is trusted.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...domain.forms import FORM_ERROR, required, widget
from ...domain.workflow import IO

#: Headers of every page: never cached (a form may show a submitted value), never framed, no
#: script nor anything fetched from elsewhere, no Referer to other sites. ("no-referrer" would
#: make browsers send `Origin: null` with the form's own POST, which the Origin check refuses.)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}

_STYLE = """
body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;color:#1b1b1b;background:#fafafa}
main{max-width:42rem;margin:2rem auto;padding:0 1rem}
.field{margin:1.25rem 0}
label{display:block;font-weight:600}
.help{margin:.1rem 0 .3rem;color:#4a4a4a}
.error{margin:.1rem 0 .3rem;color:#a4000f;font-weight:600}
.field.invalid input,.field.invalid select,.field.invalid textarea{border:2px solid #a4000f}
input,select,textarea{font:inherit;padding:.35rem;max-width:100%;box-sizing:border-box}
input[type=text],input[type=password],input[type=number],textarea,select{width:100%}
textarea{min-height:6rem}
button{font:inherit;padding:.45rem 1.2rem;cursor:pointer}
.summary{border:3px solid #a4000f;padding:.5rem 1rem;margin:1rem 0;background:#fff}
.summary a{color:#a4000f}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dt{font-weight:600}
dd{margin:0;white-space:pre-wrap;word-break:break-word}
.note{color:#4a4a4a}
:focus{outline:3px solid #ffbf47;outline-offset:1px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str, refresh_seconds: int = 0) -> str:
    """A whole page; `refresh_seconds` reloads it (a run that goes on), without script."""
    refresh = (
        f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">' if refresh_seconds else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{refresh}<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _label(io: IO) -> str:
    return io.human_name or io.name


def _id(io: IO) -> str:
    return f"field-{io.name}"


def _shown_value(io: IO, given: Mapping[str, str]) -> str:
    """What a control shows: the text submitted (a form shown again), else the default.
    A password is never written back into a page, nor is a file (a browser cannot)."""
    if io.type in ("password", "file"):
        return ""
    if io.name in given:
        return given[io.name]
    default = io.default()
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    return default if isinstance(default, str) else json.dumps(default)


def _control(io: IO, value: str, described_by: str, invalid: bool) -> str:
    kind = widget(io)
    attrs = f'id="{_e(_id(io))}" name="{_e(io.name)}"'
    if required(io):
        attrs += ' required aria-required="true"'
    if described_by:
        attrs += f' aria-describedby="{_e(described_by)}"'
    if invalid:
        attrs += ' aria-invalid="true"'
    if kind == "textarea":
        return f"<textarea {attrs}>{_e(value)}</textarea>"
    if kind == "select":
        if io.type == "boolean":
            choices = [("true", "Yes"), ("false", "No")]
        else:
            choices = [(v, v) for v in io.enum_values]
        options = []
        if io.default_json is None:  # nothing chosen yet: a blank choice, first
            blank = "Choose…" if required(io) else "(not set)"
            selected = " selected" if value == "" else ""
            options.append(f'<option value=""{selected}>{blank}</option>')
        for v, text in choices:
            selected = " selected" if v == value else ""
            options.append(f'<option value="{_e(v)}"{selected}>{_e(text)}</option>')
        return f"<select {attrs}>{''.join(options)}</select>"
    if kind == "number":
        step = "1" if io.type == "integer" else "any"
        return f'<input {attrs} type="number" step="{step}" value="{_e(value)}">'
    if kind == "file":
        return f'<input {attrs} type="file">'
    if kind == "password":
        return f'<input {attrs} type="password" value="" autocomplete="off">'
    return f'<input {attrs} type="text" value="{_e(value)}">'


@dataclass
class FormPage:
    """What a form page shows: the fields, and when shown again, what was sent and why not."""

    title: str
    description: str
    action: str
    logout_action: str
    fields: Sequence[IO]
    given: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)


def form_page(p: FormPage) -> str:
    parts = [f"<h1>{_e(p.title)}</h1>"]
    if p.description:
        parts.append(f'<p class="intro">{_e(p.description)}</p>')
    if p.errors:
        items = []
        by_name = {io.name: io for io in p.fields}
        if FORM_ERROR in p.errors:
            items.append(f"<li>{_e(p.errors[FORM_ERROR])}</li>")
        for io in p.fields:
            if io.name in p.errors:
                items.append(
                    f'<li><a href="#{_e(_id(io))}">{_e(_label(io))}: '
                    f"{_e(p.errors[io.name])}</a></li>"
                )
        for name, message in p.errors.items():
            if name != FORM_ERROR and name not in by_name:
                items.append(f"<li>{_e(name)}: {_e(message)}</li>")
        if any(io.type == "file" for io in p.fields):
            items.append("<li>Files are not kept: choose them again.</li>")
        parts.append(
            '<div class="summary" role="alert" aria-labelledby="problems" tabindex="-1">'
            f'<h2 id="problems">The form was not sent</h2><ul>{"".join(items)}</ul></div>'
        )
    has_file = any(io.type == "file" for io in p.fields)
    enctype = "multipart/form-data" if has_file else "application/x-www-form-urlencoded"
    parts.append(
        f'<form method="post" action="{_e(p.action)}" enctype="{enctype}" '
        'accept-charset="utf-8" novalidate>'
    )
    if any(required(io) for io in p.fields):
        parts.append('<p class="note">Fields marked (required) must be filled in.</p>')
    for io in p.fields:
        help_id = f"{_id(io)}-help" if io.help else ""
        error = p.errors.get(io.name)
        error_id = f"{_id(io)}-error" if error else ""
        mark = ' <span class="required">(required)</span>' if required(io) else ""
        parts.append(f'<div class="field{" invalid" if error else ""}">')
        parts.append(f'<label for="{_e(_id(io))}">{_e(_label(io))}{mark}</label>')
        if io.help:
            parts.append(f'<p class="help" id="{_e(help_id)}">{_e(io.help)}</p>')
        if error:
            parts.append(f'<p class="error" id="{_e(error_id)}">Error: {_e(error)}</p>')
        described = " ".join(x for x in (help_id, error_id) if x)
        parts.append(_control(io, _shown_value(io, p.given), described, bool(error)))
        parts.append("</div>")
    parts.append('<button type="submit">Submit</button></form>')
    parts.append(_logout(p.logout_action))
    return page(p.title, "".join(parts))


def _logout(action: str) -> str:
    return (
        f'<form method="post" action="{_e(action)}" class="note"><p>'
        '<button type="submit">Sign out</button></p></form>'
    )


def login_page(title: str, action: str, next_path: str, problem: str = "") -> str:
    """Asks for a project API key or a user's token; the key goes in a cookie of this
    project's user API (HttpOnly), never in a URL."""
    alert = f'<div class="summary" role="alert"><p>{_e(problem)}</p></div>' if problem else ""
    body = (
        f"<h1>{_e(title)}</h1>{alert}"
        "<p>This form needs a project API key (ryaxpk_...) or your access token.</p>"
        f'<form method="post" action="{_e(action)}" accept-charset="utf-8">'
        f'<input type="hidden" name="next" value="{_e(next_path)}">'
        '<div class="field"><label for="key">Project API key or access token</label>'
        '<input id="key" name="key" type="password" autocomplete="off" required '
        'aria-required="true"></div>'
        '<button type="submit">Sign in</button></form>'
    )
    return page(title, body)


@dataclass
class RunView:
    """A run as its page shows it."""

    run_id: str
    state: str
    #: The workflow's results as the API shows them (files: {"name", "download_url", ...}).
    results: Mapping[str, Any] | None = None
    error: str | None = None
    step_id: str | None = None


def run_page(
    title: str,
    run: RunView,
    run_link: str,
    form_link: str,
    result_link: str,
    logout_action: str = "",
) -> str:
    parts = [f"<h1>{_e(title)}</h1>"]
    ongoing = run.state not in ("completed", "failed", "cancelled")
    if run.state == "completed":
        parts.append('<p role="status">The form was sent and the run completed.</p>')
    elif run.state == "failed":
        where = f" (step {run.step_id})" if run.step_id else ""
        parts.append(
            f'<div class="summary" role="alert"><p>The run failed{_e(where)}: '
            f"{_e(run.error or 'no reason given')}</p></div>"
        )
    elif run.state == "cancelled":
        parts.append(
            f'<div class="summary" role="alert"><p>The run was cancelled: '
            f"{_e(run.error or 'no reason given')}</p></div>"
        )
    else:
        parts.append(
            '<p role="status">The form was sent; the run goes on. This page shows its result '
            f'when it ends (it reloads every few seconds): <a href="{_e(run_link)}">reload</a>.'
            "</p>"
        )
    parts.append(
        f"<dl><dt>Run</dt><dd>{_e(run.run_id)}</dd><dt>State</dt><dd>{_e(run.state)}</dd></dl>"
    )
    if run.results is not None and run.state == "completed":
        parts.append("<h2>Results</h2>")
        if run.results:
            rows = [f"<dt>{_e(k)}</dt><dd>{_result_value(v)}</dd>" for k, v in run.results.items()]
            parts.append(f"<dl>{''.join(rows)}</dl>")
        else:
            parts.append("<p>The workflow gives no results.</p>")
    parts.append(
        f'<p><a href="{_e(form_link)}">Fill in the form again</a> · '
        f'<a href="{_e(run_link)}">This run\'s page</a></p>'
        f'<p class="note">For programs: its result as JSON at <code>{_e(result_link)}</code>.</p>'
    )
    if logout_action:
        parts.append(_logout(logout_action))
    return page(title, "".join(parts), refresh_seconds=3 if ongoing else 0)


def _result_value(value: Any) -> str:
    if isinstance(value, dict) and "download_url" in value and "name" in value:
        size = value.get("size", 0)
        return (
            f'<a href="{_e(value["download_url"])}" download>{_e(value["name"])}</a> '
            f'<span class="note">({_e(size)} bytes)</span>'
        )
    if isinstance(value, str):
        return _e(value)
    return f"<code>{_e(json.dumps(value, ensure_ascii=False))}</code>"


def error_page(title: str, status: int, detail: str, back_link: str = "") -> str:
    back = f'<p><a href="{_e(back_link)}">Back to the form</a></p>' if back_link else ""
    body = (
        f'<h1>{_e(title)}</h1><div class="summary" role="alert"><p>{_e(detail)}</p>'
        f'<p class="note">HTTP {int(status)}</p></div>{back}'
    )
    return page(title, body)
