from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ryax_action_builder.domain.model import (
    ActionBuildFailed,
    ActionBuilt,
    ActionKind,
    BuildId,
    BuildOrder,
    PythonPackage,
)
from ryax_action_builder.infrastructure.messaging.mappers import (
    EXCHANGE,
    UndecodableMessage,
    build_order_from_proto,
    build_order_to_proto,
    outcome_to_message,
)
from ryax_action_builder.infrastructure.proto import builder_events_pb2 as pb
from ryax_action_builder.infrastructure.proto import repository_events_pb2 as repository_pb

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_build_order_round_trip() -> None:
    order = BuildOrder(
        event_id="e",
        build_id=BuildId("b"),
        project_id="p",
        action_id="a",
        action_version="1",
        kind=ActionKind.TRIGGER,
        source_key="sources/x.tar.gz",
        source_sha256="ab",
        metadata_yaml="spec: {}",
        repository_id="r",
        source_commit="c",
        trace_context={"traceparent": "t"},
        python_packages=(
            PythonPackage("pythonPackages.scikitlearn", "scikit-learn"),
            PythonPackage("python311Packages.numpy_1", "numpy<2"),
        ),
    )
    body = build_order_to_proto(order).SerializeToString()
    assert build_order_from_proto(body) == order


def test_an_order_without_python_packages_has_none() -> None:
    """An order from before the field: no Python package is installed for spec.dependencies."""
    body = repository_pb.ActionBuildRequested(
        event_id="e", build_id="b", action_kind="processor"
    ).SerializeToString()
    assert build_order_from_proto(body).python_packages == ()


def test_garbage_is_undecodable() -> None:
    with pytest.raises(UndecodableMessage):
        build_order_from_proto(b"\xff\xff\xff")
    with pytest.raises(UndecodableMessage, match="without build_id"):
        build_order_from_proto(b"")


def test_outcomes_become_messages_on_the_builder_exchange() -> None:
    built = ActionBuilt(
        event_id="id-1",
        build_id=BuildId("b"),
        project_id="p",
        action_id="a",
        action_version="1",
        artefact_key="artefacts/x.tar.gz",
        artefact_sha256="cd",
        build_log="log",
        cached=True,
        duration_seconds=0.5,
        built_at=AT,
        trace_context={"traceparent": "t", "other": "o"},
    )
    message = outcome_to_message(built)
    assert (message.exchange, message.routing_key, message.type, message.event_id) == (
        EXCHANGE,
        "ActionBuilt",
        "ActionBuilt",
        "id-1",
    )
    assert message.headers == {"traceparent": "t"}
    decoded = pb.ActionBuilt.FromString(message.body)
    assert decoded.cached and decoded.artefact_sha256 == "cd"
    assert decoded.built_at.ToDatetime(tzinfo=UTC) == AT

    failed = ActionBuildFailed(
        event_id="id-2",
        build_id=BuildId("b"),
        project_id="p",
        action_id="a",
        action_version="1",
        reason="nope",
        build_log="log",
        duration_seconds=1,
        failed_at=AT,
    )
    message = outcome_to_message(failed)
    assert message.routing_key == "ActionBuildFailed"
    assert pb.ActionBuildFailed.FromString(message.body).reason == "nope"
