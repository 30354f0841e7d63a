"""Deployment definitions as stored: secrets sealed at rest, opened after a key rotation, and a
clear error when the key that sealed them is gone."""

from __future__ import annotations

import json

import pytest

from ryax_kit.crypto import Unsealable
from ryax_runner.domain.workflow import (
    IO,
    SecretInput,
    StepDefinition,
    TriggerDefinition,
    WorkflowDefinition,
)
from ryax_runner.infrastructure.database.serialization import (
    SecretBox,
    definition_from_json,
    definition_to_json,
)

OLD, NEW = "o" * 32, "n" * 40


def with_secret(value: str) -> WorkflowDefinition:
    step = StepDefinition(
        step_id="t",
        action_id="t",
        action_version="1",
        action_kind="trigger",
        inputs=(IO(name="token", type="password"),),
        input_values=(("token", SecretInput(name="api-token", value=value)),),
    )
    return WorkflowDefinition(
        steps=(step,), trigger=TriggerDefinition(step_id="t", http_endpoint=True)
    )


def test_a_secret_is_sealed_at_rest_and_opened_after_a_rotation() -> None:
    stored = definition_to_json(with_secret("s3cr3t-value"), SecretBox(OLD))
    assert "s3cr3t-value" not in json.dumps(stored)
    rotated = SecretBox(NEW, previous=(OLD,))
    restored = definition_from_json(stored, rotated)
    assert restored.steps[0].input_values == (
        ("token", SecretInput(name="api-token", value="s3cr3t-value")),
    )
    assert rotated.open(rotated.seal("again")) == "again"


def test_a_secret_sealed_with_a_key_no_longer_configured_says_so() -> None:
    stored = definition_to_json(with_secret("s3cr3t-value"), SecretBox(OLD))
    with pytest.raises(Unsealable, match="RYAX_SECRET_KEY_PREVIOUS"):
        definition_from_json(stored, SecretBox(NEW))
