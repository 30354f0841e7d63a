"""Run retention: how long the runs of a project are kept once they ended.

The runner's setting RYAX_RUNNER_RUN_RETENTION_DAYS is the default of every project (30 days;
0 keeps runs forever); a project may have its own (`PUT .../projects/{project}/retention`,
project owners). A run is deleted with its executions, log lines and files once it *ended*
longer ago than its project's retention; a run not ended (pending, running) is never deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .errors import InvalidInput

#: The longest retention one may set (100 years); longer is "forever": 0.
MAX_RETENTION_DAYS = 36_500
DEFAULT_RETENTION_DAYS = 30

#: The prefix of a run's own files in the filestore (ryax_kit.filestore: runs/<run>/...).
RUN_FILES_PREFIX = "runs/"
#: Files of a new run written by its trigger (triggers/<deployment>/<step>/<event>/...): one
#: event makes one run, so the run owns them too.
TRIGGER_FILES_PREFIX = "triggers/"


def check_retention_days(days: object, what: str = "run_retention_days") -> int:
    """A whole number of days, 0 (keep forever) to MAX_RETENTION_DAYS; else InvalidInput."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise InvalidInput(what, "a whole number of days (0 keeps runs forever)")
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise InvalidInput(what, f"between 0 (keep forever) and {MAX_RETENTION_DAYS} days")
    return days


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    """The default retention and the projects' own."""

    default_days: int = DEFAULT_RETENTION_DAYS
    overrides: Mapping[str, int] = field(default_factory=dict)

    def days(self, project_id: str) -> int:
        return self.overrides.get(project_id, self.default_days)

    def cutoff(self, project_id: str, now: datetime) -> datetime | None:
        """Runs of the project that ended before this are deleted; None: kept forever."""
        days = self.days(project_id)
        if days <= 0:
            return None
        return now - timedelta(days=days)


def run_file_prefix(run_id: str) -> str:
    return f"{RUN_FILES_PREFIX}{run_id}/"
