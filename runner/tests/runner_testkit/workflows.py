"""Workflow definitions shared by the runner's tests."""

from __future__ import annotations

from ryax_runner.domain.workflow import (
    IO,
    ReferenceInput,
    StepDefinition,
    TriggerDefinition,
    WorkflowDefinition,
)


def endpoint_and_one_step() -> WorkflowDefinition:
    """The HTTP endpoint `t` (output `x`), then the processor `a` taking `x` from it."""
    return WorkflowDefinition(
        steps=(
            StepDefinition(
                step_id="t",
                action_id="t",
                action_version="1",
                action_kind="trigger",
                outputs=(IO(name="x", type="string"),),
            ),
            StepDefinition(
                step_id="a",
                action_id="a",
                action_version="1",
                action_kind="processor",
                inputs=(IO(name="x", type="string"),),
                input_values=(("x", ReferenceInput(step_id="t", output_name="x")),),
                parent_step_ids=("t",),
            ),
        ),
        trigger=TriggerDefinition(step_id="t", http_endpoint=True),
    )
