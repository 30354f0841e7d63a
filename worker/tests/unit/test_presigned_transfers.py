"""The presigned-URL adapter against a loopback HTTP server that misbehaves on purpose (SeaweedFS
cannot be made to answer 500 or cut a body short): transient errors are tried again, a 404 is
"not in the filestore", a refusal of the runner is not retried, a short body leaves nothing
behind, and no error or log line ever holds the URL (a bearer secret)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from ryax_worker.domain.errors import FileTransferFailed, TransferNotGranted
from ryax_worker.infrastructure.presigned import (
    PresignDenied,
    PresignedTransfers,
    PresignedUrl,
    PresignNotGranted,
    PresignUnavailable,
)

SECRET = "X-Amz-Signature=0123456789abcdef"


@dataclass
class Server:
    """Answers each request with the next planned (status, body); records what it got."""

    plan: list[tuple[int, bytes]] = field(default_factory=list)
    got: list[tuple[str, str, bytes, str | None]] = field(default_factory=list)
    base: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.got.append((request.method, request.path, body, request.headers.get("Content-Length")))
        status, payload = self.plan.pop(0) if self.plan else (200, b"")
        if status == 299:  # a body cut short: announce more than is sent
            response = web.StreamResponse(status=200, headers={"Content-Length": "100"})
            await response.prepare(request)
            await response.write(payload)
            request.transport.close()  # type: ignore[union-attr]
            return response
        return web.Response(status=status, body=payload)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@dataclass
class FakeUrls:
    """The runner's side: a URL per ask (numbered), or the failures planned first."""

    base: str
    failures: list[Exception] = field(default_factory=list)
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def presign(self, method: str, key: str) -> PresignedUrl:
        self.asked.append((method, key))
        if self.failures:
            raise self.failures.pop(0)
        return PresignedUrl(url=f"{self.base}/bucket/{key}?n={len(self.asked)}&{SECRET}")


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def adapter(urls: FakeUrls) -> PresignedTransfers:
    return PresignedTransfers(urls, attempts=3, backoff_seconds=0.01)


Make = Callable[..., tuple[FakeUrls, PresignedTransfers]]


@pytest.fixture
async def make(server: Server) -> AsyncIterator[Make]:
    made: list[PresignedTransfers] = []

    def build(*failures: Exception) -> tuple[FakeUrls, PresignedTransfers]:
        urls = FakeUrls(server.base, list(failures))
        transfers = adapter(urls)
        made.append(transfers)
        return urls, transfers

    yield build
    for transfers in made:
        await transfers.close()


async def test_download_and_upload_stream_and_count(
    server: Server, make: Make, tmp_path: Path
) -> None:
    _, transfers = make()
    server.plan = [(200, b"x" * 300_000)]
    await transfers.download("runs/r/e/in/a.bin", tmp_path / "in" / "a.bin")
    assert (tmp_path / "in" / "a.bin").read_bytes() == b"x" * 300_000
    source = tmp_path / "out.txt"
    source.write_bytes(b"result")
    await transfers.upload("runs/r/e/out/out.txt", source, "text/plain")
    method, path, body, length = server.got[-1]
    assert (method, path, body, length) == ("PUT", "/bucket/runs/r/e/out/out.txt", b"result", "6")
    assert dict(transfers.stats.bytes) == {
        ("download", "presigned"): 300_000,
        ("upload", "presigned"): 6,
    }


async def test_transient_errors_are_tried_again_with_the_same_url(
    server: Server, make: Make, tmp_path: Path
) -> None:
    urls, transfers = make()
    server.plan = [(503, b"<Error><Code>SlowDown</Code></Error>"), (500, b""), (200, b"ok")]
    await transfers.download("k/a", tmp_path / "a")
    assert (tmp_path / "a").read_bytes() == b"ok"
    assert len(urls.asked) == 1 and transfers.stats.urls_renewed == 0


