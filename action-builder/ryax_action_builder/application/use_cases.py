"""Build one action version: fetch its source, refuse unsafe archives, answer from the cache
when the content address was built before, otherwise build, store and answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ryax_kit.core import Clock, Timers

from ..domain.errors import BuildRefused
from ..domain.model import (
    ActionBuildFailed,
    ActionBuilt,
    ArchiveLimits,
    BuildOrder,
    BuildOutcome,
    BuildPlan,
    outcome_event_id,
    plan_build,
)
from .build_log import BuildLog
from .ports import (
    BuildTool,
    EventPublisher,
    Filestore,
    MetadataParser,
    ObjectNotFound,
    SourceUnpacker,
)

log = logging.getLogger(__name__)

BuildObserver = Callable[[BuildOutcome], None]


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    #: Where builds get their scratch folder (None: the system's temporary directory).
    work_root: Path | None = None
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)


class ActionBuilder:
    """One build at a time; every order gets exactly one answer, published before returning."""

    def __init__(
        self,
        *,
        filestore: Filestore,
        unpacker: SourceUnpacker,
        build_tool: BuildTool,
        parse_metadata: MetadataParser,
        publisher: EventPublisher,
        clock: Clock,
        timers: Timers,
        settings: BuildSettings,
        observers: tuple[BuildObserver, ...] = (),
    ) -> None:
        self._filestore = filestore
        self._unpacker = unpacker
        self._build_tool = build_tool
        self._parse_metadata = parse_metadata
        self._publisher = publisher
        self._clock = clock
        self._timers = timers
        self._settings = settings
        self._observers = observers
        self._lock = asyncio.Lock()

    async def handle(self, order: BuildOrder) -> BuildOutcome:
        """Build (or find) the artefact of `order` and publish ActionBuilt/ActionBuildFailed.
        A failed publish propagates (the order is retried); a failed build is an answer."""
        async with self._lock:
            outcome = await self.build(order)
            await self._publisher.publish(outcome)
            for observe in self._observers:
                observe(outcome)
            return outcome

    async def build(self, order: BuildOrder) -> BuildOutcome:
        start = self._timers.monotonic()
        build_log = BuildLog()
        build_log.add(
            f"build {order.build_id}: {order.kind} {order.action_id}:{order.action_version} "
            f"from {order.source_key}"
            + (f" (repository {order.repository_id}" if order.repository_id else "")
            + (f", commit {order.source_commit})" if order.repository_id else "")
        )
        try:
            with tempfile.TemporaryDirectory(
                prefix=f"build-{order.build_id[:40]}-", dir=self._settings.work_root
            ) as tmp:
                return await self._build_in(order, Path(tmp), build_log, start)
        except BuildRefused as exc:
            build_log.add(f"FAILED: {exc.detail}")
            return self._failed(order, exc.detail, build_log, start)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("build failed unexpectedly", extra={"build_id": order.build_id})
            reason = f"internal error in the action builder: {type(exc).__name__}: {exc}"
            build_log.add(f"FAILED: {reason}")
            return self._failed(order, reason, build_log, start)

    async def _build_in(
        self, order: BuildOrder, tmp: Path, build_log: BuildLog, start: float
    ) -> BuildOutcome:
        metadata = self._parse_metadata(order.metadata_yaml)
        archive = tmp / "source.tar.gz"
        try:
            await self._filestore.download(order.source_key, archive)
        except ObjectNotFound:
            raise BuildRefused(
                f"the source archive {order.source_key} is not in the filestore"
            ) from None
        digest = await asyncio.to_thread(_sha256_file, archive)
        if order.source_sha256 and digest != order.source_sha256.lower():
            raise BuildRefused(
                f"the source archive {order.source_key} has sha256 {digest}, expected "
                f"{order.source_sha256}"
            )
        source_dir = tmp / "source"
        source = await asyncio.to_thread(
            self._unpacker.unpack, archive, source_dir, self._settings.limits
        )
        build_log.add(
            f"source unpacked: {len(source.files)} file(s); archive sha256 {digest}, "
            f"content digest {source.digest}"
        )
        requirements = ""
        if "requirements.txt" in source.files:
            requirements = await asyncio.to_thread(
                (source_dir / "requirements.txt").read_text, encoding="utf-8", errors="replace"
            )
        plan = plan_build(
            order,
            metadata=metadata,
            source_files=source.files,
            source_digest=source.digest,
            requirements=requirements,
            python_version=self._build_tool.python_version,
            wrapper_version=self._build_tool.wrapper_version,
        )
        for warning in plan.warnings:
            build_log.add(f"WARNING: {warning}")
        build_log.add(
            f"content address {plan.address} (python {plan.python_version}, wrapper "
            f"{plan.wrapper_version})"
        )
        cached = await self._cached(plan, build_log, start)
        if cached is not None:
            return cached
        built_at = self._clock.now()
        artefact = await self._build_tool.build(
            plan, source_dir, tmp / "build", build_log, built_at
        )
        sha256 = await asyncio.to_thread(_sha256_file, artefact)
        size = (await asyncio.to_thread(artefact.stat)).st_size
        build_log.add(f"artefact {plan.artefact_key}: {size} bytes, sha256 {sha256}")
        await self._filestore.upload(plan.artefact_key, artefact, "application/gzip")
        duration = self._timers.monotonic() - start
        build_log.add(f"stored; built in {duration:.1f}s")
        info = {
            "artefact_key": plan.artefact_key,
            "artefact_sha256": sha256,
            "size": size,
            "build_id": order.build_id,
            "built_at": built_at.isoformat(),
            "duration_seconds": duration,
            "build_log": build_log.text(),
        }
        # Written after the artefact: an artefact without its sidecar is still found (and its
        # sha256 recomputed); a sidecar never announces a missing artefact.
        await self._filestore.write_bytes(
            plan.info_key, json.dumps(info).encode(), "application/json"
        )
        return self._built(order, plan, sha256, build_log.text(), False, start)

    async def _cached(
        self, plan: BuildPlan, build_log: BuildLog, start: float
    ) -> ActionBuilt | None:
        if not await self._filestore.exists(plan.artefact_key):
            return None
        try:
            raw = await self._filestore.read_bytes(plan.info_key)
        except ObjectNotFound:
            raw = b""  # the sidecar is written after the artefact: it may be missing
        info = json.loads(raw) if raw else {}
        sha256 = str(info.get("artefact_sha256") or "")
        if not sha256:
            build_log.add("artefact found without its sidecar: computing its sha256")
            sha256 = await self._sha256_of_object(plan.artefact_key)
        build_log.add(
            f"cached: an identical artefact is stored at {plan.artefact_key} "
            f"(built {info.get('built_at', 'earlier')}); nothing to build"
        )
        text = build_log.text()
        if info.get("build_log"):
            text += "\n--- log of the build that made this artefact ---\n" + info["build_log"]
        return self._built(plan.order, plan, sha256, text, True, start)

    async def _sha256_of_object(self, key: str) -> str:
        with tempfile.TemporaryDirectory(dir=self._settings.work_root) as tmp:
            path = Path(tmp) / "artefact.tar.gz"
            await self._filestore.download(key, path)
            return await asyncio.to_thread(_sha256_file, path)

    def _built(
        self,
        order: BuildOrder,
        plan: BuildPlan,
        sha256: str,
        text: str,
        cached: bool,
        start: float,
    ) -> ActionBuilt:
        return ActionBuilt(
            event_id=outcome_event_id(order.build_id, "ActionBuilt"),
            build_id=order.build_id,
            project_id=order.project_id,
            action_id=order.action_id,
            action_version=order.action_version,
            artefact_key=plan.artefact_key,
            artefact_sha256=sha256,
            build_log=text,
            cached=cached,
            duration_seconds=self._timers.monotonic() - start,
            built_at=self._clock.now(),
            trace_context=order.trace_context,
        )

    def _failed(
        self, order: BuildOrder, reason: str, build_log: BuildLog, start: float
    ) -> ActionBuildFailed:
        return ActionBuildFailed(
            event_id=outcome_event_id(order.build_id, "ActionBuildFailed"),
            build_id=order.build_id,
            project_id=order.project_id,
            action_id=order.action_id,
            action_version=order.action_version,
            reason=reason,
            build_log=build_log.text(),
            duration_seconds=self._timers.monotonic() - start,
            failed_at=self._clock.now(),
            trace_context=order.trace_context,
        )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
