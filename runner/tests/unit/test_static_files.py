"""Static files and directories from the studio (`static_file`/`static_directory` in a deploy
request) become FileRef static inputs, kept through the runner's storage."""

from __future__ import annotations

from ryax_runner.domain.values import FileRef
from ryax_runner.domain.workflow import StaticInput
from ryax_runner.infrastructure.database.serialization import (
    SecretBox,
    definition_from_json,
    definition_to_json,
)
from ryax_runner.infrastructure.messaging.mappers import definition_from_proto
from ryax_runner.infrastructure.proto import studio_events_pb2 as studio_pb

KEY = "projects/pa-id/files/5f0c/words.txt"


def snapshot() -> studio_pb.WorkflowSnapshot:
    ref = studio_pb.FileRef(key=KEY, name="words.txt", size=19, sha256="ab" * 32)
    tree = studio_pb.FileRef(key=KEY + ".d", name="dataset", size=10240, sha256="cd" * 32)
    return studio_pb.WorkflowSnapshot(
        steps=[
            studio_pb.Step(
                step_id="count",
                action_id="word-count",
                action_version="1.0",
                action_kind="processor",
                inputs=[
                    studio_pb.IO(name="document", type="file"),
                    studio_pb.IO(name="data", type="directory"),
                ],
                input_values=[
                    studio_pb.InputValue(input_name="document", static_file=ref),
                    studio_pb.InputValue(input_name="data", static_directory=tree),
                ],
            )
        ],
        trigger=studio_pb.Trigger(step_id="count"),
    )


def test_static_files_become_file_refs_and_survive_storage() -> None:
    definition = definition_from_proto(snapshot())
    values = dict(definition.steps[0].input_values)
    assert values["document"] == StaticInput(
        value=FileRef(key=KEY, name="words.txt", size=19, sha256="ab" * 32)
    )
    assert values["data"] == StaticInput(
        value=FileRef(
            key=KEY + ".d", name="dataset", size=10240, sha256="cd" * 32, is_directory=True
        )
    )
    box = SecretBox("k" * 32)
    again = definition_from_json(definition_to_json(definition, box), box)
    assert dict(again.steps[0].input_values) == values
