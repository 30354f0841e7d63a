"""The published Ryax workflow YAML (`apiVersion: "ryax.tech/v2.0"`, `kind: Workflows`).

The exact format is docs/reference/workflows.md. Documents come from users, so reading is
defensive and fast to refuse: at most 1 MiB, one document, no anchors or aliases (no
billion-laughs expansion), no tags beyond the YAML core types, no duplicate keys, bounded
nesting, and the read stops as soon as `spec.functions` passes MAX_STEPS items. The loader
works on the parser's event stream (libyaml when available) so it can stop early; every
problem carries its 1-based line and a path such as `spec.functions[3] (shout).inputs_values.text`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from ..application.ports import ParsedWorkflow
from ..domain.actions import IO, ActionRef, IOType, Origin
from ..domain.errors import InvalidDocument
from ..domain.problems import Problem
from ..domain.workflow import (
    MAX_STEPS,
    InputValue,
    Position,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    Workflow,
    WorkflowResult,
)

API_VERSION: Final = "ryax.tech/v2.0"
KIND: Final = "Workflows"
MAX_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}


# ---- a line-numbered node tree ----------------------------------------------------------------
@dataclass(eq=False)
class YNode:
    kind: str  # "map", "seq" or "scalar"
    line: int
    value: Any = None  # scalar: the Python value
    tag: str = ""
    items: list[YNode] = field(default_factory=list)  # seq
    pairs: list[tuple[YNode, YNode]] = field(default_factory=list)  # map

    def describe(self) -> str:
        if self.kind == "map":
            return "a mapping"
        if self.kind == "seq":
            return "a list"
        return {
            "tag:yaml.org,2002:str": "a string",
            "tag:yaml.org,2002:int": "an integer",
            "tag:yaml.org,2002:float": "a float",
            "tag:yaml.org,2002:bool": "a boolean",
            "tag:yaml.org,2002:null": "null",
        }.get(self.tag, "a string")


def _problem(line: int | None, path: str, message: str, code: str = "invalid_document") -> Problem:
    text = f"{path}: {message}" if path else message
    return Problem(code=code, message=text, line=line, path=path or None)


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


class _Composer:
    """Builds YNodes from parser events, refusing what an untrusted document must not hold."""

    def __init__(self) -> None:
        self._constructor = yaml.SafeLoader("")
        self._resolver = yaml.resolver.Resolver()

    def scalar(self, event: yaml.ScalarEvent) -> YNode:
        line = _line(event)
        if event.tag not in (None, "!"):
            tag = event.tag
            if tag not in _SCALAR_TAGS:
                raise InvalidDocument([_problem(line, "", f"the tag {tag} is not allowed")])
        else:
            tag = self._resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, style=event.style)
        if tag == "tag:yaml.org,2002:str" or tag == "tag:yaml.org,2002:timestamp":
            # A date stays the text it was written as (our values are JSON, not datetimes).
            return YNode("scalar", line, event.value, "tag:yaml.org,2002:str")
        try:
            value = self._constructor.construct_object(node)
        except yaml.YAMLError as exc:
            raise InvalidDocument(
                [_problem(line, "", f"bad {tag.rsplit(':', 1)[-1]} value: {event.value!r} ({exc})")]
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidDocument(
                [_problem(line, "", f"{event.value!r}: only finite numbers are accepted")]
            )
        return YNode("scalar", line, value, tag)

    def compose(self, text: str) -> YNode:
        stack: list[tuple[YNode, list[YNode | None], str]] = []
        root: YNode | None = None
        documents = 0
        events: Iterator[yaml.Event] = yaml.parse(text, Loader=_Loader)
        for event in events:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise InvalidDocument(
                        [_problem(_line(event), "", "only one YAML document is accepted")]
                    )
                continue
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise InvalidDocument(
                    [
                        _problem(
                            _line(event),
                            "",
                            "anchors (&name) and aliases (*name) are not allowed",
                        )
                    ]
                )
            node: YNode | None = None
            if isinstance(event, yaml.ScalarEvent):
                node = self.scalar(event)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if event.tag not in (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
                    raise InvalidDocument(
                        [_problem(_line(event), "", f"the tag {event.tag} is not allowed")]
                    )
                if len(stack) >= MAX_DEPTH:
                    raise InvalidDocument(
                        [_problem(_line(event), "", "the document is nested too deeply")]
                    )
                kind = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
                path = self._child_path(stack)
                stack.append((YNode(kind, _line(event)), [None], path))
                continue
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                node = stack.pop()[0]
            else:
                continue
            if not stack:
                root = node
                continue
            self._attach(stack[-1], node)
        if root is None:
            raise InvalidDocument([_problem(1, "", "the document is empty")])
        return root

    @staticmethod
    def _child_path(stack: list[tuple[YNode, list[YNode | None], str]]) -> str:
        if not stack:
            return ""
        parent, pending, path = stack[-1]
        if parent.kind == "map":
            key = pending[0]
            return f"{path}.{key.value}" if key is not None else path
        return f"{path}[]"

    @staticmethod
    def _attach(frame: tuple[YNode, list[YNode | None], str], node: YNode) -> None:
        parent, pending, path = frame
        if parent.kind == "seq":
            parent.items.append(node)
            if path == ".spec.functions" and len(parent.items) > MAX_STEPS:
                raise InvalidDocument(
                    [
                        _problem(
                            node.line,
                            "spec.functions",
                            f"more than {MAX_STEPS} steps: a workflow has at most {MAX_STEPS}",
                            "too_many_steps",
                        )
                    ],
                    code="too_many_steps",
                )
            return
        key = pending[0]
        if key is None:
            if node.kind != "scalar" or not isinstance(node.value, str):
                raise InvalidDocument(
                    [_problem(node.line, path.lstrip("."), "mapping keys must be strings")]
                )
            for existing, _ in parent.pairs:
                if existing.value == node.value:
                    raise InvalidDocument(
                        [
                            _problem(
                                node.line,
                                path.lstrip("."),
                                f"the key {node.value!r} is given twice "
                                f"(first at line {existing.line})",
                            )
                        ]
                    )
            pending[0] = node
            return
        parent.pairs.append((key, node))
        pending[0] = None


def load_document(data: bytes) -> YNode:
    """Read one YAML document, defensively; raise InvalidDocument with the line of the fault."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(
            [
                _problem(
                    None,
                    "",
                    f"the document is {len(data)} bytes; at most "
                    f"{MAX_DOCUMENT_BYTES} (1 MiB) are accepted",
                )
            ],
            code="too_large",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidDocument([_problem(line, "", "the document is not UTF-8 text")]) from None
    try:
        return _Composer().compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = exc.problem or exc.context or "invalid YAML"
        raise InvalidDocument(
            [_problem(line, "", f"YAML syntax error: {message}")], code="invalid_yaml"
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidDocument(
            [_problem(None, "", f"YAML error: {exc}")], code="invalid_yaml"
        ) from None


# ---- the workflow document -> domain ----------------------------------------------------------
_TOP = ("apiVersion", "kind", "spec")
_SPEC = ("human_name", "description", "functions", "results")
_STEP = ("id", "from", "version", "position", "inputs_values", "outputs", "streams_to")
_OUTPUT = ("name", "human_name", "help", "type", "optional", "enum_values", "origin")
_RESULT = ("key", "reference_value")


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.lines: dict[tuple[str | int, ...], tuple[int, str]] = {}

    def error(self, node: YNode, path: str, message: str) -> None:
        self.problems.append(_problem(node.line, path, message))

    def mapping(
        self, node: YNode, path: str, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, YNode] | None:
        if node.kind != "map":
            self.error(node, path, f"expected a mapping, got {node.describe()}")
            return None
        found: dict[str, YNode] = {}
        for key, value in node.pairs:
            if key.value not in allowed:
                self.error(
                    key, path, f"unknown field {key.value!r} (allowed: {', '.join(allowed)})"
                )
                continue
            found[key.value] = value
        for name in required:
            if name not in found:
                self.error(node, path, f"the field {name!r} is required")
        return found

    def string(self, node: YNode | None, path: str, *, hint_quote: bool = False) -> str | None:
        if node is None:
            return None
        if node.kind != "scalar" or not isinstance(node.value, str):
            hint = " (quote it)" if hint_quote and node.kind == "scalar" else ""
            self.error(node, path, f"expected a string, got {node.describe()}{hint}")
            return None
        return node.value

    def strings(self, node: YNode | None, path: str) -> list[str] | None:
        if node is None:
            return None
        if node.kind != "seq":
            self.error(node, path, f"expected a list, got {node.describe()}")
            return None
        result = []
        for i, item in enumerate(node.items):
            value = self.string(item, f"{path}[{i}]")
            if value is not None:
                result.append(value)
        return result

    def reference(self, node: YNode, path: str) -> tuple[str, str] | None:
        text = self.string(node, path)
        if text is None:
            return None
        step, dot, output = text.partition(".")
        if not dot or not step or not output or "." in output:
            self.error(node, path, f'{text!r} is not a reference: write "<step id>.<output name>"')
            return None
        return step, output

    def parse(self, root: YNode) -> ParsedWorkflow:
        name, description = "", ""
        steps: list[Step] = []
        results: list[WorkflowResult] = []
        top = self.mapping(root, "", _TOP, _TOP)
        if top is not None:
            if "apiVersion" in top and self.string(top["apiVersion"], "apiVersion") not in (
                API_VERSION,
                None,
            ):
                self.error(top["apiVersion"], "apiVersion", f"must be {API_VERSION!r}")
            if "kind" in top and self.string(top["kind"], "kind") not in (KIND, None):
                self.error(top["kind"], "kind", f"must be {KIND!r}")
            spec_node = top.get("spec")
            spec = (
                self.mapping(spec_node, "spec", _SPEC, ("human_name", "functions"))
                if spec_node is not None
                else None
            )
            if spec is not None and spec_node is not None:
                self.lines[("workflow",)] = (spec_node.line, "spec")
                if "human_name" in spec:
                    self.lines[("name",)] = (spec["human_name"].line, "spec.human_name")
                    name = self.string(spec["human_name"], "spec.human_name") or ""
                if "description" in spec:
                    description = self.string(spec["description"], "spec.description") or ""
                if "functions" in spec:
                    self.lines[("workflow",)] = (spec["functions"].line, "spec.functions")
                    steps = self.functions(spec["functions"])
                if "results" in spec:
                    results = self.results(spec["results"])
        return ParsedWorkflow(
            name=name,
            description=description,
            steps=steps,
            results=results,
            lines=self.lines,
            problems=self.problems,
        )

    def functions(self, node: YNode) -> list[Step]:
        if node.kind != "seq":
            self.error(node, "spec.functions", f"expected a list, got {node.describe()}")
            return []
        steps: list[Step] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(node.items):
            step = self.step(item, index, seen)
            if step is not None:
                steps.append(step)
        return steps

    def step(self, node: YNode, index: int, seen: dict[str, int]) -> Step | None:
        """A step; a step too broken to keep is still read through, to report every problem."""
        path = f"spec.functions[{index}]"
        fields = self.mapping(node, path, _STEP, ("id", "from", "version"))
        if fields is None:
            return None
        step_id = self.string(fields.get("id"), f"{path}.id")
        action_id = self.string(fields.get("from"), f"{path}.from")
        version = self.string(fields.get("version"), f"{path}.version", hint_quote=True)
        keep = step_id is not None and action_id is not None and version is not None
        if step_id is not None:
            path = f"{path} ({step_id})"
            if step_id in seen:
                self.error(
                    fields["id"],
                    f"{path}.id",
                    f"step id {step_id!r} is already used by the step at line "
                    f"{seen[step_id]}; step ids are unique",
                )
                keep = False
            else:
                seen[step_id] = node.line
        # Locations of a dropped step must not shadow those of the step that has its id.
        key = step_id if keep and step_id is not None else f"#dropped-{index}"
        self.lines[("step", key)] = (node.line, path)
        if "from" in fields:
            self.lines[("step", key, "from")] = (fields["from"].line, f"{path}.from")
        step = Step(id=key, action=ActionRef(action_id=action_id or "", version=version or ""))
        if "position" in fields:
            step.position = self.position(fields["position"], f"{path}.position")
        if "inputs_values" in fields:
            self.lines[("step", key, "inputs_values")] = (
                fields["inputs_values"].line,
                f"{path}.inputs_values",
            )
            step.inputs = self.inputs(fields["inputs_values"], key, f"{path}.inputs_values")
        if "outputs" in fields:
            self.lines[("step", key, "outputs")] = (fields["outputs"].line, f"{path}.outputs")
            step.outputs = self.outputs(fields["outputs"], key, f"{path}.outputs")
        if "streams_to" in fields:
            self.lines[("step", key, "streams_to")] = (
                fields["streams_to"].line,
                f"{path}.streams_to",
            )
            step.streams_to = self.strings(fields["streams_to"], f"{path}.streams_to") or []
        return step if keep else None

    def position(self, node: YNode, path: str) -> Position | None:
        fields = self.mapping(node, path, ("x", "y"), ("x", "y"))
        if fields is None or "x" not in fields or "y" not in fields:
            return None
        coords: list[int | float] = []
        for axis in ("x", "y"):
            value = fields[axis].value
            if (
                fields[axis].kind != "scalar"
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                self.error(
                    fields[axis],
                    f"{path}.{axis}",
                    f"expected a number, got {fields[axis].describe()}",
                )
                return None
            coords.append(value)
        return Position(x=coords[0], y=coords[1])

    def inputs(self, node: YNode, step_id: str, path: str) -> dict[str, InputValue]:
        if node.kind != "map":
            self.error(
                node, path, f"expected a mapping of input names to values, got {node.describe()}"
            )
            return {}
        values: dict[str, InputValue] = {}
        for key, value_node in node.pairs:
            name = key.value
            where = f"{path}.{name}"
            self.lines[("step", step_id, "inputs_values", name)] = (key.line, where)
            value = self.input_value(value_node, where)
            if value is not None:
                values[name] = value
        return values

    def input_value(self, node: YNode, path: str) -> InputValue | None:
        if node.kind == "scalar":
            if node.value is None:
                self.error(node, path, "null is not a value: remove the input to leave it unset")
                return None
            return StaticValue(value=node.value)
        if node.kind == "seq":
            self.error(
                node,
                path,
                "expected a scalar, {reference_value: ...} or "
                "{project_variable_value: ...}, got a list",
            )
            return None
        if len(node.pairs) != 1 or node.pairs[0][0].value not in (
            "reference_value",
            "project_variable_value",
        ):
            keys = ", ".join(repr(k.value) for k, _ in node.pairs) or "none"
            self.error(
                node,
                path,
                'a mapping value is {reference_value: "<step>.<output>"} '
                f'or {{project_variable_value: "<name>"}} (got keys {keys})',
            )
            return None
        key, inner = node.pairs[0]
        if key.value == "reference_value":
            ref = self.reference(inner, f"{path}.reference_value")
            return ReferenceValue(step_id=ref[0], output=ref[1]) if ref else None
        name = self.string(inner, f"{path}.project_variable_value")
        return SecretValue(name=name) if name is not None else None

    def outputs(self, node: YNode, step_id: str, path: str) -> tuple[IO, ...]:
        if node.kind != "seq":
            self.error(node, path, f"expected a list, got {node.describe()}")
            return ()
        result: list[IO] = []
        for i, item in enumerate(node.items):
            where = f"{path}[{i}]"
            fields = self.mapping(item, where, _OUTPUT, ("name", "human_name", "help", "type"))
            if fields is None:
                continue
            name = self.string(fields.get("name"), f"{where}.name")
            human = self.string(fields.get("human_name"), f"{where}.human_name")
            help_text = self.string(fields.get("help"), f"{where}.help")
            type_text = self.string(fields.get("type"), f"{where}.type")
            io_type: IOType | None = None
            if type_text is not None:
                try:
                    io_type = IOType(type_text)
                except ValueError:
                    self.error(
                        fields["type"],
                        f"{where}.type",
                        f"unknown type {type_text!r} (types: {', '.join(str(t) for t in IOType)})",
                    )
            optional = False
            if "optional" in fields:
                if not isinstance(fields["optional"].value, bool):
                    self.error(fields["optional"], f"{where}.optional", "expected a boolean")
                else:
                    optional = fields["optional"].value
            enum_values = tuple(
                self.strings(fields.get("enum_values"), f"{where}.enum_values") or ()
            )
            if enum_values and io_type is not IOType.ENUM:
                self.error(
                    fields["enum_values"],
                    f"{where}.enum_values",
                    "enum_values is only for the enum type",
                )
            origin: Origin | None = None
            origin_text = self.string(fields.get("origin"), f"{where}.origin")
            if origin_text is not None:
                try:
                    origin = Origin(origin_text)
                except ValueError:
                    self.error(
                        fields["origin"],
                        f"{where}.origin",
                        f"{origin_text!r} is not one of body, path, query",
                    )
            if name is None or human is None or help_text is None or io_type is None:
                continue
            self.lines[("step", step_id, "outputs", name)] = (item.line, where)
            result.append(
                IO(
                    name=name,
                    type=io_type,
                    human_name=human,
                    help=help_text,
                    optional=optional,
                    enum_values=enum_values,
                    origin=origin,
                )
            )
        return tuple(result)

    def results(self, node: YNode) -> list[WorkflowResult]:
        if node.kind != "seq":
            self.error(node, "spec.results", f"expected a list, got {node.describe()}")
            return []
        results: list[WorkflowResult] = []
        for i, item in enumerate(node.items):
            where = f"spec.results[{i}]"
            fields = self.mapping(item, where, _RESULT, _RESULT)
            if fields is None:
                continue
            key = self.string(fields.get("key"), f"{where}.key")
            ref = (
                self.reference(fields["reference_value"], f"{where}.reference_value")
                if "reference_value" in fields
                else None
            )
            if key is None or ref is None:
                continue
            self.lines[("result", len(results))] = (item.line, where)
            results.append(WorkflowResult(key=key, step_id=ref[0], output=ref[1]))
        return results


def parse_workflow(data: bytes) -> ParsedWorkflow:
    """The document as a workflow definition, with its format problems (never raises for those);
    raises InvalidDocument when the text is not an acceptable YAML document at all."""
    return _Reader().parse(load_document(data))


# ---- domain -> the workflow document ----------------------------------------------------------
class _Quoted(str):
    __slots__ = ()


class _FlowMap(dict[str, Any]):
    pass


class _FlowList(list[Any]):
    pass


class _Dumper(yaml.SafeDumper):
    pass


_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: _Dumper, value: str) -> yaml.Node:
    # PyYAML folds Unicode line breaks in single-quoted scalars: double quotes escape them.
    style = '"' if any(c in value for c in _LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(
    _Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"')
)
_Dumper.add_representer(
    _FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True)
)
_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _value_doc(value: InputValue) -> Any:
    if isinstance(value, StaticValue):
        return value.value
    if isinstance(value, SecretValue):
        return {"project_variable_value": value.name}
    return {"reference_value": f"{value.step_id}.{value.output}"}


def _output_doc(io: IO) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": io.name,
        "human_name": io.human_name,
        "help": io.help,
        "type": str(io.type),
    }
    if io.optional:
        doc["optional"] = True
    if io.enum_values:
        doc["enum_values"] = list(io.enum_values)
    if io.origin is not None:
        doc["origin"] = str(io.origin)
    return doc


