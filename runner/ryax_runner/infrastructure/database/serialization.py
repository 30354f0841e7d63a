"""Domain objects <-> database rows (JSON documents for nested parts).

Sealed at rest (`SecretBox`): the secrets of deployed definitions (`{"secret", "sealed"}`), and
the values of password-type outputs (an HTTP endpoint's password fields, a trigger's or a step's
password outputs) in executions' outputs and runs' results, each stored as `{"$sealed": token}`
(bound to its execution or run), shown as `***` by the API.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from ryax_kit.crypto import KeyRing

from ...domain.deployment import (
    Deployment,
    DeploymentId,
    DeploymentState,
    StepDeployment,
    StepState,
)
from ...domain.run import Branch, Execution, ExecutionId, ExecutionState, Run, RunId, RunState
from ...domain.site import CredentialHash, NodePool, Site, SiteId, SiteState
from ...domain.values import from_json, to_json, values_from_json, values_to_json
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


class SecretBox:
    """Seals the secret values of deployed workflows stored in the database: the kit's sealer
    for "runner/deployment-secrets", keyed by RYAX_SECRET_KEY (and RYAX_SECRET_KEY_PREVIOUS
    while keys are rotated). A value that cannot be opened raises `ryax_kit.crypto.Unsealable`,
    whose message says why (a key no longer configured, an altered value)."""

    PURPOSE = "runner/deployment-secrets"
    VALUES_PURPOSE = "runner/password-values"

    def __init__(self, secret_key: str, previous: Sequence[str] = ()) -> None:
        ring = KeyRing([secret_key, *previous])
        self._sealer = ring.sealer(self.PURPOSE)
        self._values = ring.sealer(self.VALUES_PURPOSE)

    def seal(self, value: str) -> str:
        return self._sealer.seal_text(value)

    def open(self, token: str) -> str:
        return self._sealer.open_text(token)

    def seal_value(self, doc: Any, context: str) -> dict[str, str]:
        """A value's JSON document, sealed: `{"$sealed": token}`."""
        return {SEALED: self._values.seal_text(json.dumps(doc, ensure_ascii=False), context)}

    def open_value(self, doc: Any, context: str) -> Any:
        """Inverse of `seal_value` (anything else is given back as it is)."""
        if is_sealed(doc):
            return json.loads(self._values.open_text(doc[SEALED], context))
        return doc


#: The key of a sealed value in a JSON document of values.
SEALED = "$sealed"


def is_sealed(doc: Any) -> bool:
    return isinstance(doc, dict) and len(doc) == 1 and isinstance(doc.get(SEALED), str)


def seal_values(
    doc: dict[str, Any] | None, names: Collection[str], box: SecretBox, context: str
) -> dict[str, Any] | None:
    """`doc` (a values document) with the entries `names` sealed."""
    if doc is None or not names:
        return doc
    return {k: box.seal_value(v, context) if k in names else v for k, v in doc.items()}


def open_values(doc: dict[str, Any] | None, box: SecretBox, context: str) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: box.open_value(v, context) for k, v in doc.items()}


# -- definitions -------------------------------------------------------------------------------


def _io_to(io: IO) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": io.name,
        "type": io.type,
        "human_name": io.human_name,
        "help": io.help,
        "optional": io.optional,
        "enum_values": list(io.enum_values),
        "default": io.default_json,
    }
    if io.origin:
        doc["origin"] = io.origin
    return doc


def _io_from(doc: dict[str, Any]) -> IO:
    return IO(
        name=doc["name"],
        type=doc["type"],
        human_name=doc.get("human_name", ""),
        help=doc.get("help", ""),
        optional=bool(doc.get("optional", False)),
        enum_values=tuple(doc.get("enum_values", ())),
        default_json=doc.get("default"),
        origin=doc.get("origin", ""),
    )


