"""WorkerService protobuf <-> application messages.

What a worker sends is never trusted to be storable: a report always maps to a message (a
mapper that raised would close the stream, and the worker would send the same report again
forever). Text that is only shown (log lines, errors, tracebacks, progress and state messages,
names) has NUL characters and lone surrogates replaced (U+FFFD); a value that cannot be read
(invalid JSON, nested too deep) fails its execution, or its trigger's run, naming the output;
values that can be read but not kept are refused by the domain (`values.refused_output`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ...application.messages import (
    CancelOrder,
    DeployOrder,
    ExecuteOrder,
    ExecutionEnded,
    ExecutionProgressed,
    FilesPublished,
    Heartbeat,
    LogLine,
    OrdersAcked,
    Outgoing,
    PublishOrder,
    Registered,
    RegisterWorker,
    ReleaseOrder,
    Report,
    ReportAck,
    ReportedStep,
    StepStateReported,
    TriggerFired,
    UndeployOrder,
)
from ...domain.deployment import StepState
from ...domain.run import ExecutionResult, Outcome
from ...domain.site import NodePool
from ...domain.values import FileRef, Value, clean_text
from ...domain.workflow import IO, Resources
from ..proto import worker_service_pb2 as pb

STEP_STATES = {
    pb.DEPLOYMENT_STATE_KIND_DEPLOYING: StepState.DEPLOYING,
    pb.DEPLOYMENT_STATE_KIND_READY: StepState.READY,
    pb.DEPLOYMENT_STATE_KIND_FAILED: StepState.FAILED,
    pb.DEPLOYMENT_STATE_KIND_UNDEPLOYING: StepState.UNDEPLOYING,
    pb.DEPLOYMENT_STATE_KIND_UNDEPLOYED: StepState.UNDEPLOYED,
}
OUTCOMES = {
    pb.EXECUTION_STATUS_COMPLETED: Outcome.COMPLETED,
    pb.EXECUTION_STATUS_FAILED: Outcome.FAILED,
    pb.EXECUTION_STATUS_CANCELLED: Outcome.CANCELLED,
}
STREAMS = {pb.LOG_STREAM_STDOUT: "stdout", pb.LOG_STREAM_STDERR: "stderr", pb.LOG_STREAM_LOG: "log"}


class UnreadableValue(ValueError):
    """A value of a worker's message that is no value at all (invalid JSON, too deep)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"output `{name}`: {reason}")


def time_from_proto(ts: Timestamp, default: datetime | None = None) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return default
    try:
        return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, UTC)
    except (OverflowError, OSError, ValueError):
        return default  # a date no calendar holds: as if not given


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN nor infinities)")


def value_to_proto(value: Value, out: pb.Value) -> None:
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.float_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, FileRef):
        target = out.directory if value.is_directory else out.file
        target.key, target.name, target.size, target.sha256 = (
            value.key,
            value.name,
            value.size,
            value.sha256,
        )
        target.held_by = value.held_by
    else:
        out.json_value = json.dumps(value, separators=(",", ":"))


def value_from_proto(value: pb.Value) -> Value:
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "float_value":
        return value.float_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "json_value":
        return json.loads(value.json_value, parse_constant=_no_constant)  # type: ignore[no-any-return]
    ref = value.file if kind == "file" else value.directory
    return FileRef(
        key=ref.key,
        name=ref.name,
        size=ref.size,
        sha256=ref.sha256,
        is_directory=kind == "directory",
        held_by=clean_text(ref.held_by),
    )


def values_from_proto(values: object) -> dict[str, Value]:
    """The values of a worker's message; UnreadableValue names the first one that is not."""
    decoded: dict[str, Value] = {}
    for name, value in values.items():  # type: ignore[attr-defined]
        try:
            decoded[name] = value_from_proto(value)
        except RecursionError:
            raise UnreadableValue(name, "a JSON document nested too deep to be read") from None
        except ValueError as exc:
            raise UnreadableValue(name, f"not a valid JSON document ({str(exc)[:200]})") from exc
    return decoded


def register_from_proto(msg: pb.Register) -> RegisterWorker:
    return RegisterWorker(
        worker_id=clean_text(msg.worker_id),
        site_name=clean_text(msg.site_name),
        backend_kind=clean_text(msg.backend_kind),
        node_pools=tuple(
            NodePool(
                name=clean_text(p.name),
                cpu=p.cpu,
                memory_bytes=p.memory_bytes,
                gpu=p.gpu,
                max_time_seconds=max(0.0, p.max_time_seconds),
            )
            for p in msg.node_pools
        ),
        labels={clean_text(k): clean_text(v) for k, v in msg.labels.items()},
        version=clean_text(msg.version),
        last_seen_order_seq=msg.last_seen_order_seq,
        deployed_steps=tuple(
            ReportedStep(
                deployment_id=s.deployment_id,
                step_id=s.step_id,
                state=STEP_STATES.get(s.state, StepState.DEPLOYING),
            )
            for s in msg.deployed_steps
        ),
        running_execution_ids=frozenset(msg.running_execution_ids),
        held_files=frozenset((h.run_id, h.sha256) for h in msg.held_files),
    )


