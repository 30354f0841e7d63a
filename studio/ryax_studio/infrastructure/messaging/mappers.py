"""Protobuf <-> domain. The only module that knows the generated message classes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ryax_kit.messaging import OutgoingMessage

from ...domain.actions import (
    IO,
    ActionKind,
    ActionVersion,
    IOType,
    JsonValue,
    ProjectId,
    Resources,
)
from ...domain.deployment import (
    Event,
    Snapshot,
    WorkflowDeployRequested,
    WorkflowUndeployRequested,
)
from ...domain.errors import InvalidInput
from ...domain.workflow import FileValue, ReferenceValue, SecretValue, StaticValue, StepSettings
from ..proto import repository_events_pb2 as repo_pb
from ..proto import runner_events_pb2 as runner_pb
from ..proto import studio_events_pb2 as studio_pb

EXCHANGE = "ryax.studio"
REPOSITORY_EXCHANGE = "ryax.repository"
RUNNER_EXCHANGE = "ryax.runner"
ACTION_READY = "ActionReady"
STATE_CHANGED = "WorkflowDeploymentStateChanged"


# ---- in ----------------------------------------------------------------------------------------
def _datetime(ts: Timestamp, present: bool) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if present else None


def _json(text: str, where: str) -> JsonValue:
    try:
        value: JsonValue = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(where, f"default_value is not JSON: {text[:80]!r}") from exc
    return value


def _io_from_repo(io: repo_pb.IO, where: str) -> IO:
    try:
        io_type = IOType(io.type)
    except ValueError as exc:
        raise InvalidInput(where, f"unknown type {io.type!r}") from exc
    has_default = io.HasField("default_value")
    return IO(
        name=io.name,
        type=io_type,
        human_name=io.human_name,
        help=io.help,
        optional=io.optional,
        enum_values=tuple(io.enum_values),
        has_default=has_default,
        default=_json(io.default_value, where) if has_default else None,
    )


def action_ready_from_proto(msg: repo_pb.ActionReady) -> ActionVersion:
    if not (msg.project_id and msg.action_id and msg.action_version):
        raise InvalidInput("ActionReady", "project_id, action_id and action_version are required")
    try:
        kind = ActionKind(msg.kind.lower())
    except ValueError as exc:
        raise InvalidInput("kind", f"unknown action kind {msg.kind!r}") from exc
    r = msg.resources
    return ActionVersion(
        project_id=ProjectId(msg.project_id),
        action_id=msg.action_id,
        version=msg.action_version,
        kind=kind,
        human_name=msg.human_name,
        description=msg.description,
        type=msg.type,
        categories=tuple(msg.categories),
        inputs=tuple(_io_from_repo(i, f"inputs.{i.name}") for i in msg.inputs),
        outputs=tuple(_io_from_repo(o, f"outputs.{o.name}") for o in msg.outputs),
        resources=Resources(
            cpu=r.cpu or None,
            memory_bytes=r.memory_bytes or None,
            time_seconds=r.time_seconds or None,
            gpu=r.gpu or None,
        ),
        artefact_key=msg.artefact_key,
        artefact_sha256=msg.artefact_sha256,
        logo=msg.logo if msg.HasField("logo") else None,
        logo_media_type=msg.logo_media_type,
        repository_id=msg.repository_id,
        source_commit=msg.source_commit,
        build_id=msg.build_id,
        ready_at=_datetime(msg.ready_at, msg.HasField("ready_at")),
    )


@dataclass(frozen=True, kw_only=True)
class StateChange:
    deployment_id: str
    project_id: str
    workflow_id: str
    state: str
    reason: str
    seq: int
    at: datetime | None


def state_changed_from_proto(msg: runner_pb.WorkflowDeploymentStateChanged) -> StateChange:
    return StateChange(
        deployment_id=msg.deployment_id,
        project_id=msg.project_id,
        workflow_id=msg.workflow_id,
        state=msg.state,
        reason=msg.reason,
        seq=msg.state_seq,
        at=_datetime(msg.at, msg.HasField("at")),
    )


# ---- out ---------------------------------------------------------------------------------------
def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _io_to_proto(io: IO) -> studio_pb.IO:
    out = studio_pb.IO(
        name=io.name,
        human_name=io.human_name,
        help=io.help,
        type=str(io.type),
        optional=io.optional,
        enum_values=list(io.enum_values),
    )
    # A password's default never travels: the snapshot's values hold it, as a sensitive value.
    if io.has_default and io.type is not IOType.PASSWORD:
        out.default_value = json.dumps(io.default)
    if io.origin is not None:
        out.origin = str(io.origin)
    return out


def _resources(r: Resources | None) -> studio_pb.Resources | None:
    if r is None:
        return None
    return studio_pb.Resources(
        cpu=r.cpu or 0.0,
        memory_bytes=r.memory_bytes or 0,
        time_seconds=r.time_seconds or 0.0,
        gpu=r.gpu or 0,
    )


def _settings(s: StepSettings) -> studio_pb.StepSettings:
    timeout = s.timeout_seconds or 0.0
    return studio_pb.StepSettings(
        timeout_seconds=timeout if math.isfinite(timeout) else 0.0,
        retries=s.retries or 0,
        site_name=s.site_name or "",
        node_pool=s.node_pool or "",
        labels=dict(s.labels),
        resources=_resources(s.resources),
        hpc=dict(s.hpc),
        always_warm=bool(s.always_warm),
    )


def snapshot_to_proto(snapshot: Snapshot) -> studio_pb.WorkflowSnapshot:
    """The whole deployed definition, without any secret nor password value: those are named
    (`secret`) or marked (`sensitive`), and the runner fetches them on the internal route."""
    steps = []
    for st in snapshot.steps:
        input_values = []
        for name, value in st.input_values:
            if isinstance(value, StaticValue) and value.sensitive:
                input_values.append(
                    studio_pb.InputValue(input_name=name, sensitive=studio_pb.SensitiveValue())
                )
            elif isinstance(value, StaticValue):
                input_values.append(
                    studio_pb.InputValue(
                        input_name=name, static_json=json.dumps(value.value, ensure_ascii=False)
                    )
                )
            elif isinstance(value, SecretValue):
                input_values.append(
                    studio_pb.InputValue(
                        input_name=name,
                        secret=studio_pb.SecretValue(name=value.name),
                    )
                )
            elif isinstance(value, FileValue):
                ref = studio_pb.FileRef(
                    key=value.key, name=value.name, size=value.size, sha256=value.sha256
                )
                if value.directory:
                    input_values.append(studio_pb.InputValue(input_name=name, static_directory=ref))
                else:
                    input_values.append(studio_pb.InputValue(input_name=name, static_file=ref))
            elif isinstance(value, ReferenceValue):
                input_values.append(
                    studio_pb.InputValue(
                        input_name=name,
                        reference=studio_pb.Reference(
                            step_id=value.step_id, output_name=value.output
                        ),
                    )
                )
        steps.append(
            studio_pb.Step(
                step_id=st.step_id,
                human_name=st.human_name,
                action_id=st.action_id,
                action_version=st.action_version,
                action_kind=str(st.action_kind),
                artefact_key=st.artefact_key,
                artefact_sha256=st.artefact_sha256,
                inputs=[_io_to_proto(i) for i in st.inputs],
                outputs=[_io_to_proto(o) for o in st.outputs],
                input_values=input_values,
                parent_step_ids=list(st.parent_step_ids),
                settings=_settings(st.settings),
            )
        )
    return studio_pb.WorkflowSnapshot(
        description=snapshot.description,
        steps=steps,
        trigger=studio_pb.Trigger(
            step_id=snapshot.trigger_step_id,
            http_endpoint=snapshot.http_endpoint,
            builtin=snapshot.builtin_trigger,
            fields=[_io_to_proto(f) for f in snapshot.trigger_fields],
        ),
        results=[
            studio_pb.WorkflowResult(key=r.key, step_id=r.step_id, output_name=r.output)
            for r in snapshot.results
        ],
    )


def deploy_requested_to_proto(event: WorkflowDeployRequested) -> studio_pb.WorkflowDeployRequested:
    return studio_pb.WorkflowDeployRequested(
        event_id=event.event_id,
        deployment_id=event.deployment_id,
        project_id=event.project_id,
        workflow_id=event.workflow_id,
        workflow_name=event.workflow_name,
        snapshot_id=event.snapshot.id,
        snapshot=snapshot_to_proto(event.snapshot),
        requested_by=event.requested_by,
        requested_at=_timestamp(event.requested_at),
    )


def undeploy_requested_to_proto(
    event: WorkflowUndeployRequested,
) -> studio_pb.WorkflowUndeployRequested:
    return studio_pb.WorkflowUndeployRequested(
        event_id=event.event_id,
        deployment_id=event.deployment_id,
        project_id=event.project_id,
        workflow_id=event.workflow_id,
        requested_by=event.requested_by,
        requested_at=_timestamp(event.requested_at),
    )


def event_to_message(event: Event) -> OutgoingMessage:
    """A domain event as the message the outbox relays on the studio's exchange."""
    body: bytes
    if isinstance(event, WorkflowDeployRequested):
        body = deploy_requested_to_proto(event).SerializeToString()
        name = "WorkflowDeployRequested"
    else:
        body = undeploy_requested_to_proto(event).SerializeToString()
        name = "WorkflowUndeployRequested"
    return OutgoingMessage(
        event_id=event.event_id,
        exchange=EXCHANGE,
        routing_key=name,
        type=name,
        body=body,
        headers={"project_id": event.project_id, "deployment_id": event.deployment_id},
    )
