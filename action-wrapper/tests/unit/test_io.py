"""Input conversion and output validation (pure domain)."""

from __future__ import annotations

import pytest

from ryax_action_wrapper.domain.errors import (
    InvalidDeclaration,
    InvalidInputValue,
    InvalidOutputValue,
)
from ryax_action_wrapper.domain.io import (
    MAX_INLINE_TEXT_BYTES,
    MISSING,
    IODeclaration,
    IOType,
    LocalDirectory,
    LocalFile,
    PathInfo,
    Value,
    convert_inputs,
    validate_output_set,
    validate_outputs,
)

FILES = {
    "/data/in.txt": PathInfo("file", 12),
    "/work/out.txt": PathInfo("file", 5),
    "/work/dir": PathInfo("directory"),
}


def probe(path: str) -> PathInfo:
    return FILES.get(path, PathInfo("missing"))


def decl(name: str, type_: str, **kw: object) -> IODeclaration:
    return IODeclaration.parse(name=name, type=type_, **kw)  # type: ignore[arg-type]


class TestDeclarations:
    def test_parse_types_case_insensitively(self) -> None:
        assert decl("a", "Integer").type is IOType.INTEGER

    def test_unknown_type_is_named(self) -> None:
        with pytest.raises(InvalidDeclaration, match="input 'a': unknown type 'table'"):
            decl("a", "table")

    def test_enum_needs_values(self) -> None:
        with pytest.raises(InvalidDeclaration, match="enum needs enum_values"):
            decl("a", "enum")

    def test_default_is_converted(self) -> None:
        assert decl("n", "integer", default_json="60").default == 60
        assert decl("s", "string", default_json='"abc"').default == "abc"
        assert decl("e", "enum", enum_values=["x", "y"], default_json="y").default == "y"
        assert decl("n", "integer").default is MISSING

    def test_bad_default_is_a_declaration_error(self) -> None:
        with pytest.raises(InvalidDeclaration, match="input 'n': default value"):
            decl("n", "integer", default_json='"abc"')
        with pytest.raises(InvalidDeclaration, match="cannot have a default"):
            decl("f", "file", default_json='"/x"')


class TestInputs:
    def test_each_type(self) -> None:
        decls = [
            decl("i", "integer"),
            decl("f", "float"),
            decl("b", "boolean"),
            decl("s", "string"),
            decl("l", "longstring"),
            decl("p", "password"),
            decl("e", "enum", enum_values=["a", "b"]),
            decl("file", "file"),
            decl("dir", "directory"),
        ]
        values: dict[str, Value] = {
            "i": 3,
            "f": 2,
            "b": True,
            "s": "x",
            "l": "long",
            "p": "secret",
            "e": "b",
            "file": LocalFile(path="/data/in.txt", name="in.txt"),
            "dir": LocalDirectory(path="/work/dir"),
        }
        request = convert_inputs(decls, values, probe)
        assert request == {
            "i": 3,
            "f": 2.0,
            "b": True,
            "s": "x",
            "l": "long",
            "p": "secret",
            "e": "b",
            "file": "/data/in.txt",
            "dir": "/work/dir",
        }
        assert isinstance(request["f"], float)

    def test_lenient_text_numbers(self) -> None:
        decls = [decl("i", "integer"), decl("f", "float"), decl("b", "boolean")]
        assert convert_inputs(decls, {"i": "7", "f": "1.5", "b": "TRUE"}, probe) == {
            "i": 7,
            "f": 1.5,
            "b": True,
        }

    def test_defaults_and_optional(self) -> None:
        decls = [decl("n", "integer", default_json="60"), decl("o", "string", optional=True)]
        assert convert_inputs(decls, {}, probe) == {"n": 60, "o": None}

    def test_missing_required_input_is_named(self) -> None:
        with pytest.raises(InvalidInputValue, match="input 'x': no value given"):
            convert_inputs([decl("x", "string")], {}, probe)

    @pytest.mark.parametrize(
        ("type_", "value", "message"),
        [
            ("integer", "abc", "expected an integer"),
            ("integer", True, "got a boolean"),
            ("integer", 2**70, "does not fit in 64 bits"),
            ("float", [1], "expected a float"),
            ("boolean", 1, "expected a boolean"),
            ("string", {"a": 1}, "expected a string"),
        ],
    )
    def test_wrong_types(self, type_: str, value: object, message: str) -> None:
        with pytest.raises(InvalidInputValue, match=message):
            convert_inputs([decl("x", type_)], {"x": value}, probe)  # type: ignore[dict-item]

    def test_enum_value_must_be_allowed(self) -> None:
        with pytest.raises(InvalidInputValue, match="'c' is not one of a, b"):
            convert_inputs([decl("e", "enum", enum_values=["a", "b"])], {"e": "c"}, probe)

    def test_file_must_exist(self) -> None:
        with pytest.raises(InvalidInputValue, match="expected a file at '/nope', found nothing"):
            convert_inputs([decl("f", "file")], {"f": LocalFile(path="/nope")}, probe)
        with pytest.raises(InvalidInputValue, match="not absolute"):
            convert_inputs([decl("f", "file")], {"f": "rel.txt"}, probe)

    def test_undeclared_values_pass_through(self) -> None:
        assert convert_inputs([], {"extra": 1}, probe) == {"extra": 1}


