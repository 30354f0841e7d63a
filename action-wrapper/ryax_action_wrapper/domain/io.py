"""Typed inputs and outputs: declarations, conversion of input values into the Python values a
handler receives, and validation of what a handler returns against the declared outputs.

Pure functions: the file system is reached only through the `PathProbe` the caller passes.
"""

from __future__ import annotations

import json
import numbers
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from .errors import InvalidDeclaration, InvalidInputValue, InvalidOutputValue


class IOType(StrEnum):
    STRING = "string"
    LONGSTRING = "longstring"
    PASSWORD = "password"
    ENUM = "enum"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    FILE = "file"
    DIRECTORY = "directory"


TEXT_TYPES: Final = frozenset({IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD, IOType.ENUM})
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


class _Missing:
    """Marks an absent value (distinct from None, which is a value)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


@dataclass(frozen=True, kw_only=True)
class LocalFile:
    """A file on the local disk: `path` is absolute."""

    path: str
    name: str = ""
    size: int = 0
    sha256: str = ""


@dataclass(frozen=True, kw_only=True)
class LocalDirectory:
    """A directory on the local disk: `path` is absolute."""

    path: str
    name: str = ""


#: A value as it travels (decoded from the wire, or validated from a handler): JSON-like
#: scalars, documents (lists, dicts), local files and directories.
Value = None | str | int | float | bool | list[Any] | dict[str, Any] | LocalFile | LocalDirectory


@dataclass(frozen=True)
class PathInfo:
    kind: Literal["file", "directory", "missing", "other"]
    size: int = 0
    #: The path with every symbolic link resolved ("" when the probe does not say).
    real: str = ""


#: Tells what is at an absolute path (the only I/O the validation needs).
PathProbe = Callable[[str], PathInfo]


@dataclass(frozen=True, kw_only=True)
class IODeclaration:
    name: str
    type: IOType
    optional: bool = False
    enum_values: tuple[str, ...] = ()
    #: The default value, already converted to the declared type; MISSING when none.
    default: object = MISSING

    @classmethod
    def parse(
        cls,
        *,
        name: str,
        type: str,
        optional: bool = False,
        enum_values: Sequence[str] = (),
        default_json: str | None = None,
        role: str = "input",
    ) -> IODeclaration:
        """Build a declaration from its wire form; InvalidDeclaration names the bad field."""
        if not name:
            raise InvalidDeclaration(f"an {role} has an empty name")
        try:
            io_type = IOType(type.strip().lower())
        except ValueError:
            known = ", ".join(t.value for t in IOType)
            raise InvalidDeclaration(
                f"{role} '{name}': unknown type '{type}' (known types: {known})"
            ) from None
        if io_type is IOType.ENUM and not enum_values:
            raise InvalidDeclaration(f"{role} '{name}': an enum needs enum_values")
        decl = cls(name=name, type=io_type, optional=optional, enum_values=tuple(enum_values))
        if default_json is None:
            return decl
        try:
            raw = json.loads(default_json)
        except ValueError:
            # A bare YAML scalar may arrive unquoted (e.g. an enum value): take it as text.
            raw = default_json
        if raw is None:
            return decl
        if io_type in (IOType.FILE, IOType.DIRECTORY):
            raise InvalidDeclaration(f"{role} '{name}': a {io_type} cannot have a default value")
        try:
            default = _convert_scalar(decl, raw)
        except InvalidInputValue as exc:
            raise InvalidDeclaration(f"{role} '{name}': default value: {exc.detail}") from None
        return IODeclaration(
            name=name,
            type=io_type,
            optional=optional,
            enum_values=decl.enum_values,
            default=default,
        )


# --------------------------------------------------------------------------- inputs


def convert_inputs(
    declarations: Sequence[IODeclaration], values: Mapping[str, Value], probe: PathProbe
) -> dict[str, Any]:
    """The dict a handler receives: one entry per declared input, converted to its Python type
    (files and directories as local path strings); defaults fill absent values."""
    request: dict[str, Any] = {}
    for decl in declarations:
        request[decl.name] = convert_input(decl, values.get(decl.name, MISSING), probe)
    # Values for undeclared names (e.g. dynamic inputs) pass through unconverted.
    for name, value in values.items():
        if name not in request:
            request[name] = _plain(value)
    return request


def convert_input(decl: IODeclaration, value: Value | _Missing, probe: PathProbe) -> Any:
    if value is MISSING or value is None:
        if decl.default is not MISSING:
            return decl.default
        if decl.optional:
            return None
        raise InvalidInputValue(decl.name, "no value given and the input is not optional")
    assert not isinstance(value, _Missing)
    if decl.type in (IOType.FILE, IOType.DIRECTORY):
        return _convert_path_input(decl, value, probe)
    return _convert_scalar(decl, value)


def _convert_path_input(decl: IODeclaration, value: Value, probe: PathProbe) -> str:
    if isinstance(value, LocalFile | LocalDirectory):
        path = value.path
    elif isinstance(value, str):
        path = value
    else:
        raise InvalidInputValue(decl.name, f"expected a {decl.type}, got {_kind(value)}")
    if not posixpath.isabs(path):
        raise InvalidInputValue(decl.name, f"the local path '{path}' is not absolute")
    info = probe(path)
    if info.kind != decl.type.value:
        raise InvalidInputValue(
            decl.name, f"expected a {decl.type} at '{path}', found {_describe(info)}"
        )
    return path


def _convert_scalar(decl: IODeclaration, value: object) -> object:
    """Input values are taken leniently: a number written as text is read as a number."""
    t = decl.type
    if t in TEXT_TYPES:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise InvalidInputValue(decl.name, f"expected a {t}, got {_kind(value)}")
        if t is IOType.ENUM and text not in decl.enum_values:
            raise InvalidInputValue(
                decl.name, f"'{text}' is not one of {', '.join(decl.enum_values)}"
            )
        return text
    if t is IOType.INTEGER:
        return _to_int(decl.name, value)
    if t is IOType.FLOAT:
        return _to_float(decl.name, value)
    if t is IOType.BOOLEAN:
        return _to_bool(decl.name, value)
    raise InvalidInputValue(decl.name, f"expected a {t}, got {_kind(value)}")


def _to_int(name: str, value: object) -> int:
    result: int
    if isinstance(value, bool):
        raise InvalidInputValue(name, "expected an integer, got a boolean")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            raise InvalidInputValue(name, f"expected an integer, got '{value}'") from None
    else:
        raise InvalidInputValue(name, f"expected an integer, got {_kind(value)}")
    if not INT64_MIN <= result <= INT64_MAX:
        raise InvalidInputValue(name, f"{result} does not fit in 64 bits")
    return result


def _to_float(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise InvalidInputValue(name, "expected a float, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise InvalidInputValue(name, f"expected a float, got '{value}'") from None
    raise InvalidInputValue(name, f"expected a float, got {_kind(value)}")


def _to_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInputValue(name, f"expected a boolean, got {_kind(value)} {value!r}")


def _plain(value: Value) -> Any:
    if isinstance(value, LocalFile | LocalDirectory):
        return value.path
    return value


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, kw_only=True)
class ValidatedOutputs:
    #: One dict per downstream execution.
    sets: list[dict[str, Value]]
    #: True when the handler returned a single dict (not a list of dicts).
    single: bool
    #: Returned names that are not declared outputs (dropped).
    ignored: tuple[str, ...] = ()


def validate_outputs(
    declarations: Sequence[IODeclaration],
    returned: object,
    *,
    work_dir: str,
    probe: PathProbe,
) -> ValidatedOutputs:
    """Check what a handler returned: a dict, or a list of dicts (several output sets); None is
    read as {} . Relative file paths are taken from `work_dir`."""
    if returned is None:
        returned = {}
    if isinstance(returned, Mapping):
        outputs, ignored = validate_output_set(
            declarations, returned, work_dir=work_dir, probe=probe
        )
        return ValidatedOutputs(sets=[outputs], single=True, ignored=ignored)
    if isinstance(returned, list | tuple):
        sets: list[dict[str, Value]] = []
        all_ignored: list[str] = []
        for index, item in enumerate(returned):
            if not isinstance(item, Mapping):
                raise InvalidOutputValue(
                    "",
                    f"handle() returned a list whose item {index} is {_kind(item)}, not a dict",
                )
            try:
                outputs, ignored = validate_output_set(
                    declarations, item, work_dir=work_dir, probe=probe
                )
            except InvalidOutputValue as exc:
                raise InvalidOutputValue(
                    exc.name, f"{exc.detail} (in output set {index})"
                ) from None
            sets.append(outputs)
            all_ignored.extend(n for n in ignored if n not in all_ignored)
        return ValidatedOutputs(sets=sets, single=False, ignored=tuple(all_ignored))
    raise InvalidOutputValue(
        "", f"handle() returned {_kind(returned)}; expected a dict of outputs or a list of dicts"
    )


def validate_output_set(
    declarations: Sequence[IODeclaration],
    returned: Mapping[Any, Any],
    *,
    work_dir: str,
    probe: PathProbe,
) -> tuple[dict[str, Value], tuple[str, ...]]:
    """One output dict: every declared output present with its type. Returns the validated
    values and the undeclared names that were dropped."""
    outputs: dict[str, Value] = {}
    for decl in declarations:
        value = returned.get(decl.name, MISSING)
        if value is MISSING or value is None:
            if decl.optional:
                outputs[decl.name] = None
                continue
            what = "missing" if value is MISSING else "None"
            raise InvalidOutputValue(decl.name, f"{what}, and the output is not optional")
        outputs[decl.name] = _validate_output(decl, value, work_dir, probe)
    declared = {d.name for d in declarations}
    ignored = tuple(str(k) for k in returned if k not in declared)
    return outputs, ignored


def _validate_output(decl: IODeclaration, value: object, work_dir: str, probe: PathProbe) -> Value:
    """Outputs are checked strictly: a wrong type is the action's bug, reported by name."""
    t = decl.type
    if t in TEXT_TYPES:
        if not isinstance(value, str):
            raise InvalidOutputValue(decl.name, f"expected a {t} (str), got {_kind(value)}")
        if t is IOType.ENUM and value not in decl.enum_values:
            raise InvalidOutputValue(
                decl.name, f"'{value}' is not one of {', '.join(decl.enum_values)}"
            )
        return _text_output(decl.name, str(value))
    if t is IOType.INTEGER:
        if _is_bool(value) or not isinstance(value, numbers.Integral):
            raise InvalidOutputValue(decl.name, f"expected an integer, got {_kind(value)}")
        number = int(value)
        if not INT64_MIN <= number <= INT64_MAX:
            raise InvalidOutputValue(decl.name, f"{number} does not fit in 64 bits")
        return number
    if t is IOType.FLOAT:
        if _is_bool(value) or not isinstance(value, numbers.Real):
            raise InvalidOutputValue(decl.name, f"expected a float, got {_kind(value)}")
        return float(value)
    if t is IOType.BOOLEAN:
        if not _is_bool(value):
            raise InvalidOutputValue(decl.name, f"expected a boolean, got {_kind(value)}")
        return bool(value)
    # file or directory: a path the action wrote
    if not isinstance(value, str | os.PathLike):
        raise InvalidOutputValue(decl.name, f"expected the path of a {t} (str), got {_kind(value)}")
    raw = os.fspath(value)
    if isinstance(raw, bytes):
        raise InvalidOutputValue(decl.name, "expected a str path, got bytes")
    if not raw:
        raise InvalidOutputValue(decl.name, f"expected the path of a {t}, got ''")
    path = posixpath.normpath(posixpath.join(work_dir, raw))
    info = probe(path)
    if info.kind != t.value:
        raise InvalidOutputValue(decl.name, f"expected a {t} at '{path}', found {_describe(info)}")
    if work_dir and not _inside(info.real, probe(work_dir).real):
        raise InvalidOutputValue(
            decl.name, f"{path} is outside the execution's work directory ({work_dir})"
        )
    name = posixpath.basename(path)
    if t is IOType.FILE:
        return LocalFile(path=path, name=name, size=info.size)
    return LocalDirectory(path=path, name=name)


