"""Domain events and commands <-> protobuf. The only module that knows the wire format."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from ryax_kit.messaging import OutgoingMessage

from ...domain.action_metadata import ActionIO
from ...domain.events import (
    ActionBuildRequested,
    ActionReady,
    Event,
    RecordBuildFailed,
    RecordBuildSucceeded,
)
from ..proto import builder_events_pb2 as builder_pb
from ..proto import repository_events_pb2 as pb

EXCHANGE = "ryax.repository"
BUILDER_EXCHANGE = "ryax.action-builder"
CONSUMER_QUEUE = "repository.events"
ACTION_BUILT = "ActionBuilt"
ACTION_BUILD_FAILED = "ActionBuildFailed"


def _timestamp(value: object) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)  # type: ignore[arg-type]
    return ts


def action_build_requested_to_proto(event: ActionBuildRequested) -> pb.ActionBuildRequested:
    return pb.ActionBuildRequested(
        event_id=event.event_id,
        build_id=event.build_id,
        project_id=event.project_id,
        action_id=event.action_id,
        action_version=event.action_version,
        action_kind=event.action_kind,
        source_key=event.source_key,
        source_sha256=event.source_sha256,
        metadata_yaml=event.metadata_yaml,
        requested_at=_timestamp(event.requested_at),
        repository_id=event.repository_id,
        source_commit=event.source_commit,
        python_packages=[
            pb.PythonPackage(dependency=p.dependency, requirement=p.requirement)
            for p in event.python_packages
        ],
    )


def io_to_proto(io: ActionIO) -> pb.IO:
    message = pb.IO(
        name=io.name,
        human_name=io.human_name,
        help=io.help,
        type=io.type.value,
        optional=io.optional,
        enum_values=list(io.enum_values),
    )
    if io.default_value is not None:
        message.default_value = json.dumps(io.default_value)
    return message


def action_ready_to_proto(event: ActionReady) -> pb.ActionReady:
    meta = event.metadata
    resources = meta.resources
    message = pb.ActionReady(
        event_id=event.event_id,
        project_id=event.project_id,
        action_id=meta.id,
        action_version=meta.version,
        kind=meta.kind.value.lower(),
        human_name=meta.human_name,
        description=meta.description,
        type=meta.type,
        categories=list(meta.categories),
        inputs=[io_to_proto(io) for io in meta.inputs],
        outputs=[io_to_proto(io) for io in meta.outputs],
        resources=pb.Resources(
            cpu=resources.cpu or 0.0,
            memory_bytes=resources.memory or 0,
            time_seconds=resources.time or 0.0,
            gpu=resources.gpu or 0,
        ),
        artefact_key=event.artefact_key,
        artefact_sha256=event.artefact_sha256,
        logo_media_type=event.logo_media_type if event.logo else "",
        repository_id=event.repository_id,
        source_commit=event.source_commit,
        build_id=event.build_id,
        ready_at=_timestamp(event.ready_at),
    )
    if event.logo:
        message.logo = event.logo
    return message


def event_to_message(event: Event) -> OutgoingMessage:
    """Routing key and AMQP type = the message name; message id = the event id."""
    body: bytes
    if isinstance(event, ActionBuildRequested):
        name, body = (
            "ActionBuildRequested",
            action_build_requested_to_proto(event).SerializeToString(),
        )
    else:
        name, body = "ActionReady", action_ready_to_proto(event).SerializeToString()
    return OutgoingMessage(
        event_id=event.event_id, exchange=EXCHANGE, routing_key=name, type=name, body=body
    )


def action_built_from_proto(message: builder_pb.ActionBuilt) -> RecordBuildSucceeded:
    return RecordBuildSucceeded(
        build_id=message.build_id,
        project_id=message.project_id,
        artefact_key=message.artefact_key,
        artefact_sha256=message.artefact_sha256,
        log=message.build_log,
        cached=message.cached,
        duration_seconds=message.duration_seconds,
    )


def action_build_failed_from_proto(message: builder_pb.ActionBuildFailed) -> RecordBuildFailed:
    return RecordBuildFailed(
        build_id=message.build_id,
        project_id=message.project_id,
        reason=message.reason,
        log=message.build_log,
        duration_seconds=message.duration_seconds,
    )