def _not_exported(workflow: Workflow) -> list[str]:
    notes = []
    for step in workflow.steps:
        parts = []
        if step.human_name:
            parts.append("human name")
        if not step.settings.is_empty():
            parts.append("settings (timeout, retries, placement, resources)")
        if any(o.has_default for o in step.outputs):
            parts.append("output defaults")
        if parts:
            notes.append(f"step {step.id}: {', '.join(parts)}")
    return notes


def render_workflow(workflow: Workflow) -> str:
    """The published format. What the format cannot hold is named in a leading comment."""
    functions = []
    for step in workflow.steps:
        doc: dict[str, Any] = {
            "id": step.id,
            "from": step.action.action_id,
            "version": _Quoted(step.action.version),
        }
        if step.position is not None:
            doc["position"] = _FlowMap(x=step.position.x, y=step.position.y)
        if step.inputs:
            doc["inputs_values"] = {n: _value_doc(v) for n, v in step.inputs.items()}
        if step.outputs:
            doc["outputs"] = [_output_doc(o) for o in step.outputs]
        doc["streams_to"] = _FlowList(step.streams_to)
        functions.append(doc)
    spec: dict[str, Any] = {"human_name": workflow.name}
    if workflow.description:
        spec["description"] = workflow.description
    spec["functions"] = functions
    if workflow.results:
        spec["results"] = [
            {"key": r.key, "reference_value": f"{r.step_id}.{r.output}"} for r in workflow.results
        ]
    document = {"apiVersion": _Quoted(API_VERSION), "kind": KIND, "spec": spec}
    text = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    header = ""
    notes = _not_exported(workflow)
    if notes:
        header = "# Not in the published workflow format, so not exported:\n" + "".join(
            f"#   {n}\n" for n in notes
        )
    return header + text


class RyaxWorkflowYaml:
    """WorkflowFormat adapter for the published YAML."""

    def parse(self, data: bytes) -> ParsedWorkflow:
        return parse_workflow(data)

    def render(self, workflow: Workflow) -> str:
        return render_workflow(workflow)
