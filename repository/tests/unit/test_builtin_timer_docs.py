"""The documented interfaces of the built-in timer triggers (docs/reference/builtin) are valid
metadata of `type: internal`, which only the platform may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from ryax_repository.domain.action_metadata import ActionKind, InvalidActionMetadata
from ryax_repository.infrastructure.yaml_nodes import load_action_metadata

BUILTIN = Path(__file__).resolve().parents[3] / "docs" / "reference" / "builtin"


@pytest.mark.parametrize(
    ("action_id", "version", "inputs"),
    [("emitgw", "1.2", ["time"]), ("crongw", "1.0", ["cron", "timezone"]), ("runonce", "1.1", [])],
)
def test_the_timer_triggers_documented_interfaces(
    action_id: str, version: str, inputs: list[str]
) -> None:
    path = BUILTIN / f"{action_id}.ryax_metadata.yaml"
    if not path.exists():
        pytest.skip("docs/reference/builtin is not present")
    text = path.read_bytes()
    metadata = load_action_metadata(text, action_id, allow_internal=True)
    assert (metadata.id, metadata.version, metadata.kind, metadata.type) == (
        action_id,
        version,
        ActionKind.TRIGGER,
        "internal",
    )
    assert [i.name for i in metadata.inputs] == inputs
    assert [o.name for o in metadata.outputs] == ["scheduled_at", "late_seconds", "missed"]
    with pytest.raises(InvalidActionMetadata):
        load_action_metadata(text, action_id)


def test_the_form_trigger_documented_interface() -> None:
    path = BUILTIN / "postgw.ryax_metadata.yaml"
    if not path.exists():
        pytest.skip("docs/reference/builtin is not present")
    text = path.read_bytes()
    metadata = load_action_metadata(text, "postgw", allow_internal=True)
    assert (metadata.id, metadata.version, metadata.kind, metadata.type) == (
        "postgw",
        "1.5",
        ActionKind.TRIGGER,
        "internal",
    )
    assert [i.name for i in metadata.inputs] == ["path", "title", "description", "timeout"]
    assert metadata.outputs == () or list(metadata.outputs) == []
    with pytest.raises(InvalidActionMetadata):
        load_action_metadata(text, "postgw")
