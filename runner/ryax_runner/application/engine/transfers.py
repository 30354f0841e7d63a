"""Which filestore objects a site's worker may move through presigned URLs (remote sites hold no
filestore keys: docs/remote-sites.md, "How files move").

A site may
- GET the artefact of a step placed on it (deploying or ready, its deployment not going away),
  and an input file of an execution dispatched to it that has no result yet;
- PUT under `runs/<run_id>/<execution_id>/` of such an execution (its outputs), and under
  `triggers/<deployment_id>/<step_id>/` of a trigger step placed on it (a new run's files).
Nothing else: not another site's objects, not an ended execution's, not a source archive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ...domain.deployment import DeploymentId, StepState
from ...domain.errors import DomainError
from ...domain.run import ExecutionId
from ...domain.site import SiteId
from .files import HeldFiles
from .state import EngineState

#: Most objects one request may ask for.
MAX_TRANSFERS = 1000
_LIVE_STEP = (StepState.DEPLOYING, StepState.READY)


class TransferMethod(StrEnum):
    GET = "get"
    PUT = "put"


@dataclass(frozen=True, kw_only=True)
class TransferAsk:
    """One object a worker wants to move."""

    method: TransferMethod
    key: str


class TransferDenied(DomainError):
    """The site may not move this object; the detail names the key and why."""

    code = "permission_denied"

    def __init__(self, method: TransferMethod, key: str, why: str) -> None:
        verb = "read" if method is TransferMethod.GET else "write"
        super().__init__(f"this site may not {verb} {key[:300]!r}: {why}")
        self.method, self.key = method, key


class TransferGrants:
    """Answers, from the engine's memory, whether a site may GET or PUT a key."""

    def __init__(self, state: EngineState, files: HeldFiles | None = None) -> None:
        self._state = state
        self._files = files

    def check(self, site_id: SiteId, asks: Iterable[TransferAsk]) -> None:
        """All or nothing: TransferDenied for the first ask the site may not make."""
        for ask in asks:
            if ask.method is TransferMethod.GET:
                allowed = self._may_read(site_id, ask.key)
            else:
                allowed = self._may_write(site_id, ask.key)
            if not allowed:
                why = (
                    "neither the artefact of a step deployed on it nor an input of an execution "
                    "it runs"
                    if ask.method is TransferMethod.GET
                    else "not under the output prefix of an execution it runs or of a trigger "
                    "deployed on it"
                )
                raise TransferDenied(ask.method, ask.key, why)

    # -- rules -----------------------------------------------------------------------------------

    def _running_here(self, site_id: SiteId) -> set[ExecutionId]:
        link = self._state.links.get(site_id)
        return link.executions if link is not None else set()

    def _may_read(self, site_id: SiteId, key: str) -> bool:
        """Looked up in the indexes (EngineState.artefact_users, WorkerLink.input_keys): the
        cost does not grow with the deployments or the executions of the platform."""
        for deployment_id in self._state.artefact_users.get(key, ()):
            d = self._state.deployments.get(deployment_id)
            if d is None or d.is_gone:
                continue
            for step in d.steps_on(site_id):
                if step.state in _LIVE_STEP and d.definition.step(step.step_id).artefact_key == key:
                    return True
        link = self._state.links.get(site_id)
        for eid in list(link.input_keys.get(key, ())) if link is not None else ():
            run = self._state.executions.get(eid)
            execution = run.executions.get(eid) if run is not None else None
            if execution is not None and execution.is_active:
                return True
        return False

    def _may_write(self, site_id: SiteId, key: str) -> bool:
        parts = key.split("/")
        if len(parts) < 4 or "" in parts or any(p in (".", "..") for p in parts):
            return False
        kind, first, second = parts[0], parts[1], parts[2]
        if kind == "runs" and self._files is not None and self._files.is_asked(site_id, key):
            return True  # a held file the runner asked the site to publish
        if kind == "runs":
            eid = ExecutionId(second)
            if eid not in self._running_here(site_id):
                return False
            run = self._state.executions.get(eid)
            execution = run.executions.get(eid) if run is not None else None
            return (
                run is not None
                and execution is not None
                and execution.is_active
                and run.id == first
            )
        if kind == "triggers":
            d = self._state.deployments.get(DeploymentId(first))
            if d is None or d.is_gone or d.definition.trigger.runs_in_runner:
                return False
            step = d.steps.get(second)
            return (
                step is not None
                and second == d.definition.trigger.step_id
                and step.site_id == site_id
                and step.state in _LIVE_STEP
            )
        return False
