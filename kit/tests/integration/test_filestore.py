"""Both filestores against the real thing: the S3 API server of the root conftest (SeaweedFS,
which checks signatures) and a directory. The same tests run on both."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ryax_kit.filestore import (
    CHUNK_SIZE,
    FilestoreError,
    InvalidKey,
    LocalDirFilestore,
    ObjectNotFound,
    PresignNotSupported,
    S3Filestore,
)

pytestmark = pytest.mark.integration

Store = S3Filestore | LocalDirFilestore


def _s3(server: Any, bucket: str, **overrides: Any) -> S3Filestore:
    arguments: dict[str, Any] = {
        "endpoint": server.endpoint,
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "bucket": bucket,
        "region": server.region,
    }
    arguments.update(overrides)
    return S3Filestore(**arguments)


@pytest.fixture(params=["s3", "local"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    filestore: Store
    if request.param == "s3":
        # Asked for only here: the local runs never start SeaweedFS.
        server = request.getfixturevalue("s3_server")
        filestore = _s3(server, request.getfixturevalue("fresh_bucket"))
    else:
        filestore = LocalDirFilestore(tmp_path / "store")
    await filestore.ensure_ready()
    return filestore


@pytest.fixture
async def s3_store(s3_server: Any, fresh_bucket: str) -> S3Filestore:
    filestore = _s3(s3_server, fresh_bucket)
    await filestore.ensure_ready()
    return filestore


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".tmp-*"))


def _http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --------------------------------------------------------------------------- round trips


async def test_ready_and_ping(store: Store) -> None:
    await store.ensure_ready()  # again: idempotent
    assert await store.ping() is True


async def test_upload_then_download(store: Store, work: Path) -> None:
    source = work / "in.bin"
    source.write_bytes(b"\x00hello\xff" * 1000)
    await store.upload("runs/r/e/out/in.bin", source, content_type="text/plain")
    assert source.exists()  # a copy
    destination = work / "deep" / "down" / "out.bin"
    await store.download("runs/r/e/out/in.bin", destination)
    assert destination.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(destination.stat().st_mode) == 0o644
    assert _leftovers(work) == []


async def test_download_replaces_an_existing_file(store: Store, work: Path) -> None:
    await store.write_bytes("k", b"new")
    destination = work / "file"
    destination.write_bytes(b"old content, longer")
    await store.download("k", destination)
    assert destination.read_bytes() == b"new"


async def test_write_bytes_then_read_bytes_and_overwrite(store: Store) -> None:
    await store.write_bytes("artefacts/x.json", b'{"a": 1}', content_type="application/json")
    assert await store.read_bytes("artefacts/x.json") == b'{"a": 1}'
    await store.write_bytes("artefacts/x.json", b"")
    assert await store.read_bytes("artefacts/x.json") == b""
    assert await store.size("artefacts/x.json") == 0


async def test_put_file_moves_the_file_in(store: Store, work: Path) -> None:
    source = work / "archive.tar.gz"
    source.write_bytes(b"archive" * 100)
    await store.put_file("sources/abc.tar.gz", source)
    assert not source.exists()
    assert await store.read_bytes("sources/abc.tar.gz") == b"archive" * 100
    assert await store.size("sources/abc.tar.gz") == 700


async def test_put_file_of_a_missing_source_fails_and_names_the_key(
    store: Store, work: Path
) -> None:
    with pytest.raises(FilestoreError, match="sources/missing") as caught:
        await store.put_file("sources/missing", work / "nope")
    assert not isinstance(caught.value, ObjectNotFound)
    assert caught.value.__cause__ is not None
    assert not await store.exists("sources/missing")


async def test_a_large_object_is_streamed_in_chunks(store: Store, work: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    source = work / "big"
    source.write_bytes(data)
    await store.upload("runs/r/e/big/big", source)
    chunks = [chunk async for chunk in store.read("runs/r/e/big/big")]
    assert b"".join(chunks) == data
    assert len(chunks) >= 13
    assert max(len(c) for c in chunks) <= CHUNK_SIZE
    assert await store.size("runs/r/e/big/big") == len(data)
    destination = work / "big.copy"
    await store.download("runs/r/e/big/big", destination)
    assert destination.read_bytes() == data


async def test_stopping_a_read_early_releases_it(store: Store) -> None:
    await store.write_bytes("k", os.urandom(CHUNK_SIZE * 4))
    for _ in range(15):  # more than the connection pool holds, were they kept
        async with aclosing(store.read("k")) as chunks:
            async for _chunk in chunks:
                break
    assert await store.size("k") == CHUNK_SIZE * 4


async def test_exists_and_delete_is_idempotent(store: Store) -> None:
    assert not await store.exists("a/b")
    await store.write_bytes("a/b", b"x")
    assert await store.exists("a/b")
    assert not await store.exists("a")  # a prefix is not an object
    await store.delete("a/b")
    assert not await store.exists("a/b")
    await store.delete("a/b")
    await store.delete("never/there")
    await store.delete("a")


async def test_delete_prefix_removes_everything_under_it_in_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ryax_kit.filestore as filestore

    monkeypatch.setattr(filestore, "DELETE_BATCH", 3)  # several multi-object deletes
    keys = [f"runs/r1/e{i}/out/f{i}.txt" for i in range(7)] + ["runs/r1/e0/out/1/deep.bin"]
    others = ["runs/r10/e/out/x", "runs/r2/e/out/y", "triggers/d/s/ev/o/z"]
    for key in keys + others:
        await store.write_bytes(key, b"data")
    assert await store.delete_prefix("runs/r1/") == len(keys)
    for key in keys:
        assert not await store.exists(key)
    for key in others:  # r10 starts with r1, yet is not under runs/r1/
        assert await store.exists(key)
    assert await store.delete_prefix("runs/r1/") == 0  # nothing left: not an error
    assert await store.delete_prefix("never/there/") == 0
    for bad in ("runs/r2", "/runs/", "runs/../", ""):
        with pytest.raises(InvalidKey):
            await store.delete_prefix(bad)
    assert await store.exists("runs/r2/e/out/y")


async def test_a_missing_key_is_object_not_found(store: Store, work: Path) -> None:
    await store.write_bytes("present/x", b"x")
    for key in ("missing", "present", "present/y"):
        with pytest.raises(ObjectNotFound, match=key) as caught:
            await store.read_bytes(key)
        assert caught.value.key == key
        with pytest.raises(ObjectNotFound):
            await store.size(key)
        with pytest.raises(ObjectNotFound):
            async for _ in store.read(key):
                pass
        with pytest.raises(ObjectNotFound):
            await store.download(key, work / "sub" / "out")
        assert not (work / "sub" / "out").exists()
        assert _leftovers(work) == []


async def test_keys_with_encoded_user_names_round_trip(store: Store) -> None:
    from ryax_kit.filestore import encode_segment

    keys = [f"runs/r/e/out/{encode_segment(n)}" for n in ("my file.txt", "é.txt", ".env", "..")]
    for index, key in enumerate(keys):
        await store.write_bytes(key, str(index).encode())
    for index, key in enumerate(keys):
        assert await store.read_bytes(key) == str(index).encode()


# --------------------------------------------------------------------------- local directory


async def test_local_files_are_0644_and_written_atomically(tmp_path: Path, work: Path) -> None:
    store = LocalDirFilestore(tmp_path / "store")
    await store.ensure_ready()
    source = work / "f"
    source.write_bytes(b"x")
    os.chmod(source, 0o600)
    await store.write_bytes("a/one", b"1")
    await store.upload("a/two", source)
    await store.put_file("a/three", source)
    for name in ("one", "two", "three"):
        assert stat.S_IMODE((tmp_path / "store" / "a" / name).stat().st_mode) == 0o644
    assert _leftovers(tmp_path / "store") == []


async def test_local_put_file_copies_a_symbolic_link_target(tmp_path: Path, work: Path) -> None:
    store = LocalDirFilestore(tmp_path / "store")
    secret = work / "elsewhere"
    secret.write_bytes(b"content")
    link = work / "link"
    link.symlink_to(secret)
    await store.put_file("k", link)
    stored = tmp_path / "store" / "k"
    assert not stored.is_symlink() and stored.read_bytes() == b"content"
    assert not link.exists() and not link.is_symlink()
    assert secret.exists()


async def test_local_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalDirFilestore(tmp_path / "store")
    await store.write_bytes("taken", b"a file")
    with pytest.raises(FilestoreError, match="taken/below"):
        await store.write_bytes("taken/below", b"x")  # a file where a directory should be
    (tmp_path / "store" / "dir" / "k").mkdir(parents=True)
    with pytest.raises(FilestoreError, match="dir/k"):
        await store.write_bytes("dir/k", b"x")  # a directory where the file should be
    assert _leftovers(tmp_path / "store") == []


async def test_local_ping_is_false_without_the_directory(tmp_path: Path) -> None:
    store = LocalDirFilestore(tmp_path / "not-yet")
    assert await store.ping() is False
    await store.ensure_ready()
    assert await store.ping() is True


async def test_local_has_no_urls(tmp_path: Path) -> None:
    store = LocalDirFilestore(tmp_path)
    with pytest.raises(PresignNotSupported, match="cannot hand out URLs"):
        await store.presigned_get_url("k", timedelta(minutes=1))


# --------------------------------------------------------------------------- S3 only


async def test_s3_reads_stopped_early_give_their_connection_back(s3_store: S3Filestore) -> None:
    await s3_store.write_bytes("k", os.urandom(CHUNK_SIZE * 4))
    host, port = s3_store.endpoint.rsplit(":", 1)
    pool = s3_store._client._http.connection_from_host(host, int(port), "http")
    before = pool.num_connections
    for _ in range(15):
        async with aclosing(s3_store.read("k")) as chunks:
            async for _chunk in chunks:
                break
    await s3_store.read_bytes("k")
    # A response left open would hold its connection and make the pool open a new one.
    assert pool.num_connections - before <= 2


async def test_s3_a_missing_bucket_is_not_a_missing_object(s3_server: Any) -> None:
    bucket = f"ryax-test-{uuid.uuid4().hex[:12]}"  # never created
    store = _s3(s3_server, bucket)
    for attempt in (store.exists("k"), store.size("k"), store.read_bytes("k"), store.delete("k")):
        with pytest.raises(FilestoreError, match="bucket") as caught:
            await attempt
        assert not isinstance(caught.value, ObjectNotFound)
    # Not asserted: SeaweedFS creates a missing bucket on the first PUT (AWS, MinIO refuse).
    client = s3_server.client()
    assert not client.bucket_exists(bucket)


async def test_s3_keeps_the_content_type(s3_store: S3Filestore, s3_server: Any) -> None:
    await s3_store.write_bytes("k.json", b"{}", content_type="application/json")
    info = s3_server.client().stat_object(s3_store.bucket, "k.json")
    assert info.content_type == "application/json"


async def test_s3_ensure_ready_creates_the_bucket_even_concurrently(s3_server: Any) -> None:
    bucket = f"ryax-test-{uuid.uuid4().hex[:12]}"
    stores = [_s3(s3_server, bucket) for _ in range(3)]
    try:
        assert await stores[0].ping() is False  # no bucket yet
        await asyncio.gather(*(s.ensure_ready() for s in stores))
        assert await stores[0].ping() is True
        await stores[1].write_bytes("k", b"v")
        assert await stores[2].read_bytes("k") == b"v"
    finally:
        client = s3_server.client()
        if client.bucket_exists(bucket):
            client.remove_object(bucket, "k")
            client.remove_bucket(bucket)


async def test_presigned_get_and_put_work_over_plain_http(s3_store: S3Filestore) -> None:
    await s3_store.write_bytes("runs/r/e/out/a.txt", b"from the service")
    url = await s3_store.presigned_get_url("runs/r/e/out/a.txt", timedelta(minutes=5))
    assert await asyncio.to_thread(_http, "GET", url) == (200, b"from the service")

    url = await s3_store.presigned_put_url("runs/r/e/out/b.txt", timedelta(minutes=5))
    status, _ = await asyncio.to_thread(_http, "PUT", url, b"from a remote worker")
    assert status == 200
    assert await s3_store.read_bytes("runs/r/e/out/b.txt") == b"from a remote worker"


async def test_an_expired_url_is_refused(s3_store: S3Filestore) -> None:
    await s3_store.write_bytes("k", b"v")
    url = await s3_store.presigned_get_url("k", timedelta(seconds=1))
    put_url = await s3_store.presigned_put_url("other", timedelta(seconds=1))
    await asyncio.sleep(2.1)
    status, _ = await asyncio.to_thread(_http, "GET", url)
    assert status == 403
    status, _ = await asyncio.to_thread(_http, "PUT", put_url, b"late")
    assert status == 403
    assert not await s3_store.exists("other")


async def test_a_url_for_one_key_cannot_reach_another(s3_store: S3Filestore) -> None:
    await s3_store.write_bytes("runs/r/e/out/mine", b"content A")
    await s3_store.write_bytes("runs/r/e/out/yours", b"content B")
    url = await s3_store.presigned_get_url("runs/r/e/out/mine", timedelta(minutes=5))
    tampered = url.replace("/runs/r/e/out/mine?", "/runs/r/e/out/yours?")
    assert tampered != url
    status, body = await asyncio.to_thread(_http, "GET", tampered)
    assert status == 403 and b"content B" not in body

    put_url = await s3_store.presigned_put_url("runs/r/e/out/mine", timedelta(minutes=5))
    tampered = put_url.replace("/runs/r/e/out/mine?", "/runs/r/e/out/yours?")
    status, _ = await asyncio.to_thread(_http, "PUT", tampered, b"overwritten")
    assert status == 403
    assert await s3_store.read_bytes("runs/r/e/out/yours") == b"content B"


async def test_urls_signed_for_a_public_endpoint(s3_server: Any, fresh_bucket: str) -> None:
    # "localhost" stands for the address remote sites use: the same server under another name.
    port = urllib.parse.urlsplit(s3_server.endpoint).port
    store = _s3(s3_server, fresh_bucket, public_endpoint=f"http://localhost:{port}")
    await store.write_bytes("k", b"v")
    url = await store.presigned_get_url("k", timedelta(minutes=1))
    assert url.startswith(f"http://localhost:{port}/{fresh_bucket}/k?")
    assert await asyncio.to_thread(_http, "GET", url) == (200, b"v")
    # Signed for localhost: the same URL sent to the internal address does not verify.
    internal = url.replace(f"localhost:{port}", s3_server.address)
    status, _ = await asyncio.to_thread(_http, "GET", internal)
    assert status == 403


async def test_a_wrong_secret_is_a_filestore_error_without_the_secret(
    s3_server: Any, fresh_bucket: str
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    store = _s3(s3_server, fresh_bucket, secret_key=wrong)
    assert await store.ping() is False
    failures: list[FilestoreError] = []
    for attempt in (
        store.write_bytes("k", b"v"),
        store.read_bytes("k"),
        store.exists("k"),
        store.ensure_ready(),
    ):
        with pytest.raises(FilestoreError) as caught:
            await attempt
        failures.append(caught.value)
    for failure in failures:
        assert not isinstance(failure, ObjectNotFound)
        text = f"{failure} {failure!r} {failure.__cause__}"
        assert wrong not in text and s3_server.secret_key not in text
        assert failure.__cause__ is not None
    assert "'k'" in str(failures[0]) and fresh_bucket in str(failures[0])
    assert wrong not in repr(store)


async def test_an_unreachable_server_is_a_filestore_error(fresh_bucket: str) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3Filestore(
        endpoint=f"http://127.0.0.1:{port}",
        access_key="ryax",
        secret_key="s3cr3t-never-shown",
        bucket=fresh_bucket,
        region="us-east-1",
    )
    assert await store.ping() is False
    with pytest.raises(FilestoreError, match="'k'") as caught:
        await store.read_bytes("k")
    assert "s3cr3t" not in str(caught.value)
