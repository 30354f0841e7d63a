"""Sites (one worker each), their credentials, and the placement of steps on them.

A site is created by an admin (`Site.create`), which issues its credential: a random token shown
once, of which only a salted SHA-256 is kept (`CredentialHash`). The site's worker presents it
on every connection (`Site.refusal`); rotating it issues a new one (the old one stops working),
revoking it leaves the site without any, archiving the site revokes it and retires the site.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NewType

from .errors import Conflict, InvalidInput
from .workflow import StepDefinition

SiteId = NewType("SiteId", str)
_SITE_NAMESPACE = uuid.UUID("5d0c8a52-1d0a-4f0e-9a57-7b3c3c1c0a11")
#: What a site's name may be: it is also the worker's RYAX_SITE_NAME.
SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: Every credential starts with this (easy to spot in a leaked file; never logged).
CREDENTIAL_PREFIX = "ryax_site_"


def site_id_for(name: str) -> SiteId:
    """A site's id is derived from its unique name: stable across restarts of its worker."""
    return SiteId(str(uuid.uuid5(_SITE_NAMESPACE, name)))


class SiteState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class SiteKind(StrEnum):
    """What runs the site's steps (the worker's RYAX_WORKER_BACKEND must say the same)."""

    LOCAL = "local"
    SLURM = "slurm"
    KUBERNETES = "kubernetes"


SITE_KINDS = tuple(k.value for k in SiteKind)


class CredentialState(StrEnum):
    #: A credential was issued and works.
    ACTIVE = "active"
    #: Revoked (or the site archived): no worker can connect until one is issued again.
    REVOKED = "revoked"
    #: Never issued: a site its worker created before credentials existed; refused until an
    #: admin issues one (`ryax site rotate`).
    NONE = "none"


class AuthFailure(StrEnum):
    """Why a worker's registration was refused (the `reason` of the metric and the log)."""

    MISSING = "missing"
    UNKNOWN_SITE = "unknown_site"
    WRONG = "wrong"
    REVOKED = "revoked"
    NO_CREDENTIAL = "no_credential"
    ARCHIVED = "archived"


def new_credential() -> str:
    """256 random bits, URL-safe."""
    return CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def _digest(salt: bytes, credential: str) -> bytes:
    return hashlib.sha256(salt + credential.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, kw_only=True)
class CredentialHash:
    """SHA-256 of a random per-site salt followed by the credential. The credential is 256
    random bits, so a fast hash suffices (nothing to guess, unlike a password); the salt makes
    two sites' hashes unrelated. Compared in constant time."""

    salt: str  # hex
    digest: str  # hex

    @classmethod
    def of(cls, credential: str) -> CredentialHash:
        salt = secrets.token_bytes(16)
        return cls(salt=salt.hex(), digest=_digest(salt, credential).hex())

    def matches(self, credential: str) -> bool:
        try:
            salt, expected = bytes.fromhex(self.salt), bytes.fromhex(self.digest)
        except ValueError:
            return False
        return hmac.compare_digest(_digest(salt, credential), expected)


@dataclass(frozen=True, kw_only=True)
class NodePool:
    name: str
    cpu: float = 0.0
    memory_bytes: int = 0
    gpu: int = 0
    #: Longest an execution may run on the pool (seconds); 0 = no limit declared.
    max_time_seconds: float = 0.0


def check_site_name(name: str) -> None:
    if not SITE_NAME.fullmatch(name):
        raise InvalidInput(
            "name",
            "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or a digit",
        )


def check_site_kind(kind: str) -> SiteKind:
    try:
        return SiteKind(kind)
    except ValueError:
        raise InvalidInput("type", f"one of {', '.join(SITE_KINDS)}") from None