class TestOutputs:
    outputs = (decl("n", "integer"), decl("out", "file"), decl("o", "float", optional=True))

    def test_single_dict(self) -> None:
        result = validate_outputs(
            self.outputs, {"n": 1, "out": "out.txt", "junk": 1}, work_dir="/work", probe=probe
        )
        assert result.single
        assert result.sets == [
            {
                "n": 1,
                "out": LocalFile(path="/work/out.txt", name="out.txt", size=5),
                "o": None,
            }
        ]
        assert result.ignored == ("junk",)

    def test_list_of_dicts_is_several_output_sets(self) -> None:
        result = validate_outputs(
            self.outputs,
            [{"n": i, "out": "/work/out.txt", "o": i} for i in range(3)],
            work_dir="/work",
            probe=probe,
        )
        assert not result.single
        assert [s["n"] for s in result.sets] == [0, 1, 2]
        assert result.sets[2]["o"] == 2.0

    def test_none_means_no_outputs(self) -> None:
        assert validate_outputs((), None, work_dir="/w", probe=probe).sets == [{}]

    def test_missing_output_is_named(self) -> None:
        with pytest.raises(InvalidOutputValue, match="output 'out': missing"):
            validate_output_set(self.outputs, {"n": 1}, work_dir="/work", probe=probe)

    def test_wrong_type_is_named(self) -> None:
        with pytest.raises(InvalidOutputValue, match="output 'n': expected an integer, got str"):
            validate_output_set(
                self.outputs, {"n": "1", "out": "out.txt"}, work_dir="/work", probe=probe
            )
        with pytest.raises(InvalidOutputValue, match="output 'n': expected an integer, got bool"):
            validate_output_set(
                self.outputs, {"n": True, "out": "out.txt"}, work_dir="/work", probe=probe
            )

    def test_text_that_cannot_travel_is_named(self) -> None:
        text = (decl("text", "string"),)
        with pytest.raises(InvalidOutputValue, match=r"output 'text': contains a lone surrogate"):
            validate_output_set(text, {"text": "ab\ud800c"}, work_dir="/w", probe=probe)
        with pytest.raises(InvalidOutputValue, match=r"output 'text': is \d+ bytes of text"):
            validate_output_set(
                text, {"text": "x" * (MAX_INLINE_TEXT_BYTES + 1)}, work_dir="/w", probe=probe
            )
        fine = validate_output_set(text, {"text": "é" * 10}, work_dir="/w", probe=probe)
        assert fine[0] == {"text": "é" * 10}

    def test_error_names_the_output_set(self) -> None:
        with pytest.raises(InvalidOutputValue, match=r"output 'out': .* \(in output set 1\)"):
            validate_outputs(
                self.outputs,
                [{"n": 1, "out": "out.txt"}, {"n": 2, "out": "gone.txt"}],
                work_dir="/work",
                probe=probe,
            )

    def test_file_output_must_exist(self) -> None:
        with pytest.raises(InvalidOutputValue, match="expected a file at '/work/x', found nothing"):
            validate_output_set(self.outputs, {"n": 1, "out": "x"}, work_dir="/work", probe=probe)

    def test_not_a_dict(self) -> None:
        with pytest.raises(InvalidOutputValue, match="returned int"):
            validate_outputs(self.outputs, 3, work_dir="/w", probe=probe)
        with pytest.raises(InvalidOutputValue, match="item 0 is str"):
            validate_outputs(self.outputs, ["x"], work_dir="/w", probe=probe)

    def test_enum_and_boolean(self) -> None:
        decls = (decl("e", "enum", enum_values=["a"]), decl("b", "boolean"))
        assert validate_output_set(decls, {"e": "a", "b": False}, work_dir="/", probe=probe)[0] == {
            "e": "a",
            "b": False,
        }
        with pytest.raises(InvalidOutputValue, match="output 'e': 'z' is not one of a"):
            validate_output_set(decls, {"e": "z", "b": False}, work_dir="/", probe=probe)
