"""`--once`: run one execution without a server (a Slurm job, a debugging session).

The request file is JSON: {"init": <InitRequest>, "run": <RunRequest>} in the protobuf JSON
mapping of action_service.proto (the same messages as over gRPC). The result file is
{"init": <InitReply>, "replies": [<RunReply>, ...]}: every Log, Progress and NewRun, then the
Result. Exit code: 0 completed, 1 failed, 2 the action could not be loaded.

With an events file (`--events EVENTS.jsonl`) every reply is also appended there as it happens,
one JSON object per line (the same mapping), flushed at once: a Slurm job's output streams back
to the worker while it runs, which tails the file; the result file stays the authority.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import IO, Any

from google.protobuf import json_format

from ..application.runtime import ActionRuntime
from ..domain.errors import InvalidDeclaration
from ..domain.model import ExecutionResult, InitOutcome, RunStatus
from .grpc import mappers
from .proto import action_service_pb2 as pb


def run_once(
    runtime: ActionRuntime, request_file: str, result_file: str, events_file: str | None = None
) -> int:
    document = json.loads(Path(request_file).read_text(encoding="utf-8"))
    if events_file:
        with open(events_file, "a", encoding="utf-8") as events:
            result, code = asyncio.run(execute_once(runtime, document, events))
    else:
        result, code = asyncio.run(execute_once(runtime, document))
    tmp = result_file + ".tmp"
    Path(tmp).write_text(json.dumps(result, indent=1), encoding="utf-8")
    os.replace(tmp, result_file)
    return code


async def execute_once(
    runtime: ActionRuntime, document: dict[str, Any], events: IO[str] | None = None
) -> tuple[dict[str, Any], int]:
    init_request = json_format.ParseDict(document.get("init", {}), pb.InitRequest())
    run_request = json_format.ParseDict(document.get("run", {}), pb.RunRequest())
    try:
        config = mappers.config_from_proto(init_request)
    except InvalidDeclaration as exc:
        outcome = InitOutcome(error=exc.detail)
    else:
        outcome = runtime.init(config)
    result: dict[str, Any] = {"init": _json(mappers.init_reply_to_proto(outcome)), "replies": []}
    code = 2
    if outcome.ok:
        inputs = mappers.values_from_proto(run_request.inputs)
        async for event in runtime.run(run_request.execution_id, inputs, run_request.work_dir):
            reply = _json(mappers.event_to_proto(event))
            result["replies"].append(reply)
            if events is not None:
                events.write(json.dumps(reply, separators=(",", ":")) + "\n")
                events.flush()
            if isinstance(event, ExecutionResult):
                code = 0 if event.status is RunStatus.COMPLETED else 1
    return result, code


def _json(message: Any) -> dict[str, Any]:
    converted: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return converted
