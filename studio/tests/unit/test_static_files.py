"""Static file and directory values, and the workflow zip, through the use cases (fakes)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ryax_studio.domain.errors import InvalidInput, InvalidWorkflow, TooLarge
from ryax_studio.domain.workflow import FileValue, StaticValue
from ryax_studio.infrastructure.messaging.mappers import snapshot_to_proto

TEXT = b"the cat and the hat\n"


async def _workflow(app: Any, b: Any, name: str = "files") -> str:
    for i, a in enumerate(b.standard_store().values()):
        if not a.builtin:
            await app.actions.register(f"m-{i}", a)
    w = app.workflows
    wid = str((await w.create(b.PROJECT, name)).workflow.id)
    await w.add_step(b.PROJECT, wid, step_id="api", action_id="httpapijson", version="1.0")
    await w.add_step(b.PROJECT, wid, step_id="count", action_id="word-count", version="1.0")
    await w.add_step(b.PROJECT, wid, step_id="t", action_id="typed", version="1.0")
    await w.add_link(b.PROJECT, wid, "api", "count")
    await w.add_link(b.PROJECT, wid, "count", "t")
    await w.set_input(b.PROJECT, wid, "api", "path", StaticValue(value="/files"))
    await w.set_input(b.PROJECT, wid, "api", "summary", StaticValue(value="Files"))
    await w.set_input(b.PROJECT, wid, "t", "s", StaticValue(value="x"))
    return wid


def _zip_of(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _tar_members(data: bytes) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t:
            f = t.extractfile(m) if m.isreg() else None
            found[m.name] = f.read() if f is not None else None
    return found


async def _with_files(app: Any, b: Any, tmp_path: Path, name: str = "files") -> str:
    wid = await _workflow(app, b, name)
    await app.workflows.set_input_file(
        b.PROJECT, wid, "count", "document", _write(tmp_path, "up", TEXT), "my words.txt"
    )
    archive = _zip_of({"data/": b"", "data/a.txt": b"A", "b.txt": b"B"})
    await app.workflows.set_input_file(
        b.PROJECT, wid, "t", "dir", _write(tmp_path, "up2", archive), "dataset.zip"
    )
    return wid


# ---- uploads -----------------------------------------------------------------------------------
async def test_a_file_upload_is_stored_under_the_project_and_deployed_as_a_file_ref(
    app: Any, b: Any, tmp_path: Path
) -> None:
    wid = await _with_files(app, b, tmp_path)
    view = await app.workflows.show(b.PROJECT, wid)
    assert view.problems == []
    doc = view.workflow.step("count").inputs["document"]
    assert isinstance(doc, FileValue)
    assert (doc.name, doc.size, doc.directory) == ("my words.txt", len(TEXT), False)
    assert doc.sha256 == hashlib.sha256(TEXT).hexdigest()
    assert doc.key.startswith(f"projects/{b.PROJECT}/files/")
    assert doc.key.endswith("/u=my=20words.txt")
    assert app.files.objects[doc.key] == TEXT

    directory = view.workflow.step("t").inputs["dir"]
    assert isinstance(directory, FileValue)
    assert (directory.name, directory.directory) == ("dataset", True)
    stored = app.files.objects[directory.key]
    assert directory.sha256 == hashlib.sha256(stored).hexdigest()
    assert _tar_members(stored) == {"data": None, "data/a.txt": b"A", "b.txt": b"B"}

    deployment = await app.deployments.deploy(b.PROJECT, wid, "alice")
    snapshot = await app.deployments.snapshot(b.PROJECT, deployment.snapshot_id)
    steps = {s.step_id: s for s in snapshot_to_proto(snapshot).steps}
    values = {v.input_name: v for v in steps["count"].input_values}
    assert values["document"].WhichOneof("source") == "static_file"
    ref = values["document"].static_file
    assert (ref.key, ref.name, ref.size, ref.sha256) == (doc.key, doc.name, doc.size, doc.sha256)
    dir_value = {v.input_name: v for v in steps["t"].input_values}["dir"]
    assert dir_value.WhichOneof("source") == "static_directory"
    assert dir_value.static_directory.key == directory.key


async def test_a_tar_upload_of_a_directory_is_repacked(app: Any, b: Any, tmp_path: Path) -> None:
    wid = await _workflow(app, b)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as t:
        info = tarfile.TarInfo("./x/y.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    view = await app.workflows.set_input_file(
        b.PROJECT, wid, "t", "dir", _write(tmp_path, "a", raw.getvalue()), "things.tar.gz"
    )
    value = view.workflow.step("t").inputs["dir"]
    assert isinstance(value, FileValue) and value.name == "things"
    assert _tar_members(app.files.objects[value.key]) == {"x": None, "x/y.txt": b"hi"}


async def test_uploads_refused(app: Any, b: Any, tmp_path: Path) -> None:
    wid = await _workflow(app, b)
    up = _write(tmp_path, "f", TEXT)
    with pytest.raises(InvalidInput, match="string input takes no file"):
        await app.workflows.set_input_file(b.PROJECT, wid, "t", "s", up, "a.txt")
    with pytest.raises(InvalidInput, match="not a usable file name"):
        await app.workflows.set_input_file(b.PROJECT, wid, "t", "file", up, "..")
    big = _write(tmp_path, "big", b"x" * (64 * 1024 + 1))
    with pytest.raises(TooLarge, match="RYAX_STUDIO_MAX_FILE_BYTES"):
        await app.workflows.set_input_file(b.PROJECT, wid, "t", "file", big, "big.bin")
    evil = _write(tmp_path, "evil", _zip_of({"../evil.txt": b"x"}))
    with pytest.raises(InvalidInput, match="escape"):
        await app.workflows.set_input_file(b.PROJECT, wid, "t", "dir", evil, "evil.zip")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    linked = _write(tmp_path, "link.tar", raw.getvalue())
    with pytest.raises(InvalidInput, match="no link"):
        await app.workflows.set_input_file(b.PROJECT, wid, "t", "dir", linked, "l.tar")
    not_archive = _write(tmp_path, "plain", b"just text")
    with pytest.raises(InvalidInput, match="zip or a tar"):
        await app.workflows.set_input_file(b.PROJECT, wid, "t", "dir", not_archive, "d.txt")
    assert app.files.objects == {}


async def test_a_file_value_must_fit_its_input(app: Any, b: Any) -> None:
    wid = await _workflow(app, b)
    value = FileValue(key="k", name="a.txt", size=1, sha256="00")
    view = await app.workflows.set_input(b.PROJECT, wid, "t", "s", value)
    view = await app.workflows.set_input(b.PROJECT, wid, "t", "dir", value)
    codes = {(p.input_name, p.code) for p in view.problems}
    assert ("s", "file_not_allowed") in codes
    assert ("dir", "file_kind_mismatch") in codes


# ---- the workflow zip --------------------------------------------------------------------------
async def test_zip_round_trip(app: Any, b: Any, tmp_path: Path) -> None:
    wid = await _with_files(app, b, tmp_path)
    out = tmp_path / "export.zip"
    await app.workflows.export_archive(b.PROJECT, wid, out)
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        document = z.read("workflow.yaml").decode()
        assert z.read("files/count/document/my words.txt") == TEXT
        assert z.read("files/t/dir/dataset/data/a.txt") == b"A"
        assert z.read("files/t/dir/dataset/b.txt") == b"B"
    assert "files/t/dir/dataset/" in names
    assert "static_file: files/count/document/my words.txt" in document
    assert "static_directory: files/t/dir/dataset/" in document

    view = await app.workflows.import_archive(b.PROJECT, out, name="copy")
    assert view.problems == []
    original = (await app.workflows.show(b.PROJECT, wid)).workflow
    copy = view.workflow
    for step_id, name in (("count", "document"), ("t", "dir")):
        before, after = original.step(step_id).inputs[name], copy.step(step_id).inputs[name]
        assert isinstance(before, FileValue) and isinstance(after, FileValue)
        assert after.key != before.key  # a copy of its own
        assert (after.name, after.size, after.directory) == (
            before.name,
            before.size,
            before.directory,
        )
        if not after.directory:
            assert after.sha256 == before.sha256
        assert _tar_or_bytes(app.files.objects[after.key], after.directory) == _tar_or_bytes(
            app.files.objects[before.key], before.directory
        )
    # and again: the export of the import is the same document
    again = tmp_path / "again.zip"
    await app.workflows.export_archive(b.PROJECT, "copy", again)
    with zipfile.ZipFile(again) as z:
        assert z.read("workflow.yaml").decode() == document.replace(
            "human_name: files", "human_name: copy"
        )


def _tar_or_bytes(data: bytes, directory: bool) -> object:
    return _tar_members(data) if directory else data


async def test_the_yaml_of_a_workflow_with_files_keeps_them_when_given_back(
    app: Any, b: Any, tmp_path: Path
) -> None:
    wid = await _with_files(app, b, tmp_path)
    _, text = await app.workflows.export_document(b.PROJECT, wid)
    before = (await app.workflows.show(b.PROJECT, wid)).workflow
    view = await app.workflows.replace_document(b.PROJECT, wid, text.encode())
    assert view.workflow.step("count").inputs == before.step("count").inputs
    assert view.workflow.step("t").inputs == before.step("t").inputs
    # a bare document cannot bring files of its own
    with pytest.raises(InvalidWorkflow) as caught:
        await app.workflows.import_document(b.PROJECT, text.encode(), name="bare")
    problem = next(p for p in caught.value.problems if p.code == "missing_file")
    assert problem.path == "spec.functions[1] (count).inputs_values.document"
    assert problem.line is not None and "import the workflow zip" in problem.message


async def test_zip_rejections_name_the_file_line_and_field(
    app: Any, b: Any, tmp_path: Path
) -> None:
    wid = await _with_files(app, b, tmp_path)
    out = tmp_path / "export.zip"
    await app.workflows.export_archive(b.PROJECT, wid, out)
    with zipfile.ZipFile(out) as z:
        document = z.read("workflow.yaml")
    objects = dict(app.files.objects)

    missing = _write(tmp_path, "missing.zip", _zip_of({"workflow.yaml": document}))
    with pytest.raises(InvalidWorkflow) as caught:
        await app.workflows.import_archive(b.PROJECT, missing, name="m")
    problems = [p for p in caught.value.problems if p.code == "missing_file"]
    assert len(problems) == 2
    for p in problems:
        assert p.file == "workflow.yaml"
        assert p.line is not None and p.line > 1
        assert p.path is not None and ".inputs_values." in p.path
        assert "is not in the zip" in p.message
    assert app.files.objects == objects  # nothing stored

    broken = document.replace(b"  from: word-count\n", b"  from: word-count\n    nope: 1\n")
    bad = _write(tmp_path, "bad.zip", _zip_of({"workflow.yaml": broken}))
    with pytest.raises(InvalidWorkflow) as caught:
        await app.workflows.import_archive(b.PROJECT, bad, name="bad")
    unknown = next(p for p in caught.value.problems if "unknown field 'nope'" in p.message)
    assert unknown.file == "workflow.yaml" and unknown.line is not None

    for entries, error, text in (
        ({"workflow.yaml": document, "../x": b"1"}, InvalidInput, "escape"),
        ({"workflow.yaml": document, "/etc/x": b"1"}, InvalidInput, "absolute"),
        ({"workflow.yaml": document, "a\\b": b"1"}, InvalidInput, "backslash"),
        ({"other.yaml": document}, InvalidInput, "no workflow.yaml"),
        ({"workflow.yaml": document, "bomb": b"\0" * 200_000}, TooLarge, "zip bomb"),
    ):
        path = _write(tmp_path, "x.zip", _zip_of(entries))
        with pytest.raises(error, match=text):
            await app.workflows.import_archive(b.PROJECT, path, name="x")
    with pytest.raises(InvalidInput, match="not a readable zip"):
        await app.workflows.import_archive(
            b.PROJECT, _write(tmp_path, "y.zip", b"PK\x03\x04 broken"), name="y"
        )
    big = _write(tmp_path, "big.zip", b"PK\x03\x04" + b"x" * (256 * 1024))
    with pytest.raises(TooLarge):
        await app.workflows.import_archive(b.PROJECT, big, name="big")
    assert app.files.objects == objects


# ---- project variables -------------------------------------------------------------------------
async def test_project_variables_are_resolved_at_deploy(app: Any, b: Any, tmp_path: Path) -> None:
    from ryax_studio.application.use_cases import ProjectVariables
    from ryax_studio.domain.deployment import VariableKind
    from ryax_studio.domain.errors import NotFound
    from ryax_studio.domain.workflow import SecretValue

    variables = ProjectVariables(
        uow_factory=app.workflows._uow,
        clock=app.workflows._clock,
        cipher=app.deployments._cipher,
        files=app.files,
    )
    wid = await _workflow(app, b)
    w = app.workflows
    await w.set_input(b.PROJECT, wid, "count", "document", SecretValue(name="corpus"))
    await w.set_input(b.PROJECT, wid, "t", "s", SecretValue(name="greeting"))
    await w.set_input(b.PROJECT, wid, "t", "i", SecretValue(name="greeting"))
    await w.set_input(b.PROJECT, wid, "t", "ls", SecretValue(name="token"))
    view = await w.show(b.PROJECT, wid)
    assert {(p.input_name, p.code) for p in view.problems} == {
        ("document", "unknown_secret"),
        ("s", "unknown_secret"),
        ("i", "unknown_secret"),
        ("ls", "unknown_secret"),
    }

    _, created = await variables.set_value(b.PROJECT, "greeting", "hello")
    assert created
    await variables.set_secret(b.PROJECT, "token", "s3cr3t")
    variable, _ = await variables.set_file(
        b.PROJECT, "corpus", _write(tmp_path, "c", TEXT), "corpus.txt", directory=False
    )
    assert variable.kind is VariableKind.FILE and variable.file is not None
    assert app.files.objects[variable.file.key] == TEXT
    view = await w.show(b.PROJECT, wid)
    (problem,) = view.problems
    assert (problem.input_name, problem.code) == ("i", "invalid_value")
    assert problem.message.startswith("step 't', input 'i': project variable 'greeting': ")
    await w.unset_input(b.PROJECT, wid, "t", "i")
    with pytest.raises(InvalidInput, match="not a valid variable name"):
        await variables.set_value(b.PROJECT, "bad name", "x")

    listed = {v.name: v for v in await variables.list_all(b.PROJECT)}
    assert listed["greeting"].value == "hello" and listed["token"].kind is VariableKind.SECRET
    assert [s.name for s in await app.secrets.list_all(b.PROJECT)] == ["token"]

    deployment = await app.deployments.deploy(b.PROJECT, wid, "alice")
    snapshot = await app.deployments.snapshot(b.PROJECT, deployment.snapshot_id)
    steps = {s.step_id: s for s in snapshot_to_proto(snapshot).steps}
    t = {v.input_name: v for v in steps["t"].input_values}
    assert t["s"].WhichOneof("source") == "static_json" and t["s"].static_json == '"hello"'
    assert t["ls"].WhichOneof("source") == "secret" and t["ls"].secret.name == "token"
    count = {v.input_name: v for v in steps["count"].input_values}
    assert count["document"].static_file.key == variable.file.key
    assert "s3cr3t" not in str(snapshot_to_proto(snapshot))
    # the runner gets the secret's value on the internal route, frozen at deploy
    _, values = await app.deployments.values_for_runner(deployment.id)
    assert values == {("t", "ls"): "s3cr3t"}

    await variables.delete(b.PROJECT, "greeting")
    with pytest.raises(NotFound):
        await variables.delete(b.PROJECT, "greeting")
    view = await w.show(b.PROJECT, wid)
    assert [(p.input_name, p.code) for p in view.problems] == [("s", "unknown_secret")]