#: The largest text passed inline in a result: the worker's report to the runner must stay well
#: under its stream's message limit. Larger values belong in a file output.
MAX_INLINE_TEXT_BYTES = 4 * 1024 * 1024


def _text_output(name: str, text: str) -> str:
    """Text that can travel: valid UTF-8 (no lone surrogate) and not too large to send inline."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as error:
        bad = text[error.start]
        raise InvalidOutputValue(
            name,
            f"contains a lone surrogate (U+{ord(bad):04X}) at position {error.start}, "
            "which is not text that can be stored or sent",
        ) from None
    if size > MAX_INLINE_TEXT_BYTES:
        raise InvalidOutputValue(
            name,
            f"is {size} bytes of text; at most {MAX_INLINE_TEXT_BYTES} bytes travel inline: "
            "write it to a file and return it as a file output",
        )
    return text


def _inside(real: str, root: str) -> bool:
    """A file or directory output must resolve (links followed) inside the work directory;
    unknown when the probe gives no resolved paths."""
    if not real or not root:
        return True
    return real == root or real.startswith(root.rstrip("/") + "/")


def _is_bool(value: object) -> bool:
    # numpy.bool_ is not a bool subclass; recognise it without importing numpy.
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _kind(value: object) -> str:
    if value is None:
        return "None"
    return type(value).__name__


def _describe(info: PathInfo) -> str:
    return {"missing": "nothing", "other": "something else"}.get(info.kind, f"a {info.kind}")
