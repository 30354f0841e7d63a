"""Workflow validation: pure, exhaustive, every problem at once with the step and input it names.

`validate_workflow` never raises and never stops at the first problem: the studio shows the
whole list (GET .../errors), deploy refuses while it is not empty, import maps each problem to
its YAML line through `Problem.location`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set

from .actions import (
    ACCEPTS,
    IO,
    SECRET_TYPES,
    ActionKind,
    ActionRef,
    ActionVersion,
    IOType,
    static_value_problem,
)
from .errors import InvalidInput, TooLarge
from .forms import FORM_ID, form_output_problem, form_problems
from .problems import Problem
from .schedules import DEFAULT_MIN_INTERVAL_SECONDS, TIMER_IDS, timer_problems
from .workflow import (
    MAX_INPUTS_PER_STEP,
    MAX_OUTPUTS_PER_STEP,
    MAX_STEPS,
    FileValue,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    Workflow,
    check_static_size,
    check_step_id,
)


def _step_problem(step: Step, code: str, message: str, *extra: str) -> Problem:
    return Problem(
        code=code,
        message=f"step {step.id!r}: {message}",
        step_id=step.id,
        location=("step", step.id, *extra),
    )


def _input_problem(step: Step, name: str, code: str, message: str) -> Problem:
    return Problem(
        code=code,
        message=f"step {step.id!r}, input {name!r}: {message}",
        step_id=step.id,
        input_name=name,
        location=("step", step.id, "inputs_values", name),
    )


def step_outputs(step: Step, action: ActionVersion | None) -> list[IO]:
    """The outputs a step produces: its action's, plus its own when the action allows that."""
    if action is None:
        return []
    if action.dynamic_outputs:
        return [*action.outputs, *step.outputs]
    return list(action.outputs)


def validate_workflow(
    workflow: Workflow,
    actions: Mapping[ActionRef, ActionVersion],
    secrets: Set[str],
    min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
    variables: Mapping[str, StaticValue | FileValue] | None = None,
) -> list[Problem]:
    """Every problem of the workflow against the project's store, secrets and other project
    variables (`variables`: the value or file each value/file variable gives), a built-in
    timer's interval at least `min_interval_seconds`."""
    return _Validator(workflow, actions, secrets, min_interval_seconds, variables or {}).run()