def _source_to(source: InputSource, box: SecretBox) -> dict[str, Any]:
    if isinstance(source, StaticInput):
        return {"static": to_json(source.value)}
    if isinstance(source, SecretInput):
        return {"secret": source.name, "sealed": box.seal(source.value)}
    return {"ref": [source.step_id, source.output_name]}


def _source_from(doc: dict[str, Any], box: SecretBox) -> InputSource:
    if "static" in doc:
        return StaticInput(value=from_json(doc["static"]))
    if "secret" in doc:
        return SecretInput(name=doc["secret"], value=box.open(doc["sealed"]))
    step_id, output_name = doc["ref"]
    return ReferenceInput(step_id=step_id, output_name=output_name)


def definition_to_json(d: WorkflowDefinition, box: SecretBox) -> dict[str, Any]:
    steps = []
    for s in d.steps:
        r = s.settings.resources
        steps.append(
            {
                "step_id": s.step_id,
                "human_name": s.human_name,
                "action_id": s.action_id,
                "action_version": s.action_version,
                "action_kind": s.action_kind,
                "artefact_key": s.artefact_key,
                "artefact_sha256": s.artefact_sha256,
                "inputs": [_io_to(i) for i in s.inputs],
                "outputs": [_io_to(o) for o in s.outputs],
                "input_values": [[n, _source_to(src, box)] for n, src in s.input_values],
                "parents": list(s.parent_step_ids),
                "settings": {
                    "timeout_seconds": s.settings.timeout_seconds,
                    "retries": s.settings.retries,
                    "site_name": s.settings.site_name,
                    "node_pool": s.settings.node_pool,
                    "labels": [list(kv) for kv in s.settings.labels],
                    "resources": [r.cpu, r.memory_bytes, r.time_seconds, r.gpu],
                    "hpc": [list(kv) for kv in s.settings.hpc],
                    "always_warm": s.settings.always_warm,
                },
            }
        )
    return {
        "description": d.description,
        "steps": steps,
        "trigger": {
            "step_id": d.trigger.step_id,
            "http_endpoint": d.trigger.http_endpoint,
            "fields": [_io_to(f) for f in d.trigger.fields],
            "builtin": d.trigger.builtin,
        },
        "results": [[r.key, r.step_id, r.output_name] for r in d.results],
    }


def definition_from_json(doc: dict[str, Any], box: SecretBox) -> WorkflowDefinition:
    steps = []
    for s in doc["steps"]:
        st = s["settings"]
        cpu, mem, time_s, gpu = st["resources"]
        steps.append(
            StepDefinition(
                step_id=s["step_id"],
                human_name=s.get("human_name", ""),
                action_id=s["action_id"],
                action_version=s["action_version"],
                action_kind=s["action_kind"],
                artefact_key=s.get("artefact_key", ""),
                artefact_sha256=s.get("artefact_sha256", ""),
                inputs=tuple(_io_from(i) for i in s["inputs"]),
                outputs=tuple(_io_from(o) for o in s["outputs"]),
                input_values=tuple((n, _source_from(src, box)) for n, src in s["input_values"]),
                parent_step_ids=tuple(s["parents"]),
                settings=StepSettings(
                    timeout_seconds=st["timeout_seconds"],
                    retries=st["retries"],
                    site_name=st["site_name"],
                    node_pool=st["node_pool"],
                    labels=tuple((k, v) for k, v in st["labels"]),
                    resources=Resources(cpu=cpu, memory_bytes=mem, time_seconds=time_s, gpu=gpu),
                    # Definitions recorded before step-level HPC parameters have none.
                    hpc=tuple((k, v) for k, v in st.get("hpc", [])),
                    always_warm=bool(st.get("always_warm", False)),
                ),
            )
        )
    t = doc["trigger"]
    return WorkflowDefinition(
        description=doc.get("description", ""),
        steps=tuple(steps),
        trigger=TriggerDefinition(
            step_id=t["step_id"],
            http_endpoint=t["http_endpoint"],
            fields=tuple(_io_from(f) for f in t["fields"]),
            builtin=t.get("builtin", ""),
        ),
        results=tuple(
            ResultDefinition(key=k, step_id=s, output_name=o) for k, s, o in doc["results"]
        ),
    )