async def test_a_403_asks_for_a_new_url(server: Server, make: Make, tmp_path: Path) -> None:
    urls, transfers = make()
    server.plan = [(403, b"<Error><Code>AccessDenied</Code></Error>"), (200, b"ok")]
    await transfers.download("k/a", tmp_path / "a")
    assert len(urls.asked) == 2 and len(server.got) == 2
    assert transfers.stats.urls_renewed == 1


async def test_failures_name_the_key_never_the_url(
    server: Server, make: Make, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, transfers = make()
    server.plan = [(404, b"<Error><Code>NoSuchKey</Code></Error>")]
    with pytest.raises(FileTransferFailed) as missing:
        await transfers.download("runs/r/e/in/gone.txt", tmp_path / "gone.txt")
    assert (
        missing.value.detail == "runs/r/e/in/gone.txt is not in the filestore (HTTP 404 NoSuchKey)"
    )

    server.plan = [(500, b"")] * 3
    with pytest.raises(FileTransferFailed) as broken:
        await transfers.download("k/b", tmp_path / "b")
    assert "k/b" in broken.value.detail and "after 3 attempts: HTTP 500" in broken.value.detail

    # (The test server's own access log shows URLs: only the worker's records count.)
    ours = [r for r in caplog.records if r.name.startswith("ryax_worker")]
    assert ours
    texts = [missing.value.detail, broken.value.detail] + [r.getMessage() for r in ours]
    texts += [str(getattr(r, "reason", "")) for r in ours]
    assert not any(SECRET in text or "?n=" in text for text in texts)
    assert leftovers(tmp_path) == []


async def test_a_body_cut_short_leaves_nothing(server: Server, make: Make, tmp_path: Path) -> None:
    _, transfers = make()
    server.plan = [(299, b"partial")] * 3
    with pytest.raises(FileTransferFailed):
        await transfers.download("k/cut", tmp_path / "cut")
    assert leftovers(tmp_path) == []


async def test_the_runner_refusing_is_final_unavailable_is_tried_again(
    server: Server, make: Make, tmp_path: Path
) -> None:
    urls, transfers = make(PresignDenied("the runner refused a URL for k/x: PERMISSION_DENIED"))
    with pytest.raises(FileTransferFailed, match="PERMISSION_DENIED"):
        await transfers.download("k/x", tmp_path / "x")
    assert len(urls.asked) == 1 and server.got == []

    urls, transfers = make(PresignUnavailable("UNAVAILABLE: connection refused"))
    server.plan = [(200, b"ok")]
    await transfers.download("k/y", tmp_path / "y")
    assert len(urls.asked) == 2 and (tmp_path / "y").read_bytes() == b"ok"


async def test_not_granted_says_so_only_when_the_runner_refused_the_object_or_was_unreachable(
    server: Server, make: Make, tmp_path: Path
) -> None:
    """TransferNotGranted: about the runner (it does not expect the object, or it could not be
    asked), not the file; a held file's publication failing so is not the file's loss."""
    _, transfers = make(PresignNotGranted("the runner refused a URL for k/x: PERMISSION_DENIED"))
    with pytest.raises(TransferNotGranted, match="PERMISSION_DENIED"):
        await transfers.upload("k/x", write(tmp_path / "x"))
    down = PresignUnavailable("UNAVAILABLE: connection refused")
    _, transfers = make(down, down, down)
    with pytest.raises(TransferNotGranted, match=r"after 3 attempts.*UNAVAILABLE"):
        await transfers.upload("k/y", write(tmp_path / "y"))

    # A credential refused, or the filestore failing: not about whether the runner asks.
    _, transfers = make(PresignDenied("the runner refused a URL for k/z: UNAUTHENTICATED"))
    with pytest.raises(FileTransferFailed) as refused:
        await transfers.upload("k/z", write(tmp_path / "z"))
    assert not isinstance(refused.value, TransferNotGranted)
    _, transfers = make(down)
    server.plan = [(503, b"")] * 3
    with pytest.raises(FileTransferFailed, match="HTTP 503") as failed:
        await transfers.upload("k/w", write(tmp_path / "w"))
    assert not isinstance(failed.value, TransferNotGranted)


def write(path: Path) -> Path:
    path.write_bytes(b"data")
    return path
