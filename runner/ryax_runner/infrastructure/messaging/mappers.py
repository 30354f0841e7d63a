"""Studio events in, runner events out: protobuf <-> application messages."""

from __future__ import annotations

import json
from datetime import UTC

from ryax_kit.messaging import OutgoingMessage

from ...application.messages import DeployWorkflow, UndeployWorkflow
from ...domain.deployment import DeploymentStateChanged
from ...domain.values import FileRef
from ...domain.workflow import (
    IO,
    InputSource,
    ReferenceInput,
    Resources,
    ResultDefinition,
    SecretInput,
    StaticInput,
    StepDefinition,
    StepSettings,
    TriggerDefinition,
    WorkflowDefinition,
)
from ..proto import runner_events_pb2 as runner_pb
from ..proto import studio_events_pb2 as studio_pb

EXCHANGE = "ryax.runner"
STUDIO_EXCHANGE = "ryax.studio"
DEPLOY_REQUESTED = "WorkflowDeployRequested"
UNDEPLOY_REQUESTED = "WorkflowUndeployRequested"
STATE_CHANGED = "WorkflowDeploymentStateChanged"


def _io(io: studio_pb.IO) -> IO:
    return IO(
        name=io.name,
        type=io.type,
        human_name=io.human_name,
        help=io.help,
        optional=io.optional,
        enum_values=tuple(io.enum_values),
        default_json=io.default_value if io.HasField("default_value") else None,
        origin=io.origin.lower() if io.HasField("origin") else "",
    )


def _file(ref: studio_pb.FileRef, directory: bool) -> FileRef:
    return FileRef(
        key=ref.key, name=ref.name, size=ref.size, sha256=ref.sha256, is_directory=directory
    )


def _source(value: studio_pb.InputValue) -> InputSource:
    kind = value.WhichOneof("source")
    if kind == "static_json":
        try:
            return StaticInput(value=json.loads(value.static_json))
        except ValueError:
            return StaticInput(value=value.static_json)
    if kind == "secret":  # the value is fetched from the studio (studio_values.py)
        return SecretInput(name=value.secret.name)
    if kind == "sensitive":  # the value of a password-type input: fetched the same way
        return SecretInput(name="")
    if kind == "reference":
        return ReferenceInput(
            step_id=value.reference.step_id, output_name=value.reference.output_name
        )
    if kind == "static_file":
        return StaticInput(value=_file(value.static_file, False))
    if kind == "static_directory":
        return StaticInput(value=_file(value.static_directory, True))
    return StaticInput(value=None)


def _step(s: studio_pb.Step) -> StepDefinition:
    st = s.settings
    r = st.resources
    return StepDefinition(
        step_id=s.step_id,
        human_name=s.human_name,
        action_id=s.action_id,
        action_version=s.action_version,
        action_kind=s.action_kind,
        artefact_key=s.artefact_key,
        artefact_sha256=s.artefact_sha256,
        inputs=tuple(_io(i) for i in s.inputs),
        outputs=tuple(_io(o) for o in s.outputs),
        input_values=tuple((v.input_name, _source(v)) for v in s.input_values),
        parent_step_ids=tuple(s.parent_step_ids),
        settings=StepSettings(
            timeout_seconds=st.timeout_seconds,
            retries=max(0, st.retries),
            site_name=st.site_name,
            node_pool=st.node_pool,
            labels=tuple(sorted(st.labels.items())),
            hpc=tuple(sorted(st.hpc.items())),
            always_warm=st.always_warm,
            resources=Resources(
                cpu=r.cpu, memory_bytes=r.memory_bytes, time_seconds=r.time_seconds, gpu=r.gpu
            ),
        ),
    )


def definition_from_proto(snapshot: studio_pb.WorkflowSnapshot) -> WorkflowDefinition:
    return WorkflowDefinition(
        description=snapshot.description,
        steps=tuple(_step(s) for s in snapshot.steps),
        trigger=TriggerDefinition(
            step_id=snapshot.trigger.step_id,
            http_endpoint=snapshot.trigger.http_endpoint,
            fields=tuple(_io(f) for f in snapshot.trigger.fields),
            builtin=snapshot.trigger.builtin,
        ),
        results=tuple(
            ResultDefinition(key=r.key, step_id=r.step_id, output_name=r.output_name)
            for r in snapshot.results
        ),
    )


def deploy_requested_from_proto(message_id: str, body: bytes) -> DeployWorkflow:
    msg = studio_pb.WorkflowDeployRequested.FromString(body)
    return DeployWorkflow(
        message_id=message_id,
        deployment_id=msg.deployment_id,
        project_id=msg.project_id,
        workflow_id=msg.workflow_id,
        workflow_name=msg.workflow_name,
        snapshot_id=msg.snapshot_id,
        definition=definition_from_proto(msg.snapshot),
        requested_by=msg.requested_by,
    )


def undeploy_requested_from_proto(message_id: str, body: bytes) -> UndeployWorkflow:
    msg = studio_pb.WorkflowUndeployRequested.FromString(body)
    return UndeployWorkflow(
        message_id=message_id,
        deployment_id=msg.deployment_id,
        project_id=msg.project_id,
        requested_by=msg.requested_by,
    )


def state_changed_to_proto(event: DeploymentStateChanged) -> OutgoingMessage:
    msg = runner_pb.WorkflowDeploymentStateChanged(
        event_id=event.event_id,
        deployment_id=event.deployment_id,
        project_id=event.project_id,
        workflow_id=event.workflow_id,
        state=str(event.state),
        reason=event.reason,
        state_seq=event.state_seq,
    )
    msg.at.FromDatetime(event.at.astimezone(UTC))
    return OutgoingMessage(
        event_id=event.event_id,
        exchange=EXCHANGE,
        routing_key=STATE_CHANGED,
        type=STATE_CHANGED,
        body=msg.SerializeToString(),
    )
