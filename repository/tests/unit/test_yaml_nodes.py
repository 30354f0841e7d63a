"""A `ryax_metadata.yaml` read into the domain's `Node` tree: lines, limits, and every refusal
of the defensive loader reported as a metadata error at its line. The loader itself (scalar
types, each rule, both parsers) is tested in kit/tests/unit/test_safe_yaml.py."""

from __future__ import annotations

import pytest

from ryax_repository.domain.action_metadata import InvalidActionMetadata, Node
from ryax_repository.infrastructure.yaml_nodes import load_action_metadata, load_nodes

MIB = 1024 * 1024
FILE = "actions/x/ryax_metadata.yaml"
TAGS_ALLOWED = "is not allowed (only the YAML core types: strings, numbers, booleans, null, "


def refusals(text: str | bytes) -> list[tuple[int, str, str]]:
    """(line, field path, message) of every problem, each reported against FILE."""
    with pytest.raises(InvalidActionMetadata) as caught:
        load_action_metadata(text, FILE)
    assert {error.file for error in caught.value.errors} == {FILE}
    return [(e.line, e.field_path, e.message) for e in caught.value.errors]


def mapping(node: Node) -> dict[str, tuple[int, Node]]:
    assert isinstance(node.value, dict)
    return node.value


def test_lines_and_columns_are_one_based() -> None:
    root = load_nodes("a: 1\nb:\n  - x\n  - {c: d}\n", "f.yaml")
    assert (root.line, root.column) == (1, 1)
    top = mapping(root)
    assert list(top) == ["a", "b"]
    assert top["a"][0] == 1 and top["a"][1] == Node(1, 1, 4)
    key_line, seq = top["b"]
    assert key_line == 2 and seq.line == 3 and seq.column == 3
    assert isinstance(seq.value, list)
    assert seq.value[0] == Node("x", 3, 5)
    inner = seq.value[1]
    assert (inner.line, inner.column) == (4, 5)
    assert mapping(inner)["c"] == (4, Node("d", 4, 9))


def test_keys_keep_document_order() -> None:
    assert list(mapping(load_nodes("z: 1\na: 2\nm: 3\n", "f"))) == ["z", "a", "m"]


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("a: &x 1\nb: 2\n", 1, "a", "a: anchors (&name) and aliases (*name) are not allowed"),
        ("a:\n  <<: {b: 1}\n  c: 2\n", 2, "a", "a: merge keys (<<) are not allowed"),
        ("? [a, b]\n: 1\n", 1, "", "a key must be a plain value, not a list or a mapping"),
        (b"a: 1\nb: \xff\n", 2, "", "the document is not valid UTF-8 text"),
        (
            "a: 1\n---\nb: 2\n",
            2,
            "",
            "only one YAML document is accepted; a second one starts here",
        ),
        ("", 1, "", "the document is empty"),
        ("# only a comment\n", 1, "", "the document is empty"),
        ("---\n", 1, "", "the document is empty"),
        ("v: .inf", 1, "v", "v: '.inf' is not a finite number: only finite numbers are accepted"),
    ],
)
def test_what_the_loader_refuses_is_a_metadata_error_at_its_line(
    text: str | bytes, line: int, path: str, message: str
) -> None:
    assert refusals(text) == [(line, path, message)]


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("v: !!python/object:os.system {}", "tag:yaml.org,2002:python/object:os.system"),
        ("v: !!binary aGVsbG8=", "tag:yaml.org,2002:binary"),
        ("v: !custom x", "!custom"),
        ("v: !!set {a, b}", "tag:yaml.org,2002:set"),
        ("v: !!omap [a: 1]", "tag:yaml.org,2002:omap"),
    ],
)
def test_tags_beyond_the_core_types_are_refused(text: str, tag: str) -> None:
    [(line, path, message)] = refusals(text)
    assert (line, path) == (1, "v")
    assert message.startswith(f"v: the tag {tag} {TAGS_ALLOWED}")


def test_every_duplicate_key_is_reported_with_its_path() -> None:
    text = "spec:\n  id: a\n  id: b\n  inputs:\n  - name: x\n    name: y\nspec: {}\n"
    assert refusals(text) == [
        (3, "spec.id", "spec.id: duplicate key 'id' (first given on line 2)"),
        (
            6,
            "spec.inputs[0].name",
            "spec.inputs[0].name: duplicate key 'name' (first given on line 5)",
        ),
        (7, "spec", "spec: duplicate key 'spec' (first given on line 1)"),
    ]


def test_control_characters_are_reported_at_their_line() -> None:
    [(line, path, message)] = refusals("a: 1\nb: x\x07y\n")
    assert (line, path) == (2, "")
    # libyaml says "control characters", PyYAML "special characters".
    assert message.startswith("YAML syntax error: ") and "characters are not allowed" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\n b: 2\n", 2),
        ("a: 1\nb: 'unclosed\n", 3),
        ("a:\n  - 1\n  b: 2\n", 3),
        ("a: [1, 2\n", 2),
        ("a: 1\n\tb: 2\n", 2),
    ],
)
def test_syntax_errors_carry_their_line(text: str, line: int) -> None:
    [(got_line, path, message)] = refusals(text)
    assert (got_line, path) == (line, "")
    assert message.startswith("YAML syntax error: ")


def test_documents_over_one_mebibyte_are_refused() -> None:
    big = "a: " + "x" * MIB + "\n"
    [(line, _, message)] = refusals(big)
    assert line == 1 and "at most 1048576 bytes (1 MiB)" in message
    [(_, _, message)] = refusals(big.encode())
    assert "at most" in message


def test_a_document_just_under_the_limit_is_read() -> None:
    text = "a: " + "x" * (MIB - 10) + "\n"
    value = mapping(load_nodes(text, "f"))["a"][1].value
    assert isinstance(value, str) and len(value) == MIB - 10


def test_nesting_is_bounded_at_64_levels() -> None:
    deep = "a: " + "[" * 69 + "]" * 69 + "\n"
    [(line, path, message)] = refusals(deep)
    assert line == 1 and path.startswith("a[0]")
    assert "the document is nested more than 64 levels deep" in message


def test_load_action_metadata_turns_yaml_problems_into_metadata_errors() -> None:
    text = 'apiVersion: "ryax.tech/v2.0"\nkind: Processor\nkind: Publisher\n'
    with pytest.raises(InvalidActionMetadata) as caught:
        load_action_metadata(text, FILE)
    [error] = caught.value.errors
    assert (error.file, error.line, error.field_path) == (FILE, 3, "kind")
    assert str(error) == f"{FILE}:3: kind: duplicate key 'kind' (first given on line 2)"


def test_load_action_metadata_reports_syntax_errors_without_a_path() -> None:
    with pytest.raises(InvalidActionMetadata) as caught:
        load_action_metadata("a: [\n", "m.yaml")
    [error] = caught.value.errors
    assert error.field_path == "" and error.message.startswith("YAML syntax error")
