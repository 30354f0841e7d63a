"""Read side of the HTTP API: what the queries answer (plain JSON-ready documents).

Every query is scoped to a project: an object of another project is "not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

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

    async def list_sites(self) -> list[Document]: ...

    async def run_file(self, project_id: str, run_id: str, key: str) -> Document | None:
        """The file value (key, name, size...) if `key` is an input or output of the run."""
        ...