# -- rows ------------------------------------------------------------------------------------------


def deployment_row(d: Deployment, box: SecretBox) -> dict[str, Any]:
    return {
        "id": d.id,
        "project_id": d.project_id,
        "workflow_id": d.workflow_id,
        "workflow_name": d.workflow_name,
        "snapshot_id": d.snapshot_id,
        "requested_by": d.requested_by,
        "definition": definition_to_json(d.definition, box),
        "state": str(d.state),
        "reason": d.reason,
        "state_seq": d.state_seq,
        "steps": [
            {
                "step_id": s.step_id,
                "site_id": s.site_id,
                "node_pool": s.node_pool,
                "state": str(s.state),
                "reason": s.reason,
            }
            for s in d.steps.values()
        ],
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    }


def deployment_from_row(row: Any, box: SecretBox) -> Deployment:
    return Deployment(
        id=DeploymentId(row.id),
        project_id=row.project_id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        snapshot_id=row.snapshot_id,
        requested_by=row.requested_by,
        definition=definition_from_json(row.definition, box),
        state=DeploymentState(row.state),
        reason=row.reason,
        state_seq=row.state_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
        steps={
            s["step_id"]: StepDeployment(
                step_id=s["step_id"],
                site_id=SiteId(s["site_id"]) if s["site_id"] else None,
                node_pool=s["node_pool"],
                state=StepState(s["state"]),
                reason=s["reason"],
            )
            for s in row.steps
        },
    )


def site_row(s: Site) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "worker_id": s.worker_id,
        "backend_kind": s.backend_kind,
        "node_pools": [
            [p.name, p.cpu, p.memory_bytes, p.gpu, p.max_time_seconds] for p in s.node_pools
        ],
        "labels": dict(s.labels),
        "version": s.version,
        "state": str(s.state),
        "state_reason": s.state_reason,
        "registered_at": s.registered_at,
        "last_seen_at": s.last_seen_at,
        "last_report_seq": s.last_report_seq,
        "last_order_seq": s.last_order_seq,
        "worker_address": s.worker_address,
        "credential_salt": s.credential.salt if s.credential else None,
        "credential_hash": s.credential.digest if s.credential else None,
        "credential_issued_at": s.credential_issued_at,
        "credential_revoked_at": s.credential_revoked_at,
        "created_at": s.created_at,
        "created_by": s.created_by,
        "archived_at": s.archived_at,
    }


def node_pool_from_json(item: list[Any]) -> NodePool:
    """[name, cpu, memory, gpu] (before 0006) or [name, cpu, memory, gpu, max time]."""
    name, cpu, memory, gpu, *rest = item
    return NodePool(
        name=name,
        cpu=cpu,
        memory_bytes=memory,
        gpu=gpu,
        max_time_seconds=float(rest[0]) if rest else 0.0,
    )


def site_from_row(row: Any) -> Site:
    return Site(
        id=SiteId(row.id),
        name=row.name,
        worker_id=row.worker_id,
        backend_kind=row.backend_kind,
        node_pools=tuple(node_pool_from_json(p) for p in row.node_pools),
        labels=dict(row.labels),
        version=row.version,
        state=SiteState(row.state),
        state_reason=row.state_reason,
        registered_at=row.registered_at,
        last_seen_at=row.last_seen_at,
        last_report_seq=row.last_report_seq,
        last_order_seq=row.last_order_seq,
        worker_address=row.worker_address,
        credential=(
            CredentialHash(salt=row.credential_salt, digest=row.credential_hash)
            if row.credential_salt and row.credential_hash
            else None
        ),
        credential_issued_at=row.credential_issued_at,
        credential_revoked_at=row.credential_revoked_at,
        created_at=row.created_at,
        created_by=row.created_by,
        archived_at=row.archived_at,
    )


