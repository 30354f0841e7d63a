"""Typed values that flow between steps: scalars, JSON documents and filestore references.

A value is stored and exchanged as plain Python data: None, bool, int, float, str, a list or a
dict (a JSON document), or a `FileRef` (a file, or a tar of a directory, in the filestore).
Inline values are limited in size (`MAX_INLINE_BYTES`): bigger data travels as a file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

from .errors import InvalidInput

#: Largest inline value (string or JSON document, UTF-8 bytes) carried inside a message.
MAX_INLINE_BYTES = 64 * 1024
#: Deepest nesting of a JSON document kept as a value (deeper ones are refused: they break
#: recursive encoders long before they mean anything).
MAX_JSON_DEPTH = 64

STRING_TYPES = frozenset({"string", "longstring", "password", "enum"})
FILE_TYPES = frozenset({"file", "directory"})
SECRET_TYPES = frozenset({"password"})


@dataclass(frozen=True, kw_only=True)
class FileRef:
    """A file (or, with `is_directory`, a tar of a directory) in the filestore."""

    key: str
    name: str
    size: int = 0
    sha256: str = ""
    is_directory: bool = False
    #: The id of the site that holds the file on its disk (RYAX_SITE_FILES=hold) while it is
    #: not in the filestore; "" once published (or never held). `key` is where it goes.
    held_by: str = ""


def held_files(values: dict[str, Value] | None) -> list[FileRef]:
    """The files among `values` (lists of results included) that a site holds unpublished."""
    found: list[FileRef] = []
    for value in (values or {}).values():
        items = value if isinstance(value, list) else [value]
        found.extend(v for v in items if isinstance(v, FileRef) and v.held_by)
    return found


def without_held(values: dict[str, Value] | None, keys: set[str] | frozenset[str]) -> bool:
    """Clear `held_by` of the files of `values` whose key is in `keys` (they are published),
    in place; True when one changed."""
    changed = False
    for name, value in list((values or {}).items()):
        if isinstance(value, FileRef) and value.held_by and value.key in keys:
            values[name] = replace(value, held_by="")  # type: ignore[index]
            changed = True
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, FileRef) and item.held_by and item.key in keys:
                    value[i] = replace(item, held_by="")
                    changed = True
    return changed


Value = None | bool | int | float | str | list[Any] | dict[str, Any] | FileRef


def inline_size(value: Value) -> int:
    """UTF-8 size of an inline value (0 for scalars and files)."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, (list, dict)):
        return len(json.dumps(value, separators=(",", ":")).encode("utf-8"))
    return 0


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            return (
                f"contains a lone surrogate (U+{ord(ch):04X}), which is not valid text and "
                "cannot be stored"
            )
    return ""


def _has_bad_char(text: str) -> bool:
    # Fast path: the common case holds neither NUL nor a surrogate.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return "\x00" in text


