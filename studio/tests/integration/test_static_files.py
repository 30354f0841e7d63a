"""Static files and the workflow zip over HTTP, on a real PostgreSQL and a real S3 server
(SeaweedFS): the upload lands in the bucket under the project's prefix, the zip export holds
it, the zip import stores a copy, and bad zips are refused with a 4xx naming what and where."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ryax_kit.filestore import FilestoreSettings
from ryax_kit.settings import Env

from .conftest import FakeAuthz, Studio, make_settings, start_studio

pytestmark = pytest.mark.integration

P = "/studio/v1/projects/proj-a"
TEXT = b"the cat and the hat\n"
DOCUMENT = """\
apiVersion: "ryax.tech/v2.0"
kind: Workflows
spec:
  human_name: {name}
  functions:
  - id: tick
    from: timer
    version: "1.0"
    streams_to: [count]
  - id: count
    from: word-count
    version: "1.0"
    inputs_values:
      document: {{static_file: files/count/document/words.txt}}
    streams_to: []
"""


@pytest.fixture
async def s3_studio(
    db_url: str, fake_authz: FakeAuthz, s3_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Studio]:
    settings = dataclasses.replace(
        make_settings(db_url, fake_authz.url),
        filestore=FilestoreSettings.read(Env.from_os(s3_env), default_dir=tmp_path),
        max_file_bytes=64 * 1024,
        max_archive_bytes=256 * 1024,
    )
    s = await start_studio(settings, messaging=False)
    yield s
    await s.client.close()


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


async def _workflow(s: Studio) -> str:
    r = await s.call("POST", f"{P}/workflows", json={"name": "files"})
    assert r.status == 201, await r.text()
    for sid, action in (("tick", "timer"), ("count", "word-count")):
        r = await s.call(
            "POST",
            f"{P}/workflows/files/steps",
            json={"id": sid, "action_id": action, "version": "1.0"},
        )
        assert r.status == 201, await r.text()
    r = await s.call("POST", f"{P}/workflows/files/links", json={"from": "tick", "to": "count"})
    assert r.status in (200, 201), await r.text()
    return "files"


async def test_upload_export_import_round_trip(
    s3_studio: Studio, fill_store: Callable[[Studio, str], Any], s3_server: Any, fresh_bucket: str
) -> None:
    s = s3_studio
    await fill_store(s, "pa-id")
    await _workflow(s)
    form = aiohttp.FormData()
    form.add_field("file", TEXT, filename="words.txt")
    r = await s.call("POST", f"{P}/workflows/files/steps/count/inputs/document/file", data=form)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["problems"] == []
    count = next(st for st in body["steps"] if st["id"] == "count")
    assert count["inputs"]["document"]["file"] == {
        "name": "words.txt",
        "size": len(TEXT),
        "sha256": hashlib.sha256(TEXT).hexdigest(),
        "directory": False,
    }
    client = s3_server.client()
    keys = [o.object_name for o in client.list_objects(fresh_bucket, recursive=True)]
    assert len(keys) == 1 and keys[0].startswith("projects/pa-id/files/")
    assert keys[0].endswith("/words.txt")
    assert client.get_object(fresh_bucket, keys[0]).read() == TEXT

    # another project cannot upload to this workflow
    form = aiohttp.FormData()
    form.add_field("file", TEXT, filename="x.txt")
    r = await s.call(
        "POST", f"{P}/workflows/files/steps/count/inputs/document/file", "token-b", data=form
    )
    assert r.status == 403

    r = await s.call("GET", f"{P}/workflows/files/export?format=zip")
    assert r.status == 200 and r.headers["Content-Type"] == "application/zip"
    exported = await r.read()
    with zipfile.ZipFile(io.BytesIO(exported)) as z:
        assert z.read("files/count/document/words.txt") == TEXT
        assert b"static_file: files/count/document/words.txt" in z.read("workflow.yaml")

    r = await s.call(
        "POST",
        f"{P}/workflows/import?name=again",
        data=exported,
        headers={"Content-Type": "application/zip"},
    )
    assert r.status == 201, await r.text()
    again = await r.json()
    assert again["problems"] == []
    doc = next(st for st in again["steps"] if st["id"] == "count")["inputs"]["document"]["file"]
    assert doc["sha256"] == hashlib.sha256(TEXT).hexdigest()
    assert len(list(client.list_objects(fresh_bucket, recursive=True))) == 2

    # multipart, as `curl -F file=@export.zip` sends it
    form = aiohttp.FormData()
    form.add_field("file", exported, filename="export.zip", content_type="application/zip")
    r = await s.call("POST", f"{P}/workflows/import?name=third", data=form)
    assert r.status == 201, await r.text()


async def test_bad_uploads_and_zips_are_4xx_naming_what_and_where(
    s3_studio: Studio, fill_store: Callable[[Studio, str], Any]
) -> None:
    s = s3_studio
    await fill_store(s, "pa-id")
    await _workflow(s)
    r = await s.call(
        "POST",
        f"{P}/workflows/files/steps/count/inputs/document/file?filename=big.bin",
        data=b"x" * (64 * 1024 + 1),
    )
    assert r.status == 413
    assert "RYAX_STUDIO_MAX_FILE_BYTES" in (await r.json())["detail"]

    document = DOCUMENT.format(name="zipped").encode()
    r = await s.call("POST", f"{P}/workflows/import", data=_zip({"workflow.yaml": document}))
    assert r.status == 422
    problem = (await r.json())["problems"][0]
    assert problem["code"] == "missing_file"
    assert (problem["file"], problem["line"]) == ("workflow.yaml", 14)
    assert problem["path"] == "spec.functions[1] (count).inputs_values.document"

    for entries, status, text in (
        ({"workflow.yaml": document, "../../etc/passwd": b"x"}, 400, "'../../etc/passwd'"),
        ({"workflow.yaml": document, "bomb.bin": b"\0" * 200_000}, 413, "zip bomb"),
        ({"flow.yaml": document}, 400, "no workflow.yaml"),
    ):
        r = await s.call("POST", f"{P}/workflows/import", data=_zip(entries))
        assert r.status == status, await r.text()
        assert text in (await r.json())["detail"]
    r = await s.call("POST", f"{P}/workflows/import", data=b"PK\x03\x04" + b"x" * 300_000)
    assert r.status == 413

    # A multipart body without a part (found by the fuzzing: it was a 500), to a file input
    # and to a file variable.
    empty = b"--B\r\n--B--\r\n"
    for path in (
        f"{P}/workflows/files/steps/count/inputs/document/file?filename=",
        f"{P}/variables/doc/file?filename=",
    ):
        r = await s.call(
            "POST", path, data=empty, headers={"Content-Type": "multipart/form-data; boundary=B"}
        )
        assert r.status == 400, await r.text()
        assert "not a readable multipart body" in (await r.json())["detail"]
    # Both answers of the export are documented.
    spec = await (await s.call("GET", "/studio/openapi.json")).json()
    export = spec["paths"]["/studio/v1/projects/{project}/workflows/{workflow}/export"]["get"]
    assert set(export["responses"]["200"]["content"]) == {"application/yaml", "application/zip"}

    # the zip that holds the file is accepted
    r = await s.call(
        "POST",
        f"{P}/workflows/import",
        data=_zip({"workflow.yaml": document, "files/count/document/words.txt": TEXT}),
    )
    assert r.status == 201, await r.text()


async def test_project_variables_over_http(
    s3_studio: Studio, fill_store: Callable[[Studio, str], Any], s3_server: Any, fresh_bucket: str
) -> None:
    s = s3_studio
    await fill_store(s, "pa-id")
    await _workflow(s)
    v = f"{P}/variables"
    r = await s.call("PUT", f"{v}/greeting", json={"kind": "value", "value": "hello"})
    assert r.status == 201, await r.text()
    r = await s.call("PUT", f"{v}/greeting", json={"value": "hi"})
    assert r.status == 200 and (await r.json())["value"] == "hi"
    r = await s.call("PUT", f"{v}/token", json={"kind": "secret", "value": "s3cr3t-value"})
    assert r.status == 201 and "s3cr3t" not in await r.text()
    r = await s.call("PUT", f"{v}/token2", json={"kind": "secret", "value": 3})
    assert r.status == 400 and "a secret's value is a string" in await r.text()
    r = await s.call("PUT", f"{v}/bad name", json={"value": "x"})
    assert r.status == 400 and "not a valid variable name" in await r.text()
    form = aiohttp.FormData()
    form.add_field("file", TEXT, filename="corpus.txt")
    r = await s.call("POST", f"{v}/corpus/file", data=form)
    assert r.status == 201, await r.text()
    assert (await r.json())["file"]["sha256"] == hashlib.sha256(TEXT).hexdigest()
    r = await s.call("GET", v, "token-b")
    assert r.status == 403  # not a member of proj-a
    r = await s.call("GET", "/studio/v1/projects/proj-b/variables", "token-b")
    assert r.status == 200 and (await r.json())["variables"] == []
    r = await s.call("GET", v)
    listed = {v["name"]: v for v in (await r.json())["variables"]}
    assert listed["greeting"]["value"] == "hi"
    assert listed["token"]["kind"] == "secret" and listed["token"]["value"] is None
    assert listed["corpus"]["file"]["name"] == "corpus.txt"
    assert "s3cr3t" not in await r.text()
    r = await s.call("GET", f"{P}/secrets")
    assert [x["name"] for x in (await r.json())["secrets"]] == ["token"]

    r = await s.call(
        "PUT",
        f"{P}/workflows/files/steps/count/inputs/document",
        json={"secret": "corpus"},
    )
    assert r.status == 200 and (await r.json())["problems"] == []
    # a file variable on a string input is a located problem
    r = await s.call(
        "PUT", f"{P}/workflows/files/steps/tick/inputs/max_runs", json={"secret": "greeting"}
    )
    problems = (await r.json())["problems"]
    assert [(p["input"], p["code"]) for p in problems] == [("max_runs", "invalid_value")]
    assert "project variable 'greeting'" in problems[0]["message"]
    r = await s.call("DELETE", f"{P}/workflows/files/steps/tick/inputs/max_runs")
    assert r.status == 200
    r = await s.call("DELETE", f"{v}/corpus")
    assert r.status == 204
    r = await s.call("GET", f"{P}/workflows/files/errors")
    assert [p["code"] for p in (await r.json())["problems"]] == ["unknown_secret"]
    r = await s.call("DELETE", f"{v}/corpus", "viewer-a")
    assert r.status == 403
