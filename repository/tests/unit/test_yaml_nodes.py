"""The defensive YAML -> Node loader: lines, scalar types, and every refusal."""

from __future__ import annotations

import pytest

from ryax_repository.domain.action_metadata import InvalidActionMetadata, Node
from ryax_repository.infrastructure.yaml_nodes import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    YamlLoadError,
    load_action_metadata,
    load_nodes,
)


def problems(text: str | bytes) -> list[tuple[int, str]]:
    with pytest.raises(YamlLoadError) as caught:
        load_nodes(text, "f.yaml")
    return [(p.line, p.message) for p in caught.value.problems]


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
    ("text", "expected"),
    [
        ("v: 1", 1),
        ("v: -7", -7),
        ("v: 0x10", 16),
        ("v: 1.5", 1.5),
        ("v: 1.0e+3", 1000.0),
        ("v: 1e3", "1e3"),  # YAML 1.1 wants a dot and a signed exponent
        ("v: true", True),
        ("v: yes", True),
        ("v: off", False),
        ("v: null", None),
        ("v: ~", None),
        ("v:", None),
        ("v: '1.0'", "1.0"),
        ('v: "true"', "true"),
        ("v: hello world", "hello world"),
        ("v: 2024-01-01", "2024-01-01"),
        ("v: !!str 3", "3"),
        ("v: |\n  a\n  b\n", "a\nb\n"),
    ],
)
def test_scalars_are_read_as_the_yaml_core_types(text: str, expected: object) -> None:
    value = mapping(load_nodes(text, "f"))["v"][1].value
    assert value == expected
    assert type(value) is type(expected)


def test_keys_are_their_own_text() -> None:
    # YAML 1.1 reads `on` as a boolean and `1` as an integer; as keys they stay text.
    assert list(mapping(load_nodes("on: a\n1: b\nnull: c\n", "f"))) == ["on", "1", "null"]


def test_special_floats_are_kept_for_the_domain_to_refuse() -> None:
    value = mapping(load_nodes("v: .inf", "f"))["v"][1].value
    assert value == float("inf")


def test_anchor_is_refused() -> None:
    assert problems("a: &x 1\nb: 2\n") == [
        (1, "YAML syntax error: anchors (&name) and aliases (*name) are not allowed in this file")
    ]


def test_alias_is_refused_before_any_expansion() -> None:
    laughs = "a: [lol, lol]\n" + "".join(
        f"{chr(98 + i)}: [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)
    )
    laughs = laughs.replace("a: [lol, lol]", "a: &a [lol, lol]")
    [(line, message)] = problems(laughs)
    assert line == 1 and "anchors" in message


def test_merge_key_is_refused() -> None:
    assert problems("a:\n  <<: {b: 1}\n  c: 2\n") == [
        (2, "a: merge keys (<<) are not allowed in this file")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "v: !!python/object:os.system {}",
        "v: !!binary aGVsbG8=",
        "v: !custom x",
        "v: !!set {a, b}",
        "v: !!omap [a: 1]",
    ],
)
def test_tags_beyond_the_core_types_are_refused(text: str) -> None:
    [(line, message)] = problems(text)
    assert line == 1 and message.startswith("v: unsupported YAML tag")


def test_complex_keys_are_refused() -> None:
    assert problems("? [a, b]\n: 1\n") == [
        (1, "a key must be a plain value, not a list or a mapping")
    ]


def test_every_duplicate_key_is_reported_with_its_path() -> None:
    text = "spec:\n  id: a\n  id: b\n  inputs:\n  - name: x\n    name: y\nspec: {}\n"
    assert problems(text) == [
        (3, "spec.id: duplicate key 'id' (first given on line 2)"),
        (6, "spec.inputs[0].name: duplicate key 'name' (first given on line 5)"),
        (7, "spec: duplicate key 'spec' (first given on line 1)"),
    ]


def test_documents_over_one_mebibyte_are_refused() -> None:
    big = "a: " + "x" * MAX_DOCUMENT_BYTES + "\n"
    [(line, message)] = problems(big)
    assert line == 1 and "at most 1048576 bytes (1 MiB)" in message
    [(_, message)] = problems(big.encode())
    assert "at most" in message


def test_a_document_just_under_the_limit_is_read() -> None:
    text = "a: " + "x" * (MAX_DOCUMENT_BYTES - 10) + "\n"
    value = mapping(load_nodes(text, "f"))["a"][1].value
    assert isinstance(value, str) and len(value) == MAX_DOCUMENT_BYTES - 10


def test_invalid_utf8_is_reported_at_its_line() -> None:
    assert problems(b"a: 1\nb: \xff\n") == [(2, "the file is not valid UTF-8 text")]


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert mapping(load_nodes(b"\xef\xbb\xbfa: 1\n", "f"))["a"][1].value == 1


def test_control_characters_are_reported_at_their_line() -> None:
    [(line, message)] = problems("a: 1\nb: x\x07y\n")
    assert line == 2 and message.startswith("YAML syntax error: special characters")


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
    [(got_line, message)] = problems(text)
    assert got_line == line
    assert message.startswith("YAML syntax error: ")


def test_several_documents_are_refused() -> None:
    [(line, message)] = problems("a: 1\n---\nb: 2\n")
    assert line == 2 and "single document" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_document_is_refused(text: str) -> None:
    assert problems(text) == [(1, "the document is empty")]


def test_nesting_is_bounded() -> None:
    deep = "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    found = problems(deep)
    assert len(found) == 1
    assert found[0][0] == 1 and "nested more than 64 levels deep" in found[0][1]


def test_pathological_nesting_does_not_crash() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    [(_, message)] = problems(deep)
    assert "nested" in message


def test_load_action_metadata_turns_yaml_problems_into_metadata_errors() -> None:
    text = 'apiVersion: "ryax.tech/v2.0"\nkind: Processor\nkind: Publisher\n'
    with pytest.raises(InvalidActionMetadata) as caught:
        load_action_metadata(text, "actions/x/ryax_metadata.yaml")
    [error] = caught.value.errors
    assert (error.file, error.line, error.field_path) == ("actions/x/ryax_metadata.yaml", 3, "kind")
    assert str(error) == (
        "actions/x/ryax_metadata.yaml:3: kind: duplicate key 'kind' (first given on line 2)"
    )


def test_load_action_metadata_reports_syntax_errors_without_a_path() -> None:
    with pytest.raises(InvalidActionMetadata) as caught:
        load_action_metadata("a: [\n", "m.yaml")
    [error] = caught.value.errors
    assert error.field_path == "" and error.message.startswith("YAML syntax error")
