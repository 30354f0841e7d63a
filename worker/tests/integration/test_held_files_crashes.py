"""Held files (RYAX_SITE_FILES=hold) across crashes, against the real runner (in-process: it can
be stopped and started again on the same database and gRPC port), the real S3 server and real
`python -m ryax_worker` processes (the set-up of test_presigned_files.py).

The platform's rule: a crash of one process loses no run, no event and no file.
- The holding site's worker is killed (SIGKILL) while it publishes a file a step of another site
  waits for: a new process on the same disk lists the file again (Register.held_files), the
  runner sends the Publish again, the other site gets the file and the run completes.
- The runner restarts while an execution waits for a Publish: the new runner parks it again,
  derives the order again, and the run completes.
- A Release unpins the run's files, and a worker started again afterwards lists none of them.

To hold the publication in flight, the runner's filestore signs no PUT URL for the held file
until the test lets it (`Gate`): the worker has the order and is asking for its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .test_presigned_files import (
    ALICE,
    SITE,
    RemoteWorker,
    authz_url,  # noqa: F401 - fixture
    deployed,
    in_filestore,
    read,
    runner_filestore,
    until,
    upload,
    upper_step,
)
from .test_presigned_files import step as make_step

from runner_testkit.harness import (  # isort: skip - on sys.path through test_presigned_files
    RunningRunner,
    deploy_request,
    start_runner,
)
from runner_testkit.harness import io as io_field  # isort: skip

pytestmark = pytest.mark.integration
#: The site of the consumer: another site than SITE (the holder).
OTHER = "remote-2"


# --------------------------------------------------------------------------- pieces


class Gate:
    """Wraps one signing method of the runner's filestore (`presigned_put_url` or
    `presigned_get_url`): a URL for a key `holds` matches waits until `open` (the worker's
    transfer hangs on its URL); each such ask is counted."""

    def __init__(self, store: Any, method: str, holds: Callable[[str], bool]) -> None:
        self._sign = getattr(store, method)
        self._holds = holds
        self.opened = asyncio.Event()
        self.asked = asyncio.Event()
        self.asks: list[str] = []
        setattr(store, method, self._gated)

    async def _gated(self, key: str, ttl: Any) -> str:
        if self._holds(key):
            self.asks.append(key)
            self.asked.set()
            await self.opened.wait()
        url: str = await self._sign(key, ttl)
        return url

    def open(self) -> None:
        self.opened.set()


def put_gate(runner: RunningRunner) -> Gate:
    """No PUT URL of a run's file until opened: a publication hangs."""
    return Gate(runner.container.filestore(), "presigned_put_url", lambda k: k.startswith("runs/"))


class Registrations:
    """Records every worker registration the runner's engine takes (held_files included)."""

    def __init__(self, runner: RunningRunner) -> None:
        engine = runner.container.engine()
        self.held: list[tuple[str, frozenset[tuple[str, str]]]] = []
        register = engine.register_worker

        def recording(cmd: Any, channel: Any) -> Any:
            self.held.append((cmd.site_name, cmd.held_files))
            return register(cmd, channel)

        engine.register_worker = recording

    def of(self, site: str) -> list[frozenset[tuple[str, str]]]:
        return [held for name, held in self.held if name == site]


async def start_worker(
    folder: Path,
    runner: RunningRunner,
    wrapper_deps: Path,
    *,
    site: str = SITE,
    worker_id: str = "w-remote",
) -> RemoteWorker:
    """A remote worker of `site` (held files: the default of presigned mode), once ready."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    remote = RemoteWorker(
        folder, runner, await runner.credential(site), wrapper_deps, site=site, worker_id=worker_id
    )
    try:
        await remote.ready()
    except BaseException:
        await asyncio.to_thread(remote.stop)
        raise
    return remote


def kill(remote: RemoteWorker) -> None:
    """SIGKILL: nothing of the process's memory is left; its disk is."""
    remote.process.kill()
    remote.process.wait(timeout=10)


def two_sites_workflow(remote: RemoteWorker) -> Any:
    """HTTP endpoint (a file `doc`) -> `upper` on SITE -> `again` on OTHER; result: again's."""
    trigger = make_step("trigger", kind="trigger", outputs=("doc",))
    trigger.outputs[0].type = "file"
    steps = [
        trigger,
        upper_step("upper", "trigger", "doc", remote.artefact_key, remote.sha256),
        upper_step("again", "upper", "result", remote.artefact_key, remote.sha256, site=OTHER),
    ]
    return deploy_request(
        steps,
        workflow_name="upper",
        fields=[io_field("doc", "file")],
        results=[("result", "again", "result")],
    )


