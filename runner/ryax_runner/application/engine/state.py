"""What the engine's parts share: settings, the in-memory state and its counters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ...domain.deployment import Deployment, DeploymentId
from ...domain.run import MAX_FANOUT, MAX_RUN_EXECUTIONS, ExecutionId, Run, RunId
from ...domain.site import Site, SiteId
from ...domain.values import MAX_INLINE_BYTES
from ..ports import WorkerChannel


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    heartbeat_interval_seconds: float = 2.0
    #: A site that sent nothing for this long is offline (its executions are lost).
    heartbeat_timeout_seconds: float = 6.0
    retry_backoff_seconds: float = 1.0
    max_inline_bytes: int = MAX_INLINE_BYTES
    #: The longest list a step may return (one branch per element); longer fails the step.
    max_fanout: int = MAX_FANOUT
    #: The most executions one run may create; past it the run fails.
    max_run_executions: int = MAX_RUN_EXECUTIONS
    #: Added to a step's timeout before the runner itself gives up on an execution.
    timeout_grace_seconds: float = 30.0
    #: The timeout of a step that sets none and whose action asks for no time.
    default_step_timeout_seconds: float = 3600.0
    #: Attempts of a step (per branch) that may be lost with their worker and run again.
    infra_retries: int = 3
    #: An execution waiting this long for its step to be ready on a site fails.
    site_wait_timeout_seconds: float = 300.0
    #: How often the reaper looks for executions past their deadline.
    reap_interval_seconds: float = 5.0
    #: How long a download of a file a site holds waits for the site to publish it.
    publish_wait_seconds: float = 60.0


@dataclass(eq=False, kw_only=True)
class WorkerLink:
    """Live connection state of a site's worker (not recorded)."""

    site_id: SiteId
    channel: WorkerChannel | None = None
    #: `Timers.monotonic()` of the last message of the worker.
    last_seen: float
    acked_seq: int = 0
    #: Executions dispatched to this site that have no result yet (change it through
    #: `add_execution`, `drop_execution`, `take_executions`: they keep `input_keys`).
    executions: set[ExecutionId] = field(default_factory=set)
    #: The filestore keys of the input files of those executions -> the executions (the
    #: objects the site may GET: TransferGrants looks them up here).
    input_keys: dict[str, set[ExecutionId]] = field(default_factory=dict)
    _keys_of: dict[ExecutionId, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def add_execution(self, execution_id: ExecutionId, input_keys: Iterable[str] = ()) -> None:
        self.drop_execution(execution_id)
        self.executions.add(execution_id)
        keys = tuple(sorted(set(input_keys)))
        if keys:
            self._keys_of[execution_id] = keys
            for key in keys:
                self.input_keys.setdefault(key, set()).add(execution_id)

    def drop_execution(self, execution_id: ExecutionId) -> None:
        self.executions.discard(execution_id)
        for key in self._keys_of.pop(execution_id, ()):
            users = self.input_keys.get(key)
            if users is not None:
                users.discard(execution_id)
                if not users:
                    del self.input_keys[key]

    def take_executions(self) -> list[ExecutionId]:
        """Every execution of the link, which then has none."""
        taken = list(self.executions)
        self.executions, self.input_keys, self._keys_of = set(), {}, {}
        return taken


@dataclass(kw_only=True)
class EngineStats:
    runs_started: int = 0
    runs_ended: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    executions_dispatched: int = 0
    #: Execute orders sent before their run's first commit (`WorkerLinks.send(early=True)`).
    early_orders: int = 0
    reports: int = 0
    duplicate_reports: int = 0


@dataclass(eq=False, kw_only=True)
class EngineState:
    """The engine's memory, shared by its parts. One event loop and no await between reading
    and changing it: no lock."""

    sites: dict[SiteId, Site] = field(default_factory=dict)
    links: dict[SiteId, WorkerLink] = field(default_factory=dict)
    deployments: dict[DeploymentId, Deployment] = field(default_factory=dict)
    #: Runs not ended, or ended with executions still active on a worker.
    runs: dict[RunId, Run] = field(default_factory=dict)
    #: Each active execution's run.
    executions: dict[ExecutionId, Run] = field(default_factory=dict)
    stats: EngineStats = field(default_factory=EngineStats)
    #: Artefact key -> the deployments whose steps use it (TransferGrants looks them up).
    artefact_users: dict[str, set[DeploymentId]] = field(default_factory=dict)
    #: Shutting down: no new runs.
    draining: bool = False
