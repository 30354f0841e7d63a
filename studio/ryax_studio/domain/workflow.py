"""Workflows: steps from the action store, input values, links (the DAG), per-step settings."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NewType

from .actions import IO, ActionRef, JsonValue, ProjectId, Resources, check_io_name
from .errors import AlreadyExists, InvalidInput, NotFound, TooLarge
from .hpc import HpcParams, hpc_params

WorkflowId = NewType("WorkflowId", str)

STEP_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
WORKFLOW_NAME_MAX = 200
MAX_STEPS = 1000
MAX_RETRIES = 100
#: Input values a step may hold, outputs it may declare (an action declares far fewer).
MAX_INPUTS_PER_STEP = 256
MAX_OUTPUTS_PER_STEP = 256
#: A static value, as JSON (the runner's inline limit: bigger data travels as a file).
MAX_STATIC_VALUE_BYTES = 64 * 1024
#: A workflow's whole definition as stored (steps, values, settings), as JSON.
MAX_DEFINITION_BYTES = 4 * 1024 * 1024
#: What a sensitive value (the static value of a password-type input) is shown as; given back
#: as the value of such an input, it keeps the stored one.
MASK = "***"
RESULT_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


def check_step_id(step_id: str, field_name: str = "id") -> None:
    if not STEP_ID_RE.match(step_id):
        raise InvalidInput(
            field_name,
            f"{step_id!r} is not a valid step id: 1 to 63 lowercase letters, digits and -, "
            "starting with a letter or digit",
        )


def check_workflow_name(name: str) -> None:
    if not name.strip():
        raise InvalidInput("name", "must not be empty")
    if len(name) > WORKFLOW_NAME_MAX:
        raise InvalidInput("name", f"at most {WORKFLOW_NAME_MAX} characters")
    if any(ord(c) < 32 for c in name):
        raise InvalidInput("name", "must not contain control characters")


# ---- input values ------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StaticValue:
    value: JsonValue = field(repr=False)
    #: The value of a password-type input: sealed at rest, shown as MASK, never in an event
    #: (the runner fetches it with the secrets). Set by `Workflow.mark_sensitive`.
    sensitive: bool = False

    def shown(self) -> JsonValue:
        return MASK if self.sensitive else self.value


@dataclass(frozen=True, kw_only=True)
class SecretValue:
    """A project secret, by name; its value is resolved only when deploying."""

    name: str


@dataclass(frozen=True, kw_only=True)
class ReferenceValue:
    """The output `output` of the upstream step `step_id`, produced in the same run."""

    step_id: str
    output: str

    def __str__(self) -> str:
        return f"{self.step_id}.{self.output}"


@dataclass(frozen=True, kw_only=True)
class FileValue:
    """A static file uploaded to the studio (or, with `directory`, a directory: an uncompressed
    tar of its contents), in the filestore at `key`; shown and exported by `name`."""

    key: str
    name: str
    size: int
    sha256: str
    directory: bool = False

    @property
    def kind(self) -> str:
        return "directory" if self.directory else "file"


InputValue = StaticValue | SecretValue | ReferenceValue | FileValue


def check_static_size(name: str, value: JsonValue) -> None:
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_STATIC_VALUE_BYTES:
        raise TooLarge(
            f"input {name!r}: the value is {size} bytes as JSON, more than the "
            f"{MAX_STATIC_VALUE_BYTES} bytes a static value may hold (give a file instead)"
        )


# ---- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StepSettings:
    """Where and how a step runs; None = the platform's default."""

    timeout_seconds: float | None = None
    retries: int | None = None
    site_name: str | None = None
    node_pool: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    resources: Resources | None = None
    #: Ryax's HPC add-on parameters (domain.hpc), canonical keys, texts (`hpc_params` builds
    #: them from what a user wrote).
    hpc: HpcParams = ()
    #: Its action process is never stopped for being idle (the worker's retention time does
    #: not apply): no cold start, at the cost of its memory while idle. None = the default (no).
    always_warm: bool | None = None

    def is_empty(self) -> bool:
        return self == StepSettings()

    def check(self) -> None:
        if self.timeout_seconds is not None and (
            not math.isfinite(self.timeout_seconds) or self.timeout_seconds <= 0
        ):
            raise InvalidInput("timeout_seconds", "must be a number of seconds > 0")
        if self.retries is not None and not 0 <= self.retries <= MAX_RETRIES:
            raise InvalidInput("retries", f"must be between 0 and {MAX_RETRIES}")
        for name, value in (("site_name", self.site_name), ("node_pool", self.node_pool)):
            if value is not None and (not value.strip() or len(value) > 200):
                raise InvalidInput(name, "must be 1 to 200 characters")
        keys = [k for k, _ in self.labels]
        if len(keys) != len(set(keys)):
            raise InvalidInput("labels", "a label is given twice")
        for k, v in self.labels:
            if not k or len(k) > 200 or len(v) > 200:
                raise InvalidInput("labels", f"label {k!r}: key 1 to 200, value up to 200 chars")
        if self.resources is not None:
            self.resources.check("resources")
        hpc_params(dict(self.hpc))


