"""The defensive YAML loader: lines, columns and paths, scalar types, and every refusal.

Every test runs twice, with libyaml's event stream and with PyYAML's pure-Python one (the
fallback where libyaml is missing). The cases of the two loaders this module replaces
(repository's `yaml_nodes`, studio's `yaml_format`) are ported near the end.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ryax_kit import safe_yaml
from ryax_kit.safe_yaml import (
    YamlCode,
    YamlError,
    YamlLimits,
    YamlNode,
    YamlProblem,
    load_yaml,
    load_yaml_python,
)

MIB = 1024 * 1024
LOADERS: dict[str, Any] = {"python": yaml.SafeLoader}
if hasattr(yaml, "CSafeLoader"):
    LOADERS["libyaml"] = yaml.CSafeLoader


@pytest.fixture(autouse=True, params=sorted(LOADERS))
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(safe_yaml, "_LOADER", LOADERS[request.param])
    return LOADERS[request.param]


def refused(data: bytes | str, limits: YamlLimits | None = None) -> YamlError:
    with pytest.raises(YamlError) as caught:
        load_yaml(data, file="f.yaml", limits=limits or YamlLimits())
    return caught.value


def problems(data: bytes | str, limits: YamlLimits | None = None) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in refused(data, limits).problems]


def where(data: bytes | str, limits: YamlLimits | None = None) -> list[tuple[int, int, str, str]]:
    return [(p.line, p.column, p.path, p.code) for p in refused(data, limits).problems]


def value(text: str) -> Any:
    node = load_yaml(text).get("v")
    assert node is not None
    return node.value


# ---- the tree ---------------------------------------------------------------------------------
def test_lines_columns_and_paths() -> None:
    root = load_yaml("a: 1\nb:\n  - x\n  - {c: d}\nspec:\n  functions:\n  - inputs: {t: 1}\n")
    assert (root.kind, root.line, root.column, root.path) == ("map", 1, 1, "")
    assert list(root.entries) == ["a", "b", "spec"]
    assert root.key_lines == {"a": 1, "b": 2, "spec": 5}
    assert root.key_columns == {"a": 1, "b": 1, "spec": 1}
    assert root.entries["a"] == YamlNode("scalar", 1, 4, "a", 1)
    seq = root.entries["b"]
    assert (seq.kind, seq.line, seq.column, seq.path) == ("seq", 3, 3, "b")
    assert seq.items[0] == YamlNode("scalar", 3, 5, "b[0]", "x")
    inner = seq.items[1]
    assert (inner.kind, inner.line, inner.column, inner.path) == ("map", 4, 5, "b[1]")
    assert inner.key_lines == {"c": 4} and inner.key_columns == {"c": 6}
    assert inner.entries["c"] == YamlNode("scalar", 4, 9, "b[1].c", "d")
    deep = root.entries["spec"].entries["functions"].items[0].entries["inputs"].entries["t"]
    assert (deep.path, deep.line, deep.column, deep.value) == (
        "spec.functions[0].inputs.t",
        7,
        17,
        1,
    )


def test_keys_keep_document_order() -> None:
    assert list(load_yaml("z: 1\na: 2\nm: 3\n").entries) == ["z", "a", "m"]


def test_helpers() -> None:
    root = load_yaml("m: {}\ns: []\nt: x\ni: 1\nf: 1.5\nb: no\nn: ~\n")
    kinds = {key: node.describe() for key, node in root.entries.items()}
    assert kinds == {
        "m": "a mapping",
        "s": "a list",
        "t": "a string",
        "i": "an integer",
        "f": "a float",
        "b": "a boolean",
        "n": "null",
    }
    assert root.get("missing") is None
    t = root.get("t")
    assert t is not None and t.get("x") is None
    assert root.to_python() == {"m": {}, "s": [], "t": "x", "i": 1, "f": 1.5, "b": False, "n": None}
    assert load_yaml_python("- 1\n- [a, {b: c}]\n") == [1, ["a", {"b": "c"}]]
    assert load_yaml("just text").to_python() == "just text"
    assert load_yaml("null").value is None


# ---- scalars ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 1", 1),
        ("v: -7", -7),
        ("v: 0x10", 16),
        ("v: 0o17", "0o17"),  # YAML 1.1 octal is 017
        ("v: 017", 15),
        ("v: 1_000", 1000),
        ("v: 1:30", 90),  # sexagesimal, as SafeLoader reads it
        ("v: 1.5", 1.5),
        ("v: 1.0e+3", 1000.0),
        ("v: 1e3", "1e3"),  # YAML 1.1 wants a dot and a signed exponent
        ("v: true", True),
        ("v: yes", True),
        ("v: Off", False),
        ("v: y", "y"),
        ("v: null", None),
        ("v: ~", None),
        ("v:", None),
        ("v: '1.0'", "1.0"),
        ('v: "true"', "true"),
        ("v: hello world", "hello world"),
        ("v: 2024-01-01", "2024-01-01"),
        ("v: 2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("v: !!timestamp 2024-01-01", "2024-01-01"),
        ("v: !!str 3", "3"),
        ("v: !!int '3'", 3),
        ("v: !!float 1", 1.0),
        ("v: !!bool 'yes'", True),
        ("v: !!null ''", None),
        ("v: !<tag:yaml.org,2002:str> 3", "3"),
        ("v: |\n  a\n  b\n", "a\nb\n"),
        ("v: =", "="),
        ("v: <<", "<<"),
        ('v: "\\u00e9\\t"', "é\t"),
    ],
)
def test_scalars_are_read_as_the_yaml_core_types(text: str, expected: object) -> None:
    got = value(text)
    assert got == expected
    assert type(got) is type(expected)


def test_dates_stay_the_text_written() -> None:
    assert load_yaml_python("d: 2024-01-01\nt: 2024-01-01 10:00:00Z\n") == {
        "d": "2024-01-01",
        "t": "2024-01-01 10:00:00Z",
    }


def test_keys_are_their_own_text() -> None:
    # YAML 1.1 reads these as a boolean, an integer, null, a float and a date; as keys they
    # stay text, and `'<<'` quoted is an ordinary key.
    root = load_yaml("on: a\nyes: b\n1: c\nnull: d\n1.5: e\n2024-01-01: f\n'<<': g\n!!int 7: h\n")
    assert list(root.entries) == ["on", "yes", "1", "null", "1.5", "2024-01-01", "<<", "7"]


@pytest.mark.parametrize(
    "text", ["v: .inf", "v: -.Inf", "v: .NaN", "v: !!float .nan", "v: 1.0e+999"]
)
def test_non_finite_floats_are_refused(text: str) -> None:
    [(line, column, path, code)] = where(text)
    assert (line, column, path, code) == (1, 4, "v", YamlCode.NON_FINITE)
    assert "only finite numbers are accepted" in refused(text).problems[0].message


@pytest.mark.parametrize(
    "text", ["v: !!int abc", "v: 0x_", "v: 0b_", "v: !!float x", "v: !!bool maybe", "v: !!null x"]
)
def test_values_that_do_not_fit_their_type_are_refused(text: str) -> None:
    assert where(text) == [(1, 4, "v", YamlCode.INVALID_VALUE)]


def test_huge_integers_are_refused_not_crashing() -> None:
    assert where("v: " + "9" * 5000) == [(1, 4, "v", YamlCode.INVALID_VALUE)]


def test_a_lone_surrogate_is_refused() -> None:
    # PyYAML turns the escape into a lone surrogate; libyaml calls it a syntax error.
    [(line, _, _, code)] = where('v: "\\ud800"\n')
    assert line == 1 and code in (YamlCode.INVALID_VALUE, YamlCode.INVALID_YAML)
    assert where("v: \ud800") == [(1, 4, "", YamlCode.NOT_UTF8)]


# ---- anchors, merge keys, tags, keys ----------------------------------------------------------
def test_anchor_is_refused() -> None:
    error = refused("a: 1\nb: &x 1\n")
    assert [(p.line, p.column, p.path, p.code) for p in error.problems] == [
        (2, 4, "b", YamlCode.ANCHOR)
    ]
    assert str(error) == "f.yaml:2:4: b: anchors (&name) and aliases (*name) are not allowed"


def test_anchor_on_a_collection_and_alias_are_refused() -> None:
    assert where("a: &x [1]\n") == [(1, 4, "a", YamlCode.ANCHOR)]
    assert where("- *x\n") == [(1, 3, "[0]", YamlCode.ANCHOR)]


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9)
    )
    start = time.perf_counter()
    error = refused(bomb)
    assert time.perf_counter() - start < 0.1
    assert [(p.line, p.code) for p in error.problems] == [(1, YamlCode.ANCHOR)]


def test_merge_key_is_refused() -> None:
    error = refused("a:\n  <<: {b: 1}\n  c: 2\n")
    assert [(p.line, p.column, p.path, p.code) for p in error.problems] == [
        (2, 3, "a", YamlCode.MERGE_KEY)
    ]
    assert error.problems[0].message == "a: merge keys (<<) are not allowed"


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("v: !!python/object:os.system {}", 4),
        ("v: !!python/object/apply:os.system [ls]", 4),
        ("v: !!python/name:os.system", 4),
        ("v: !!binary aGVsbG8=", 4),
        ("v: !custom x", 4),
        ("v: !custom {a: 1}", 4),
        ("v: !!set {a, b}", 4),
        ("v: !!omap [a: 1]", 4),
        ("v: !!str {a: 1}", 4),
        ("v: !!map [1]", 4),
        ("v: !!seq {a: 1}", 4),
        ("v: !!merge x", 4),
    ],
)
def test_tags_beyond_the_core_types_are_refused(text: str, column: int) -> None:
    error = refused(text)
    assert [(p.line, p.column, p.path, p.code) for p in error.problems] == [
        (1, column, "v", YamlCode.TAG)
    ]
    assert error.problems[0].message.startswith("v: the tag ")


def test_a_tagged_key_is_refused() -> None:
    assert where("!!python/name:os.system : 1\n") == [(1, 1, "", YamlCode.TAG)]


def test_every_bad_tag_is_reported() -> None:
    assert [line for line, _ in problems("a: !x 1\nb: 2\nc: !y 3\nd: !!binary x\n")] == [1, 3, 4]


def test_complex_keys_are_refused() -> None:
    assert problems("? [a, b]\n: 1\n") == [
        (1, "a key must be a plain value, not a list or a mapping")
    ]
    assert where("m:\n  {a: 1}: 2\n  ok: 3\n") == [(2, 3, "m", YamlCode.COMPLEX_KEY)]


def test_every_duplicate_key_is_reported_with_its_path_and_first_line() -> None:
    text = "spec:\n  id: a\n  id: b\n  inputs:\n  - name: x\n    name: y\nspec: {}\n"
    error = refused(text)
    assert [(p.line, p.column, p.path, p.message, p.code) for p in error.problems] == [
        (3, 3, "spec.id", "spec.id: duplicate key 'id' (first given on line 2)", "duplicate_key"),
        (
            6,
            5,
            "spec.inputs[0].name",
            "spec.inputs[0].name: duplicate key 'name' (first given on line 5)",
            "duplicate_key",
        ),
        (7, 1, "spec", "spec: duplicate key 'spec' (first given on line 1)", "duplicate_key"),
    ]
    assert str(error).splitlines()[0] == (
        "f.yaml:3:3: spec.id: duplicate key 'id' (first given on line 2)"
    )


def test_keys_are_compared_as_text() -> None:
    # SafeLoader would read `1` and `01` as the same integer and keep the last silently.
    assert load_yaml_python("1: a\n01: b\n") == {"1": "a", "01": "b"}
    assert where("'1': a\n1: b\n") == [(2, 1, "1", YamlCode.DUPLICATE_KEY)]


def test_structural_problems_are_all_collected_then_a_syntax_error_stops() -> None:
    error = refused("a: 1\na: 2\nb: !x 1\nc: [\n")
    assert [(p.line, p.code) for p in error.problems] == [
        (2, "duplicate_key"),
        (3, "tag"),
        (5, "invalid_yaml"),
    ]
    assert error.code == "invalid_yaml"


# ---- the document as a whole ------------------------------------------------------------------
def test_a_document_over_the_limit_is_refused_before_parsing() -> None:
    one_more = b"- " + b"x" * (MIB - 3) + b"\n" + b"y"
    assert len(one_more) == MIB + 1
    for data in (one_more, one_more.decode()):
        error = refused(data)
        assert error.code == "too_large"
        assert [(p.line, p.column, p.path) for p in error.problems] == [(1, 1, "")]
        assert error.problems[0].message == (
            "the document is 1048577 bytes; at most 1048576 bytes (1 MiB) are accepted"
        )
    # Multi-byte characters count as bytes, not characters.
    assert refused("é" * (MIB // 2 + 1)).code == "too_large"


def test_a_document_of_exactly_the_limit_is_read() -> None:
    line = "- " + "x" * 1021 + "\n"
    data = line * 1024
    assert len(data) == MIB
    node = load_yaml(data)
    assert len(node.items) == 1024 and node.items[-1].line == 1024


def test_the_byte_limit_is_configurable() -> None:
    error = refused("a: 12345\n", YamlLimits(max_bytes=8))
    assert error.problems[0].message == (
        "the document is 9 bytes; at most 8 bytes (8 bytes) are accepted"
    )


def test_a_scalar_over_its_limit_is_refused() -> None:
    limits = YamlLimits(max_scalar_bytes=10)
    assert load_yaml("a: '0123456789'\n", limits=limits).to_python() == {"a": "0123456789"}
    assert where("a: ok\nb: '01234567890'\n", limits) == [(2, 4, "b", "scalar_too_large")]
    assert where("a: éééééé\n", limits) == [(1, 4, "a", "scalar_too_large")]  # 12 bytes
    assert where("'01234567890': 1\n", limits) == [(1, 1, "", "scalar_too_large")]
    big = "a: " + "x" * (256 * 1024 + 1) + "\n"
    error = refused(big)
    assert error.code == "scalar_too_large"
    assert "at most 262144 bytes (256 KiB) are accepted in one value" in error.problems[0].message


def test_invalid_utf8_is_reported_at_its_line_and_column() -> None:
    assert where(b"a: 1\nbc: \xff\n") == [(2, 5, "", "not_utf8")]
    assert where("é: 1\nb: ".encode() + b"\xc3\x28") == [(2, 4, "", "not_utf8")]
    assert problems(b"\xff") == [(1, "the document is not valid UTF-8 text")]
    # UTF-16, even with its byte order mark, is not UTF-8.
    assert refused("a: 1\n".encode("utf-16")).code == "not_utf8"


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert load_yaml_python(b"\xef\xbb\xbfa: 1\n") == {"a": 1}
    assert load_yaml_python("\ufeffa: 1\n") == {"a": 1}
    assert load_yaml(b"\xef\xbb\xbfa: 1\n").entries["a"].column == 4


def test_control_characters_are_reported_where_they_are() -> None:
    error = refused("é: 1\nbé: x\x07y\n")
    assert [(p.line, p.column, p.code) for p in error.problems] == [(2, 6, "invalid_yaml")]
    assert error.problems[0].message.startswith("YAML syntax error: ")
    assert "#x0007" in error.problems[0].message
    assert refused(b"a: \x00\n").code == "invalid_yaml"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\n b: 2\n", 2),
        ("a: 1\nb: 'unclosed\n", 3),
        ("a:\n  - 1\n  b: 2\n", 3),
        ("a: 1\n\tb: 2\n", 2),
        ("a: b: c\n", 1),
        ("[1, 2\n", 2),
        ("{a: 1\n", 2),
        ("a: 'x\n\n", 3),
    ],
)
def test_syntax_errors_carry_their_line(text: str, line: int) -> None:
    error = refused(text)
    [problem] = error.problems
    assert problem.line == line and problem.column >= 1 and problem.path == ""
    assert problem.message.startswith("YAML syntax error: ")
    assert error.code == "invalid_yaml"


def test_several_documents_are_refused() -> None:
    error = refused("a: 1\n---\nb: 2\n")
    assert [(p.line, p.column, p.code) for p in error.problems] == [(2, 1, "multiple_documents")]
    assert error.problems[0].message == (
        "only one YAML document is accepted; a second one starts here"
    )
    assert refused("a: 1\n...\n---\nb: 2\n").code == "multiple_documents"
    assert load_yaml_python("---\na: 1\n...\n") == {"a": 1}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "--- \n...\n"])
def test_an_empty_document_is_refused(text: str) -> None:
    error = refused(text)
    assert [(p.line, p.column, p.message) for p in error.problems] == [
        (1, 1, "the document is empty")
    ]
    assert error.code == "empty"


def test_an_explicit_null_document_is_not_empty() -> None:
    assert load_yaml("~\n").value is None
    assert load_yaml("!!null\n").value is None


# ---- nesting ----------------------------------------------------------------------------------
def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused() -> None:
    assert load_yaml_python("[" * 64 + "]" * 64) is not None
    error = refused("a: " + "[" * 64 + "]" * 64 + "\n")
    assert [(p.line, p.column, p.code) for p in error.problems] == [(1, 67, "too_deep")]
    assert error.problems[0].path == "a" + "[0]" * 63
    assert "nested more than 64 levels deep" in error.problems[0].message


def test_block_nesting_is_bounded_too() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(5)) + "  " * 5 + "v\n"
    assert load_yaml_python(text, limits=YamlLimits(max_depth=5)) is not None
    assert where(text, YamlLimits(max_depth=4)) == [(5, 9, "k0.k1.k2.k3", "too_deep")]


@pytest.mark.parametrize("bomb", ["[" * 10_000 + "]" * 10_000, "{a: " * 10_000 + "}" * 10_000])
def test_a_nesting_bomb_is_a_clean_error(bomb: str) -> None:
    start = time.perf_counter()
    error = refused(bomb)
    assert time.perf_counter() - start < 1.0
    assert error.code == "too_deep" and error.problems[0].line == 1


def test_a_nesting_bomb_of_block_lists_is_a_clean_error() -> None:
    assert refused("- " * 10_000 + "x\n").code == "too_deep"


# ---- max_items --------------------------------------------------------------------------------
def test_max_items_refuses_the_first_item_past_the_limit() -> None:
    limits = YamlLimits(max_items={"spec.functions": 2})
    ok = "spec:\n  functions:\n  - a\n  - b\n  other: [1, 2, 3]\n"
    assert load_yaml_python(ok, limits=limits) == {
        "spec": {"functions": ["a", "b"], "other": [1, 2, 3]}
    }
    error = refused("spec:\n  functions:\n  - a\n  - b\n  - {c: 1}\n  - d\n", limits)
    assert [(p.line, p.column, p.path, p.code) for p in error.problems] == [
        (5, 5, "spec.functions", "too_many_items")
    ]
    assert error.problems[0].message == (
        "spec.functions: more than 2 items (at most 2 are accepted)"
    )


def test_max_items_paths_may_match_any_index_and_the_root() -> None:
    limits = YamlLimits(max_items={"f[].outputs": 1, "": 3})
    assert where("f:\n- outputs: [a]\n- outputs: [a, b]\n", limits) == [
        (3, 16, "f[1].outputs", "too_many_items")
    ]
    assert where("[1, 2, 3, 4]", limits) == [(1, 11, "", "too_many_items")]
    assert YamlLimits(max_items={"f[1].x": 1}).items_limit("f[1].x") == 1


def test_max_items_stops_the_read_early() -> None:
    text = "functions:\n" + "- x\n" * 200_000 + "bad: [\n"
    start = time.perf_counter()
    error = refused(text, YamlLimits(max_items={"functions": 500}))
    elapsed = time.perf_counter() - start
    assert error.code == "too_many_items" and error.problems[0].line == 502
    assert elapsed < 0.3


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        YamlLimits(max_depth=0)
    with pytest.raises(ValueError, match="negative"):
        YamlLimits(max_items={"a": -1})
    items = {"a": 1}
    limits = YamlLimits(max_items=items)
    items["a"] = 5
    assert limits.max_items["a"] == 1


# ---- the error --------------------------------------------------------------------------------
def test_the_error_lists_every_problem_as_file_line_column() -> None:
    error = refused("a: 1\na: 2\nb: !x 3\n")
    assert str(error) == (
        "f.yaml:2:1: a: duplicate key 'a' (first given on line 1)\n"
        "f.yaml:3:4: b: the tag !x is not allowed (only the YAML core types: strings, numbers, "
        "booleans, null, lists and mappings)"
    )
    assert error.file == "f.yaml" and error.code == "duplicate_key"
    again = pickle.loads(pickle.dumps(error))
    assert (again.file, again.problems, again.code, str(again)) == (
        error.file,
        error.problems,
        error.code,
        str(error),
    )
    assert isinstance(error.problems[0], YamlProblem)


def test_the_default_file_name() -> None:
    with pytest.raises(YamlError, match=r"^<document>:1:1: the document is empty$"):
        load_yaml("")


# ---- ported: repository/tests/unit/test_yaml_nodes.py -----------------------------------------
def test_repository_alias_bomb_reports_the_first_anchor() -> None:
    laughs = "a: [lol, lol]\n" + "".join(
        f"{chr(98 + i)}: [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9)
    )
    laughs = laughs.replace("a: [lol, lol]", "a: &a [lol, lol]")
    [(line, message)] = problems(laughs)
    assert line == 1 and "anchors" in message


def test_repository_a_document_just_under_the_limit_is_read() -> None:
    limits = YamlLimits(max_scalar_bytes=MIB)
    text = "a: " + "x" * (MIB - 10) + "\n"
    got = load_yaml(text, limits=limits).entries["a"].value
    assert isinstance(got, str) and len(got) == MIB - 10


def test_repository_documents_over_one_mebibyte_are_refused() -> None:
    big = "a: " + "x" * MIB + "\n"
    [(line, message)] = problems(big)
    assert line == 1 and "at most 1048576 bytes (1 MiB)" in message
    [(_, message)] = problems(big.encode())
    assert "at most" in message


def test_repository_pathological_nesting_does_not_crash() -> None:
    [(_, message)] = problems("[" * 50_000 + "]" * 50_000)
    assert "nested" in message


# ---- ported: studio/tests/unit/test_yaml_format.py --------------------------------------------
HEAD = 'apiVersion: "ryax.tech/v2.0"\nkind: Workflows\nspec:\n  human_name: w\n  functions:\n'
STUDIO = YamlLimits(max_depth=32, max_items={"spec.functions": 1000})


def test_studio_aliases_are_refused_before_any_expansion() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 8)}]\n" for i in range(9)
    )
    start = time.perf_counter()
    error = refused(bomb, STUDIO)
    assert time.perf_counter() - start < 0.5
    assert error.problems[0].line == 1
    assert "anchors (&name) and aliases (*name) are not allowed" in error.problems[0].message


def test_studio_python_tags_and_unknown_tags_are_refused() -> None:
    assert "tag" in refused("a: !!python/object/apply:os.system [ls]\n").problems[0].message
    assert "tag" in refused("a: !custom 3\n").problems[0].message


def test_studio_syntax_errors_name_the_line() -> None:
    error = refused(HEAD + "  - id: [unclosed\n", STUDIO)
    assert error.code == "invalid_yaml"
    assert error.problems[0].line == 7
    assert "YAML syntax error" in error.problems[0].message


def test_studio_duplicate_keys_are_refused() -> None:
    error = refused(HEAD + "  - id: a\n    id: b\n", STUDIO)
    assert [(p.line, p.path) for p in error.problems] == [(7, "spec.functions[0].id")]
    assert "duplicate key 'id' (first given on line 6)" in error.problems[0].message


def test_studio_one_document_only_and_not_empty() -> None:
    assert "one YAML document" in refused(b"a: 1\n---\nb: 2\n").problems[0].message
    assert "empty" in refused(b"").problems[0].message
    assert "empty" in refused(b"# only a comment\n").problems[0].message


def test_studio_not_utf8_and_too_large() -> None:
    assert "UTF-8" in refused(b"a: 1\nb: \xff\xfe\n").problems[0].message
    assert refused(b"a: " + b"x" * MIB + b"\n").code == "too_large"


def test_studio_deep_nesting_is_refused() -> None:
    error = refused("a: " + "[" * 100 + "]" * 100 + "\n", STUDIO)
    assert error.code == "too_deep" and "nested more than 32 levels" in error.problems[0].message


def test_studio_ten_thousand_steps_are_refused_quickly() -> None:
    doc = HEAD + "".join(f'  - {{id: s{i}, from: a, version: "1"}}\n' for i in range(10_000))
    start = time.perf_counter()
    error = refused(doc, STUDIO)
    assert time.perf_counter() - start < 1.0
    assert error.code == "too_many_items"
    assert (error.problems[0].line, error.problems[0].path) == (1006, "spec.functions")


def test_studio_a_thousand_steps_are_read() -> None:
    doc = HEAD + "".join(f'  - {{id: s{i}, from: a, version: "1"}}\n' for i in range(1000))
    root = load_yaml(doc.encode(), limits=STUDIO)
    functions = root.entries["spec"].entries["functions"]
    assert len(functions.items) == 1000
    assert functions.items[999].entries["version"].value == "1"


def test_studio_yaml_11_scalars_are_read_as_published_ryax_reads_them() -> None:
    text = HEAD + (
        '  - id: a\n    from: b\n    version: "1"\n    inputs_values:\n'
        "      y: yes\n      n: ~\n      h: 0x10\n      d: 2024-01-01\n      f: 1.0e+3\n"
        "      v: 1.0\n"
    )
    step = load_yaml(text.encode(), limits=STUDIO).entries["spec"].entries["functions"].items[0]
    assert step.entries["inputs_values"].to_python() == {
        "y": True,
        "n": None,
        "h": 16,
        "d": "2024-01-01",
        "f": 1000.0,
        "v": 1.0,
    }
    assert step.entries["inputs_values"].entries["v"].describe() == "a float"
    assert "finite" in refused(HEAD + "  - {id: a, x: .inf}\n").problems[0].message


# ---- properties -------------------------------------------------------------------------------
def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not True, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
documents = st.recursive(
    st.one_of(st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=10), scalars)),
    lambda inner: st.one_of(
        st.lists(st.one_of(scalars, inner), max_size=4),
        st.dictionaries(st.text(max_size=10), st.one_of(scalars, inner), max_size=4),
    ),
    max_leaves=25,
)
PROPERTY = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(documents, st.sampled_from([None, False, True]))
def test_what_safe_dump_writes_loads_back_the_same(document: Any, flow: bool | None) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, sort_keys=False)
    assert same(load_yaml(text).to_python(), document)
    assert same(load_yaml_python(text.encode()), document)


@PROPERTY
@given(documents)
def test_the_values_are_those_safe_load_reads(document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=20)
    assert same(load_yaml(text).to_python(), yaml.safe_load(text))


yamlish = st.text(
    alphabet=st.sampled_from(list("ab1.-:?,[]{}!&*#|>'\"%@`~<=\n \t\r\x85\u2028é\x00\ufeff")),
    max_size=60,
)


@PROPERTY
@given(
    st.one_of(st.binary(max_size=200), yamlish.map(str.encode), yamlish),
    st.sampled_from(
        [YamlLimits(), YamlLimits(max_depth=2, max_items={"": 2, "a": 1}, max_scalar_bytes=4)]
    ),
)
def test_any_input_is_read_or_refused_with_a_yaml_error(
    data: bytes | str, limits: YamlLimits
) -> None:
    try:
        node = load_yaml(data, limits=limits)
    except YamlError as error:
        assert error.problems
        assert all(p.line >= 1 and p.column >= 1 and p.code for p in error.problems)
        return
    assert node.kind in ("map", "seq", "scalar")
    node.to_python()
