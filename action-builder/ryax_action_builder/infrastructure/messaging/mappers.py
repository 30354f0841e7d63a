"""Protobuf <-> domain for the builder's messages (the only place that knows the wire types)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from ryax_kit.messaging import OutgoingMessage, PoisonMessage

from ...domain.model import (
    ActionBuildFailed,
    ActionBuilt,
    ActionKind,
    BuildId,
    BuildOrder,
    BuildOutcome,
    PythonPackage,
)
from ..proto import builder_events_pb2 as builder_pb
from ..proto import repository_events_pb2 as repository_pb

EXCHANGE = "ryax.action-builder"
REPOSITORY_EXCHANGE = "ryax.repository"
ORDER_TYPE = "ActionBuildRequested"


class UndecodableMessage(PoisonMessage):
    """A message that can never be handled (not an ActionBuildRequested): dead-lettered."""


def build_order_from_proto(body: bytes) -> BuildOrder:
    try:
        message = repository_pb.ActionBuildRequested.FromString(body)
    except DecodeError as exc:
        raise UndecodableMessage(f"not an ActionBuildRequested: {exc}") from None
    if not message.build_id:
        raise UndecodableMessage("ActionBuildRequested without build_id")
    try:
        kind = ActionKind(message.action_kind.strip().lower())
    except ValueError:
        raise UndecodableMessage(f"unknown action kind '{message.action_kind}'") from None
    return BuildOrder(
        event_id=message.event_id,
        build_id=BuildId(message.build_id),
        project_id=message.project_id,
        action_id=message.action_id,
        action_version=message.action_version,
        kind=kind,
        source_key=message.source_key,
        source_sha256=message.source_sha256,
        metadata_yaml=message.metadata_yaml,
        repository_id=message.repository_id,
        source_commit=message.source_commit,
        trace_context=dict(message.trace_context),
        python_packages=tuple(
            PythonPackage(dependency=p.dependency, requirement=p.requirement)
            for p in message.python_packages
        ),
    )


def build_order_to_proto(order: BuildOrder) -> repository_pb.ActionBuildRequested:
    """For tests and tools that play the repository's part."""
    return repository_pb.ActionBuildRequested(
        event_id=order.event_id,
        build_id=order.build_id,
        project_id=order.project_id,
        action_id=order.action_id,
        action_version=order.action_version,
        action_kind=order.kind.value,
        source_key=order.source_key,
        source_sha256=order.source_sha256,
        metadata_yaml=order.metadata_yaml,
        repository_id=order.repository_id,
        source_commit=order.source_commit,
        trace_context=dict(order.trace_context),
        python_packages=[
            repository_pb.PythonPackage(dependency=p.dependency, requirement=p.requirement)
            for p in order.python_packages
        ],
    )


def _timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def action_built_to_proto(event: ActionBuilt) -> builder_pb.ActionBuilt:
    return builder_pb.ActionBuilt(
        event_id=event.event_id,
        build_id=event.build_id,
        project_id=event.project_id,
        action_id=event.action_id,
        action_version=event.action_version,
        artefact_key=event.artefact_key,
        artefact_sha256=event.artefact_sha256,
        build_log=event.build_log,
        cached=event.cached,
        duration_seconds=event.duration_seconds,
        built_at=_timestamp(event.built_at),
        trace_context=dict(event.trace_context),
    )


def action_build_failed_to_proto(event: ActionBuildFailed) -> builder_pb.ActionBuildFailed:
    return builder_pb.ActionBuildFailed(
        event_id=event.event_id,
        build_id=event.build_id,
        project_id=event.project_id,
        action_id=event.action_id,
        action_version=event.action_version,
        reason=event.reason,
        build_log=event.build_log,
        duration_seconds=event.duration_seconds,
        failed_at=_timestamp(event.failed_at),
        trace_context=dict(event.trace_context),
    )


def outcome_to_message(event: BuildOutcome) -> OutgoingMessage:
    if isinstance(event, ActionBuilt):
        name, body = "ActionBuilt", action_built_to_proto(event).SerializeToString()
    else:
        name, body = "ActionBuildFailed", action_build_failed_to_proto(event).SerializeToString()
    headers = {k: v for k, v in event.trace_context.items() if k in ("traceparent", "tracestate")}
    return OutgoingMessage(
        event_id=event.event_id,
        exchange=EXCHANGE,
        routing_key=name,
        type=name,
        body=body,
        headers=headers,
    )
