"""The deployed definition of a workflow (an immutable snapshot sent by the studio)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from .errors import InvalidInput
from .values import SECRET_TYPES, Value

#: The size of a definition the runner takes (the studio's limits: a bigger one is refused).
MAX_STEPS = 1000
MAX_INPUTS_PER_STEP = 256
MAX_OUTPUTS_PER_STEP = 256


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
    #: An HTTP API trigger's field: where the request carries it (body, path, query, header;
    #: "" = body).
    origin: str = ""

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
    """A value that never travels in an event: a project secret (`name`), or the static value
    of a password-type input (`name` empty). The studio's event names it; the runner fetches
    the value from the studio when it records the deployment (`with_secret_values`) and keeps
    it sealed at rest. `value` is never shown nor logged."""

    name: str
    value: str = field(default="", repr=False)


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
    #: Ryax's HPC add-on parameters set on the step in the studio (partition, nodes,
    #: custom_script...; canonical keys, texts): sent to the worker in Deploy.hpc, applied by
    #: Slurm sites. Empty = none.
    hpc: tuple[tuple[str, str], ...] = ()
    #: Keep its action process running while idle (sent in Deploy.always_warm).
    always_warm: bool = False

    @property
    def partition(self) -> str:
        """The Slurm partition the step's HPC parameters ask for ("" = none)."""
        return dict(self.hpc).get("partition", "")

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

    @cached_property
    def sensitive_outputs(self) -> frozenset[str]:
        """Outputs of a password type: sealed at rest, masked when shown."""
        return frozenset(o.name for o in self.outputs if o.type in SECRET_TYPES)


@dataclass(frozen=True, kw_only=True)
class TriggerDefinition:
    step_id: str
    http_endpoint: bool
    fields: tuple[IO, ...] = ()
    #: The built-in trigger the runner runs itself (httpapijson, emitgw, crongw, runonce);
    #: empty: the trigger is an action deployed on a site.
    builtin: str = ""

    @property
    def runs_in_runner(self) -> bool:
        """Nothing to deploy on a site: the runner serves or schedules it itself."""
        return self.http_endpoint or bool(self.builtin)


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

    def check_size(self) -> None:
        """The limits of a definition (the studio's): InvalidInput names the one passed."""
        if len(self.steps) > MAX_STEPS:
            raise InvalidInput("steps", f"{len(self.steps)} steps; at most {MAX_STEPS}")
        for s in self.steps:
            if len(s.input_values) > MAX_INPUTS_PER_STEP or len(s.inputs) > MAX_INPUTS_PER_STEP:
                raise InvalidInput(f"steps.{s.step_id}", f"more than {MAX_INPUTS_PER_STEP} inputs")
            if len(s.outputs) > MAX_OUTPUTS_PER_STEP:
                raise InvalidInput(
                    f"steps.{s.step_id}", f"more than {MAX_OUTPUTS_PER_STEP} outputs"
                )

    def secret_inputs(self) -> list[tuple[str, str]]:
        """(step id, input) of every value the studio keeps (secrets, passwords)."""
        return [
            (s.step_id, name)
            for s in self.steps
            for name, source in s.input_values
            if isinstance(source, SecretInput)
        ]

    def with_secret_values(self, values: Mapping[tuple[str, str], str]) -> WorkflowDefinition:
        """The definition with the values fetched from the studio; InvalidInput names an input
        the studio gave no value for."""
        steps = []
        for s in self.steps:
            sources = []
            for name, source in s.input_values:
                if isinstance(source, SecretInput):
                    if (s.step_id, name) not in values:
                        raise InvalidInput(
                            f"steps.{s.step_id}.{name}", "the studio gave no value for it"
                        )
                    source = replace(source, value=values[(s.step_id, name)])
                sources.append((name, source))
            steps.append(replace(s, input_values=tuple(sources)))
        return replace(self, steps=tuple(steps))

    def sensitive_outputs(self, step_id: str) -> frozenset[str]:
        """A step's outputs of a password type (for the trigger: its fields too): sealed at
        rest, masked when shown."""
        return self._sensitive.get(step_id, frozenset())

    @cached_property
    def _sensitive(self) -> dict[str, frozenset[str]]:
        found = {s.step_id: s.sensitive_outputs for s in self.steps}
        fields = frozenset(f.name for f in self.trigger.fields if f.type in SECRET_TYPES)
        trigger = self.trigger.step_id
        found[trigger] = found.get(trigger, frozenset()) | fields
        return found

    @cached_property
    def sensitive_results(self) -> frozenset[str]:
        """Result keys whose value is a password-type output (sealed at rest, masked)."""
        return frozenset(
            key
            for key, step_id, output in self.result_specs
            if output in self.sensitive_outputs(step_id)
        )

    @cached_property
    def result_specs(self) -> tuple[tuple[str, str, str], ...]:
        """(key, step id, output) of each result: the declared ones, else the leaves' outputs."""
        if self.results:
            return tuple((r.key, r.step_id, r.output_name) for r in self.results)
        leaves = self.leaves
        return tuple(
            (o.name if len(leaves) == 1 else f"{leaf}.{o.name}", leaf, o.name)
            for leaf in leaves
            for o in self.step(leaf).outputs
        )

    def deployable_steps(self) -> tuple[StepDefinition, ...]:
        """Steps that run on a site: all but a built-in trigger (HTTP endpoint, timers)."""
        return tuple(
            s
            for s in self.steps
            if not (self.trigger.runs_in_runner and s.step_id == self.trigger.step_id)
        )