@dataclass(eq=False, kw_only=True)
class Site:
    id: SiteId
    name: str
    #: The worker serving (or that last served) the site; "" until a worker registered.
    worker_id: str
    #: The site's type, given at its creation; the worker's backend must be the same.
    backend_kind: str
    node_pools: tuple[NodePool, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    version: str = ""
    state: SiteState = SiteState.OFFLINE
    #: When the current (or last) worker registered: "connected since".
    registered_at: datetime
    #: Last heartbeat of the worker (its registration until the first one).
    last_seen_at: datetime
    #: Highest report_seq applied for `worker_id` (recorded with the report's effects).
    last_report_seq: int = 0
    #: Highest order_seq sent to the worker.
    last_order_seq: int = 0
    state_reason: str = ""
    #: The network address the worker connected from (as the runner saw it).
    worker_address: str = ""
    credential: CredentialHash | None = field(default=None, repr=False)
    credential_issued_at: datetime | None = None
    credential_revoked_at: datetime | None = None
    #: None for a site its worker created before sites were created by admins.
    created_at: datetime | None = None
    created_by: str = ""
    archived_at: datetime | None = None

    @classmethod
    def create(cls, *, name: str, kind: str, now: datetime, by: str) -> tuple[Site, str]:
        """A new site (offline until its worker connects) and its credential, given once."""
        check_site_name(name)
        site = cls(
            id=site_id_for(name),
            name=name,
            worker_id="",
            backend_kind=check_site_kind(kind).value,
            registered_at=now,
            last_seen_at=now,
            state_reason="no worker has connected yet",
            created_at=now,
            created_by=by,
        )
        return site, site.issue_credential(now)

    @property
    def credential_state(self) -> CredentialState:
        if self.credential is not None:
            return CredentialState.ACTIVE
        if self.credential_revoked_at is not None:
            return CredentialState.REVOKED
        return CredentialState.NONE

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def issue_credential(self, now: datetime, credential: str = "") -> str:
        """A new credential (the previous one, if any, stops working); returned once. Given
        `credential` (the runner's configured built-in site), that one is taken instead."""
        if self.is_archived:
            raise Conflict(f"site {self.name!r} is archived")
        credential = credential or new_credential()
        self.credential = CredentialHash.of(credential)
        self.credential_issued_at, self.credential_revoked_at = now, None
        return credential

    def revoke_credential(self, now: datetime) -> None:
        """No credential works any more (idempotent)."""
        if self.credential is not None or self.credential_revoked_at is None:
            self.credential, self.credential_revoked_at = None, now

    def archive(self, now: datetime) -> None:
        """Retire the site: its credential is revoked; it stays in the record (its name too)."""
        if self.is_archived:
            return
        self.revoke_credential(now)
        self.archived_at = now
        self.go_offline("site archived")

    def refusal(self, presented: str) -> AuthFailure | None:
        """Why a worker presenting `presented` may not serve the site; None if it may."""
        if not presented:
            return AuthFailure.MISSING
        if self.is_archived:
            return AuthFailure.ARCHIVED
        if self.credential is None:
            if self.credential_revoked_at is not None:
                return AuthFailure.REVOKED
            return AuthFailure.NO_CREDENTIAL
        return None if self.credential.matches(presented) else AuthFailure.WRONG

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
        address: str = "",
    ) -> None:
        if worker_id != self.worker_id:
            # Another worker took over the site: its report numbering starts afresh.
            self.worker_id = worker_id
            self.last_report_seq = 0
        self.backend_kind, self.node_pools, self.labels = backend_kind, node_pools, labels
        self.version = version
        self.worker_address = address
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


def _size(n: int) -> str:
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:g} s"


def _partition(step: StepDefinition, site: Site) -> str:
    """The partition the step's HPC parameters name, on a Slurm site (its pools are its
    partitions); other sites ignore the HPC add-on."""
    return step.settings.partition if site.backend_kind == SiteKind.SLURM else ""


