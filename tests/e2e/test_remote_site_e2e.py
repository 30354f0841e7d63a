"""A remote site on the running platform: its worker (`python -m ryax_worker`) runs in a network
namespace of the test's own, as on another host, joined to this one by a veth pair. It dials the
runner's TLS port (RYAX_RUNNER_GRPC_TLS_ADDRESS of `make demo`, checked against the checkout's CA)
with the credential `ryax site create` gave, and runs the word count of a workflow whose other
steps run on the demo's local site: the report file crosses from the local site to the remote
one, the counts file back. Then the link is cut (the site goes offline within 10 s and comes
back with the link), and workers presenting no or a wrong credential over TLS are refused.

The remote worker holds no filestore setting or key: its files move through URLs the runner
presigns for each execution (RYAX_WORKER_FILES=presigned, its default without filestore
settings), and its /metrics count the bytes. The namespace reaches the platform's loopback
ports through relays on the host's end of the pair (tests' own addresses, 10.213.x.y/30, between
the namespaces the test made), and the presigned URLs' host (the runner's S3 endpoint,
127.0.0.1) through a relay inside the namespace. Needs root (`ip netns`); the `platform` fixture
(tests/conftest.py) like tests/e2e/test_demo.py.
"""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.support import (
    REPO,
    WORDS,
    Project,
    Ryax,
    admin_cli,
    demo_project,
    eventually,
    file_bytes,
    platform_env,
    run_chain_across_sites,
    stop_process,
    worker_env,
)

pytestmark = pytest.mark.e2e
devlib: Any = sys.modules["ryax_devlib"]  # loaded by the root conftest.py
#: The issue's bound: a cut link marks the site offline within this many seconds.
OFFLINE_WITHIN_S = 10.0
#: HTTP ports of the workers in a namespace (theirs alone: nothing else listens there).
NAMESPACE_PORTS = itertools.count(9107)  # not the S3 relay's port (8110)


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@dataclass
class Network:
    """The namespace, its veth pair and the relays to the platform's TLS gRPC and S3 ports."""

    link: Any
    relays: Any
    grpc: str
    ca_file: Path


@pytest.fixture
def network(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Network]:
    problem = devlib.netns_problem()
    if problem:
        pytest.skip(problem)
    # The platform first: SeaweedFS refuses its port while a relay holds it on another address.
    request.getfixturevalue("platform")
    runner = platform_env("runner")
    worker = platform_env("worker")
    _, tls_port = host_port(runner["RYAX_RUNNER_GRPC_TLS_ADDRESS"])
    _, s3_port = host_port(worker["RYAX_S3_ENDPOINT"])
    link = devlib.NetnsLink(secrets.token_hex(4), prefix="ryax-e2e")
    link.create()
    relays = devlib.Relays(
        [
            (link.host_ip, tls_port, "127.0.0.1", tls_port),
            (link.host_ip, s3_port, "127.0.0.1", s3_port),
        ]
    )
    inside = None
    try:
        relays.start()
        # The presigned URLs name the filestore as the runner sees it (127.0.0.1:port).
        inside = devlib.relays_in_namespace(
            link.name, [("127.0.0.1", s3_port, link.host_ip, s3_port)], tmp_path / "relays.log"
        )
        yield Network(
            link=link,
            relays=relays,
            grpc=f"{link.host_ip}:{tls_port}",
            ca_file=Path(runner["RYAX_RUNNER_GRPC_TLS_CERT_FILE"]).parent / "ca.pem",
        )
    finally:
        if inside is not None:
            stop_process(inside)
        relays.stop()
        link.destroy()


class RemoteWorker:
    """A worker process in the namespace, dialling the runner's TLS port across the pair."""

    def __init__(self, net: Network, folder: Path, site: str, credential: str | None) -> None:
        worker_id = f"{site}-{secrets.token_hex(2)}"
        self.namespace = net.link.name
        # Its own port in the namespace (two workers may share one there).
        self.http_port = next(NAMESPACE_PORTS)
        self.log = folder / f"{worker_id}.log"
        env = worker_env(site, credential or "")
        if credential is None:
            del env["RYAX_SITE_CREDENTIAL"]
        env |= {
            "RYAX_RUNNER_GRPC_ADDRESS": net.grpc,
            "RYAX_RUNNER_CA_FILE": str(net.ca_file),
            # The certificate names 127.0.0.1 and localhost; the worker dials another address.
            "RYAX_RUNNER_TLS_SERVER_NAME": "localhost",
            "RYAX_WORKER_ID": worker_id,
            "RYAX_HTTP_HOST": "127.0.0.1",
            "RYAX_HTTP_PORT": str(self.http_port),
            "RYAX_WORKER_CACHE_DIR": str(folder / f"{worker_id}-cache"),
            "RYAX_RECONNECT_MAX_SECONDS": "1",
            "RYAX_LOG_FORMAT": "json",
        }
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", net.link.name, sys.executable, "-m", "ryax_worker"],
                env=env,
                cwd=REPO / "worker",
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def says(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")

    def file_bytes(self) -> dict[tuple[str, str], float]:
        """ryax_worker_file_bytes_total by (direction, mode), read on its /metrics in the
        namespace."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        script = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return file_bytes(done.stdout)

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def admin(request: pytest.FixtureRequest, tmp_path: Path) -> Ryax:
    return admin_cli(request.getfixturevalue("platform"), tmp_path)


@dataclass
class RemoteSite:
    name: str
    credential: str
    worker: RemoteWorker | None = None

    def show(self, admin: Ryax) -> Any:
        return json.loads(admin.ok("site", "show", self.name, "-o", "json"))


@pytest.fixture
def remote_site(admin: Ryax) -> Iterator[RemoteSite]:
    name = f"e2e-remote-{secrets.token_hex(3)}"
    site = RemoteSite(name, admin.ok("site", "create", name, "--type", "local").strip())
    try:
        yield site
    finally:
        if site.worker is not None:
            site.worker.stop()
        admin.ok("site", "archive", name)


def auth_failures() -> dict[str, float]:
    """The runner's ryax_runner_worker_auth_failures_total, by reason."""
    host, port = platform_env("runner")["RYAX_HTTP_HOST"], platform_env("runner")["RYAX_HTTP_PORT"]
    text = httpx.get(f"http://{host}:{port}/metrics", timeout=30).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ryax_runner_worker_auth_failures_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('reason="', 1)[1].split('"', 1)[0]] = float(value)
    return found


