"""The git adapter against a real HTTPS server: credentials through GIT_ASKPASS only, the
checked address pinned, redirects refused, slow servers cut off, nothing secret in messages."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ryax_repository.domain.errors import ScanFailed
from ryax_repository.domain.git_url import parse_git_url
from ryax_repository.domain.model import Credentials, RepositoryId
from ryax_repository.infrastructure.git import GitCli

pytestmark = pytest.mark.integration
HOST = "git.test.invalid"  # never resolvable: only the pinned address can reach the server
SECRET = "s3cr3t-Token-Value"


@dataclass
class Seen:
    authorizations: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def https_git(tmp_path: Path) -> AsyncIterator[tuple[int, Path, Seen]]:
    seen = Seen()

    async def refs(request: web.Request) -> web.StreamResponse:
        seen.paths.append(request.path)
        repository = request.match_info["repo"]
        if repository == "moved.git":
            raise web.HTTPFound(f"https://169.254.169.254/{repository}/info/refs")
        if repository == "slow.git":
            await asyncio.sleep(30)
        header = request.headers.get("Authorization")
        if header:
            seen.authorizations.append(header)
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="git"'})

    app = web.Application()
    app.router.add_get("/{repo}/info/refs", refs)
    cert, key = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    yield server.port or 0, cert, seen
    await server.close()


async def test_credentials_reach_the_server_only_through_askpass(
    https_git: tuple[int, Path, Seen], tmp_path: Path
) -> None:
    port, ca, seen = https_git
    git = GitCli(tmp_path / "work", timeout_seconds=30, ca_bundle=ca)
    with pytest.raises(ScanFailed) as caught:
        await git.checkout(
            repository_id=RepositoryId("r1"),
            url=parse_git_url(f"https://{HOST}:{port}/private.git"),
            branch=None,
            credentials=Credentials(username="bot", password=SECRET),
            pinned_address="127.0.0.1",
        )
    assert "authentication failed" in caught.value.detail
    assert SECRET not in caught.value.detail
    assert seen.authorizations, seen.paths
    scheme, _, value = seen.authorizations[-1].partition(" ")
    assert scheme == "Basic" and base64.b64decode(value).decode() == f"bot:{SECRET}"
    leftovers = [p.name for p in (tmp_path / "work").iterdir()]
    assert not any(name.startswith("git-call-") for name in leftovers)  # askpass dir removed
    assert not (tmp_path / "work" / "clones" / "r1" / ".git" / "config").exists() or (
        SECRET not in (tmp_path / "work" / "clones" / "r1" / ".git" / "config").read_text()
    )


async def test_without_credentials_git_never_prompts(
    https_git: tuple[int, Path, Seen], tmp_path: Path
) -> None:
    port, ca, seen = https_git
    git = GitCli(tmp_path / "work", timeout_seconds=30, ca_bundle=ca)
    with pytest.raises(ScanFailed, match="authentication failed"):
        await git.checkout(
            repository_id=RepositoryId("r2"),
            url=parse_git_url(f"https://{HOST}:{port}/private.git"),
            branch="main",
            credentials=None,
            pinned_address="127.0.0.1",
        )
    assert seen.authorizations == []  # nothing typed, nothing sent


async def test_redirects_are_refused(https_git: tuple[int, Path, Seen], tmp_path: Path) -> None:
    port, ca, seen = https_git
    git = GitCli(tmp_path / "work", timeout_seconds=30, ca_bundle=ca)
    with pytest.raises(ScanFailed) as caught:
        await git.checkout(
            repository_id=RepositoryId("r3"),
            url=parse_git_url(f"https://{HOST}:{port}/moved.git"),
            branch="main",
            credentials=None,
            pinned_address="127.0.0.1",
        )
    assert "redirect" in caught.value.detail
    assert seen.paths == ["/moved.git/info/refs"]


async def test_without_the_pinned_address_the_host_is_not_reached(
    https_git: tuple[int, Path, Seen], tmp_path: Path
) -> None:
    port, ca, seen = https_git
    git = GitCli(tmp_path / "work", timeout_seconds=30, ca_bundle=ca)
    with pytest.raises(ScanFailed, match="cannot be resolved"):
        await git.checkout(
            repository_id=RepositoryId("r4"),
            url=parse_git_url(f"https://{HOST}:{port}/private.git"),
            branch="main",
            credentials=None,
            pinned_address=None,
        )
    assert seen.paths == []


async def test_a_slow_server_is_cut_off(https_git: tuple[int, Path, Seen], tmp_path: Path) -> None:
    port, ca, _ = https_git
    git = GitCli(tmp_path / "work", timeout_seconds=2, ca_bundle=ca)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ScanFailed, match="took longer than 2 s"):
        await git.checkout(
            repository_id=RepositoryId("r5"),
            url=parse_git_url(f"https://{HOST}:{port}/slow.git"),
            branch="main",
            credentials=None,
            pinned_address="127.0.0.1",
        )
    assert loop.time() - started < 10
