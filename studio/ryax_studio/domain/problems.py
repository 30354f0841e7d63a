"""A problem found in a workflow or a workflow document: what, and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One thing that keeps a workflow from being deployed.

    `location` names the part of the definition at fault, for mapping to a source line:
    ("step", id), ("step", id, "from"), ("step", id, "streams_to"), ("step", id, "outputs", name),
    ("step", id, "inputs_values", input_name), ("result", index), ("workflow",).
    """

    code: str
    message: str
    step_id: str | None = None
    input_name: str | None = None
    location: tuple[str | int, ...] = ("workflow",)
    #: Where in the source document (import only): 1-based line and a path such as
    #: `spec.functions[3] (shout).inputs_values.text`.
    line: int | None = None
    path: str | None = None
    #: The file of a workflow zip the problem is in (`workflow.yaml`), for a zip import.
    file: str | None = None
