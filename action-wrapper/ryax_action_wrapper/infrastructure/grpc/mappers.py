"""Protobuf <-> domain, for ActionService (the only place that knows the wire types)."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ... import __version__
from ...domain.errors import InvalidDeclaration
from ...domain.io import MISSING, IODeclaration, LocalDirectory, LocalFile, Value
from ...domain.model import (
    ActionConfig,
    ActionKind,
    Event,
    ExecutionResult,
    InitOutcome,
    LogLine,
    LogStream,
    NewRun,
    ProgressReport,
    RunStatus,
)
from ..proto import action_service_pb2 as pb

_STREAMS = {
    LogStream.STDOUT: pb.LOG_STREAM_STDOUT,
    LogStream.STDERR: pb.LOG_STREAM_STDERR,
    LogStream.LOG: pb.LOG_STREAM_LOG,
}
_STATUSES = {RunStatus.COMPLETED: pb.RUN_STATUS_COMPLETED, RunStatus.FAILED: pb.RUN_STATUS_FAILED}


def config_from_proto(request: pb.InitRequest) -> ActionConfig:
    """Raises InvalidDeclaration naming the bad kind, input or output."""
    try:
        kind = ActionKind(request.kind.strip().lower())
    except ValueError:
        raise InvalidDeclaration(
            f"unknown action kind '{request.kind}' (trigger, processor or publisher)"
        ) from None
    inputs = tuple(io_from_proto(io, "input") for io in request.inputs)
    outputs = tuple(io_from_proto(io, "output") for io in request.outputs)
    for role, decls in (("input", inputs), ("output", outputs)):
        names = [d.name for d in decls]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidDeclaration(f"duplicate {role} name(s): {', '.join(duplicates)}")
    return ActionConfig(
        action_dir=request.action_dir,
        kind=kind,
        inputs=inputs,
        outputs=outputs,
        trigger_inputs=values_from_proto(request.trigger_inputs),
        action_id=request.action_id,
        action_version=request.action_version,
    )


def io_from_proto(io: pb.IO, role: str) -> IODeclaration:
    return IODeclaration.parse(
        name=io.name,
        type=io.type,
        optional=io.optional,
        enum_values=list(io.enum_values),
        default_json=io.default_value if io.HasField("default_value") else None,
        role=role,
    )


def io_to_proto(decl: IODeclaration) -> pb.IO:
    io = pb.IO(
        name=decl.name,
        type=decl.type.value,
        optional=decl.optional,
        enum_values=list(decl.enum_values),
    )
    if decl.default is not MISSING:
        io.default_value = json.dumps(decl.default)
    return io


def init_reply_to_proto(outcome: InitOutcome) -> pb.InitReply:
    return pb.InitReply(
        error=outcome.error,
        traceback=outcome.traceback,
        wrapper_version=__version__,
        python_version=platform.python_version(),
    )


def values_from_proto(values: Mapping[str, pb.Value]) -> dict[str, Value]:
    return {name: value_from_proto(value) for name, value in values.items()}


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
        parsed: Any = json.loads(value.json_value)
        return parsed  # type: ignore[no-any-return]
    if kind == "file":
        f = value.file
        return LocalFile(path=f.key, name=f.name, size=f.size, sha256=f.sha256)
    d = value.directory
    return LocalDirectory(path=d.key, name=d.name)


def value_to_proto(value: Value) -> pb.Value:
    if value is None:
        return pb.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(value, bool):
        return pb.Value(bool_value=value)
    if isinstance(value, int):
        return pb.Value(int_value=value)
    if isinstance(value, float):
        return pb.Value(float_value=value)
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, LocalFile):
        return pb.Value(
            file=pb.FileRef(key=value.path, name=value.name, size=value.size, sha256=value.sha256)
        )
    if isinstance(value, LocalDirectory):
        return pb.Value(directory=pb.FileRef(key=value.path, name=value.name))
    return pb.Value(json_value=json.dumps(value))


def values_to_proto(values: Mapping[str, Value]) -> dict[str, pb.Value]:
    return {name: value_to_proto(v) for name, v in values.items()}


def _timestamp(event: LogLine | NewRun) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(event.at)
    return ts


def event_to_proto(event: Event) -> pb.RunReply:
    if isinstance(event, LogLine):
        return pb.RunReply(
            log=pb.Log(
                seq=event.seq, stream=_STREAMS[event.stream], line=event.line, at=_timestamp(event)
            )
        )
    if isinstance(event, ProgressReport):
        return pb.RunReply(progress=pb.Progress(fraction=event.fraction, message=event.message))
    if isinstance(event, NewRun):
        return pb.RunReply(
            new_run=pb.NewRun(outputs=values_to_proto(event.outputs), at=_timestamp(event))
        )
    return pb.RunReply(result=result_to_proto(event))


def result_to_proto(result: ExecutionResult) -> pb.Result:
    return pb.Result(
        status=_STATUSES[result.status],
        outputs=values_to_proto(result.outputs or {}),
        outputs_list=[pb.OutputSet(outputs=values_to_proto(s)) for s in result.outputs_list or []],
        outputs_is_list=result.outputs_list is not None,
        error=result.error,
        traceback=result.traceback,
        http_status=result.http_status,
        log_line_count=result.log_line_count,
    )


def events_to_proto(events: Iterable[Event]) -> list[pb.RunReply]:
    return [event_to_proto(e) for e in events]
