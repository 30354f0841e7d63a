"""The built-in timers as the studio offers them match their documented interfaces
(docs/reference/builtin/*.ryax_metadata.yaml): ids, versions, inputs, outputs, types."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ryax_studio.domain.actions import ActionVersion, ProjectId
from ryax_studio.domain.forms import form_trigger
from ryax_studio.domain.schedules import timer_triggers

BUILTIN = Path(__file__).resolve().parents[3] / "docs" / "reference" / "builtin"


@pytest.mark.parametrize(
    "action",
    [*timer_triggers(ProjectId("p")), form_trigger(ProjectId("p"))],
    ids=lambda a: a.action_id,
)
def test_the_store_matches_the_documented_interface(action: ActionVersion) -> None:
    path = BUILTIN / f"{action.action_id}.ryax_metadata.yaml"
    if not path.exists():
        pytest.skip("docs/reference/builtin is not present")
    spec = yaml.safe_load(path.read_text())["spec"]
    assert (spec["id"], spec["version"], spec["human_name"]) == (
        action.action_id,
        action.version,
        action.human_name,
    )
    documented = [(i["name"], i["type"], i.get("default_value")) for i in spec["inputs"]]
    offered = [(i.name, str(i.type), i.default) for i in action.inputs]
    assert documented == offered
    assert [(o["name"], o["type"]) for o in spec["outputs"]] == [
        (o.name, str(o.type)) for o in action.outputs
    ]