@dataclass(kw_only=True)
class TwoSites:
    """A holding site (SITE, `holder`) and another (OTHER, `other`) deployed with
    `two_sites_workflow`, and the run started on them."""

    runner: RunningRunner
    wrapper_deps: Path
    holder_dir: Path
    other_dir: Path
    holder: RemoteWorker
    other: RemoteWorker
    run_id: str = ""

    async def restart_holder(self) -> None:
        """A new worker process for the holding site, on the same disk."""
        self.holder = await start_worker(self.holder_dir, self.runner, self.wrapper_deps)


@contextlib.asynccontextmanager
async def two_sites(
    runner: RunningRunner,
    vhost: str,
    s3_server: Any,
    bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
    content: bytes,
    gate: Gate,
) -> AsyncIterator[TwoSites]:
    """Both sites' workers started, the workflow deployed, a run of `content` started; at the
    end the gate is opened and both workers stopped."""
    holder_dir, other_dir = tmp_path / "holder", tmp_path / "other"
    holder = await start_worker(holder_dir, runner, wrapper_deps)
    other = await start_worker(other_dir, runner, wrapper_deps, site=OTHER, worker_id="w-2")
    sites = TwoSites(
        runner=runner,
        wrapper_deps=wrapper_deps,
        holder_dir=holder_dir,
        other_dir=other_dir,
        holder=holder,
        other=other,
    )
    try:
        upload(s3_server, bucket, holder.artefact_key, holder.artefact)
        await deployed(runner, vhost, two_sites_workflow(holder))
        sites.run_id = await start_run(runner, content)
        yield sites
    finally:
        gate.open()
        await asyncio.gather(
            asyncio.to_thread(sites.holder.stop), asyncio.to_thread(sites.other.stop)
        )


async def start_run(runner: RunningRunner, content: bytes) -> str:
    form = aiohttp.FormData()
    form.add_field("doc", content, filename="in.txt")
    url = f"{runner.url}/runner/v1/projects/alpha/endpoints/upper?mode=async"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers=ALICE) as answer,
    ):
        assert answer.status == 202, await answer.text()
        run_id: str = (await answer.json())["run_id"]
        return run_id


async def run_doc(runner: RunningRunner, run_id: str) -> dict[str, Any]:
    url = f"{runner.url}/runner/v1/projects/alpha/runs/{run_id}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=ALICE) as answer:
        assert answer.status == 200, await answer.text()
        doc: dict[str, Any] = await answer.json()
        return doc


async def ended(runner: RunningRunner, run_id: str, seconds: float = 30) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    async with asyncio.timeout(seconds):
        while doc.get("state") not in ("completed", "failed", "cancelled"):
            await asyncio.sleep(0.1)
            doc = await run_doc(runner, run_id)
    return doc


def held_pins(folder: Path) -> set[tuple[str, str]]:
    """(run_id, sha256) of the pins on a worker's disk."""
    pins = folder / "cache" / "site-files" / ".pins"
    return {(p.parent.name, p.name) for p in pins.glob("*/*")} if pins.is_dir() else set()


def parked(runner: RunningRunner, run_id: str) -> bool:
    """`again` waits (WAITING) for upper's held file: the runner asked SITE to publish it."""
    engine = runner.container.engine()
    run = engine.runs.get(run_id)
    if run is None:
        return False
    site_id = next(s.id for s in engine.sites.values() if s.name == SITE)
    return any(
        e.step_id == "again" and e.state == "waiting" for e in run.executions.values()
    ) and bool(engine._files.pending_keys(site_id))


@pytest.fixture
async def filestore_runner(
    fresh_database: str,
    fresh_vhost: str,
    authz_url: str,  # noqa: F811
    s3_env: dict[str, str],
) -> AsyncIterator[list[RunningRunner]]:
    """The runner (the list's last: a test may start it again); stopped after the test."""
    running = await start_runner(
        fresh_database,
        fresh_vhost,
        runner_filestore(s3_env),
        authz_url,
        heartbeat_interval_seconds=0.5,
        heartbeat_timeout_seconds=3.0,
    )
    await running.container.filestore().ensure_ready()
    runners = [running]
    yield runners
    await runners[-1].stop()


