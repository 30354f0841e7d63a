"""Uploading actions as archives: good ones, malicious ones, too large ones; through the API."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ryax_repository.container import Container
from ryax_repository.domain.errors import InvalidInput, TooLarge, UnsafeArchive
from ryax_repository.domain.model import ProjectId
from ryax_repository.infrastructure.archives import SafeArchiveExtractor

pytestmark = pytest.mark.integration
P = ProjectId("project-a")
BASE = "/repository/v1/projects/project-a"


def zip_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def tar_of(files: dict[str, bytes], special: list[tarfile.TarInfo] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
        for info in special or []:
            tf.addfile(info)
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def prefixed(prefix: str, files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{prefix}/{name}": content for name, content in files.items()}


async def test_zip_and_tar_of_the_same_action_give_the_same_source(
    container: Container, tmp_path: Path, helpers: Any
) -> None:
    uc = container.use_cases()
    files = helpers.action_files("echo", logo=helpers.png(8, 8))
    archive = tmp_path / "echo.zip"
    archive.write_bytes(
        zip_of(prefixed("echo", files) | prefixed("more/deep", helpers.action_files("deep")))
    )
    report = await uc.upload_archive(P, archive, "echo.zip")
    assert {(a.path, a.status.value) for a in report.actions} == {
        ("echo", "new"),
        ("more/deep", "new"),
    }
    echo_sha = next(a.sha256 for a in report.actions if a.path == "echo")

    again = tmp_path / "echo.tar.gz"
    again.write_bytes(tar_of(prefixed("renamed-folder", files)))
    report = await uc.upload_archive(P, again, "echo.tar.gz")
    [action] = report.actions
    assert action.status.value == "unchanged" and action.sha256 == echo_sha
    view = await uc.get_action(P, "echo", "1.0")
    assert view.source.origin.upload_id is not None and view.source.origin.name == "echo.zip"


@pytest.mark.parametrize(
    ("archive", "words"),
    [
        (
            zip_of({"../evil.py": b"x", "ok/ryax_metadata.yaml": b"x"}),
            ["'../evil.py' goes outside the archive root"],
        ),
        (zip_of({"/etc/cron.d/evil": b"x"}), ["'/etc/cron.d/evil' is an absolute path"]),
        (
            zip_of({"a/b.py": b"x"}, links={"a/link": "/etc/passwd"}),
            ["'a/link' is a symbolic link"],
        ),
        (zip_of({"a\\..\\..\\x": b"x"}), ["backslash"]),
        (tar_of({"x/../../evil": b"x"}), ["goes outside the archive root"]),
        (tar_of({}, [link("a/passwd", "/etc/passwd")]), ["'a/passwd' is a symbolic link"]),
        (tar_of({}, [link("a/hard", "/etc/shadow", tarfile.LNKTYPE)]), ["is a hard link"]),
        (tar_of({}, [link("a/dev", "", tarfile.CHRTYPE)]), ["device, pipe or other"]),
        (
            tar_of({"/abs": b"x", "../up": b"y"}, [link("l", "/")]),
            ["'/abs' is an absolute path", "'../up' goes outside", "'l' is a symbolic link"],
        ),
    ],
)
def test_malicious_archives_are_refused_whole(
    tmp_path: Path, archive: bytes, words: list[str]
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(archive)
    destination = tmp_path / "out" / "tree"
    destination.mkdir(parents=True)
    with pytest.raises(UnsafeArchive) as caught:
        SafeArchiveExtractor().extract(path, destination)
    for word in words:
        assert word in caught.value.detail
    assert list(destination.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "upload"]


def test_archive_bombs_and_garbage_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(zip_of({f"f{i}": b"\0" * 400_000 for i in range(5)}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "t").mkdir()
    with pytest.raises(TooLarge, match="expands to 2000000 bytes"):
        SafeArchiveExtractor(max_bytes=1_000_000).extract(bomb, out)
    many = tmp_path / "many.tar.gz"
    many.write_bytes(tar_of({f"f{i}": b"" for i in range(30)}))
    with pytest.raises(TooLarge, match="more than 20 entries"):
        SafeArchiveExtractor(max_entries=20).extract(many, out)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"this is not an archive at all")
    with pytest.raises(InvalidInput, match=r"expected a \.zip"):
        SafeArchiveExtractor().extract(garbage, out)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tar_of({"a": os.urandom(100_000)})[:5000])
    with pytest.raises(InvalidInput, match="damaged or truncated"):
        SafeArchiveExtractor().extract(truncated, out / "t")


async def test_upload_through_the_api(
    make_client: Callable[..., Any], as_user: Callable[[str], dict[str, str]], helpers: Any
) -> None:
    client = await make_client(max_upload_bytes=200_000)
    body = zip_of(prefixed("echo", helpers.action_files("echo")))

    form = aiohttp.FormData()
    form.add_field("archive", body, filename="../../echo.zip", content_type="application/zip")
    response = await client.post(f"{BASE}/uploads", data=form, headers=as_user("alice"))
    assert response.status == 200, await response.text()
    report = await response.json()
    assert report["origin"] == "upload" and report["name"] == "echo.zip"
    assert [(a["path"], a["status"]) for a in report["actions"]] == [("echo", "new")]

    raw = tar_of(prefixed("x", helpers.action_files("other")))
    response = await client.post(
        f"{BASE}/uploads?name=other.tar.gz&build=true",
        data=raw,
        headers={**as_user("alice"), "Content-Type": "application/gzip"},
    )
    assert response.status == 200, await response.text()
    report = await response.json()
    assert report["counts"]["new"] == 1 and len(report["build_ids"]) == 1

    evil = zip_of({"../../evil.py": b"x"})
    response = await client.post(f"{BASE}/uploads", data=evil, headers=as_user("alice"))
    assert response.status == 400
    problem = await response.json()
    assert problem["error"] == "unsafe_archive" and "goes outside" in problem["detail"]

    big = b"PK\x03\x04" + b"\0" * 300_000
    response = await client.post(f"{BASE}/uploads", data=big, headers=as_user("alice"))
    assert response.status == 413
    assert "RYAX_REPOSITORY_MAX_UPLOAD_BYTES" in (await response.json())["detail"]

    response = await client.post(f"{BASE}/uploads", data=b"", headers=as_user("alice"))
    assert response.status == 400

    response = await client.post(f"{BASE}/uploads", data=body, headers=as_user("victor"))
    assert response.status == 403  # a viewer cannot upload


async def test_an_unreadable_multipart_upload_is_a_400_naming_the_archive(
    make_client: Callable[..., Any], as_user: Callable[[str], dict[str, str]]
) -> None:
    """Found by the OpenAPI fuzzing (tests/fuzz): a multipart body aiohttp cannot split (no
    boundary, a part's headers garbled) was a 500."""
    client = await make_client(max_upload_bytes=200_000)
    garbled = b"--b\r\nContent-Disposition: form-data; name\r\n\x00\r\n\r\nx\r\n--b--\r\n"
    for content_type, body in (
        ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary
        ("multipart/form-data; boundary=b", garbled),
    ):
        response = await client.post(
            f"{BASE}/uploads",
            data=body,
            headers={**as_user("alice"), "Content-Type": content_type},
        )
        assert response.status == 400, (content_type, await response.text())
        problem = await response.json()
        assert problem["error"] == "invalid_input"
        assert problem["detail"].startswith("archive: not a readable multipart body")
