"""Domain objects <-> the JSON documents stored in the database (lossless both ways).

A sensitive value (the static value of a password-type input) is stored sealed,
`{"sealed": <token>}` (bound to the project), never in clear.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Protocol, cast

from ...domain.actions import (
    IO,
    ActionKind,
    ActionRef,
    IOType,
    JsonValue,
    Origin,
    ProjectId,
    Resources,
)
from ...domain.deployment import Snapshot, SnapshotId, SnapshotStep
from ...domain.workflow import (
    FileValue,
    InputValue,
    Position,
    ReferenceValue,
    SecretValue,
    StaticValue,
    Step,
    StepSettings,
    Workflow,
    WorkflowId,
    WorkflowResult,
)

Doc = dict[str, Any]


class ValueBox(Protocol):
    def seal_value(self, project_id: str, value: JsonValue) -> str: ...

    def open_value(self, project_id: str, token: str) -> JsonValue: ...


def io_to_doc(io: IO) -> Doc:
    doc: Doc = {
        "name": io.name,
        "type": str(io.type),
        "human_name": io.human_name,
        "help": io.help,
        "optional": io.optional,
        "enum_values": list(io.enum_values),
    }
    if io.has_default:
        doc["default"] = io.default
    if io.origin is not None:
        doc["origin"] = str(io.origin)
    return doc


def io_from_doc(doc: Doc) -> IO:
    return IO(
        name=doc["name"],
        type=IOType(doc["type"]),
        human_name=doc.get("human_name", ""),
        help=doc.get("help", ""),
        optional=bool(doc.get("optional", False)),
        enum_values=tuple(doc.get("enum_values", ())),
        has_default="default" in doc,
        default=cast(JsonValue, doc.get("default")),
        origin=Origin(doc["origin"]) if doc.get("origin") else None,
    )


def resources_to_doc(r: Resources) -> Doc:
    return {
        "cpu": r.cpu,
        "memory_bytes": r.memory_bytes,
        "time_seconds": r.time_seconds,
        "gpu": r.gpu,
    }


def resources_from_doc(doc: Doc) -> Resources:
    return Resources(
        cpu=doc.get("cpu"),
        memory_bytes=doc.get("memory_bytes"),
        time_seconds=doc.get("time_seconds"),
        gpu=doc.get("gpu"),
    )


def value_to_doc(value: InputValue, box: ValueBox, project_id: str) -> Doc:
    if isinstance(value, StaticValue) and value.sensitive:
        return {"sealed": box.seal_value(project_id, value.value)}
    if isinstance(value, StaticValue):
        return {"static": value.value}
    if isinstance(value, SecretValue):
        return {"secret": value.name}
    if isinstance(value, FileValue):
        return {
            "file": {
                "key": value.key,
                "name": value.name,
                "size": value.size,
                "sha256": value.sha256,
                "directory": value.directory,
            }
        }
    return {"reference": {"step": value.step_id, "output": value.output}}


def value_from_doc(doc: Doc, box: ValueBox, project_id: str) -> InputValue:
    if "sealed" in doc:
        return StaticValue(value=box.open_value(project_id, doc["sealed"]), sensitive=True)
    if "static" in doc:
        return StaticValue(value=cast(JsonValue, doc["static"]))
    if "secret" in doc:
        return SecretValue(name=doc["secret"])
    if "file" in doc:
        f = doc["file"]
        return FileValue(
            key=f["key"],
            name=f["name"],
            size=int(f["size"]),
            sha256=f["sha256"],
            directory=bool(f.get("directory", False)),
        )
    ref = doc["reference"]
    return ReferenceValue(step_id=ref["step"], output=ref["output"])


def settings_to_doc(s: StepSettings) -> Doc:
    return {
        "timeout_seconds": s.timeout_seconds,
        "retries": s.retries,
        "site_name": s.site_name,
        "node_pool": s.node_pool,
        "labels": [[k, v] for k, v in s.labels],
        "resources": resources_to_doc(s.resources) if s.resources is not None else None,
        "hpc": [[k, v] for k, v in s.hpc],
        "always_warm": s.always_warm,
    }


def settings_from_doc(doc: Doc) -> StepSettings:
    return StepSettings(
        timeout_seconds=doc.get("timeout_seconds"),
        retries=doc.get("retries"),
        site_name=doc.get("site_name"),
        node_pool=doc.get("node_pool"),
        labels=tuple((k, v) for k, v in doc.get("labels", [])),
        resources=resources_from_doc(doc["resources"]) if doc.get("resources") else None,
        hpc=tuple((k, v) for k, v in doc.get("hpc", [])),
        always_warm=doc.get("always_warm"),
    )


def step_to_doc(step: Step, box: ValueBox, project_id: str) -> Doc:
    return {
        "id": step.id,
        "action_id": step.action.action_id,
        "version": step.action.version,
        "human_name": step.human_name,
        "position": None if step.position is None else {"x": step.position.x, "y": step.position.y},
        # A list of pairs: the order the inputs were given in is part of the definition.
        "inputs": [[name, value_to_doc(v, box, project_id)] for name, v in step.inputs.items()],
        "outputs": [io_to_doc(o) for o in step.outputs],
        "streams_to": list(step.streams_to),
        "settings": settings_to_doc(step.settings),
    }


def step_from_doc(doc: Doc, box: ValueBox, project_id: str) -> Step:
    position = doc.get("position")
    return Step(
        id=doc["id"],
        action=ActionRef(action_id=doc["action_id"], version=doc["version"]),
        human_name=doc.get("human_name"),
        position=Position(x=position["x"], y=position["y"]) if position else None,
        inputs={name: value_from_doc(v, box, project_id) for name, v in doc.get("inputs", [])},
        outputs=tuple(io_from_doc(o) for o in doc.get("outputs", [])),
        streams_to=list(doc.get("streams_to", [])),
        settings=settings_from_doc(doc.get("settings") or {}),
    )


def result_to_doc(r: WorkflowResult) -> Doc:
    return {"key": r.key, "step": r.step_id, "output": r.output}


def result_from_doc(doc: Doc) -> WorkflowResult:
    return WorkflowResult(key=doc["key"], step_id=doc["step"], output=doc["output"])


def definition_to_doc(w: Workflow, box: ValueBox) -> Doc:
    return {
        "steps": [step_to_doc(s, box, w.project_id) for s in w.steps],
        "results": [result_to_doc(r) for r in w.results],
    }


def workflow_from_row(row: Any, box: ValueBox) -> Workflow:
    definition = row.definition
    return Workflow(
        id=WorkflowId(row.id),
        project_id=ProjectId(row.project_id),
        name=row.name,
        description=row.description,
        steps=[step_from_doc(s, box, row.project_id) for s in definition.get("steps", [])],
        results=[result_from_doc(r) for r in definition.get("results", [])],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _without_password_default(io: IO) -> IO:
    if io.type is IOType.PASSWORD and io.has_default:
        return dataclasses.replace(io, has_default=False, default=None)
    return io


def snapshot_to_doc(s: Snapshot, box: ValueBox) -> Doc:
    return {
        "description": s.description,
        "steps": [
            {
                "step_id": st.step_id,
                "human_name": st.human_name,
                "action_id": st.action_id,
                "action_version": st.action_version,
                "action_kind": str(st.action_kind),
                "artefact_key": st.artefact_key,
                "artefact_sha256": st.artefact_sha256,
                # A password's default is kept with the values (sealed), not in clear here.
                "inputs": [io_to_doc(_without_password_default(i)) for i in st.inputs],
                "outputs": [io_to_doc(o) for o in st.outputs],
                "input_values": [
                    [n, value_to_doc(v, box, s.project_id)] for n, v in st.input_values
                ],
                "parent_step_ids": list(st.parent_step_ids),
                "settings": settings_to_doc(st.settings),
            }
            for st in s.steps
        ],
        "trigger_step_id": s.trigger_step_id,
        "http_endpoint": s.http_endpoint,
        "builtin_trigger": s.builtin_trigger,
        "trigger_fields": [io_to_doc(f) for f in s.trigger_fields],
        "results": [result_to_doc(r) for r in s.results],
        "definition": {
            "name": s.definition.name,
            "description": s.definition.description,
            "created_at": s.definition.created_at.isoformat(),
            "updated_at": s.definition.updated_at.isoformat(),
            **definition_to_doc(s.definition, box),
        },
    }


def snapshot_from_row(row: Any, box: ValueBox) -> Snapshot:
    doc = row.document
    d = doc["definition"]
    definition = Workflow(
        id=WorkflowId(row.workflow_id),
        project_id=ProjectId(row.project_id),
        name=d["name"],
        description=d["description"],
        steps=[step_from_doc(s, box, row.project_id) for s in d["steps"]],
        results=[result_from_doc(r) for r in d["results"]],
        created_at=datetime.fromisoformat(d["created_at"]),
        updated_at=datetime.fromisoformat(d["updated_at"]),
    )
    return Snapshot(
        id=SnapshotId(row.id),
        project_id=ProjectId(row.project_id),
        workflow_id=WorkflowId(row.workflow_id),
        workflow_name=row.workflow_name,
        description=doc["description"],
        created_at=row.created_at,
        steps=tuple(
            SnapshotStep(
                step_id=st["step_id"],
                human_name=st["human_name"],
                action_id=st["action_id"],
                action_version=st["action_version"],
                action_kind=ActionKind(st["action_kind"]),
                artefact_key=st["artefact_key"],
                artefact_sha256=st["artefact_sha256"],
                inputs=tuple(io_from_doc(i) for i in st["inputs"]),
                outputs=tuple(io_from_doc(o) for o in st["outputs"]),
                input_values=tuple(
                    (n, value_from_doc(v, box, row.project_id)) for n, v in st["input_values"]
                ),
                parent_step_ids=tuple(st["parent_step_ids"]),
                settings=settings_from_doc(st["settings"]),
            )
            for st in doc["steps"]
        ),
        trigger_step_id=doc["trigger_step_id"],
        http_endpoint=doc["http_endpoint"],
        builtin_trigger=doc.get("builtin_trigger", ""),
        trigger_fields=tuple(io_from_doc(f) for f in doc["trigger_fields"]),
        results=tuple(result_from_doc(r) for r in doc["results"]),
        definition=definition,
    )
