"""Untrusted YAML text -> a line-numbered tree, defensively.

Documents come from users (workflow files, `ryax_metadata.yaml` in their git repositories), so
the read is bounded and refuses what a plain `yaml.safe_load` would expand or guess: documents
over `max_bytes`, text that is not UTF-8, more than one document, anchors and aliases (no
billion-laughs expansion), merge keys, tags beyond the YAML core types, keys that are lists or
mappings, duplicate keys, nesting deeper than `max_depth`, sequences longer than their
`max_items`, huge scalars and non-finite floats. The loader walks the parser's event stream
(libyaml when available) so a limit stops the read as soon as it is passed, before the rest of
the document is parsed. Structural problems (duplicates, bad tags, bad values) are all collected;
a syntax error or a limit stops the read. Every problem has a 1-based line and column and a path
such as `spec.functions[3].inputs_values.text`.

Scalars follow YAML 1.1 resolution as `yaml.SafeLoader` does (`yes` is True, `0x10` is 16,
`~` is None), except that timestamps stay the text written (values here are JSON, not
datetimes) and that a mapping key is always its own text (`on:` is "on", `1:` is "1").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

__all__ = [
    "DEFAULT_LIMITS",
    "Scalar",
    "YamlCode",
    "YamlError",
    "YamlLimits",
    "YamlNode",
    "YamlProblem",
    "load_yaml",
    "load_yaml_python",
]

Scalar = str | int | float | bool | None
NodeKind = Literal["map", "seq", "scalar"]

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
_BOOL: Final = "tag:yaml.org,2002:bool"
_NULL: Final = "tag:yaml.org,2002:null"
_TIMESTAMP: Final = "tag:yaml.org,2002:timestamp"
_MERGE: Final = "tag:yaml.org,2002:merge"
_MAP: Final = "tag:yaml.org,2002:map"
_SEQ: Final = "tag:yaml.org,2002:seq"
_NON_SPECIFIC = (None, "!")
_NULL_TEXTS = frozenset(("", "~", "null", "Null", "NULL"))
_INDEX = re.compile(r"\[\d+\]")
_BOM = "\ufeff"

# A trusted, stateless reader of the core scalar types; resolving and constructing a scalar
# reads only class-level tables, so one instance serves every thread.
_RESOLVER: Final = Resolver()
_CONSTRUCTOR: Final = SafeConstructor()
_resolve: Callable[[type[ScalarNode], str, tuple[bool, bool]], str] = _RESOLVER.resolve


class YamlCode(StrEnum):
    """Why a document was refused: one code per rule."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_YAML = "invalid_yaml"
    MULTIPLE_DOCUMENTS = "multiple_documents"
    EMPTY = "empty"
    ANCHOR = "anchor"
    MERGE_KEY = "merge_key"
    TAG = "tag"
    COMPLEX_KEY = "complex_key"
    DUPLICATE_KEY = "duplicate_key"
    TOO_DEEP = "too_deep"
    TOO_MANY_ITEMS = "too_many_items"
    SCALAR_TOO_LARGE = "scalar_too_large"
    NON_FINITE = "non_finite"
    INVALID_VALUE = "invalid_value"


