"""The form portal: the built-in `postgw` trigger ("HTTP POST" in published Ryax), a page with
a form of the workflow's fields served on the user API, whose submission starts a run.

Pure rules, no I/O: how each field is shown (`widget`) and how a submission is read
(`read_submission`): every field is checked and every problem is kept, by field, so the form
can be shown again with each error next to its field. The route of a form (its path, title,
timeout) is `user_api.route_of`; the HTTP adapter is `infrastructure/api/forms.py`.

Reading a submission (a browser sends every field as text, and an empty input as ""):
- an empty text is "not given": the field takes its default, an optional one none, else the
  error is "required";
- text is parsed by the field's type (as the user API reads a query parameter); a boolean is
  a choice of Yes/No (a checkbox could not tell "no" from "not given");
- a file field takes one uploaded file (a browser sends an empty part for no file: not given);
- a field given twice, a file for a text field, text for a file field or a name that is no
  field of the form are errors too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import InvalidInput
from .values import FILE_TYPES, FileRef, Value, check_inline_size, parse_text
from .workflow import IO

#: The built-in trigger's id and version (published Ryax: "HTTP POST" 1.5, logo postgw.png).
FORM_TRIGGER = "postgw"
FORM_VERSION = "1.5"
#: Seconds the submitter waits for the run's results when the trigger sets no `timeout`.
DEFAULT_FORM_TIMEOUT_SECONDS = 30
#: Field types a form can carry: a browser cannot send a directory as one value.
FORM_TYPES = frozenset(
    {"string", "longstring", "password", "integer", "float", "boolean", "enum", "file"}
)
#: Where a form-level problem (not about one field) is kept in `Submission.errors`.
FORM_ERROR = ""


def widget(io: IO) -> str:
    """The HTML control of a field: input types, `textarea` or `select`."""
    return {
        "longstring": "textarea",
        "password": "password",
        "integer": "number",
        "float": "number",
        "boolean": "select",
        "enum": "select",
        "file": "file",
    }.get(io.type, "text")


def required(io: IO) -> bool:
    """The submitter must give it: not optional, no default."""
    return not io.optional and io.default_json is None


def form_type_problem(io: IO) -> str | None:
    """Why a field cannot be on a form, or None."""
    if io.origin and io.origin != "body":
        return f"origin {io.origin!r}: every field of a form comes from the form (origin body)"
    if io.type not in FORM_TYPES:
        return f"type {io.type}: a form cannot send it (types: {', '.join(sorted(FORM_TYPES))})"
    return None


@dataclass
class Submission:
    """What a submission gave: the run's trigger outputs, or the problems by field name."""

    values: dict[str, Value] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _detail(exc: InvalidInput) -> str:
    return exc.detail.removeprefix(f"{exc.field}: ")


def read_submission(
    fields: Sequence[IO],
    texts: Mapping[str, Sequence[str]],
    files: Mapping[str, Sequence[FileRef]],
    max_inline_bytes: int,
) -> Submission:
    """Check a submission: `texts` are the text parts by name (a browser's empty inputs
    included), `files` the uploaded files by name (empty file parts left out)."""
    result = Submission()
    names = {io.name for io in fields}
    unknown = sorted((set(texts) | set(files)) - names)
    if unknown:
        result.errors[FORM_ERROR] = (
            f"not fields of this form: {', '.join(unknown)} "
            f"(its fields: {', '.join(io.name for io in fields) or 'none'})"
        )
    for io in fields:
        given_texts = list(texts.get(io.name, ()))
        given_files = list(files.get(io.name, ()))
        if io.type in FILE_TYPES:
            if any(t != "" for t in given_texts):
                result.errors[io.name] = (
                    "expects a file: choose one (the form is sent as multipart/form-data)"
                )
            elif len(given_files) > 1:
                result.errors[io.name] = "one file only"
            elif given_files:
                result.values[io.name] = given_files[0]
            elif required(io):
                result.errors[io.name] = "required: choose a file"
            else:
                result.values[io.name] = None
            continue
        if given_files:
            result.errors[io.name] = f"expects a {io.type}, not a file"
            continue
        if len(given_texts) > 1:
            result.errors[io.name] = "given more than once"
            continue
        text = given_texts[0] if given_texts else ""
        if text == "":
            if io.default_json is not None:
                result.values[io.name] = io.default()
            elif io.optional:
                result.values[io.name] = None
            else:
                result.errors[io.name] = "required"
            continue
        try:
            value = parse_text(io.type, io.name, text, io.enum_values)
            check_inline_size(io.name, value, max_inline_bytes)
        except InvalidInput as exc:
            result.errors[io.name] = _detail(exc)
            continue
        result.values[io.name] = value
    if result.errors:
        result.values = {}
    return result
