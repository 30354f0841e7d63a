"""The published Ryax workflow YAML (`apiVersion: "ryax.tech/v2.0"`, `kind: Workflows`).

The exact format is docs/reference/workflows.md. Documents come from users, so the text is read
by the kit's safe YAML loader (`ryax_kit.safe_yaml`), defensive and fast to refuse: at most
1 MiB, one document, no anchors or aliases (no billion-laughs expansion), no tags beyond the
YAML core types, no duplicate keys, at most 32 levels of nesting, and the read stops as soon as
`spec.functions` passes MAX_STEPS items. The reader below turns that tree into a workflow; every
problem carries its 1-based line and a path such as `spec.functions[3] (shout).inputs_values.text`.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

from ryax_kit.safe_yaml import YamlCode, YamlError, YamlLimits, YamlNode, YamlProblem, load_yaml

from ..application.files import file_path_in_zip, zip_path_problem
from ..application.ports import FileSpec, ParsedWorkflow
from ..domain.actions import IO, ActionRef, IOType, Origin, Resources
from ..domain.errors import InvalidDocument, InvalidInput
from ..domain.hpc import COUNT_KEYS, HPC_KEYS, canonical_key, check_value
from ..domain.problems import Problem
from ..domain.units import format_duration, format_memory, parse_duration, parse_memory
from ..domain.workflow import (
    MAX_RETRIES,
    MAX_STEPS,
    FileValue,
    InputValue,
    Position,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    Workflow,
    WorkflowResult,
)

API_VERSION: Final = "ryax.tech/v2.0"
KIND: Final = "Workflows"
MAX_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32


# ---- reading the text, defensively (the kit's safe YAML) --------------------------------------
LIMITS: Final = YamlLimits(
    max_bytes=MAX_DOCUMENT_BYTES,
    max_depth=MAX_DEPTH,
    max_items={"spec.functions": MAX_STEPS},
    # One value may take the whole document, as a static value set through the API may.
    max_scalar_bytes=MAX_DOCUMENT_BYTES,
)
#: The document's error codes by the kit's (the others are "invalid_document"); "too_large" is
#: answered 413.
_CODES: Final[dict[str, str]] = {
    YamlCode.TOO_MANY_ITEMS: "too_many_steps",
    YamlCode.TOO_LARGE: "too_large",
    YamlCode.INVALID_YAML: "invalid_yaml",
}


def _shown(node: YamlNode) -> str:
    """A scalar as written (`-1`, `'soon'`), anything else by its kind."""
    return repr(node.value) if node.kind == "scalar" else node.describe()


def _problem(line: int | None, path: str, message: str, code: str = "invalid_document") -> Problem:
    text = f"{path}: {message}" if path else message
    return Problem(code=code, message=text, line=line, path=path or None)


def _document_problem(p: YamlProblem) -> Problem:
    if p.code == YamlCode.TOO_MANY_ITEMS:
        return _problem(
            p.line,
            p.path,
            f"more than {MAX_STEPS} steps: a workflow has at most {MAX_STEPS}",
            "too_many_steps",
        )
    return Problem(code="invalid_document", message=p.message, line=p.line, path=p.path or None)


def _invalid_document(exc: YamlError) -> InvalidDocument:
    problems = [_document_problem(p) for p in exc.problems]
    return InvalidDocument(problems, code=_CODES.get(exc.code, "invalid_document"))


#: The mapping forms of an input value.
_VALUE_KEYS: Final = (
    "reference_value",
    "project_variable_value",
    "static_file",
    "static_directory",
)


# ---- the workflow document -> domain ----------------------------------------------------------
_TOP = ("apiVersion", "kind", "spec")
_SPEC = ("human_name", "description", "functions", "results")
_SETTINGS = ("resources", "addons", "placement", "timeout", "retries", "always_warm")
_STEP = (
    "id",
    "from",
    "version",
    "position",
    "inputs_values",
    "outputs",
    "streams_to",
    *_SETTINGS,
)
_RESOURCES = ("cpu", "memory", "time", "gpu")
_PLACEMENT = ("site", "node_pool", "labels")
_OUTPUT = ("name", "human_name", "help", "type", "optional", "enum_values", "origin")
_RESULT = ("key", "reference_value")


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.lines: dict[tuple[str | int, ...], tuple[int, str]] = {}
        self.files: dict[tuple[str, str], FileSpec] = {}

    def error(self, node: YamlNode, path: str, message: str) -> None:
        self.problems.append(_problem(node.line, path, message))

    def error_at(self, line: int, path: str, message: str) -> None:
        self.problems.append(_problem(line, path, message))

    def mapping(
        self, node: YamlNode, path: str, allowed: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, YamlNode] | None:
        if node.kind != "map":
            self.error(node, path, f"expected a mapping, got {node.describe()}")
            return None
        found: dict[str, YamlNode] = {}
        for key, value in node.entries.items():
            if key not in allowed:
                self.error_at(
                    node.key_lines[key],
                    path,
                    f"unknown field {key!r} (allowed: {', '.join(allowed)})",
                )
                continue
            found[key] = value
        for name in required:
            if name not in found:
                self.error(node, path, f"the field {name!r} is required")
        return found

    def string(self, node: YamlNode | None, path: str, *, hint_quote: bool = False) -> str | None:
        if node is None:
            return None
        if node.kind != "scalar" or not isinstance(node.value, str):
            hint = " (quote it)" if hint_quote and node.kind == "scalar" else ""
            self.error(node, path, f"expected a string, got {node.describe()}{hint}")
            return None
        return node.value

    def strings(self, node: YamlNode | None, path: str) -> list[str] | None:
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

    def reference(self, node: YamlNode, path: str) -> tuple[str, str] | None:
        text = self.string(node, path)
        if text is None:
            return None
        step, dot, output = text.partition(".")
        if not dot or not step or not output or "." in output:
            self.error(node, path, f'{text!r} is not a reference: write "<step id>.<output name>"')
            return None
        return step, output

    def parse(self, root: YamlNode) -> ParsedWorkflow:
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
            files=self.files,
        )

    def functions(self, node: YamlNode) -> list[Step]:
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

    def step(self, node: YamlNode, index: int, seen: dict[str, int]) -> Step | None:
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
        if any(name in fields for name in _SETTINGS):
            step.settings = self.settings(node, fields, path)
        return step if keep else None

    # -- per-step settings (docs/reference/workflows.md, "Step settings") -------------------
    def settings(self, node: YamlNode, fields: dict[str, YamlNode], path: str) -> StepSettings:
        before = len(self.problems)
        timeout = retries = site = node_pool = None
        labels: tuple[tuple[str, str], ...] = ()
        if "timeout" in fields:
            timeout = self.duration(fields["timeout"], f"{path}.timeout", positive=True)
        if "retries" in fields:
            value = fields["retries"].value
            if (
                fields["retries"].kind != "scalar"
                or isinstance(value, bool)
                or not (isinstance(value, int) and 0 <= value <= MAX_RETRIES)
            ):
                self.error(
                    fields["retries"],
                    f"{path}.retries",
                    f"expected a whole number from 0 to {MAX_RETRIES}, "
                    f"got {_shown(fields['retries'])}",
                )
            else:
                retries = value
        if "placement" in fields:
            where = f"{path}.placement"
            placement = self.mapping(fields["placement"], where, _PLACEMENT, ())
            if placement is not None:
                site = self.name(placement.get("site"), f"{where}.site")
                node_pool = self.name(placement.get("node_pool"), f"{where}.node_pool")
                if "labels" in placement:
                    labels = self.labels(placement["labels"], f"{where}.labels")
        resources = (
            self.resources(fields["resources"], f"{path}.resources")
            if ("resources" in fields)
            else None
        )
        hpc = self.addons(fields["addons"], f"{path}.addons") if "addons" in fields else ()
        always_warm = None
        if "always_warm" in fields:
            node_warm = fields["always_warm"]
            if node_warm.kind != "scalar" or not isinstance(node_warm.value, bool):
                self.error(
                    node_warm,
                    f"{path}.always_warm",
                    f"expected true or false, got {_shown(node_warm)}",
                )
            else:
                always_warm = node_warm.value
        settings = StepSettings(
            timeout_seconds=timeout,
            retries=retries,
            site_name=site,
            node_pool=node_pool,
            labels=labels,
            resources=resources,
            hpc=hpc,
            always_warm=always_warm,
        )
        if len(self.problems) == before:
            try:
                settings.check()
            except InvalidInput as exc:
                self.error(node, f"{path}.{exc.field}", exc.detail.partition(": ")[2])
        return settings

    def name(self, node: YamlNode | None, path: str) -> str | None:
        text = self.string(node, path, hint_quote=True)
        if node is not None and text is not None and (not text.strip() or len(text) > 200):
            self.error(node, path, "must be 1 to 200 characters")
            return None
        return text

    def labels(self, node: YamlNode, path: str) -> tuple[tuple[str, str], ...]:
        if node.kind != "map":
            self.error(
                node, path, f"expected a mapping of label names to values, got {node.describe()}"
            )
            return ()
        found = []
        for key, value in node.entries.items():
            text = self.string(value, f"{path}.{key}", hint_quote=True)
            if text is not None:
                found.append((key, text))
        return tuple(found)

    def duration(self, node: YamlNode, path: str, *, positive: bool) -> float | None:
        if node.kind != "scalar":
            self.error(
                node, path, f"expected a duration (e.g. 90s, 15m, 2h), got {node.describe()}"
            )
            return None
        try:
            seconds = parse_duration(node.value)
        except ValueError as exc:
            self.error(node, path, str(exc))
            return None
        if positive and seconds <= 0:
            self.error(node, path, "must be above zero")
            return None
        return seconds

    def resources(self, node: YamlNode, path: str) -> Resources | None:
        fields = self.mapping(node, path, _RESOURCES, ())
        if fields is None:
            return None
        cpu = memory = gpu = None
        time = None
        if "cpu" in fields:
            value = fields["cpu"].value
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                self.error(
                    fields["cpu"],
                    f"{path}.cpu",
                    f"expected a number of cores >= 0 (e.g. 0.5, 2), got {_shown(fields['cpu'])}",
                )
            else:
                cpu = float(value)
        if "memory" in fields:
            if fields["memory"].kind != "scalar":
                self.error(fields["memory"], f"{path}.memory", "expected a size (e.g. 512M, 4G)")
            else:
                try:
                    memory = parse_memory(fields["memory"].value)
                except ValueError as exc:
                    self.error(fields["memory"], f"{path}.memory", str(exc))
        if "time" in fields:
            time = self.duration(fields["time"], f"{path}.time", positive=False)
        if "gpu" in fields:
            value = fields["gpu"].value
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.error(
                    fields["gpu"],
                    f"{path}.gpu",
                    f"expected a whole number of GPUs >= 0, got {_shown(fields['gpu'])}",
                )
            else:
                gpu = value
        found = Resources(cpu=cpu, memory_bytes=memory, time_seconds=time, gpu=gpu)
        return None if found.is_empty() else found

    def addons(self, node: YamlNode, path: str) -> tuple[tuple[str, str], ...]:
        fields = self.mapping(node, path, ("hpc",), ())
        if fields is None or "hpc" not in fields:
            return ()
        where, hpc = f"{path}.hpc", fields["hpc"]
        if hpc.kind != "map":
            self.error(hpc, where, f"expected a mapping of HPC parameters, got {hpc.describe()}")
            return ()
        found: dict[str, str] = {}
        for raw, value in hpc.entries.items():
            line = hpc.key_lines[raw]
            try:
                key = canonical_key(raw)
            except InvalidInput as exc:
                self.error_at(line, f"{where}.{raw}", exc.detail.partition(": ")[2])
                continue
            if key in found:
                self.error_at(line, f"{where}.{raw}", f"{key!r} is given twice")
                continue
            if value.kind != "scalar" or value.value is None:
                self.error(
                    value, f"{where}.{raw}", f"expected a text or a number, got {value.describe()}"
                )
                continue
            try:
                found[key] = check_value(key, value.value)
            except InvalidInput as exc:
                self.error(value, f"{where}.{raw}", exc.detail.partition(": ")[2])
        return tuple((k, found[k]) for k in sorted(found, key=_HPC_ORDER.index))

    def position(self, node: YamlNode, path: str) -> Position | None:
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

    def inputs(self, node: YamlNode, step_id: str, path: str) -> dict[str, InputValue]:
        if node.kind != "map":
            self.error(
                node, path, f"expected a mapping of input names to values, got {node.describe()}"
            )
            return {}
        values: dict[str, InputValue] = {}
        for name, value_node in node.entries.items():
            where = f"{path}.{name}"
            self.lines[("step", step_id, "inputs_values", name)] = (node.key_lines[name], where)
            value = self.input_value(value_node, where)
            if isinstance(value, FileValue):
                self.files[(step_id, name)] = FileSpec(
                    path=value.key, directory=value.directory, line=value_node.line, where=where
                )
            if value is not None:
                values[name] = value
        return values

    def input_value(self, node: YamlNode, path: str) -> InputValue | None:
        if node.kind == "scalar":
            if node.value is None:
                self.error(node, path, "null is not a value: remove the input to leave it unset")
                return None
            return StaticValue(value=node.value)
        if node.kind == "seq":
            self.error(
                node,
                path,
                "expected a scalar, {reference_value: ...}, {project_variable_value: ...}, "
                "{static_file: ...} or {static_directory: ...}, got a list",
            )
            return None
        if len(node.entries) != 1 or next(iter(node.entries)) not in _VALUE_KEYS:
            keys = ", ".join(repr(k) for k in node.entries) or "none"
            self.error(
                node,
                path,
                'a mapping value is {reference_value: "<step>.<output>"}, '
                '{project_variable_value: "<name>"}, {static_file: "<path in the zip>"} '
                f'or {{static_directory: "<folder in the zip>/"}} (got keys {keys})',
            )
            return None
        key, inner = next(iter(node.entries.items()))
        if key in ("static_file", "static_directory"):
            return self.file_value(inner, f"{path}.{key}", directory=key == "static_directory")
        if key == "reference_value":
            ref = self.reference(inner, f"{path}.reference_value")
            return ReferenceValue(step_id=ref[0], output=ref[1]) if ref else None
        name = self.string(inner, f"{path}.project_variable_value")
        return SecretValue(name=name) if name is not None else None

    def file_value(self, node: YamlNode, path: str, *, directory: bool) -> FileValue | None:
        """A placeholder: the path (in `key`) is looked up in the zip by the import."""
        text = self.string(node, path)
        if text is None:
            return None
        problem = zip_path_problem(text.rstrip("/") if directory else text)
        if problem is not None:
            self.error(node, path, f"{text!r} is not a path in the zip: {problem}")
            return None
        name = text.rstrip("/").rsplit("/", 1)[-1]
        return FileValue(key=text, name=name, size=0, sha256="", directory=directory)

    def outputs(self, node: YamlNode, step_id: str, path: str) -> tuple[IO, ...]:
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
                try:  # published Ryax writes PATH, BODY...: any case is read
                    origin = Origin(origin_text.strip().lower())
                except ValueError:
                    self.error(
                        fields["origin"],
                        f"{where}.origin",
                        f"{origin_text!r} is not one of body, path, query, header",
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

    def results(self, node: YamlNode) -> list[WorkflowResult]:
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


_HPC_ORDER: Final = list(HPC_KEYS)


def parse_workflow(data: bytes) -> ParsedWorkflow:
    """The document as a workflow definition, with its format problems (never raises for those);
    raises InvalidDocument when the text is not an acceptable YAML document at all."""
    try:
        root = load_yaml(data, limits=LIMITS)
    except YamlError as exc:
        raise _invalid_document(exc) from None
    return _Reader().parse(root)


# ---- domain -> the workflow document ----------------------------------------------------------
class _Quoted(str):
    __slots__ = ()


class _FlowMap(dict[str, Any]):
    pass


class _Literal(str):
    """A multi-line text written as a `|` block (a script stays readable)."""

    __slots__ = ()


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


def _represent_literal(dumper: _Dumper, value: _Literal) -> yaml.Node:
    # A block cannot hold trailing spaces on a line nor some control characters: PyYAML then
    # falls back to a quoted style by itself.
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_Dumper.add_representer(_Literal, _represent_literal)
_Dumper.add_representer(
    _FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True)
)
_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


def _value_doc(step_id: str, name: str, value: InputValue) -> Any:
    if isinstance(value, StaticValue):
        return value.value
    if isinstance(value, SecretValue):
        return {"project_variable_value": value.name}
    if isinstance(value, FileValue):
        key = "static_directory" if value.directory else "static_file"
        return {key: file_path_in_zip(step_id, name, value)}
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


def _settings_doc(s: StepSettings) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    r = s.resources
    if r is not None and not r.is_empty():
        resources: dict[str, Any] = {}
        if r.cpu is not None:
            resources["cpu"] = int(r.cpu) if r.cpu.is_integer() else r.cpu
        if r.memory_bytes is not None:
            resources["memory"] = format_memory(r.memory_bytes)
        if r.time_seconds is not None:
            resources["time"] = format_duration(r.time_seconds)
        if r.gpu is not None:
            resources["gpu"] = r.gpu
        doc["resources"] = _FlowMap(resources)
    if s.hpc:
        doc["addons"] = {"hpc": {k: _hpc_value(k, v) for k, v in s.hpc}}
    placement: dict[str, Any] = {}
    if s.site_name is not None:
        placement["site"] = s.site_name
    if s.node_pool is not None:
        placement["node_pool"] = s.node_pool
    if s.labels:
        placement["labels"] = _FlowMap(s.labels)
    if placement:
        doc["placement"] = placement
    if s.timeout_seconds is not None:
        doc["timeout"] = format_duration(s.timeout_seconds)
    if s.retries is not None:
        doc["retries"] = s.retries
    if s.always_warm is not None:
        doc["always_warm"] = s.always_warm
    return doc


def _hpc_value(key: str, value: str) -> Any:
    if key in COUNT_KEYS or (key == "nodes" and value.isdigit()):
        return int(value)
    if key == "exclusive":
        return value == "true"
    if key == "custom_script" and "\n" in value:
        return _Literal(value)
    return value


def _not_exported(workflow: Workflow) -> list[str]:
    notes = []
    for step in workflow.steps:
        parts = []
        if step.human_name:
            parts.append("human name")
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
            doc["inputs_values"] = {n: _value_doc(step.id, n, v) for n, v in step.inputs.items()}
        if step.outputs:
            doc["outputs"] = [_output_doc(o) for o in step.outputs]
        doc["streams_to"] = _FlowList(step.streams_to)
        doc.update(_settings_doc(step.settings))
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