def connected(site: RemoteSite, admin: Ryax) -> None:
    eventually(
        "the remote worker registers over TLS", lambda: site.show(admin)["connected"] is True, 90
    )


def test_remote_site_runs_part_of_a_workflow_and_files_cross_both_ways(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    network: Network,
    admin: Ryax,
    remote_site: RemoteSite,
) -> None:
    live: Any = request.getfixturevalue("platform")
    project: Project = demo_project(live, tmp_path_factory, "e2e-remote")
    remote_site.worker = RemoteWorker(network, tmp_path, remote_site.name, remote_site.credential)
    connected(remote_site, admin)
    shown = remote_site.show(admin)
    assert shown["state"] == "online" and shown["node_pools"], shown
    assert remote_site.credential not in json.dumps(shown)
    assert remote_site.worker.says('"registered with the runner"'), "it logs its registration"

    placed_on = {"api": "local", "report": "local", "count": remote_site.name, "log": "local"}
    done = run_chain_across_sites(live, project, tmp_path, placed_on, "Remote")
    # Where each action step ran (the HTTP trigger is served by the runner itself).
    ran = done.site_of()
    assert {step: ran[step] for step in ("report", "count", "log")} == {
        step: placed_on[step] for step in ("report", "count", "log")
    }
    # The counts file came back from the remote site to the local one's publisher.
    published = done.lines_of("log")
    assert f"total: {WORDS}" in published, published
    assert "report counts.tsv:" in published, published
    # Both files crossed through presigned URLs: the report (and the artefact) down, the
    # counts up; the worker never had the filestore's keys.
    moved = remote_site.worker.file_bytes()
    assert moved.get(("download", "presigned"), 0) > 0, moved
    assert moved.get(("upload", "presigned"), 0) > 0, moved
    assert not any(mode == "direct" and count for (_, mode), count in moved.items()), moved
    s3_secret = platform_env("worker")["RYAX_S3_SECRET_KEY"]
    assert s3_secret not in remote_site.worker.log.read_text(errors="replace")
    assert remote_site.worker.process.poll() is None


def test_remote_site_goes_offline_within_10_s_of_a_cut_and_back_with_the_link(
    tmp_path: Path, network: Network, admin: Ryax, remote_site: RemoteSite
) -> None:
    remote_site.worker = RemoteWorker(network, tmp_path, remote_site.name, remote_site.credential)
    connected(remote_site, admin)
    network.link.cut()
    cut_at = time.monotonic()
    try:
        eventually(
            "the site is marked offline",
            lambda: remote_site.show(admin)["state"] == "offline",
            OFFLINE_WITHIN_S + 5,
        )
        offline_after = time.monotonic() - cut_at
    finally:
        network.link.restore()
    assert offline_after <= OFFLINE_WITHIN_S, f"offline {offline_after:.1f} s after the cut"
    eventually(
        "the site is back online with the link",
        lambda: remote_site.show(admin)["state"] == "online",
        60,
    )
    assert remote_site.worker.process.poll() is None


def test_remote_site_refuses_a_worker_with_no_or_a_wrong_credential_over_tls(
    tmp_path: Path, network: Network, admin: Ryax, remote_site: RemoteSite
) -> None:
    before = auth_failures()
    nobody = RemoteWorker(network, tmp_path, remote_site.name, None)
    wrong = RemoteWorker(network, tmp_path, remote_site.name, "ryax_site_" + "x" * 43)
    try:
        for worker in (nobody, wrong):
            eventually(
                "the runner refuses the worker",
                lambda w=worker: w.says("refused this worker's site credential"),  # type: ignore[misc]
                60,
            )
        shown = remote_site.show(admin)
        assert (shown["state"], shown["connected"], shown["worker_id"]) == ("offline", False, "")
        assert "x" * 43 not in wrong.log.read_text()
        after = auth_failures()
        assert after.get("missing", 0) > before.get("missing", 0), (before, after)
        assert after.get("wrong", 0) > before.get("wrong", 0), (before, after)
    finally:
        nobody.stop()
        wrong.stop()
