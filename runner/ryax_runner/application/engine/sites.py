"""Site administration: create a site and issue its credential, rotate or revoke it, archive
the site. Admins only (the HTTP API checks); the credential is returned once and only its hash
is kept (domain/site.py)."""

from __future__ import annotations

import logging

from ...domain.errors import Conflict, NotFound
from ...domain.site import Site, SiteId, site_id_for
from ..ports import Clock, Recorder
from .links import WorkerLinks
from .state import EngineState

log = logging.getLogger(__name__)


#: Who "created" a site of the runner's configuration (RYAX_RUNNER_BUILTIN_SITE).
CONFIGURATION = "configuration"


class SiteExists(Conflict):
    code = "site_exists"


class SiteAdmin:
    def __init__(
        self, state: EngineState, *, links: WorkerLinks, recorder: Recorder, clock: Clock
    ) -> None:
        self._state = state
        self._links = links
        self._recorder = recorder
        self._clock = clock

    def find(self, ref: str) -> Site:
        """The site named `ref`, else the one whose id is `ref`."""
        site = self._state.sites.get(site_id_for(ref)) or self._state.sites.get(SiteId(ref))
        if site is None:
            raise NotFound(f"site {ref!r} not found")
        return site

    def create(self, name: str, kind: str, by: str) -> tuple[Site, str]:
        existing = self._state.sites.get(site_id_for(name))
        if existing is not None:
            archived = " (archived: choose another name)" if existing.is_archived else ""
            raise SiteExists(f"site {name!r} already exists{archived}")
        site, credential = Site.create(name=name, kind=kind, now=self._clock.now(), by=by)
        self._links.add_site(site)
        log.info("site created", extra={"site": site.name, "type": site.backend_kind, "by": by})
        return site, credential

    def configure(self, name: str, kind: str, credential: str) -> Site:
        """The built-in site of the runner's configuration (the worker installed with the
        platform: make demo, the Helm chart): created if missing, and its configured credential
        made the one that works whenever it is not (a revocation or rotation lasts until the
        runner restarts; to retire the site, remove the setting and archive it). An archived
        site is left as it is."""
        now = self._clock.now()
        site = self._state.sites.get(site_id_for(name))
        if site is None:
            site, _ = Site.create(name=name, kind=kind, now=now, by=CONFIGURATION)
            site.issue_credential(now, credential)
            self._links.add_site(site)
            log.info("built-in site created", extra={"site": site.name, "type": kind})
            return site
        if site.is_archived:
            log.warning(
                "the built-in site is archived: its worker is refused (remove "
                "RYAX_RUNNER_BUILTIN_SITE, or give another name)",
                extra={"site": site.name},
            )
            return site
        if site.credential is None or not site.credential.matches(credential):
            site.issue_credential(now, credential)
            self._recorder.site(site)
            self._links.cut(site.id, "the site's credential was set from the configuration")
            log.info("built-in site's credential set from the configuration", extra={"site": name})
        if site.backend_kind != kind:
            log.warning(
                "the built-in site's recorded type differs from the configuration (kept)",
                extra={"site": site.name, "type": site.backend_kind, "configured": kind},
            )
        return site

    def rotate(self, ref: str, by: str) -> tuple[Site, str]:
        """A new credential; the old one stops working and its worker is cut off at once."""
        site = self.find(ref)
        credential = site.issue_credential(self._clock.now())
        self._recorder.site(site)
        self._links.cut(site.id, "the site's credential was rotated")
        log.warning("site credential rotated", extra={"site": site.name, "by": by})
        return site, credential

    def revoke(self, ref: str, by: str) -> Site:
        """No credential works any more; the connected worker is cut off at once."""
        site = self.find(ref)
        site.revoke_credential(self._clock.now())
        self._recorder.site(site)
        self._links.cut(site.id, "the site's credential was revoked")
        log.warning("site credential revoked", extra={"site": site.name, "by": by})
        return site

    def archive(self, site: Site, by: str) -> Site:
        """Retire the site (credential revoked, offline for good); it stays in the record."""
        site.archive(self._clock.now())
        self._recorder.site(site)
        self._links.cut(site.id, "the site was archived")
        log.warning("site archived", extra={"site": site.name, "by": by})
        return site