def _lacks(step: StepDefinition, site: Site, pool: NodePool) -> list[str]:
    """What the pool lacks to run the step, each as `has 4 cpu`; empty when it fits."""
    settings, wanted = step.settings, step.settings.resources
    lacks = []
    if settings.node_pool and pool.name != settings.node_pool:
        lacks.append(f"is not node pool {settings.node_pool!r}")
    partition = _partition(step, site)
    if partition and pool.name != partition:
        lacks.append(f"is not partition {partition!r}")
    if wanted.cpu and pool.cpu and pool.cpu < wanted.cpu:
        lacks.append(f"has {pool.cpu:g} cpu")
    if wanted.memory_bytes and pool.memory_bytes and pool.memory_bytes < wanted.memory_bytes:
        lacks.append(f"has {_size(pool.memory_bytes)} of memory")
    # A pool that declares a time limit (a Slurm partition) cannot run a longer step.
    if (
        wanted.time_seconds
        and pool.max_time_seconds
        and pool.max_time_seconds < wanted.time_seconds
    ):
        lacks.append(f"allows {_duration(pool.max_time_seconds)}")
    if wanted.gpu and pool.gpu < wanted.gpu:
        lacks.append(f"has {pool.gpu} gpu")
    return lacks


def _asks(step: StepDefinition, partition: str) -> str:
    settings, res = step.settings, step.settings.resources
    asks = []
    if settings.node_pool:
        asks.append(f"node pool {settings.node_pool!r}")
    if partition:
        asks.append(f"partition {partition!r}")
    if res.cpu:
        asks.append(f"{res.cpu:g} cpu")
    if res.memory_bytes:
        asks.append(f"{_size(res.memory_bytes)} of memory")
    if res.gpu:
        asks.append(f"{res.gpu} gpu")
    if res.time_seconds:
        asks.append(f"{_duration(res.time_seconds)}")
    return ", ".join(asks)


def _closest(step: StepDefinition, sites: list[Site]) -> str:
    """Why nothing fits, naming the node pool that comes closest: the one asked for by name
    (node pool, partition), then the fewest shortfalls, then the most cpu, memory and gpu."""
    pools = [(site, pool, _lacks(step, site, pool)) for site in sites for pool in site.node_pools]
    partition = next((p for s in sites if (p := _partition(step, s))), "")
    asks = f"step {step.step_id}: asks {_asks(step, partition) or 'a node pool'}"
    if not pools:
        names = ", ".join(sorted(s.name for s in sites))
        return (
            f"{asks}; no online site that fits its other constraints declares node pools ({names})"
        )
    site, pool, lacks = min(
        pools,
        key=lambda sp: (
            sum(lack.startswith("is not") for lack in sp[2]),
            len(sp[2]),
            -sp[1].cpu,
            -sp[1].memory_bytes,
            -sp[1].gpu,
            sp[0].name,
        ),
    )
    return f"{asks}; the closest node pool, {pool.name}@{site.name}, {', '.join(lacks)}"


def place(
    step: StepDefinition, sites: Iterable[Site], load: Mapping[SiteId, int] | None = None
) -> Placement | NoPlacement:
    """Pick an online site (and node pool) that satisfies the step's constraints.

    Constraints: site name, labels (all must match), node pool name, resources (cpu, memory,
    gpu of one node; a pool that does not declare cpu or memory is not limited by them; time
    within the pool's max_time_seconds where it declares one), and on a Slurm site the
    partition its HPC parameters name (`hpc.partition`, a node pool there). Among
    the sites that fit, the least loaded one (fewest steps placed) wins, then the name.
    A site without node pools fits only steps that ask for no node pool and no resources.
    A trigger never goes to a Slurm site (its executions are batch jobs, not a server).
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
    if step.action_kind == "trigger":
        candidates = [s for s in candidates if s.backend_kind != SiteKind.SLURM]
        if not candidates:
            return NoPlacement(
                reason=f"step {step.step_id}: a trigger cannot run on a Slurm site "
                "(place it on a local or Kubernetes site)"
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
    for site in candidates:
        needs_pool = bool(
            settings.node_pool or _partition(step, site) or res.cpu or res.memory_bytes or res.gpu
        )
        if not site.node_pools:
            if not needs_pool:
                fitting.append((site, ""))
            continue
        pool = next((p for p in site.node_pools if not _lacks(step, site, p)), None)
        if pool is not None:
            fitting.append((site, pool.name))
    if not fitting:
        return NoPlacement(reason=_closest(step, candidates))
    loads = load or {}
    site, pool_name = min(fitting, key=lambda sp: (loads.get(sp[0].id, 0), sp[0].name))
    return Placement(site_id=site.id, node_pool=pool_name)