def unstorable(value: object) -> str:
    """Why a value cannot be stored and exchanged as it is ("" when it can): a NUL character
    or a lone surrogate in a string (or a key), NaN or an infinity (JSON has none), a key that
    is not a string, JSON nested deeper than MAX_JSON_DEPTH, or something that is no value at
    all. Checked without recursion, so a hostile document cannot exhaust the stack."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, (bool, int, FileRef)):
            if isinstance(item, FileRef):
                for text in (item.key, item.name, item.sha256):
                    if _has_bad_char(text):
                        return "a file reference whose name or key " + _text_problem(text)
            continue
        if isinstance(item, float):
            if math.isnan(item):
                return "is NaN, which JSON cannot hold"
            if math.isinf(item):
                return "is an infinity, which JSON cannot hold"
            continue
        if isinstance(item, str):
            if _has_bad_char(item):
                return _text_problem(item)
            continue
        if isinstance(item, (list, tuple, dict)):
            if depth >= MAX_JSON_DEPTH:
                return f"is nested more than {MAX_JSON_DEPTH} levels deep"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"has a key that is not a string ({type(key).__name__} {key!r:.40})"
                    if _has_bad_char(key):
                        return f"has a key that {_text_problem(key)}"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
            continue
        return f"is a {type(item).__name__}, not a JSON value"
    return ""


def refused_output(
    outputs: dict[str, Value] | None,
    outputs_list: list[dict[str, Value]] | None = None,
    limit: int = MAX_INLINE_BYTES,
) -> str:
    """The first output that cannot be kept, named with the reason ("" when all can): not
    storable (`unstorable`), or an inline value over `limit` bytes (it must travel as a file)."""
    for values in (outputs or {}, *(outputs_list or [])):
        for name, value in values.items():
            why = unstorable(value)
            if why:
                return f"output `{name}`: {why}"
            size = inline_size(value)
            if size > limit:
                return (
                    f"output `{name}`: {size} bytes, more than the {limit // 1024} KiB inline "
                    "limit: return a file"
                )
    return ""


def clean_text(text: str) -> str:
    """Text made storable: NUL characters and lone surrogates become U+FFFD (for log lines,
    error messages and other text that is never a reason to fail)."""
    if not _has_bad_char(text):
        return text
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in text)


def check_inline_size(name: str, value: Value, limit: int = MAX_INLINE_BYTES) -> None:
    size = inline_size(value)
    if size > limit:
        raise InvalidInput(
            name,
            f"{size} bytes, more than the {limit // 1024} KiB inline limit: send it as a file",
        )


def to_json(value: Value) -> Any:
    """Encode a value as a JSON-compatible document (files as {"$file": {...}})."""
    if isinstance(value, FileRef):
        return {
            "$file": {
                "key": value.key,
                "name": value.name,
                "size": value.size,
                "sha256": value.sha256,
                "directory": value.is_directory,
                **({"held_by": value.held_by} if value.held_by else {}),
            }
        }
    return value


def from_json(doc: Any) -> Value:
    """Inverse of `to_json`."""
    if isinstance(doc, dict) and len(doc) == 1 and "$file" in doc:
        f = doc["$file"]
        return FileRef(
            key=str(f["key"]),
            name=str(f["name"]),
            size=int(f.get("size", 0)),
            sha256=str(f.get("sha256", "")),
            is_directory=bool(f.get("directory", False)),
            held_by=str(f.get("held_by", "")),
        )
    return doc  # type: ignore[no-any-return]


def values_to_json(values: dict[str, Value] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: to_json(v) for k, v in values.items()}


def values_from_json(doc: dict[str, Any] | None) -> dict[str, Value] | None:
    if doc is None:
        return None
    return {k: from_json(v) for k, v in doc.items()}


def coerce(io_type: str, name: str, value: Any, enum_values: tuple[str, ...] = ()) -> Value:
    """Check (and lightly convert) a JSON value against a Ryax type; errors name the input."""
    if value is None:
        return None
    why = unstorable(value)
    if why:
        raise InvalidInput(name, why)
    if io_type in STRING_TYPES:
        if not isinstance(value, str):
            raise InvalidInput(name, f"expected a string, got {type(value).__name__}")
        if io_type == "enum" and enum_values and value not in enum_values:
            raise InvalidInput(name, f"expected one of {', '.join(enum_values)}")
        return value
    if io_type == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(name, f"expected an integer, got {type(value).__name__}")
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidInput(name, "expected an integer, got a decimal number")
            return int(value)
        return value
    if io_type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInput(name, f"expected a number, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(name, "expected a finite number")
        return float(value)
    if io_type == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(name, f"expected true or false, got {type(value).__name__}")
        return value
    if io_type in FILE_TYPES:
        if not isinstance(value, FileRef):
            raise InvalidInput(name, f"expected a {io_type} (send it as a multipart file part)")
        return value
    document: Value = value  # other types (json, list, dict...) are JSON documents
    return document


def parse_text(io_type: str, name: str, text: str, enum_values: tuple[str, ...] = ()) -> Value:
    """Parse a form field (text) into a value of the given type."""
    if io_type in STRING_TYPES:
        return coerce(io_type, name, text, enum_values)
    if io_type == "integer":
        try:
            return int(text.strip())
        except ValueError as exc:
            raise InvalidInput(name, f"expected an integer, got {text[:40]!r}") from exc
    if io_type == "float":
        try:
            return coerce(io_type, name, float(text.strip()))
        except ValueError as exc:
            raise InvalidInput(name, f"expected a number, got {text[:40]!r}") from exc
    if io_type == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise InvalidInput(name, f"expected true or false, got {text[:40]!r}")
    if io_type in FILE_TYPES:
        raise InvalidInput(name, f"expected a {io_type} (send it as a multipart file part)")
    try:
        document: Value = json.loads(text)
        return coerce(io_type, name, document)
    except ValueError as exc:
        raise InvalidInput(name, "expected a JSON document") from exc