# --------------------------------------------------------------------------- tests


async def test_a_holding_worker_killed_while_publishing_publishes_again_from_its_disk(
    filestore_runner: list[RunningRunner],
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
) -> None:
    [runner] = filestore_runner
    registrations = Registrations(runner)
    gate = put_gate(runner)
    async with two_sites(
        runner, fresh_vhost, s3_server, fresh_bucket, wrapper_deps, tmp_path, b"crash\n", gate
    ) as sites:
        holder_dir, other_dir, run_id = sites.holder_dir, sites.other_dir, sites.run_id

        # upper ran on SITE and holds its output; `again` (OTHER) waits for its publication,
        # which hangs on its PUT URL: the sites.holder got the Publish and has not answered it.
        await until(lambda: parked(runner, run_id), seconds=30)
        await asyncio.wait_for(gate.asked.wait(), 30)
        [held] = held_pins(holder_dir)
        assert held[0] == run_id
        handed = (await run_doc(runner, run_id))["steps"]
        [upper] = [s for s in handed if s["step_id"] == "upper"]
        key = upper["outputs"]["result"]["key"]
        assert upper["outputs"]["result"]["held_by"]
        await asyncio.to_thread(kill, sites.holder)
        gate.open()  # the killed process's URL goes nowhere

        # A new process on the same disk: the file is found again, the runner asks again.
        await sites.restart_holder()
        await until(lambda: len(registrations.of(SITE)) >= 2, seconds=15)
        assert held in registrations.of(SITE)[-1]
        doc = await ended(runner, run_id)
        steps = {s["step_id"]: s for s in doc["steps"]}
        assert doc["state"] == "completed", [s["error"] for s in steps.values()]
        assert steps["again"]["site_name"] == OTHER
        assert steps["again"]["inputs"]["doc"]["key"] == key
        assert "held_by" not in steps["again"]["inputs"]["doc"]
        assert read(s3_server, fresh_bucket, key) == b"CRASH\n"
        result = steps["again"]["outputs"]["result"]
        await until(lambda: in_filestore(s3_server, fresh_bucket, result["key"]), seconds=15)
        assert read(s3_server, fresh_bucket, result["key"]) == b"CRASH\n"
        assert gate.asks.count(key) == 2  # once per process
        # The run ended: both sites were told to release it.
        await until(lambda: not held_pins(holder_dir) and not held_pins(other_dir), seconds=15)


async def test_a_runner_restarted_while_an_execution_waits_for_a_publish_asks_again(
    filestore_runner: list[RunningRunner],
    fresh_database: str,
    fresh_vhost: str,
    authz_url: str,  # noqa: F811
    s3_env: dict[str, str],
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
) -> None:
    [runner] = filestore_runner
    gate = put_gate(runner)
    async with two_sites(
        runner, fresh_vhost, s3_server, fresh_bucket, wrapper_deps, tmp_path, b"restart\n", gate
    ) as sites:
        holder_dir, other_dir, run_id = sites.holder_dir, sites.other_dir, sites.run_id
        await until(lambda: parked(runner, run_id), seconds=30)
        await asyncio.wait_for(gate.asked.wait(), 30)  # the Publish is out, not answered

        # The runner stops (its pending orders are in memory only) and starts again.
        port = int(runner.grpc_address.rsplit(":", 1)[1])
        await runner.stop()
        runner = await start_runner(
            fresh_database,
            fresh_vhost,
            runner_filestore(s3_env),
            authz_url,
            grpc_port=port,
            heartbeat_interval_seconds=0.5,
            heartbeat_timeout_seconds=3.0,
        )
        filestore_runner.append(runner)
        restored = runner.container.engine().runs[run_id]  # type: ignore[index]
        [again] = [e for e in restored.executions.values() if e.step_id == "again"]
        assert again.state == "waiting"

        doc = await ended(runner, run_id)
        steps = {s["step_id"]: s for s in doc["steps"]}
        assert doc["state"] == "completed", [s["error"] for s in steps.values()]
        key = steps["upper"]["outputs"]["result"]["key"]
        assert "held_by" not in steps["upper"]["outputs"]["result"]
        assert read(s3_server, fresh_bucket, key) == b"RESTART\n"
        assert steps["again"]["inputs"]["doc"]["key"] == key
        await until(lambda: not held_pins(holder_dir) and not held_pins(other_dir), seconds=15)