@dataclass(frozen=True)
class YamlLimits:
    """Bounds of one read. `max_items` maps a sequence's path to its longest accepted length;
    a path may write `[]` for any index (`spec.functions[].outputs`); "" is the root."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_items: Mapping[str, int] = field(default_factory=dict)
    max_scalar_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        # Nodes are compared, printed and converted recursively: keep depth far from the
        # interpreter's recursion limit.
        if not 1 <= self.max_depth <= 256:
            raise ValueError("max_depth must be between 1 and 256")
        if self.max_bytes < 0 or self.max_scalar_bytes < 0:
            raise ValueError("byte limits must not be negative")
        if any(limit < 0 for limit in self.max_items.values()):
            raise ValueError("max_items limits must not be negative")
        object.__setattr__(self, "max_items", MappingProxyType(dict(self.max_items)))

    def items_limit(self, path: str) -> int | None:
        limit = self.max_items.get(path)
        if limit is None and "[" in path:
            limit = self.max_items.get(_INDEX.sub("[]", path))
        return limit


DEFAULT_LIMITS: Final = YamlLimits()


@dataclass(frozen=True)
class YamlProblem:
    """One reason to refuse; `message` is self-contained and starts with `path` when it has one."""

    line: int
    column: int
    path: str
    message: str
    code: str


class YamlError(Exception):
    """The text is not an acceptable YAML document; `problems` says where and why, in document
    order. `code` is that of the problem that stopped the read, else of the first problem."""

    def __init__(self, file: str, problems: Sequence[YamlProblem], code: str | None = None) -> None:
        self.file = file
        self.problems = tuple(problems)
        self.code = code or (self.problems[0].code if self.problems else YamlCode.INVALID_YAML)
        super().__init__(
            "\n".join(f"{file}:{p.line}:{p.column}: {p.message}" for p in self.problems)
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.problems, self.code))


@dataclass(frozen=True, slots=True)
class YamlNode:
    """One node with the 1-based line and column it starts on and its path from the root.

    A scalar has `value`; a sequence has `items`; a mapping has `entries` (document order) and,
    for each key, the line and column of the key itself in `key_lines` / `key_columns`.
    """

    kind: NodeKind
    line: int
    column: int
    path: str
    value: Scalar = None
    items: list[YamlNode] = field(default_factory=list)
    entries: dict[str, YamlNode] = field(default_factory=dict)
    key_lines: dict[str, int] = field(default_factory=dict)
    key_columns: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> YamlNode | None:
        """The value under `key` of a mapping; None when absent or when this is no mapping."""
        return self.entries.get(key) if self.kind == "map" else None

    def describe(self) -> str:
        """What this node is, for messages: "a mapping", "a list", "an integer", ..."""
        if self.kind == "map":
            return "a mapping"
        if self.kind == "seq":
            return "a list"
        value = self.value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "a boolean"
        if isinstance(value, int):
            return "an integer"
        if isinstance(value, float):
            return "a float"
        return "a string"

    def to_python(self) -> Any:
        """Plain dicts, lists and scalars."""
        if self.kind == "map":
            return {key: node.to_python() for key, node in self.entries.items()}
        if self.kind == "seq":
            return [node.to_python() for node in self.items]
        return self.value


# ---- reading ----------------------------------------------------------------------------------
class _EventSource(Protocol):
    def check_event(self, *choices: type[Event]) -> bool: ...

    def get_event(self) -> Event: ...

    def dispose(self) -> None: ...


_LOADER: Callable[[str], _EventSource] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Stop(Exception):
    """A problem that ends the read (syntax, limits, anchors)."""

    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _problem(line: int, column: int, path: str, message: str, code: str) -> YamlProblem:
    return YamlProblem(line, column, path, f"{path}: {message}" if path else message, code)


def _position(event: Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _size(limit: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= factor and limit % factor == 0:
            return f"{limit // factor} {unit}"
    return f"{limit} bytes"


def _line_and_column(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based position of the byte at `offset` of UTF-8 `raw`, the column in characters."""
    start = raw.rfind(b"\n", 0, offset) + 1
    column = len(raw[start:offset].decode("utf-8", errors="replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, column


def _decode(data: bytes | str, file: str, limits: YamlLimits) -> tuple[str, bytes]:
    """The text without its byte order mark, and its UTF-8 bytes (positions of reader errors)."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as error:
            # A lone surrogate in a str cannot be UTF-8: report it where it is.
            line = data.count("\n", 0, error.start) + 1
            column = error.start - (data.rfind("\n", 0, error.start) + 1) + 1
            problem = _problem(
                line, column, "", "the document is not valid UTF-8 text", YamlCode.NOT_UTF8
            )
            raise YamlError(file, [problem]) from None
    else:
        raw = bytes(data)
    if len(raw) > limits.max_bytes:
        message = (
            f"the document is {len(raw)} bytes; at most {limits.max_bytes} bytes "
            f"({_size(limits.max_bytes)}) are accepted"
        )
        raise YamlError(file, [_problem(1, 1, "", message, YamlCode.TOO_LARGE)])
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if isinstance(data, str):
        return data.removeprefix(_BOM), raw
    try:
        return raw.decode("utf-8"), raw
    except UnicodeDecodeError as error:
        line, column = _line_and_column(raw, error.start)
        problem = _problem(
            line, column, "", "the document is not valid UTF-8 text", YamlCode.NOT_UTF8
        )
        raise YamlError(file, [problem]) from None


def load_yaml(
    data: bytes | str, *, file: str = "<document>", limits: YamlLimits = DEFAULT_LIMITS
) -> YamlNode:
    """Read one YAML document into a YamlNode tree; raise YamlError on any problem."""
    text, raw = _decode(data, file, limits)
    builder = _Builder(limits)
    loader: _EventSource | None = None
    try:
        loader = _LOADER(text)
        root = builder.build(loader)
    except _Stop as stop:
        raise YamlError(file, [*builder.problems, stop.problem], stop.problem.code) from None
    except yaml.MarkedYAMLError as error:
        problem = _syntax_problem(error)
        raise YamlError(file, [*builder.problems, problem], problem.code) from None
    except yaml.reader.ReaderError as error:
        # libyaml counts the offset in bytes of the UTF-8 text; PyYAML, which checks the whole
        # text as the loader is made, in characters.
        offset = int(error.position)
        if loader is None or isinstance(loader, yaml.reader.Reader):
            offset = len(text[:offset].encode("utf-8"))
        line, column = _line_and_column(raw, offset)
        character = error.character
        what = f"#x{character:04x}" if isinstance(character, int) else repr(character)
        message = f"YAML syntax error: {error.reason} (character {what})"
        problem = _problem(line, column, "", message, YamlCode.INVALID_YAML)
        raise YamlError(file, [*builder.problems, problem], problem.code) from None
    except yaml.YAMLError as error:
        problem = _problem(1, 1, "", f"YAML syntax error: {error}", YamlCode.INVALID_YAML)
        raise YamlError(file, [*builder.problems, problem], problem.code) from None
    finally:
        if loader is not None:
            loader.dispose()
    if builder.problems:
        raise YamlError(file, builder.problems)
    return root


def load_yaml_python(
    data: bytes | str, *, file: str = "<document>", limits: YamlLimits = DEFAULT_LIMITS
) -> Any:
    """`load_yaml` as plain dicts, lists and scalars (for callers that need no line numbers)."""
    return load_yaml(data, file=file, limits=limits).to_python()


def _syntax_problem(error: yaml.MarkedYAMLError) -> YamlProblem:
    mark = error.problem_mark or error.context_mark
    message = error.problem or error.context or "invalid YAML"
    if error.context and error.problem and error.context not in message:
        message = f"{message} ({error.context})"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return _problem(line, column, "", f"YAML syntax error: {message}", YamlCode.INVALID_YAML)


class _Frame:
    """An open collection; for a mapping, the key waiting for its value."""

    __slots__ = ("discard", "expect_key", "key", "limit", "node")

    def __init__(self, node: YamlNode, limit: int | None) -> None:
        self.node = node
        self.limit = limit
        self.expect_key = True
        self.key: str | None = None
        # The pending value follows a refused key (duplicate, merge, list): read, not kept.
        self.discard = False


class _Builder:
    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.problems: list[YamlProblem] = []
        self.empty = False

    def add(self, line: int, column: int, path: str, message: str, code: str) -> None:
        self.problems.append(_problem(line, column, path, message, code))

    def build(self, loader: _EventSource) -> YamlNode:
        stack: list[_Frame] = []
        root: YamlNode | None = None
        documents = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, NodeEvent):
                if isinstance(event, AliasEvent) or event.anchor is not None:
                    line, column = _position(event)
                    raise _Stop(
                        _problem(
                            line,
                            column,
                            self.child_path(stack),
                            "anchors (&name) and aliases (*name) are not allowed",
                            YamlCode.ANCHOR,
                        )
                    )
                node = self.begin(event, stack)
                if node is None:
                    continue
            elif isinstance(event, CollectionEndEvent):
                node = stack.pop().node
            elif isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    line, column = _position(event)
                    message = "only one YAML document is accepted; a second one starts here"
                    raise _Stop(_problem(line, column, "", message, YamlCode.MULTIPLE_DOCUMENTS))
                continue
            else:
                continue
            if stack:
                self.attach(stack[-1], node)
            else:
                root = node
        if root is None or self.empty:
            raise _Stop(_problem(1, 1, "", "the document is empty", YamlCode.EMPTY))
        return root

    @staticmethod
    def child_path(stack: list[_Frame]) -> str:
        if not stack:
            return ""
        frame = stack[-1]
        parent = frame.node
        if parent.kind == "seq":
            return f"{parent.path}[{len(parent.items)}]"
        if frame.expect_key or frame.key is None:
            return parent.path
        return f"{parent.path}.{frame.key}" if parent.path else frame.key

    def begin(self, event: NodeEvent, stack: list[_Frame]) -> YamlNode | None:
        """The node an event starts: a scalar is complete, a collection is pushed (None)."""
        line, column = _position(event)
        path = self.child_path(stack)
        if stack and stack[-1].node.kind == "seq":
            frame = stack[-1]
            if frame.limit is not None and len(frame.node.items) >= frame.limit:
                raise _Stop(
                    _problem(
                        line,
                        column,
                        frame.node.path,
                        f"more than {frame.limit} items (at most {frame.limit} are accepted)",
                        YamlCode.TOO_MANY_ITEMS,
                    )
                )
        if isinstance(event, ScalarEvent):
            return self.scalar(event, line, column, path, stack)
        kind: NodeKind = "map" if isinstance(event, MappingStartEvent) else "seq"
        if len(stack) >= self.limits.max_depth:
            raise _Stop(
                _problem(
                    line,
                    column,
                    path,
                    f"the document is nested more than {self.limits.max_depth} levels deep",
                    YamlCode.TOO_DEEP,
                )
            )
        assert isinstance(event, MappingStartEvent | SequenceStartEvent)
        if event.tag not in _NON_SPECIFIC and event.tag != (_MAP if kind == "map" else _SEQ):
            self.add(line, column, path, _tag_message(event.tag), YamlCode.TAG)
        limit = self.limits.items_limit(path) if kind == "seq" else None
        stack.append(_Frame(YamlNode(kind, line, column, path), limit))
        return None

    def scalar(
        self, event: ScalarEvent, line: int, column: int, path: str, stack: list[_Frame]
    ) -> YamlNode:
        text = event.value
        size = len(text)
        if not text.isascii():
            try:
                size = len(text.encode("utf-8"))
            except UnicodeEncodeError:
                # PyYAML accepts "\ud800" escapes; nothing downstream can store them.
                self.add(
                    line,
                    column,
                    path,
                    "the text holds an invalid Unicode character (a lone surrogate)",
                    YamlCode.INVALID_VALUE,
                )
        if size > self.limits.max_scalar_bytes:
            raise _Stop(
                _problem(
                    line,
                    column,
                    path,
                    f"a value of {size} bytes; at most {self.limits.max_scalar_bytes} bytes "
                    f"({_size(self.limits.max_scalar_bytes)}) are accepted in one value",
                    YamlCode.SCALAR_TOO_LARGE,
                )
            )
        tag = event.tag
        if tag in _NON_SPECIFIC:
            tag = _resolve(ScalarNode, text, event.implicit)
        elif tag not in (_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP):
            self.add(line, column, path, _tag_message(tag), YamlCode.TAG)
            return YamlNode("scalar", line, column, path, text)
        if stack and stack[-1].node.kind == "map" and stack[-1].expect_key:
            # A key is its own text. A merge key (which would copy other mappings in) is the
            # one key whose value is not a str, for `take_key` to refuse.
            return YamlNode("scalar", line, column, path, None if tag == _MERGE else text)
        if not stack and not text and not event.style and event.tag is None:
            # Nothing at all where the root should be (`---` alone).
            self.empty = True
        value = self.scalar_value(tag, text, line, column, path)
        return YamlNode("scalar", line, column, path, value)

    def scalar_value(self, tag: str, text: str, line: int, column: int, path: str) -> Scalar:
        if tag == _NULL:
            if text in _NULL_TEXTS:
                return None
            self.add(line, column, path, f"{text!r} is not null", YamlCode.INVALID_VALUE)
            return text
        if tag == _BOOL:
            value = _CONSTRUCTOR.bool_values.get(text.lower())
            if value is None:
                self.add(line, column, path, f"{text!r} is not a boolean", YamlCode.INVALID_VALUE)
                return text
            return value
        if tag == _INT:
            try:
                return _CONSTRUCTOR.construct_yaml_int(ScalarNode(tag, text))
            except (ValueError, IndexError):
                self.add(line, column, path, f"{text!r} is not an integer", YamlCode.INVALID_VALUE)
                return text
        if tag == _FLOAT:
            try:
                number = _CONSTRUCTOR.construct_yaml_float(ScalarNode(tag, text))
            except (ValueError, IndexError):
                self.add(line, column, path, f"{text!r} is not a number", YamlCode.INVALID_VALUE)
                return text
            if not math.isfinite(number):
                self.add(
                    line,
                    column,
                    path,
                    f"{text!r} is not a finite number: only finite numbers are accepted",
                    YamlCode.NON_FINITE,
                )
            return number
        if tag == _TIMESTAMP and _resolve(ScalarNode, text, (True, False)) != tag:
            self.add(line, column, path, f"{text!r} is not a timestamp", YamlCode.INVALID_VALUE)
        # Strings; timestamps stay the text written. `=` and a `<<` value are plain text here.
        return text

    def attach(self, frame: _Frame, node: YamlNode) -> None:
        parent = frame.node
        if parent.kind == "seq":
            parent.items.append(node)
            return
        if frame.expect_key:
            frame.expect_key = False
            self.take_key(frame, node)
            return
        if not frame.discard and frame.key is not None:
            parent.entries[frame.key] = node
        frame.expect_key, frame.discard, frame.key = True, False, None

    def take_key(self, frame: _Frame, key: YamlNode) -> None:
        parent = frame.node
        if key.kind != "scalar":
            self.add(
                key.line,
                key.column,
                parent.path,
                "a key must be a plain value, not a list or a mapping",
                YamlCode.COMPLEX_KEY,
            )
            frame.discard = True
            return
        if not isinstance(key.value, str):
            self.add(
                key.line,
                key.column,
                parent.path,
                "merge keys (<<) are not allowed",
                YamlCode.MERGE_KEY,
            )
            frame.discard = True
            return
        name = key.value
        if name in parent.entries:
            path = f"{parent.path}.{name}" if parent.path else name
            self.add(
                key.line,
                key.column,
                path,
                f"duplicate key {name!r} (first given on line {parent.key_lines[name]})",
                YamlCode.DUPLICATE_KEY,
            )
            frame.key, frame.discard = name, True
            return
        frame.key = name
        parent.key_lines[name] = key.line
        parent.key_columns[name] = key.column


def _tag_message(tag: str | None) -> str:
    return (
        f"the tag {tag} is not allowed (only the YAML core types: strings, numbers, booleans, "
        "null, lists and mappings)"
    )