def run_row(r: Run, box: SecretBox) -> dict[str, Any]:
    """Results of a password-type output sealed."""
    return {
        "id": r.id,
        "project_id": r.project_id,
        "deployment_id": r.deployment_id,
        "workflow_id": r.workflow_id,
        "workflow_name": r.workflow_name,
        "origin": r.origin,
        "state": str(r.state),
        "reason": r.reason,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "failed_step_id": r.failed_step_id,
        "http_status": r.http_status,
        "results": seal_values(
            values_to_json(r.results), r.definition.sensitive_results, box, r.id
        ),
    }


def run_from_row(row: Any, definition: WorkflowDefinition, box: SecretBox) -> Run:
    return Run(
        id=RunId(row.id),
        project_id=row.project_id,
        deployment_id=row.deployment_id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        definition=definition,
        origin=row.origin,
        state=RunState(row.state),
        reason=row.reason,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        failed_step_id=row.failed_step_id,
        http_status=row.http_status,
        results=values_from_json(open_values(row.results, box, row.id)),
    )


def execution_row(e: Execution, box: SecretBox, sensitive: Collection[str] = ()) -> dict[str, Any]:
    """Outputs named in `sensitive` (the step's password-type outputs) sealed."""

    def outputs(values: dict[str, Any] | None) -> dict[str, Any] | None:
        return seal_values(values_to_json(values), sensitive, box, e.id)

    return {
        "id": e.id,
        "run_id": e.run_id,
        "step_id": e.step_id,
        "branch": [list(p) for p in e.branch],
        "attempt": e.attempt,
        "state": str(e.state),
        "is_trigger": e.is_trigger,
        "created_at": e.created_at,
        "inputs": values_to_json(e.inputs),
        "site_id": e.site_id,
        "order_seq": e.order_seq,
        "not_before": e.not_before,
        "dispatched_at": e.dispatched_at,
        "started_at": e.started_at,
        "ended_at": e.ended_at,
        "outputs": outputs(e.outputs),
        "outputs_list": None if e.outputs_list is None else [outputs(o) for o in e.outputs_list],
        "error": e.error,
        "traceback": e.traceback,
        "http_status": e.http_status,
        "log_count": e.log_count,
        "progress": e.progress,
        "progress_message": e.progress_message,
        "cpu_seconds": e.cpu_seconds,
        "max_memory_bytes": e.max_memory_bytes,
        "infra_retries": e.infra_retries,
        "retry_of": e.retry_of,
    }


def branch_from_json(doc: Any) -> Branch:
    return tuple((str(s), int(i)) for s, i in doc)


def execution_from_row(row: Any, box: SecretBox) -> Execution:
    outputs_list = row.outputs_list
    return Execution(
        id=ExecutionId(row.id),
        run_id=RunId(row.run_id),
        step_id=row.step_id,
        branch=branch_from_json(row.branch),
        attempt=row.attempt,
        state=ExecutionState(row.state),
        is_trigger=row.is_trigger,
        created_at=row.created_at,
        inputs=values_from_json(row.inputs) or {},
        site_id=row.site_id,
        order_seq=row.order_seq,
        not_before=row.not_before,
        dispatched_at=row.dispatched_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outputs=values_from_json(open_values(row.outputs, box, row.id)),
        outputs_list=None
        if outputs_list is None
        else [values_from_json(open_values(o, box, row.id)) or {} for o in outputs_list],
        error=row.error,
        traceback=row.traceback,
        http_status=row.http_status,
        log_count=row.log_count,
        progress=row.progress,
        progress_message=row.progress_message,
        cpu_seconds=row.cpu_seconds,
        max_memory_bytes=row.max_memory_bytes,
        infra_retries=row.infra_retries,
        retry_of=ExecutionId(row.retry_of) if row.retry_of else None,
    )
