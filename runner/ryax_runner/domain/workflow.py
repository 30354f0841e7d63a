"""The deployed definition of a workflow (an immutable snapshot sent by the studio)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

from .errors import InvalidInput
from .values import Value


@dataclass(frozen=True, kw_only=True)
class IO:
    """A declared input or output of an action."""

    name: str
    type: str
    human_name: str = ""
    help: str = ""
    optional: bool = False
    enum_values: tuple[str, ...] = ()
    #: The default value as JSON text; None = no default.
    default_json: str | None = None

    def default(self) -> Value:
        if self.default_json is None:
            return None
        try:
            return json.loads(self.default_json)  # type: ignore[no-any-return]
        except ValueError:
            return self.default_json


@dataclass(frozen=True, kw_only=True)
class StaticInput:
    """A static value (a file or directory is a FileRef)."""

    value: Value


@dataclass(frozen=True, kw_only=True)
class SecretInput:
    """A project secret, resolved by the studio. `value` is never shown nor logged."""

    name: str
    value: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class ReferenceInput:
    """The output of an upstream step of the same run."""

    step_id: str
    output_name: str


InputSource = StaticInput | SecretInput | ReferenceInput


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpu: float = 0.0
    memory_bytes: int = 0
    time_seconds: float = 0.0
    gpu: int = 0


@dataclass(frozen=True, kw_only=True)
class StepSettings:
    #: The step's own timeout (0 = not set).
    timeout_seconds: float = 0.0
    retries: int = 0
    site_name: str = ""
    node_pool: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    resources: Resources = Resources()

    def timeout(self, default_seconds: float) -> float:
        """The step's run time limit: its own timeout, else the time its action asks for
        (`resources.time`), else the platform's default. Never 0: every execution has one."""
        for seconds in (self.timeout_seconds, self.resources.time_seconds):
            if seconds > 0:
                return seconds
        return default_seconds


@dataclass(frozen=True, kw_only=True)
class StepDefinition:
    step_id: str
    action_id: str
    action_version: str
    action_kind: str  # trigger | processor | publisher
    human_name: str = ""
    artefact_key: str = ""
    artefact_sha256: str = ""
    inputs: tuple[IO, ...] = ()
    outputs: tuple[IO, ...] = ()
    input_values: tuple[tuple[str, InputSource], ...] = ()
    parent_step_ids: tuple[str, ...] = ()
    settings: StepSettings = StepSettings()

    def source(self, input_name: str) -> InputSource | None:
        for name, source in self.input_values:
            if name == input_name:
                return source
        return None

    def output(self, name: str) -> IO | None:
        return next((o for o in self.outputs if o.name == name), None)


@dataclass(frozen=True, kw_only=True)
class TriggerDefinition:
    step_id: str
    http_endpoint: bool
    fields: tuple[IO, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ResultDefinition:
    key: str
    step_id: str
    output_name: str


@dataclass(frozen=True, kw_only=True)
class WorkflowDefinition:
    """Steps in topological order, the trigger step among them."""

    steps: tuple[StepDefinition, ...]
    trigger: TriggerDefinition
    results: tuple[ResultDefinition, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        ids = [s.step_id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise InvalidInput("steps", "step ids are not unique")
        if self.trigger.step_id not in ids:
            raise InvalidInput("trigger", f"trigger step {self.trigger.step_id!r} is not a step")
        known = set(ids)
        for s in self.steps:
            for p in s.parent_step_ids:
                if p not in known:
                    raise InvalidInput(f"steps.{s.step_id}", f"unknown parent step {p!r}")

    @cached_property
    def by_id(self) -> dict[str, StepDefinition]:
        return {s.step_id: s for s in self.steps}

    def step(self, step_id: str) -> StepDefinition:
        return self.by_id[step_id]

    def parents(self, step_id: str) -> tuple[str, ...]:
        """A non-trigger step without declared parents hangs off the trigger."""
        step = self.by_id[step_id]
        if step.parent_step_ids or step_id == self.trigger.step_id:
            return step.parent_step_ids
        return (self.trigger.step_id,)

    @cached_property
    def children(self) -> dict[str, tuple[str, ...]]:
        result: dict[str, list[str]] = {s.step_id: [] for s in self.steps}
        for s in self.steps:
            for p in self.parents(s.step_id):
                result[p].append(s.step_id)
        return {k: tuple(v) for k, v in result.items()}

    @cached_property
    def leaves(self) -> tuple[str, ...]:
        return tuple(
            s.step_id
            for s in self.steps
            if not self.children[s.step_id] and s.step_id != self.trigger.step_id
        )

    def deployable_steps(self) -> tuple[StepDefinition, ...]:
        """Steps that run on a site: all but the built-in http endpoint trigger."""
        return tuple(
            s
            for s in self.steps
            if not (self.trigger.http_endpoint and s.step_id == self.trigger.step_id)
        )
