"""Protobuf <-> domain, for both protocols the worker speaks. Protobuf ends here."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf.struct_pb2 import NULL_VALUE
from google.protobuf.timestamp_pb2 import Timestamp

from ...application.ports import (
    ActionEvent,
    ActionLog,
    ActionNewRun,
    ActionProgress,
    ActionResult,
    ActionStatus,
)
from ...domain.model import (
    ActionKind,
    CancelExecution,
    DeploymentId,
    DeploymentStateChanged,
    DeploymentStateKind,
    DeployStep,
    ExecuteStep,
    ExecutionFinished,
    ExecutionId,
    ExecutionProgressed,
    ExecutionStatus,
    FileRef,
    FilesPublished,
    FileToPublish,
    Heartbeat,
    IOSpec,
    JsonText,
    LogLine,
    LogStream,
    Order,
    OrderAck,
    PublishFiles,
    Registration,
    ReleaseRuns,
    Report,
    Resources,
    RunId,
    StepId,
    StepRef,
    TriggerFired,
    UndeployStep,
    Value,
    Values,
)
from ..proto import action_service_pb2 as apb
from ..proto import worker_service_pb2 as wpb

ValueMessage = wpb.Value | apb.Value


# -- shared helpers ---------------------------------------------------------------------------


def timestamp_to_proto(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at.astimezone(UTC))
    return stamp


def timestamp_from_proto(stamp: Timestamp, default: datetime) -> datetime:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return default
    return stamp.ToDatetime(tzinfo=UTC)


def value_from_proto(message: ValueMessage) -> Value:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "string_value":
        return message.string_value
    if kind == "int_value":
        return message.int_value
    if kind == "float_value":
        return message.float_value
    if kind == "bool_value":
        return message.bool_value
    if kind == "json_value":
        return JsonText(text=message.json_value)
    ref = message.file if kind == "file" else message.directory
    return FileRef(
        key=ref.key,
        name=ref.name,
        size=ref.size,
        sha256=ref.sha256,
        is_directory=kind == "directory",
        held_by=ref.held_by if isinstance(ref, wpb.FileRef) else "",
    )


def _fill_value(message: Any, value: Value) -> None:
    if value is None:
        message.null_value = NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, int):
        message.int_value = value
    elif isinstance(value, float):
        message.float_value = value
    elif isinstance(value, str):
        message.string_value = value
    elif isinstance(value, JsonText):
        message.json_value = value.text
    else:
        ref = message.directory if value.is_directory else message.file
        ref.key, ref.name, ref.size, ref.sha256 = value.key, value.name, value.size, value.sha256
        if isinstance(ref, wpb.FileRef):
            ref.held_by = value.held_by


def values_from_proto(values: Any) -> Values:
    return {name: value_from_proto(message) for name, message in values.items()}


def runner_value_to_proto(value: Value) -> wpb.Value:
    message = wpb.Value()
    _fill_value(message, value)
    return message


def action_value_to_proto(value: Value) -> apb.Value:
    message = apb.Value()
    _fill_value(message, value)
    return message


# -- runner: orders ---------------------------------------------------------------------------


def _io_from_proto(io: wpb.IO) -> IOSpec:
    return IOSpec(
        name=io.name,
        type=io.type,
        human_name=io.human_name,
        help=io.help,
        optional=io.optional,
        enum_values=tuple(io.enum_values),
        default_value=io.default_value if io.HasField("default_value") else None,
    )


def _ref(deployment_id: str, step_id: str) -> StepRef:
    return StepRef(DeploymentId(deployment_id), StepId(step_id))


def order_from_proto(message: wpb.RunnerMessage) -> Order | None:
    """The order a RunnerMessage carries; None for Registered, ReportAck and unknown kinds."""
    kind = message.WhichOneof("message")
    seq = message.order_seq
    if kind == "deploy":
        d = message.deploy
        try:
            action_kind = ActionKind(d.action_kind)
        except ValueError:
            action_kind = ActionKind.TRIGGER if d.is_trigger else ActionKind.PROCESSOR
        return DeployStep(
            order_seq=seq,
            ref=_ref(d.deployment_id, d.step_id),
            action_id=d.action_id,
            action_version=d.action_version,
            action_kind=action_kind,
            artefact_key=d.artefact_key,
            artefact_sha256=d.artefact_sha256,
            is_trigger=d.is_trigger,
            trigger_inputs=values_from_proto(d.trigger_inputs),
            resources=Resources(
                cpu=d.resources.cpu,
                memory_bytes=d.resources.memory_bytes,
                time_seconds=d.resources.time_seconds,
                gpu=d.resources.gpu,
            ),
            node_pool=d.node_pool,
            inputs=tuple(_io_from_proto(io) for io in d.inputs),
            outputs=tuple(_io_from_proto(io) for io in d.outputs),
            project_id=d.project_id,
            hpc=dict(d.hpc),
            always_warm=d.always_warm,
        )
    if kind == "undeploy":
        u = message.undeploy
        return UndeployStep(order_seq=seq, ref=_ref(u.deployment_id, u.step_id))
    if kind == "execute":
        e = message.execute
        return ExecuteStep(
            order_seq=seq,
            execution_id=ExecutionId(e.execution_id),
            run_id=RunId(e.run_id),
            ref=_ref(e.deployment_id, e.step_id),
            inputs=values_from_proto(e.inputs),
            timeout_seconds=e.timeout_seconds,
        )
    if kind == "cancel":
        c = message.cancel
        return CancelExecution(
            order_seq=seq, execution_id=ExecutionId(c.execution_id), reason=c.reason
        )
    if kind == "publish":
        return PublishFiles(
            order_seq=seq,
            files=tuple(
                FileToPublish(key=f.key, sha256=f.sha256, run_id=f.run_id)
                for f in message.publish.files
            ),
        )
    if kind == "release":
        return ReleaseRuns(order_seq=seq, run_ids=tuple(message.release.run_ids))
    return None


# -- runner: reports --------------------------------------------------------------------------

_STATE = {
    DeploymentStateKind.DEPLOYING: wpb.DEPLOYMENT_STATE_KIND_DEPLOYING,
    DeploymentStateKind.READY: wpb.DEPLOYMENT_STATE_KIND_READY,
    DeploymentStateKind.FAILED: wpb.DEPLOYMENT_STATE_KIND_FAILED,
    DeploymentStateKind.UNDEPLOYING: wpb.DEPLOYMENT_STATE_KIND_UNDEPLOYING,
    DeploymentStateKind.UNDEPLOYED: wpb.DEPLOYMENT_STATE_KIND_UNDEPLOYED,
}
_STATUS = {
    ExecutionStatus.COMPLETED: wpb.EXECUTION_STATUS_COMPLETED,
    ExecutionStatus.FAILED: wpb.EXECUTION_STATUS_FAILED,
    ExecutionStatus.CANCELLED: wpb.EXECUTION_STATUS_CANCELLED,
    ExecutionStatus.LOST: wpb.EXECUTION_STATUS_LOST,
}
_RUNNER_STREAM = {
    LogStream.STDOUT: wpb.LOG_STREAM_STDOUT,
    LogStream.STDERR: wpb.LOG_STREAM_STDERR,
    LogStream.LOG: wpb.LOG_STREAM_LOG,
}


def _runner_values(values: Values, target: Any) -> None:
    for name, value in values.items():
        _fill_value(target[name], value)


def register_to_proto(registration: Registration) -> wpb.WorkerMessage:
    site = registration.site
    register = wpb.Register(
        worker_id=site.worker_id,
        site_name=site.site_name,
        backend_kind=site.backend_kind,
        node_pools=[
            wpb.NodePool(
                name=p.name,
                cpu=p.cpu,
                memory_bytes=p.memory_bytes,
                gpu=p.gpu,
                max_time_seconds=p.max_time_seconds,
            )
            for p in site.node_pools
        ],
        labels=site.labels,
        version=site.version,
        last_seen_order_seq=registration.last_seen_order_seq,
        deployed_steps=[
            wpb.DeployedStep(
                deployment_id=ref.deployment_id, step_id=ref.step_id, state=_STATE[state]
            )
            for ref, state in registration.deployed_steps
        ],
        running_execution_ids=list(registration.running_execution_ids),
        held_files=[
            wpb.HeldFile(run_id=run_id, sha256=sha256) for run_id, sha256 in registration.held_files
        ],
        acks_with_orders=True,  # RunnerConnection reads acked_report_seq
    )
    return wpb.WorkerMessage(report_seq=0, register=register)


#: The runner accepts messages up to 16 MiB; a report must stay well under it, or the stream
#: would break on it again at every reconnect.
MAX_REPORT_BYTES = 4 * 1024 * 1024
MAX_LOG_LINE_CHARS = 64 * 1024


def bounded_report_to_proto(seq: int, report: Report) -> wpb.WorkerMessage:
    """report_to_proto, replacing a report too large for the stream by one that says so."""
    if isinstance(report, LogLine) and len(report.line) > MAX_LOG_LINE_CHARS:
        cut = len(report.line) - MAX_LOG_LINE_CHARS
        report = replace(report, line=f"{report.line[:MAX_LOG_LINE_CHARS]}... [{cut} chars cut]")
    message = report_to_proto(seq, report)
    size = message.ByteSize()
    if size <= MAX_REPORT_BYTES:
        return message
    why = (
        f"{size} bytes, more than the {MAX_REPORT_BYTES} a report may carry: "
        "return large values as files"
    )
    if isinstance(report, ExecutionFinished):
        return report_to_proto(
            seq,
            replace(
                report,
                status=ExecutionStatus.FAILED,
                outputs={},
                outputs_list=(),
                error=f"{_largest_outputs(report)}the result is {why}",
                traceback="",
            ),
        )
    if isinstance(report, TriggerFired):
        return report_to_proto(
            seq,
            LogLine(
                seq=0,
                stream=LogStream.STDERR,
                line=f"ryax: a new run was dropped: its outputs are {why}",
                at=report.at,
                ref=report.ref,
            ),
        )
    return report_to_proto(seq, Heartbeat(seq=0, at=datetime.now(UTC)))


def _largest_outputs(report: ExecutionFinished, shown: int = 3) -> str:
    """`output `a` is N bytes; ...: ` naming the outputs that make a result too large."""
    sizes: dict[str, int] = {}
    for values in (report.outputs, *report.outputs_list):
        for name, value in values.items():
            sizes[name] = sizes.get(name, 0) + runner_value_to_proto(value).ByteSize()
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:shown]
    return "".join(f"output `{name}` is {size} bytes; " for name, size in largest if size)


def report_to_proto(seq: int, report: Report) -> wpb.WorkerMessage:
    message = wpb.WorkerMessage(report_seq=seq)
    if isinstance(report, Heartbeat):
        message.heartbeat.seq = report.seq
        message.heartbeat.at.CopyFrom(timestamp_to_proto(report.at))
    elif isinstance(report, DeploymentStateChanged):
        state = message.deployment_state
        state.deployment_id, state.step_id = report.ref.deployment_id, report.ref.step_id
        state.state = _STATE[report.state]
        state.reason = report.reason
        state.at.CopyFrom(timestamp_to_proto(report.at))
    elif isinstance(report, ExecutionFinished):
        result = message.execution_result
        result.execution_id = report.execution_id
        result.status = _STATUS[report.status]
        _runner_values(report.outputs, result.outputs)
        for values in report.outputs_list:
            _runner_values(values, result.outputs_list.add().outputs)
        result.outputs_is_list = report.outputs_is_list
        result.error, result.traceback = report.error, report.traceback
        result.started_at.CopyFrom(timestamp_to_proto(report.started_at))
        result.ended_at.CopyFrom(timestamp_to_proto(report.ended_at))
        result.http_status = report.http_status
        result.log_line_count = report.log_line_count
        result.cpu_seconds = report.cpu_seconds
        result.max_memory_bytes = report.max_memory_bytes
    elif isinstance(report, LogLine):
        line = message.execution_log
        line.execution_id = report.execution_id or ""
        line.seq, line.stream, line.line = report.seq, _RUNNER_STREAM[report.stream], report.line
        line.at.CopyFrom(timestamp_to_proto(report.at))
        if report.ref is not None:
            line.deployment_id, line.step_id = report.ref.deployment_id, report.ref.step_id
    elif isinstance(report, ExecutionProgressed):
        progress = message.execution_progress
        progress.execution_id = report.execution_id
        progress.fraction, progress.message = report.fraction, report.message
    elif isinstance(report, TriggerFired):
        new_run = message.new_run
        new_run.deployment_id, new_run.step_id = report.ref.deployment_id, report.ref.step_id
        _runner_values(report.outputs, new_run.outputs)
        new_run.at.CopyFrom(timestamp_to_proto(report.at))
    elif isinstance(report, OrderAck):
        message.ack.order_seq = report.order_seq
    elif isinstance(report, FilesPublished):
        message.published.keys.extend(report.keys)
        for key, reason in report.failures:
            message.published.failures.add(key=key, reason=reason)
    return message


# -- action wrapper ---------------------------------------------------------------------------


def _action_io(io: IOSpec) -> apb.IO:
    message = apb.IO(
        name=io.name,
        human_name=io.human_name,
        help=io.help,
        type=io.type,
        optional=io.optional,
        enum_values=list(io.enum_values),
    )
    if io.default_value is not None:
        message.default_value = io.default_value
    return message


def init_request_to_proto(spec: DeployStep, action_dir: Path) -> apb.InitRequest:
    request = apb.InitRequest(
        action_dir=str(action_dir),
        kind=str(spec.action_kind),
        inputs=[_action_io(io) for io in spec.inputs],
        outputs=[_action_io(io) for io in spec.outputs],
        action_id=spec.action_id,
        action_version=spec.action_version,
    )
    for name, value in spec.trigger_inputs.items():
        _fill_value(request.trigger_inputs[name], value)
    return request


def run_request_to_proto(execution_id: str, inputs: Values, work_dir: Path) -> apb.RunRequest:
    request = apb.RunRequest(execution_id=execution_id, work_dir=str(work_dir))
    for name, value in inputs.items():
        _fill_value(request.inputs[name], value)
    return request


_ACTION_STREAM = {
    apb.LOG_STREAM_STDOUT: LogStream.STDOUT,
    apb.LOG_STREAM_STDERR: LogStream.STDERR,
    apb.LOG_STREAM_LOG: LogStream.LOG,
}


def run_reply_from_proto(reply: apb.RunReply, now: datetime) -> ActionEvent | None:
    kind = reply.WhichOneof("reply")
    if kind == "log":
        return ActionLog(
            stream=_ACTION_STREAM.get(reply.log.stream, LogStream.STDOUT),
            line=reply.log.line,
            at=timestamp_from_proto(reply.log.at, now),
        )
    if kind == "progress":
        return ActionProgress(fraction=reply.progress.fraction, message=reply.progress.message)
    if kind == "result":
        r = reply.result
        completed = r.status == apb.RUN_STATUS_COMPLETED
        return ActionResult(
            status=ActionStatus.COMPLETED if completed else ActionStatus.FAILED,
            outputs=values_from_proto(r.outputs),
            outputs_list=tuple(values_from_proto(s.outputs) for s in r.outputs_list),
            outputs_is_list=r.outputs_is_list,
            error=r.error if completed or r.error else "the action failed without a message",
            traceback=r.traceback,
            http_status=r.http_status,
        )
    if kind == "new_run":
        return ActionNewRun(
            outputs=values_from_proto(reply.new_run.outputs),
            at=timestamp_from_proto(reply.new_run.at, now),
        )
    return None
