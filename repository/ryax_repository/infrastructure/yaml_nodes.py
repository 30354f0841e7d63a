"""Untrusted YAML text -> the domain's line-numbered `Node` tree.

Files come from users' git repositories, so loading is defensive: documents over 1 MiB are
refused, anchors and aliases are refused (no billion-laughs expansion), only the YAML core types
are read (no Python object tags), duplicate keys are an error instead of silently keeping the
last one, and nesting is bounded. Every problem carries the 1-based line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from ryax_repository.domain.action_metadata import (
    ActionMetadata,
    InvalidActionMetadata,
    MetadataError,
    Node,
    Scalar,
    parse_action_metadata,
)

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 64

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class YamlProblem:
    line: int
    column: int
    message: str
    path: str = ""


class YamlLoadError(Exception):
    """The text is not an acceptable YAML document; `problems` says where and why."""

    def __init__(self, file: str, problems: Sequence[YamlProblem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__(
            "\n".join(f"{file}:{p.line}:{p.column}: {p.message}" for p in self.problems)
        )


class _RefusingAliasesLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses anchors and aliases before any expansion happens."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors (&name) and aliases (*name) are not allowed in this file",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _line_of(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1) + 1


def _decode(data: bytes | str, file: str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise YamlLoadError(
            file,
            [
                YamlProblem(
                    1,
                    1,
                    f"the file is {len(raw)} bytes; at most {MAX_DOCUMENT_BYTES} "
                    "bytes (1 MiB) are accepted",
                )
            ],
        )
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, column = _line_of(data[: error.start].decode("utf-8", errors="replace"), error.start)
        raise YamlLoadError(
            file, [YamlProblem(line, column, "the file is not valid UTF-8 text")]
        ) from None


def load_nodes(data: bytes | str, file: str) -> Node:
    """Parse one YAML document into a `Node` tree; raise YamlLoadError on any problem."""
    text = _decode(data, file)
    loader: _RefusingAliasesLoader | None = None
    try:
        loader = _RefusingAliasesLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = error.problem or error.context or "invalid YAML"
        if error.context and error.problem and error.context not in message:
            message = f"{message} ({error.context})"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = YamlProblem(line, column, f"YAML syntax error: {message}")
        raise YamlLoadError(file, [problem]) from None
    except yaml.reader.ReaderError as error:
        line, column = _line_of(text, int(error.position))
        raise YamlLoadError(
            file, [YamlProblem(line, column, f"YAML syntax error: {error.reason}")]
        ) from None
    except RecursionError:
        raise YamlLoadError(
            file, [YamlProblem(1, 1, "the document is nested too deeply")]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or (isinstance(root, ScalarNode) and root.tag == _NULL and not root.value):
        raise YamlLoadError(file, [YamlProblem(1, 1, "the document is empty")])
    converter = _Converter(loader)
    node = converter.convert(root, 1, "")
    if converter.problems:
        raise YamlLoadError(file, sorted(converter.problems, key=lambda p: (p.line, p.column)))
    return node


class _Converter:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.problems: list[YamlProblem] = []

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        mark = node.start_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        text = f"{path}: {message}" if path else message
        self.problems.append(YamlProblem(line, column, text, path))

    def convert(self, node: yaml.Node, depth: int, path: str) -> Node:
        mark = node.start_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if depth > MAX_DEPTH:
            self.problem(node, path, f"the document is nested more than {MAX_DEPTH} levels deep")
            return Node(None, line, column)
        if isinstance(node, ScalarNode):
            return Node(self.scalar(node, path), line, column)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
            items = [
                self.convert(item, depth + 1, f"{path}[{index}]")
                for index, item in enumerate(node.value)
            ]
            return Node(items, line, column)
        assert isinstance(node, MappingNode)
        if node.tag != _MAP:
            self.problem(node, path, f"unsupported YAML tag {node.tag!r}")
        entries: dict[str, tuple[int, Node]] = {}
        for key_node, value_node in node.value:
            key_mark = key_node.start_mark
            key_line = key_mark.line + 1 if key_mark is not None else line
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, path, "a key must be a plain value, not a list or a mapping")
                continue
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problem(key_node, path, "merge keys (<<) are not allowed in this file")
                continue
            # The key's own text: `on:` or `1:` stay the strings "on" and "1".
            key = str(key_node.value)
            key_path = f"{path}.{key}" if path else key
            if key in entries:
                self.problem(
                    key_node,
                    key_path,
                    f"duplicate key {key!r} (first given on line {entries[key][0]})",
                )
                continue
            entries[key] = (key_line, self.convert(value_node, depth + 1, key_path))
        return Node(entries, line, column)

    def scalar(self, node: ScalarNode, path: str) -> Scalar:
        tag = node.tag
        if tag in (_STR, _TIMESTAMP):
            return str(node.value)
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return self.loader.construct_yaml_bool(node)
        if tag == _INT:
            return self.loader.construct_yaml_int(node)
        if tag == _FLOAT:
            return self.loader.construct_yaml_float(node)
        self.problem(node, path, f"unsupported YAML tag {tag!r}")
        return None


def load_action_metadata(
    data: bytes | str, file: str, *, allow_internal: bool = False
) -> ActionMetadata:
    """Read a `ryax_metadata.yaml`; YAML and format problems alike raise InvalidActionMetadata."""
    try:
        root = load_nodes(data, file)
    except YamlLoadError as error:
        raise InvalidActionMetadata(
            [MetadataError(file, p.line, p.path, p.message) for p in error.problems]
        ) from None
    return parse_action_metadata(root, file, allow_internal=allow_internal)