class _Validator:
    def __init__(
        self,
        workflow: Workflow,
        actions: Mapping[ActionRef, ActionVersion],
        secrets: Set[str],
        min_interval_seconds: int = DEFAULT_MIN_INTERVAL_SECONDS,
        variables: Mapping[str, StaticValue | FileValue] | None = None,
    ) -> None:
        self.wf = workflow
        self.actions = actions
        self.secrets = secrets
        self.variables = variables or {}
        self.min_interval_seconds = min_interval_seconds
        self.problems: list[Problem] = []
        self.by_id: dict[str, Step] = {}
        for s in workflow.steps:
            self.by_id.setdefault(s.id, s)
        self.action_of: dict[str, ActionVersion | None] = {
            s.id: actions.get(s.action) for s in self.by_id.values()
        }
        self.parents: dict[str, list[str]] = workflow.parents()

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)

    def run(self) -> list[Problem]:
        self.structure()
        self.graph()
        self.triggers()
        ancestors = {s.id: self.ancestors(s.id) for s in self.by_id.values()}
        for step in self.wf.steps:
            if self.by_id.get(step.id) is not step:
                continue
            self.outputs(step)
            self.inputs(step, ancestors[step.id])
        self.results()
        return self.problems

    # ---- steps and actions ---------------------------------------------------------------------
    def sizes(self, step: Step) -> None:
        """A step's size: its values, its declared outputs, each static value."""
        if len(step.inputs) > MAX_INPUTS_PER_STEP:
            self.add(
                _step_problem(
                    step,
                    "too_many_inputs",
                    f"{len(step.inputs)} input values; at most {MAX_INPUTS_PER_STEP} are allowed",
                )
            )
        if len(step.outputs) > MAX_OUTPUTS_PER_STEP:
            self.add(
                _step_problem(
                    step,
                    "too_many_outputs",
                    f"{len(step.outputs)} outputs; at most {MAX_OUTPUTS_PER_STEP} are allowed",
                )
            )
        for name, value in step.inputs.items():
            if isinstance(value, StaticValue):
                try:
                    check_static_size(name, value.value)
                except TooLarge as exc:
                    self.add(_input_problem(step, name, "value_too_large", exc.detail))

    def structure(self) -> None:
        if len(self.wf.steps) > MAX_STEPS:
            self.add(
                Problem(
                    code="too_many_steps",
                    message=f"the workflow has {len(self.wf.steps)} steps; at most "
                    f"{MAX_STEPS} are allowed",
                )
            )
        seen: set[str] = set()
        for step in self.wf.steps:
            self.sizes(step)
            try:
                check_step_id(step.id)
            except InvalidInput as exc:
                self.add(_step_problem(step, "invalid_step_id", exc.detail.split(": ", 1)[-1]))
            if step.id in seen:
                self.add(
                    _step_problem(
                        step, "duplicate_step", "another step has the same id; step ids are unique"
                    )
                )
            seen.add(step.id)
            if self.action_of.get(step.id) is None and self.by_id.get(step.id) is step:
                versions = sorted(
                    a.version for a in self.actions if a.action_id == step.action.action_id
                )
                hint = (
                    f" (versions in the store: {', '.join(versions)})"
                    if versions
                    else " (no version of this action is in the project's store)"
                )
                self.add(
                    _step_problem(
                        step,
                        "unknown_action",
                        f"action {step.action.action_id!r} version {step.action.version!r} "
                        f"is not in the project's action store{hint}",
                        "from",
                    )
                )

    # ---- links ---------------------------------------------------------------------------------
    def graph(self) -> None:
        for step in self.wf.steps:
            if self.by_id.get(step.id) is not step:
                continue
            seen: set[str] = set()
            for child in step.streams_to:
                if child == step.id:
                    self.add(_step_problem(step, "self_link", "streams to itself", "streams_to"))
                elif child not in self.by_id:
                    self.add(
                        _step_problem(
                            step,
                            "dangling_link",
                            f"streams to unknown step {child!r}",
                            "streams_to",
                        )
                    )
                elif child in seen:
                    self.add(
                        _step_problem(
                            step, "duplicate_link", f"streams to {child!r} twice", "streams_to"
                        )
                    )
                seen.add(child)
        for cycle in self.cycles():
            first = self.by_id[cycle[0]]
            path = " -> ".join(repr(c) for c in [*cycle, cycle[0]])
            self.add(_step_problem(first, "cycle", f"the links make a cycle: {path}", "streams_to"))

    def cycles(self) -> list[list[str]]:
        """One representative cycle per strongly connected component of more than one step."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        components: list[list[str]] = []
        counter = 0
        children = {
            s.id: [c for c in s.streams_to if c in self.by_id and c != s.id]
            for s in self.by_id.values()
        }
        for root in self.by_id:
            if root in index:
                continue
            # Iterative Tarjan: a workflow may have 1000 steps in a chain.
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, i = work.pop()
                if i == 0:
                    index[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                recurse = False
                for j in range(i, len(children[node])):
                    child = children[node][j]
                    if child not in index:
                        work.append((node, j + 1))
                        work.append((child, 0))
                        recurse = True
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                if recurse:
                    continue
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(component)
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
        order = {s.id: n for n, s in enumerate(self.wf.steps)}
        return [
            self.cycle_path(sorted(c, key=order.__getitem__))
            for c in sorted(components, key=lambda c: min(order[m] for m in c))
        ]

    def cycle_path(self, members: list[str]) -> list[str]:
        """A cycle through the first member, inside its component."""
        inside = set(members)
        start = members[0]
        previous: dict[str, str] = {}
        todo = [start]
        while todo:
            node = todo.pop(0)
            for child in self.by_id[node].streams_to:
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return list(reversed(path))
                if child in inside and child not in previous and child != start:
                    previous[child] = node
                    todo.append(child)
        return members

    def ancestors(self, step_id: str) -> set[str]:
        seen: set[str] = set()
        todo = list(self.parents.get(step_id, []))
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            todo.extend(self.parents.get(current, []))
        seen.discard(step_id)
        return seen

    # ---- triggers ------------------------------------------------------------------------------
    def triggers(self) -> None:
        steps = [s for s in self.wf.steps if self.by_id.get(s.id) is s]
        triggers = [
            s
            for s in steps
            if (a := self.action_of[s.id]) is not None and a.kind is ActionKind.TRIGGER
        ]
        unknown = [s for s in steps if self.action_of[s.id] is None]
        if not triggers:
            if not unknown:
                self.add(
                    Problem(
                        code="no_trigger",
                        message="the workflow has no trigger: add exactly one step "
                        "whose action is a trigger (e.g. httpapijson)",
                    )
                )
            return
        if len(triggers) > 1:
            names = ", ".join(repr(t.id) for t in triggers)
            for extra in triggers[1:]:
                self.add(
                    _step_problem(
                        extra,
                        "multiple_triggers",
                        f"is a trigger too: a workflow has exactly one trigger "
                        f"(found {len(triggers)}: {names})",
                        "from",
                    )
                )
        if triggers[0] is not steps[0]:
            self.add(
                _step_problem(
                    triggers[0],
                    "trigger_not_first",
                    f"is the trigger and must be the first step "
                    f"(the first step is {steps[0].id!r})",
                    "from",
                )
            )
        for t in triggers:
            if self.parents.get(t.id):
                names = ", ".join(repr(p) for p in self.parents[t.id])
                self.add(
                    _step_problem(
                        t,
                        "trigger_has_parents",
                        f"is a trigger and cannot have upstream steps (streamed to by {names})",
                    )
                )
        if len(triggers) == 1:
            reachable = self.descendants(triggers[0].id)
            for s in steps:
                if s is triggers[0] or s.id in reachable:
                    continue
                action = self.action_of[s.id]
                if action is not None and action.kind is ActionKind.TRIGGER:
                    continue
                self.add(
                    _step_problem(
                        s,
                        "not_connected",
                        f"is not downstream of the trigger {triggers[0].id!r}: link it from "
                        "an upstream step (streams_to)",
                    )
                )

    def descendants(self, step_id: str) -> set[str]:
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            current = self.by_id.get(todo.pop())
            if current is None:
                continue
            for child in current.streams_to:
                if child not in seen and child in self.by_id:
                    seen.add(child)
                    todo.append(child)
        return seen

    # ---- outputs -------------------------------------------------------------------------------
    def outputs(self, step: Step) -> None:
        action = self.action_of[step.id]
        if action is None or not step.outputs:
            return
        if not action.dynamic_outputs:
            self.add(
                _step_problem(
                    step,
                    "outputs_not_allowed",
                    f"action {action.action_id!r} declares its outputs itself; only a trigger "
                    "with dynamic outputs (httpapijson, postgw) takes outputs in the workflow",
                    "outputs",
                )
            )
            return
        declared = {o.name for o in action.outputs}
        seen: set[str] = set()
        for out in step.outputs:
            where = ("outputs", out.name)
            if out.name in seen or out.name in declared:
                self.add(
                    _step_problem(
                        step, "duplicate_output", f"output {out.name!r} is declared twice", *where
                    )
                )
            seen.add(out.name)
            if action.builtin and action.action_id == FORM_ID:
                found = form_output_problem(out)
                if found is not None:
                    self.add(_step_problem(step, found[0], found[1], *where))
            if out.type is IOType.PASSWORD:
                self.add(
                    _step_problem(
                        step,
                        "invalid_output",
                        f"output {out.name!r}: type password cannot be an output",
                        *where,
                    )
                )
            if out.type is IOType.ENUM and not out.enum_values:
                self.add(
                    _step_problem(
                        step,
                        "invalid_output",
                        f"output {out.name!r}: an enum needs enum_values",
                        *where,
                    )
                )

    # ---- inputs --------------------------------------------------------------------------------
    def inputs(self, step: Step, ancestors: Iterable[str]) -> None:
        action = self.action_of[step.id]
        if action is None:
            return
        upstream = set(ancestors)
        declared = {i.name: i for i in action.inputs}
        for name, value in step.inputs.items():
            io = declared.get(name)
            if io is None:
                known = ", ".join(repr(n) for n in declared) or "none"
                self.add(
                    _input_problem(
                        step,
                        name,
                        "unknown_input",
                        f"action {action.action_id!r} version "
                        f"{action.version!r} has no such input (inputs: {known})",
                    )
                )
                continue
            if isinstance(value, SecretValue) and value.name in self.variables:
                self.given(
                    step, name, io, self.variables[value.name], f"project variable {value.name!r}: "
                )
            elif isinstance(value, StaticValue | FileValue):
                self.given(step, name, io, value)
            elif isinstance(value, SecretValue):
                if value.name not in self.secrets:
                    self.add(
                        _input_problem(
                            step,
                            name,
                            "unknown_secret",
                            f"the project has no secret or variable named {value.name!r}",
                        )
                    )
                elif io.type not in SECRET_TYPES:
                    self.add(
                        _input_problem(
                            step,
                            name,
                            "secret_not_allowed",
                            f"a {io.type} input cannot take a secret (secrets "
                            "go to password, string and longstring inputs)",
                        )
                    )
            else:
                self.reference(step, name, io, value, upstream)
        if action.builtin and action.action_id == FORM_ID:
            static = {n: v.value for n, v in step.inputs.items() if isinstance(v, StaticValue)}
            for name, code, message in form_problems(static):
                self.add(_input_problem(step, name, code, message))
        if action.builtin and action.action_id in TIMER_IDS:
            static = {n: v.value for n, v in step.inputs.items() if isinstance(v, StaticValue)}
            for name, code, message in timer_problems(
                action.action_id, static, self.min_interval_seconds
            ):
                self.add(_input_problem(step, name, code, message))
        for io in action.inputs:
            if io.required and io.name not in step.inputs:
                how = "a project secret" if io.type is IOType.PASSWORD else "a value or a reference"
                self.add(
                    _input_problem(
                        step,
                        io.name,
                        "missing_input",
                        f"required {io.type} input has no value: give it {how}",
                    )
                )

    def given(
        self, step: Step, name: str, io: IO, value: StaticValue | FileValue, via: str = ""
    ) -> None:
        """A static value or file, given or through a project variable (`via` says which)."""
        if isinstance(value, StaticValue):
            found = static_value_problem(io, value.value)
            if found is not None:
                self.add(_input_problem(step, name, found[0], via + found[1]))
        elif io.type not in (IOType.FILE, IOType.DIRECTORY):
            self.add(
                _input_problem(
                    step,
                    name,
                    "file_not_allowed",
                    f"{via}a {io.type} input cannot take an uploaded {value.kind} "
                    f"({value.name!r}): only file and directory inputs do",
                )
            )
        elif (io.type is IOType.DIRECTORY) != value.directory:
            self.add(
                _input_problem(
                    step,
                    name,
                    "file_kind_mismatch",
                    f"{via}a {io.type} input cannot take the uploaded {value.kind} "
                    f"{value.name!r}: upload a {io.type}",
                )
            )

    def reference(
        self, step: Step, name: str, io: IO, ref: ReferenceValue, upstream: set[str]
    ) -> None:
        def problem(code: str, message: str) -> None:
            self.add(_input_problem(step, name, code, message))

        if io.type is IOType.PASSWORD:
            problem(
                "password_needs_secret",
                f"a password input takes a project secret only, not the output {ref}",
            )
            return
        if ref.step_id == step.id:
            problem("self_reference", f"refers to the step's own output {ref}")
            return
        source = self.by_id.get(ref.step_id)
        if source is None:
            problem("dangling_reference", f"refers to {ref}, but there is no step {ref.step_id!r}")
            return
        action = self.action_of[source.id]
        if action is not None:
            outputs = {o.name: o for o in step_outputs(source, action)}
            out = outputs.get(ref.output)
            if out is None:
                known = ", ".join(repr(n) for n in outputs) or "none"
                problem(
                    "unknown_output",
                    f"refers to {ref}, but step {source.id!r} has no "
                    f"output {ref.output!r} (outputs: {known})",
                )
            elif out.type not in ACCEPTS[io.type]:
                problem(
                    "type_mismatch", f"a {io.type} input cannot take the {out.type} output {ref}"
                )
            elif io.type is IOType.ENUM and not set(out.enum_values) <= set(io.enum_values):
                extra = ", ".join(repr(v) for v in out.enum_values if v not in io.enum_values)
                problem(
                    "type_mismatch",
                    f"the enum output {ref} may be {extra}, which this enum input does not accept",
                )
        if source.id not in upstream:
            problem(
                "reference_not_upstream",
                f"refers to {ref}, but step {source.id!r} is not upstream of "
                f"{step.id!r} (link them with streams_to)",
            )

    # ---- results -------------------------------------------------------------------------------
    def results(self) -> None:
        seen: set[str] = set()
        for index, result in enumerate(self.wf.results):
            where = ("result", index)
            if result.key in seen:
                self.add(
                    Problem(
                        code="duplicate_result",
                        message=f"result {result.key!r} is declared twice",
                        location=where,
                    )
                )
            seen.add(result.key)
            source = self.by_id.get(result.step_id)
            ref = f"{result.step_id}.{result.output}"
            if source is None:
                self.add(
                    Problem(
                        code="dangling_reference",
                        step_id=result.step_id,
                        message=f"result {result.key!r} refers to {ref}, but there is "
                        f"no step {result.step_id!r}",
                        location=where,
                    )
                )
                continue
            action = self.action_of[source.id]
            if action is None:
                continue
            if result.output not in {o.name for o in step_outputs(source, action)}:
                self.add(
                    Problem(
                        code="unknown_output",
                        step_id=source.id,
                        message=f"result {result.key!r} refers to {ref}, but step "
                        f"{source.id!r} has no output {result.output!r}",
                        location=where,
                    )
                )
