"""Read side of the HTTP API: what the queries answer (plain JSON-ready documents).

Every query is scoped to a project: an object of another project is "not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..domain.site import Site

Document = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunFilter:
    workflow_id: str | None = None
    deployment_id: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    #: Opaque cursor from the previous page (`next_cursor`).
    cursor: str | None = None


class RunnerQueries(Protocol):
    async def list_deployments(
        self, project_id: str, workflow_id: str | None, state: str | None
    ) -> list[Document]: ...

    async def get_deployment(self, project_id: str, deployment_id: str) -> Document | None: ...

    async def list_runs(self, project_id: str, f: RunFilter) -> tuple[list[Document], str | None]:
        """A page of runs, newest first, and the cursor of the next page (None at the end)."""
        ...

    async def get_run(self, project_id: str, run_id: str) -> Document | None:
        """The run with its executions (steps), inputs, outputs, timings and errors."""
        ...

    async def logs(
        self,
        project_id: str,
        *,
        run_id: str | None = None,
        deployment_id: str | None = None,
        execution_id: str | None = None,
        step_id: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[Document]: ...

    async def list_sites(self, include_archived: bool = False) -> list[Document]:
        """Every site (`site_document`), by name; archived ones only if asked."""
        ...

    async def run_file(self, project_id: str, run_id: str, key: str) -> Document | None:
        """The file value (key, name, size...) if `key` is an input or output of the run."""
        ...


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def site_document(site: Site, connected: bool = False) -> Document:
    """A site as the API shows it: never its credential, only whether it has one."""
    return {
        "id": site.id,
        "name": site.name,
        "worker_id": site.worker_id,
        "backend_kind": site.backend_kind,
        "state": str(site.state),
        "state_reason": site.state_reason or None,
        "node_pools": [
            {
                "name": p.name,
                "cpu": p.cpu,
                "memory_bytes": p.memory_bytes,
                "gpu": p.gpu,
                "max_time_seconds": p.max_time_seconds,
            }
            for p in site.node_pools
        ],
        "labels": dict(site.labels),
        "version": site.version,
        "worker_address": site.worker_address,
        "connected": connected,
        "registered_at": _iso(site.registered_at),
        "last_seen_at": _iso(site.last_seen_at),
        "credential": str(site.credential_state),
        "credential_issued_at": _iso(site.credential_issued_at),
        "created_at": _iso(site.created_at),
        "created_by": site.created_by,
        "archived_at": _iso(site.archived_at),
    }