@dataclass(frozen=True, kw_only=True)
class Position:
    """Where the step is drawn in the editor (kept as given: int or float)."""

    x: int | float
    y: int | float


@dataclass(frozen=True, kw_only=True)
class WorkflowResult:
    """A named value a run answers with: one step's output."""

    key: str
    step_id: str
    output: str


# ---- steps and workflows -----------------------------------------------------------------------
@dataclass(kw_only=True)
class Step:
    id: str
    action: ActionRef
    human_name: str | None = None
    position: Position | None = None
    #: Input values, in the order they were given.
    inputs: dict[str, InputValue] = field(default_factory=dict)
    #: Outputs the step declares itself (only for actions with dynamic outputs).
    outputs: tuple[IO, ...] = ()
    #: Ids of the steps this one streams to (its children), in order.
    streams_to: list[str] = field(default_factory=list)
    settings: StepSettings = field(default_factory=StepSettings)


@dataclass(eq=False, kw_only=True)
class Workflow:
    id: WorkflowId
    project_id: ProjectId
    name: str
    description: str = ""
    steps: list[Step] = field(default_factory=list)
    results: list[WorkflowResult] = field(default_factory=list)
    created_at: datetime
    updated_at: datetime

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workflow) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # ---- lookups -------------------------------------------------------------------------------
    def find_step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def step(self, step_id: str) -> Step:
        found = self.find_step(step_id)
        if found is None:
            raise NotFound(f"step {step_id!r} not found in workflow {self.name!r}")
        return found

    def parents(self) -> dict[str, list[str]]:
        """Step id -> ids of the steps that stream to it (in step order)."""
        result: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for child in s.streams_to:
                if child in result and s.id not in result[child]:
                    result[child].append(s.id)
        return result

    def definition_equals(self, other: Workflow) -> bool:
        """Same definition (name, description, steps, results), whatever the identity."""
        return (self.name, self.description, self.steps, self.results) == (
            other.name,
            other.description,
            other.steps,
            other.results,
        )

    # ---- edits ---------------------------------------------------------------------------------
    def rename(self, name: str, now: datetime) -> None:
        check_workflow_name(name)
        self.name = name
        self.updated_at = now

    def set_description(self, description: str, now: datetime) -> None:
        if len(description) > 10_000:
            raise InvalidInput("description", "at most 10000 characters")
        self.description = description
        self.updated_at = now

    def add_step(self, step: Step, now: datetime, *, trigger: bool = False) -> None:
        """Step ids are unique in a workflow; the trigger goes first (the format's rule)."""
        check_step_id(step.id)
        if self.find_step(step.id) is not None:
            raise AlreadyExists(f"step {step.id!r} already exists in workflow {self.name!r}")
        if len(self.steps) >= MAX_STEPS:
            raise InvalidInput("steps", f"a workflow has at most {MAX_STEPS} steps")
        if trigger:
            self.steps.insert(0, step)
        else:
            self.steps.append(step)
        self.updated_at = now

    def remove_step(self, step_id: str, now: datetime) -> None:
        """Links to the step go with it; references to it stay and show up as errors."""
        step = self.step(step_id)
        self.steps.remove(step)
        for s in self.steps:
            s.streams_to = [c for c in s.streams_to if c != step_id]
        self.updated_at = now

    def rename_step(self, step_id: str, human_name: str | None, now: datetime) -> None:
        self.step(step_id).human_name = human_name
        self.updated_at = now

    def change_action(self, step_id: str, action: ActionRef, now: datetime) -> None:
        """Point the step at another version (inputs kept; validation tells what no longer fits)."""
        self.step(step_id).action = action
        self.updated_at = now

    def move_step(self, step_id: str, position: Position | None, now: datetime) -> None:
        self.step(step_id).position = position
        self.updated_at = now

    def set_input(self, step_id: str, name: str, value: InputValue, now: datetime) -> None:
        """A sensitive input given MASK (what it is shown as) keeps its value."""
        step = self.step(step_id)
        check_io_name(name, "input")
        if isinstance(value, ReferenceValue) and value.step_id == step_id:
            raise InvalidInput("reference", f"step {step_id!r} cannot use its own output")
        if name not in step.inputs and len(step.inputs) >= MAX_INPUTS_PER_STEP:
            raise InvalidInput("input", f"a step has at most {MAX_INPUTS_PER_STEP} input values")
        if isinstance(value, StaticValue):
            current = step.inputs.get(name)
            if value.value == MASK and isinstance(current, StaticValue) and current.sensitive:
                return
            check_static_size(name, value.value)
        step.inputs[name] = value
        self.updated_at = now

    def mark_sensitive(self, password_inputs: Mapping[ActionRef, frozenset[str]]) -> None:
        """Static values given to password-type inputs (`password_inputs`: per action version
        of the store, its password inputs) are sensitive; a step whose action is not known
        keeps its marks."""
        for step in self.steps:
            names = password_inputs.get(step.action)
            if names is None:
                continue
            for name, value in list(step.inputs.items()):
                if isinstance(value, StaticValue) and value.sensitive != (name in names):
                    step.inputs[name] = replace(value, sensitive=name in names)

    def keep_masked(self, previous: Workflow) -> None:
        """A document given back with MASK for a sensitive value (as exported) keeps the value
        `previous` holds for the same step and input."""
        for step in self.steps:
            before = previous.find_step(step.id)
            if before is None:
                continue
            for name, value in list(step.inputs.items()):
                old = before.inputs.get(name)
                if (
                    isinstance(value, StaticValue)
                    and value.value == MASK
                    and isinstance(old, StaticValue)
                    and old.sensitive
                ):
                    step.inputs[name] = old

    def masked(self) -> Workflow:
        """A copy whose sensitive values are MASK (for exports)."""
        shown = self.copy(self.id, self.name, self.updated_at)
        shown.created_at = self.created_at
        for step in shown.steps:
            for name, value in list(step.inputs.items()):
                if isinstance(value, StaticValue) and value.sensitive:
                    step.inputs[name] = StaticValue(value=MASK, sensitive=True)
        return shown

    def unset_input(self, step_id: str, name: str, now: datetime) -> None:
        step = self.step(step_id)
        if name not in step.inputs:
            raise NotFound(f"step {step_id!r}: input {name!r} has no value")
        del step.inputs[name]
        self.updated_at = now

    def set_outputs(self, step_id: str, outputs: tuple[IO, ...], now: datetime) -> None:
        step = self.step(step_id)
        names = [o.name for o in outputs]
        if len(outputs) > MAX_OUTPUTS_PER_STEP:
            raise InvalidInput("outputs", f"a step declares at most {MAX_OUTPUTS_PER_STEP} outputs")
        for o in outputs:
            check_io_name(o.name, "outputs")
        if len(names) != len(set(names)):
            raise InvalidInput("outputs", "an output name is given twice")
        step.outputs = outputs
        self.updated_at = now

    def set_settings(self, step_id: str, settings: StepSettings, now: datetime) -> None:
        settings.check()
        self.step(step_id).settings = settings
        self.updated_at = now

    def add_link(self, from_step: str, to_step: str, now: datetime) -> None:
        source = self.step(from_step)
        self.step(to_step)
        if from_step == to_step:
            raise InvalidInput("to", f"step {from_step!r} cannot stream to itself")
        if to_step in source.streams_to:
            raise AlreadyExists(f"step {from_step!r} already streams to {to_step!r}")
        if from_step in self._descendants(to_step):
            raise InvalidInput(
                "to",
                f"linking {from_step!r} -> {to_step!r} would make a cycle "
                f"({to_step!r} already leads to {from_step!r})",
            )
        source.streams_to.append(to_step)
        self.updated_at = now

    def remove_link(self, from_step: str, to_step: str, now: datetime) -> None:
        source = self.step(from_step)
        if to_step not in source.streams_to:
            raise NotFound(f"step {from_step!r} does not stream to {to_step!r}")
        source.streams_to.remove(to_step)
        self.updated_at = now

    def set_results(self, results: list[WorkflowResult], now: datetime) -> None:
        keys = [r.key for r in results]
        if len(keys) != len(set(keys)):
            raise InvalidInput("results", "a result key is given twice")
        for r in results:
            if not RESULT_KEY_RE.match(r.key):
                raise InvalidInput("results", f"{r.key!r} is not a valid result key")
        self.results = list(results)
        self.updated_at = now

    def copy(self, new_id: WorkflowId, name: str, now: datetime) -> Workflow:
        """An independent copy under another name (deployments are not copied)."""
        check_workflow_name(name)
        return Workflow(
            id=new_id,
            project_id=self.project_id,
            name=name,
            description=self.description,
            steps=copy.deepcopy(self.steps),
            results=list(self.results),
            created_at=now,
            updated_at=now,
        )

    def _descendants(self, step_id: str) -> set[str]:
        by_id = {s.id: s for s in self.steps}
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            current = by_id.get(todo.pop())
            if current is None:
                continue
            for child in current.streams_to:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen
