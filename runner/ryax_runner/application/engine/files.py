"""Files a site holds (docs/remote-sites.md, "A file between two steps of one site").

A worker with `RYAX_SITE_FILES=hold` keeps its steps' output files on its own disk and reports
them with `held_by` (its site's id) and the key they would have in the filestore. A step of
the same site takes such a file as is (it copies it from the site's disk). Anything else that
needs it gets it published first:
- an execution on another site: parked (it stays WAITING) until the holding site answered the
  `Publish` order with `Published`; the run then shows the file published (`held_by` cleared,
  recorded) and the execution is dispatched;
- a user's download (or a callback's link followed) of a run's file that is not in the
  filestore: `publish_now` asks the holding site and waits, bounded;
- the results of a run: published when the run ends, then the run's files are released
  (`Release`: the site unpins them; they stay as a cache, least recently used dropped first).

Nothing here is recorded: the pending orders are derived again from the parked executions (a
restored run's waiting executions park again) and at each registration of the holding site.
A file published stops showing `held_by`, but its site still pins it for the run: the runs a
site pins files for that no longer show it (their files published, told by `Published` or by
the site's registration, `held_files`) are kept in memory until the run ends, so that the
run's end releases them there too.
A file the site could not publish (it lost it) fails the executions that wait for it, naming
the file and the site; so does archiving the site (gone for good).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ...domain.errors import NotFound, Unavailable
from ...domain.run import Execution, ExecutionState, Run, RunId
from ...domain.site import Site, SiteId, SiteState
from ...domain.values import FileRef, Value
from ..messages import FilesPublished, FileToPublish, PublishOrder, ReleaseOrder
from .links import WorkerLinks
from .state import EngineState

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class _Pending:
    """A held file the runner asked its site to publish, and who waits for it."""

    site_id: SiteId
    key: str
    sha256: str
    run_id: str
    #: Executions parked until the file is published.
    parked: list[tuple[Run, Execution]] = field(default_factory=list)
    #: Downloads waiting (True: published; a str: why it could not be).
    waiters: list[asyncio.Future[str | None]] = field(default_factory=list)


class HeldFiles:
    """Publish orders: which held files are awaited, by whom; what a Published answer frees."""

    def __init__(self, state: EngineState, *, links: WorkerLinks) -> None:
        self._state = state
        self._links = links
        self._pending: dict[str, _Pending] = {}
        #: Active runs each site pins files for that may no longer show `held_by` (published).
        self._pinned: dict[SiteId, set[RunId]] = {}
        #: Set by the dispatcher: dispatch an execution whose held inputs are all published;
        #: fail one whose input could not be.
        self.on_ready: Callable[[Run, Execution], None] = lambda run, execution: None
        self.on_failed: Callable[[Run, Execution, str], None] = lambda run, e, reason: None

    # -- queries (grants, the reaper) -------------------------------------------------------

    def is_asked(self, site_id: SiteId, key: str) -> bool:
        """The runner asked this site to publish `key` (its worker may PUT it)."""
        pending = self._pending.get(key)
        return pending is not None and pending.site_id == site_id

    def why_parked(self, execution: Execution) -> str:
        """Why a parked execution waits ("" when it does not)."""
        for pending in self._pending.values():
            if any(e is execution for _, e in pending.parked):
                return (
                    f"its input file {pending.key} is held by site {self._site_name(pending)}, "
                    f"which has not published it ({self._site_state(pending)})"
                )
        return ""

    def pending_keys(self, site_id: SiteId) -> list[str]:
        return sorted(k for k, p in self._pending.items() if p.site_id == site_id)

    # -- parking executions -----------------------------------------------------------------

    @staticmethod
    def held_elsewhere(inputs: dict[str, Value], site_id: SiteId) -> list[FileRef]:
        """The input files held by a site other than `site_id` (to publish first)."""
        return [
            v
            for v in inputs.values()
            if isinstance(v, FileRef) and v.held_by and v.held_by != site_id
        ]

    def park(self, run: Run, execution: Execution, files: list[FileRef]) -> None:
        """The execution waits until every file is published; Publish orders go to the sites
        that hold them (a site not connected gets them at its registration)."""
        self.unpark(execution)
        asks: dict[SiteId, list[_Pending]] = {}
        for ref in files:
            pending, new = self._pending_for(ref, run.id)
            pending.parked.append((run, execution))
            if new:
                asks.setdefault(pending.site_id, []).append(pending)
        for site_id, pendings in asks.items():
            self._send_publish(site_id, pendings)
        log.info(
            "execution waits for held files",
            extra={"execution_id": execution.id, "keys": [f.key for f in files]},
        )

    def unpark(self, execution: Execution) -> None:
        """The execution stops waiting (it failed, its run ended)."""
        for pending in self._pending.values():
            pending.parked = [(r, e) for r, e in pending.parked if e is not execution]

    # -- downloads ---------------------------------------------------------------------------

    async def publish_now(self, ref: FileRef, run_id: str, wait_seconds: float) -> None:
        """Ask the site holding `ref` to publish it and wait for the answer (at most
        `wait_seconds` s): Unavailable naming the site if it is offline or does not answer in time,
        NotFound if it cannot publish the file."""
        site = self._state.sites.get(SiteId(ref.held_by))
        name = site.name if site is not None else ref.held_by
        if site is None or site.is_archived:
            raise NotFound(f"file {ref.key} was held by site {name}, which is gone (archived)")
        if site.state is not SiteState.ONLINE:
            raise Unavailable(
                f"file {ref.key} is held by site {name}, which is offline: retry once it is back"
            )
        pending, new = self._pending_for(ref, run_id)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        pending.waiters.append(future)
        if new:
            self._send_publish(pending.site_id, [pending])
        try:
            why = await asyncio.wait_for(asyncio.shield(future), wait_seconds)
        except TimeoutError:
            raise Unavailable(
                f"file {ref.key} is held by site {name}, which did not publish it within "
                f"{wait_seconds:g} s: retry later"
            ) from None
        finally:
            if future in pending.waiters:
                pending.waiters.remove(future)
        if why is not None:
            raise NotFound(f"file {ref.key} held by site {name} could not be published: {why}")

    # -- runs ending -------------------------------------------------------------------------

    def run_ended(self, run: Run) -> None:
        """Publish the run's result files a site holds, then release what the run held on
        every site (Release follows Publish on the site's stream)."""
        results = {
            v.key
            for value in (run.results or {}).values()
            for v in (value if isinstance(value, list) else [value])
            if isinstance(v, FileRef) and v.held_by
        }
        held = run.held_files()
        asks: dict[SiteId, list[_Pending]] = {}
        for ref in held:
            if ref.key in results:
                pending, new = self._pending_for(ref, run.id)
                if new:
                    asks.setdefault(pending.site_id, []).append(pending)
        for site_id, pendings in asks.items():
            self._send_publish(site_id, pendings)
        sites = {SiteId(ref.held_by) for ref in held}
        for site_id, runs in list(self._pinned.items()):
            if run.id in runs:
                sites.add(site_id)
                runs.discard(run.id)
                if not runs:
                    del self._pinned[site_id]
        for site_id in sorted(sites):
            self._links.send(site_id, ReleaseOrder, run_ids=(run.id,))

    # -- what workers say --------------------------------------------------------------------

    def published(self, site: Site, message: FilesPublished) -> None:
        """The site answered a Publish: the runs show the files published (recorded), the
        executions waiting only for them leave; those whose file could not be published fail."""
        done = {k for k in message.keys if self._asked_of(site.id, k)}
        failed = {k: why for k, why in message.failures if self._asked_of(site.id, k)}
        runs: dict[RunId, Run] = {}
        freed: list[tuple[Run, Execution]] = []
        failures: list[tuple[Run, Execution, str]] = []
        for key in done | failed.keys():
            pending = self._pending.pop(key)
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_result(failed.get(key))
            if key in done:
                owner = self._state.runs.get(RunId(pending.run_id))
                if owner is not None:
                    runs[owner.id] = owner
                    self._pin(site.id, owner)
            for run, execution in pending.parked:
                runs[run.id] = run
                if key in failed:
                    failures.append(
                        (
                            run,
                            execution,
                            f"input file {key} was held by site {site.name}, which could not "
                            f"publish it: {failed[key]}",
                        )
                    )
                else:
                    freed.append((run, execution))
        for run in runs.values():
            run.mark_published(done)
        self._settle(freed, failures)

    def site_registered(self, site: Site, held: frozenset[tuple[str, str]]) -> None:
        """A worker (re)registered: the Publish orders it has not answered go again; the
        runs it holds files for that ended (or are forgotten: retention) are released."""
        pendings = [p for p in self._pending.values() if p.site_id == site.id]
        if pendings:
            self._send_publish(site.id, pendings)
        ended: set[str] = set()
        for run_id, _ in held:
            run = self._state.runs.get(RunId(run_id))
            if run is None or run.state.is_terminal:
                ended.add(run_id)
            else:
                self._pin(site.id, run)
        if ended:
            self._links.send(site.id, ReleaseOrder, run_ids=tuple(sorted(ended)))

    def site_gone(self, site: Site) -> None:
        """The site was archived: the files it held are lost; who waits for them fails."""
        self._pinned.pop(site.id, None)
        failures: list[tuple[Run, Execution, str]] = []
        for key in [k for k, p in self._pending.items() if p.site_id == site.id]:
            pending = self._pending.pop(key)
            why = f"input file {key} was held by site {site.name}, which is gone (archived)"
            for waiter in pending.waiters:
                if not waiter.done():
                    waiter.set_result("the site was archived")
            failures += [(run, execution, why) for run, execution in pending.parked]
        self._settle([], failures)

    # -- internals ---------------------------------------------------------------------------

    def _settle(
        self, freed: list[tuple[Run, Execution]], failures: list[tuple[Run, Execution, str]]
    ) -> None:
        failed_ids = set()
        for run, execution, why in failures:
            if execution.id in failed_ids:
                continue
            failed_ids.add(execution.id)
            self.unpark(execution)
            if execution.state is ExecutionState.WAITING and not run.state.is_terminal:
                self.on_failed(run, execution, why)
        for run, execution in freed:
            if execution.id in failed_ids or self._is_parked(execution):
                continue
            if execution.state is ExecutionState.WAITING and not run.state.is_terminal:
                self.on_ready(run, execution)

    def _pin(self, site_id: SiteId, run: Run) -> None:
        """The site pins files for `run`, which goes on: its end releases them there."""
        if not run.state.is_terminal:
            self._pinned.setdefault(site_id, set()).add(run.id)

    def _is_parked(self, execution: Execution) -> bool:
        return any(any(e is execution for _, e in p.parked) for p in self._pending.values())

    def _asked_of(self, site_id: SiteId, key: str) -> bool:
        pending = self._pending.get(key)
        return pending is not None and pending.site_id == site_id

    def _pending_for(self, ref: FileRef, run_id: str) -> tuple[_Pending, bool]:
        pending = self._pending.get(ref.key)
        if pending is not None:
            return pending, False
        pending = self._pending[ref.key] = _Pending(
            site_id=SiteId(ref.held_by), key=ref.key, sha256=ref.sha256, run_id=run_id
        )
        return pending, True

    def _send_publish(self, site_id: SiteId, pendings: list[_Pending]) -> None:
        self._links.send(
            site_id,
            PublishOrder,
            files=tuple(
                FileToPublish(key=p.key, sha256=p.sha256, run_id=p.run_id)
                for p in sorted(pendings, key=lambda p: p.key)
            ),
        )

    def _site_name(self, pending: _Pending) -> str:
        site = self._state.sites.get(pending.site_id)
        return site.name if site is not None else pending.site_id

    def _site_state(self, pending: _Pending) -> str:
        site = self._state.sites.get(pending.site_id)
        if site is None:
            return "unknown site"
        if site.state is not SiteState.ONLINE:
            return f"offline: {site.state_reason}" if site.state_reason else "offline"
        link = self._state.links.get(pending.site_id)
        return "online" if link is not None and link.channel is not None else "not connected"
