"""A site that holds its files (RYAX_SITE_FILES=hold), against the real runner, S3 server and
worker process (the set-up of test_presigned_files.py).

Two steps of the site hand a file over with zero bytes to or from the filestore: the first
step's output never reaches it (no object, no PUT URL, no upload counted), the second reads it
from the site's disk. The run's result is published at its end. A user downloading the held
file makes the runner ask the site to publish it (Publish -> Published), then serves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .test_presigned_files import (
    ALICE,
    SITE,
    RemoteWorker,
    authz_url,  # noqa: F401 - fixture
    counter,
    deployed,
    in_filestore,
    read,
    run_endpoint,
    runner,  # noqa: F401 - fixture
    until,
    upload,
    upper_workflow,
)

pytestmark = pytest.mark.integration
BYTES = 'ryax_worker_file_bytes_total{direction="%s",mode="%s"}'


@pytest.fixture
async def holding_worker(
    runner: Any,  # noqa: F811
    s3_server: Any,
    fresh_bucket: str,
    wrapper_deps: Path,
    tmp_path: Path,
) -> AsyncIterator[RemoteWorker]:
    remote = RemoteWorker(
        tmp_path,
        runner,
        await runner.credential(SITE),
        wrapper_deps,
        extra_env={"RYAX_SITE_FILES": "hold"},
    )
    upload(s3_server, fresh_bucket, remote.artefact_key, remote.artefact)
    try:
        await remote.ready()
        yield remote
    finally:
        await asyncio.to_thread(remote.stop)


async def test_two_steps_of_a_holding_site_hand_a_file_over_without_the_filestore(
    runner: Any,  # noqa: F811
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    holding_worker: RemoteWorker,
    tmp_path: Path,
) -> None:
    request = upper_workflow(holding_worker.artefact_key, holding_worker.sha256, twice=True)
    await deployed(runner, fresh_vhost, request)
    doc = await run_endpoint(runner, b"twice\n")
    steps = {s["step_id"]: s for s in doc["steps"]}
    assert doc["state"] == "completed", [s["error"] for s in steps.values()]
    site_id = (
        runner.container.engine()
        .sites[next(sid for sid, s in runner.container.engine().sites.items() if s.name == SITE)]
        .id
    )
    handed = steps["upper"]["outputs"]["result"]
    assert handed["held_by"] == site_id
    assert steps["again"]["inputs"]["doc"]["key"] == handed["key"]
    result = steps["again"]["outputs"]["result"]

    # The run's result is published at its end (a Publish order after the result).
    await until(lambda: in_filestore(s3_server, fresh_bucket, result["key"]), seconds=30)
    assert read(s3_server, fresh_bucket, result["key"]) == b"TWICE\n"
    # The file handed from upper to again never went to the filestore: zero bytes.
    assert not in_filestore(s3_server, fresh_bucket, handed["key"])
    assert await holding_worker.metric(BYTES % ("download", "site-local")) == len(b"TWICE\n")
    assert await holding_worker.metric(BYTES % ("download", "presigned")) == len(
        holding_worker.artefact
    ) + len(b"twice\n")
    # Uploaded: the result only (published), not the hand-over.
    assert await holding_worker.metric(BYTES % ("upload", "presigned")) == len(b"TWICE\n")
    assert counter(runner, "ryax_runner_presigned_urls_total", site=SITE, method="put") == 1
    # Held durably and pinned until the run was released: the pins are gone, the copies kept.
    site_files = tmp_path / "cache" / "site-files"
    await until(lambda: not any((site_files / ".pins").glob("*/*")), seconds=30)
    assert (site_files / handed["sha256"]).is_file()

    # A user downloads the held file: the runner has the site publish it, then serves it.
    url = f"{runner.url}/runner/v1/projects/alpha/runs/{doc['id']}/files/{handed['key']}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=ALICE) as answer:
        assert answer.status == 200, await answer.text()
        assert await answer.read() == b"TWICE\n"
    assert in_filestore(s3_server, fresh_bucket, handed["key"])
    assert await holding_worker.metric(BYTES % ("upload", "presigned")) == 2 * len(b"TWICE\n")


async def test_a_download_of_a_file_held_by_an_offline_site_is_503_naming_the_site(
    runner: Any,  # noqa: F811
    fresh_vhost: str,
    s3_server: Any,
    fresh_bucket: str,
    holding_worker: RemoteWorker,
) -> None:
    request = upper_workflow(holding_worker.artefact_key, holding_worker.sha256, twice=True)
    await deployed(runner, fresh_vhost, request)
    doc = await run_endpoint(runner, b"gone\n")
    handed = {s["step_id"]: s for s in doc["steps"]}["upper"]["outputs"]["result"]
    await asyncio.to_thread(holding_worker.stop)
    engine = runner.container.engine()
    await until(
        lambda: any(s.name == SITE and s.state == "offline" for s in engine.sites.values()),
        seconds=30,
    )
    url = f"{runner.url}/runner/v1/projects/alpha/runs/{doc['id']}/files/{handed['key']}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=ALICE) as answer:
        assert answer.status == 503, await answer.text()
        detail = (await answer.json())["detail"]
    assert f"held by site {SITE}" in detail and "offline" in detail
