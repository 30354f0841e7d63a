"""Sites (one worker each) and the placement of steps on them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .workflow import StepDefinition

SiteId = NewType("SiteId", str)
_SITE_NAMESPACE = uuid.UUID("5d0c8a52-1d0a-4f0e-9a57-7b3c3c1c0a11")


def site_id_for(name: str) -> SiteId:
    """A site's id is derived from its unique name: stable across restarts of its worker."""
    return SiteId(str(uuid.uuid5(_SITE_NAMESPACE, name)))


class SiteState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, kw_only=True)
class NodePool:
    name: str
    cpu: float = 0.0
    memory_bytes: int = 0
    gpu: int = 0


@dataclass(eq=False, kw_only=True)
class Site:
    id: SiteId
    name: str
    worker_id: str
    backend_kind: str
    node_pools: tuple[NodePool, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    state: SiteState = SiteState.OFFLINE
    registered_at: datetime
    last_seen_at: datetime
    #: Highest report_seq applied for `worker_id` (recorded with the report's effects).
    last_report_seq: int = 0
    #: Highest order_seq sent to the worker.
    last_order_seq: int = 0
    state_reason: str = ""

    def register(
        self,
        *,
        worker_id: str,
        backend_kind: str,
        node_pools: tuple[NodePool, ...],
        labels: dict[str, str],
        version: str,
        last_seen_order_seq: int,
        now: datetime,
    ) -> None:
        if worker_id != self.worker_id:
            # Another worker took over the site: its report numbering starts afresh.
            self.worker_id = worker_id
            self.last_report_seq = 0
        self.backend_kind, self.node_pools, self.labels = backend_kind, node_pools, labels
        self.version = version
        self.last_order_seq = max(self.last_order_seq, last_seen_order_seq)
        self.state, self.state_reason = SiteState.ONLINE, ""
        self.registered_at = self.last_seen_at = now

    def next_order_seq(self) -> int:
        self.last_order_seq += 1
        return self.last_order_seq

    def go_offline(self, reason: str) -> None:
        self.state, self.state_reason = SiteState.OFFLINE, reason


@dataclass(frozen=True, kw_only=True)
class Placement:
    site_id: SiteId
    node_pool: str


@dataclass(frozen=True, kw_only=True)
class NoPlacement:
    reason: str


def _pool_fits(step: StepDefinition, pool: NodePool) -> bool:
    wanted = step.settings.resources
    if step.settings.node_pool and pool.name != step.settings.node_pool:
        return False
    if wanted.cpu and pool.cpu and pool.cpu < wanted.cpu:
        return False
    if wanted.memory_bytes and pool.memory_bytes and pool.memory_bytes < wanted.memory_bytes:
        return False
    return not (wanted.gpu and pool.gpu < wanted.gpu)


def place(
    step: StepDefinition, sites: Iterable[Site], load: Mapping[SiteId, int] | None = None
) -> Placement | NoPlacement:
    """Pick an online site (and node pool) that satisfies the step's constraints.

    Constraints: site name, labels (all must match), node pool name, resources (cpu, memory,
    gpu of one node; a pool that does not declare cpu or memory is not limited by them). Among
    the sites that fit, the least loaded one (fewest steps placed) wins, then the name.
    A site without node pools fits only steps that ask for no node pool and no resources.
    """
    settings = step.settings
    online = [s for s in sites if s.state is SiteState.ONLINE]
    if not online:
        return NoPlacement(reason=f"step {step.step_id}: no site is online")
    candidates = online
    if settings.site_name:
        candidates = [s for s in candidates if s.name == settings.site_name]
        if not candidates:
            return NoPlacement(
                reason=f"step {step.step_id}: site {settings.site_name!r} is not online"
            )
    if settings.labels:
        wanted = dict(settings.labels)
        candidates = [s for s in candidates if all(s.labels.get(k) == v for k, v in wanted.items())]
        if not candidates:
            labels = ", ".join(f"{k}={v}" for k, v in settings.labels)
            return NoPlacement(
                reason=f"step {step.step_id}: no online site has the labels {labels}"
            )
    fitting: list[tuple[Site, str]] = []
    res = settings.resources
    needs_pool = bool(settings.node_pool or res.cpu or res.memory_bytes or res.gpu)
    for site in candidates:
        if not site.node_pools:
            if not needs_pool:
                fitting.append((site, ""))
            continue
        pool = next((p for p in site.node_pools if _pool_fits(step, p)), None)
        if pool is not None:
            fitting.append((site, pool.name))
    if not fitting:
        wants = []
        if settings.node_pool:
            wants.append(f"node pool {settings.node_pool!r}")
        if res.cpu:
            wants.append(f"cpu={res.cpu:g}")
        if res.memory_bytes:
            wants.append(f"memory={res.memory_bytes} bytes")
        if res.gpu:
            wants.append(f"gpu={res.gpu}")
        return NoPlacement(reason=f"step {step.step_id}: no online site offers {', '.join(wants)}")
    loads = load or {}
    site, pool_name = min(fitting, key=lambda sp: (loads.get(sp[0].id, 0), sp[0].name))
    return Placement(site_id=site.id, node_pool=pool_name)