async def test_a_publish_that_failed_while_the_runner_was_down_is_not_taken_as_a_lost_file(
    filestore_runner: list[RunningRunner],
    fresh_database: str,
    fresh_vhost: str,
    authz_url: str,  # noqa: F811
    s3_env: dict[str, str],
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
) -> None:
    """The runner is down longer than the holder's attempts at a URL: its publication fails
    ("cannot get a URL from the runner"). That answer reaches the new runner after it parked
    the consumer again and asked again (the holder was slow to come back: SIGSTOP): it is not
    the file's loss, the consumer does not fail; the new order is carried out."""
    [runner] = filestore_runner
    gate = put_gate(runner)
    async with two_sites(
        runner, fresh_vhost, s3_server, fresh_bucket, wrapper_deps, tmp_path, b"slow\n", gate
    ) as sites:
        holder_dir, other_dir, run_id = sites.holder_dir, sites.other_dir, sites.run_id
        await until(lambda: parked(runner, run_id), seconds=30)
        await asyncio.wait_for(gate.asked.wait(), 30)

        port = int(runner.grpc_address.rsplit(":", 1)[1])
        await runner.stop()
        # The sites.holder gives up on the URL (RYAX_FILE_ATTEMPTS, ~3.5 s), then stalls.
        await until(lambda: "held files published" in sites.holder.log.read_text(), seconds=15)
        sites.holder.process.send_signal(signal.SIGSTOP)
        try:
            runner = await start_runner(
                fresh_database,
                fresh_vhost,
                runner_filestore(s3_env),
                authz_url,
                grpc_port=port,
                heartbeat_interval_seconds=0.5,
                heartbeat_timeout_seconds=3.0,
            )
            filestore_runner.append(runner)
            await until(lambda: parked(runner, run_id), seconds=15)  # asked again
        finally:
            sites.holder.process.send_signal(signal.SIGCONT)

        doc = await ended(runner, run_id)
        steps = {s["step_id"]: s for s in doc["steps"]}
        assert doc["state"] == "completed", [s["error"] for s in steps.values()]
        key = steps["upper"]["outputs"]["result"]["key"]
        assert read(s3_server, fresh_bucket, key) == b"SLOW\n"
        await until(lambda: not held_pins(holder_dir) and not held_pins(other_dir), seconds=15)


async def test_a_release_unpins_the_runs_files_even_one_owed_to_a_worker_that_was_down(
    filestore_runner: list[RunningRunner],
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
) -> None:
    """The holder published its file for the other site, then was killed before the run ended:
    the run's Release could not reach it. Started again, it lists the run (held_files); the run
    ended, so the runner releases it: the pins go, the copies stay (a cache). Started once
    more, it lists nothing of that run."""
    [runner] = filestore_runner
    registrations = Registrations(runner)
    # The other site's download of upper's file hangs until opened: the run cannot end.
    gate = Gate(
        runner.container.filestore(), "presigned_get_url", lambda k: k.endswith("/result/upper.txt")
    )
    async with two_sites(
        runner, fresh_vhost, s3_server, fresh_bucket, wrapper_deps, tmp_path, b"release\n", gate
    ) as sites:
        holder_dir, other_dir, run_id = sites.holder_dir, sites.other_dir, sites.run_id
        await asyncio.wait_for(gate.asked.wait(), 30)  # published; `again` fetches it
        [pin] = held_pins(holder_dir)
        assert pin[0] == run_id
        await asyncio.to_thread(kill, sites.holder)
        gate.open()
        doc = await ended(runner, run_id)
        assert doc["state"] == "completed", [s["error"] for s in doc["steps"]]
        assert held_pins(holder_dir) == {pin}  # the Release found no worker

        await sites.restart_holder()
        await until(lambda: len(registrations.of(SITE)) >= 2, seconds=15)
        assert pin in registrations.of(SITE)[-1]
        await until(lambda: not held_pins(holder_dir), seconds=15)  # released
        assert (holder_dir / "cache" / "site-files" / pin[1]).is_file()  # kept as a cache

        await asyncio.to_thread(kill, sites.holder)
        await sites.restart_holder()
        await until(lambda: len(registrations.of(SITE)) >= 3, seconds=15)
        assert not any(run == run_id for run, _ in registrations.of(SITE)[-1])
        assert not held_pins(other_dir)  # the other site's result: published, then released