def report_from_proto(msg: pb.WorkerMessage) -> Report | None:
    """The application message of a report; None for an empty or unknown one."""
    kind = msg.WhichOneof("message")
    if kind == "execution_log":
        m = msg.execution_log
        return LogLine(
            execution_id=m.execution_id,
            seq=m.seq,
            stream=STREAMS.get(m.stream, "stdout"),
            line=clean_text(m.line),
            at=time_from_proto(m.at) or datetime.now(UTC),
            deployment_id=m.deployment_id,
            step_id=m.step_id,
        )
    if kind == "execution_result":
        r = msg.execution_result
        # outputs_is_list tells an empty list (nothing runs downstream) from no outputs.
        is_list = r.outputs_is_list or len(r.outputs_list) > 0
        outcome = OUTCOMES.get(r.status, Outcome.FAILED)
        error = clean_text(r.error) or ("" if r.status else "the worker reported no status")
        outputs: dict[str, Value] | None = None
        outputs_list: list[dict[str, Value]] | None = None
        http_status = r.http_status
        try:
            if is_list:
                outputs_list = [values_from_proto(s.outputs) for s in r.outputs_list]
            else:
                outputs = values_from_proto(r.outputs)
        except UnreadableValue as exc:
            if outcome is Outcome.COMPLETED:
                outcome, error, http_status = Outcome.FAILED, str(exc), 0
            outputs, outputs_list = None, None
        return ExecutionEnded(
            execution_id=r.execution_id,
            lost=r.status == pb.EXECUTION_STATUS_LOST,
            result=ExecutionResult(
                outcome=outcome,
                outputs=outputs,
                outputs_list=outputs_list,
                error=error,
                traceback=clean_text(r.traceback),
                http_status=http_status,
                started_at=time_from_proto(r.started_at),
                ended_at=time_from_proto(r.ended_at),
                log_count=r.log_line_count,
                cpu_seconds=r.cpu_seconds,
                max_memory_bytes=r.max_memory_bytes,
            ),
        )
    if kind == "heartbeat":
        return Heartbeat(seq=msg.heartbeat.seq)
    if kind == "deployment_state":
        s = msg.deployment_state
        return StepStateReported(
            deployment_id=s.deployment_id,
            step_id=s.step_id,
            state=STEP_STATES.get(s.state, StepState.DEPLOYING),
            reason=clean_text(s.reason),
        )
    if kind == "execution_progress":
        p = msg.execution_progress
        return ExecutionProgressed(
            execution_id=p.execution_id, fraction=p.fraction, message=clean_text(p.message)
        )
    if kind == "new_run":
        n = msg.new_run
        try:
            trigger_outputs, refused = values_from_proto(n.outputs), ""
        except UnreadableValue as exc:
            trigger_outputs, refused = {}, str(exc)
        return TriggerFired(
            deployment_id=n.deployment_id,
            step_id=n.step_id,
            outputs=trigger_outputs,
            at=time_from_proto(n.at),
            refused=refused,
        )
    if kind == "ack":
        return OrdersAcked(order_seq=msg.ack.order_seq)
    if kind == "published":
        return FilesPublished(
            keys=tuple(msg.published.keys),
            failures=tuple((f.key, clean_text(f.reason)) for f in msg.published.failures),
        )
    return None


def _io_to_proto(io: IO, out: pb.IO) -> None:
    out.name, out.human_name, out.help, out.type = io.name, io.human_name, io.help, io.type
    out.optional = io.optional
    out.enum_values.extend(io.enum_values)
    if io.default_json is not None:
        out.default_value = io.default_json


def _resources_to_proto(r: Resources, out: pb.Resources) -> None:
    out.cpu, out.memory_bytes, out.time_seconds, out.gpu = (
        r.cpu,
        r.memory_bytes,
        r.time_seconds,
        r.gpu,
    )


def outgoing_to_proto(message: Outgoing) -> pb.RunnerMessage:
    out = pb.RunnerMessage()
    if isinstance(message, ExecuteOrder):
        out.order_seq = message.order_seq
        e = out.execute
        e.execution_id, e.run_id, e.deployment_id, e.step_id = (
            message.execution_id,
            message.run_id,
            message.deployment_id,
            message.step_id,
        )
        e.timeout_seconds = message.timeout_seconds
        for name, value in message.inputs.items():
            value_to_proto(value, e.inputs[name])
    elif isinstance(message, ReportAck):
        out.report_ack.report_seq = message.report_seq
    elif isinstance(message, Registered):
        r = out.registered
        r.worker_id, r.site_id, r.last_report_seq = (
            message.worker_id,
            message.site_id,
            message.last_report_seq,
        )
        r.heartbeat_interval_seconds = message.heartbeat_interval_seconds
    elif isinstance(message, DeployOrder):
        out.order_seq = message.order_seq
        d = out.deploy
        d.deployment_id, d.step_id, d.project_id = (
            message.deployment_id,
            message.step_id,
            message.project_id,
        )
        d.action_id, d.action_version, d.action_kind = (
            message.action_id,
            message.action_version,
            message.action_kind,
        )
        d.artefact_key, d.artefact_sha256 = message.artefact_key, message.artefact_sha256
        d.is_trigger, d.node_pool = message.is_trigger, message.node_pool
        for name, value in message.trigger_inputs.items():
            value_to_proto(value, d.trigger_inputs[name])
        _resources_to_proto(message.resources, d.resources)
        d.hpc.update(dict(message.hpc))
        d.always_warm = message.always_warm
        for io in message.inputs:
            _io_to_proto(io, d.inputs.add())
        for io in message.outputs:
            _io_to_proto(io, d.outputs.add())
    elif isinstance(message, UndeployOrder):
        out.order_seq = message.order_seq
        out.undeploy.deployment_id = message.deployment_id
        out.undeploy.step_id = message.step_id
    elif isinstance(message, CancelOrder):
        out.order_seq = message.order_seq
        out.cancel.execution_id = message.execution_id
        out.cancel.reason = message.reason
    elif isinstance(message, PublishOrder):
        out.order_seq = message.order_seq
        for f in message.files:
            out.publish.files.add(key=f.key, sha256=f.sha256, run_id=f.run_id)
    elif isinstance(message, ReleaseOrder):
        out.order_seq = message.order_seq
        out.release.run_ids.extend(message.run_ids)
    return out
