"""Where files go in the filestore, and the kit's filestore behind the worker's port: keys that
follow the kit's rule whatever name an action chose, names restored on the way back, errors
that are FileTransferFailed."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from ryax_kit.filestore import LocalDirFilestore, S3Filestore, check_key
from ryax_worker.application.staging import FileStaging
from ryax_worker.container import Container
from ryax_worker.domain.errors import FileTransferFailed, InvalidInput
from ryax_worker.domain.model import DeploymentId, FileRef, StepId, StepRef
from ryax_worker.infrastructure.placement import FilestorePlacement
from ryax_worker.infrastructure.transfers import FilestoreTransfers
from ryax_worker.settings import Settings

REF = StepRef(DeploymentId("d1"), StepId("s1"))
PLACE = FilestorePlacement()


class TestPlacement:
    def test_output_key(self) -> None:
        assert PLACE.output_key("r1", "e1", "image", "cat.png") == "runs/r1/e1/image/cat.png"

    def test_output_key_of_a_list_element(self) -> None:
        assert PLACE.output_key("r1", "e1", "image", "cat.png", 2) == "runs/r1/e1/image/2/cat.png"

    def test_names_are_reduced_to_one_segment(self) -> None:
        assert PLACE.output_key("r1", "e1", "out", "/tmp/work/../x/a.txt") == "runs/r1/e1/out/a.txt"
        assert PLACE.output_key("r1", "e1", "out", "..") == "runs/r1/e1/out/file"

    def test_names_an_action_chose_are_encoded(self) -> None:
        assert (
            PLACE.output_key("r1", "e1", "out", "my file.txt") == "runs/r1/e1/out/u=my=20file.txt"
        )
        for name in ("résumé final.pdf", ".hidden", "a\\b", "-rf", "x" * 300 + ".csv"):
            check_key(PLACE.output_key("r1", "e1", "out", name))
            check_key(PLACE.trigger_output_key(REF, "ev", "out", name))

    def test_unsafe_ids_are_refused(self) -> None:
        with pytest.raises(InvalidInput, match="run_id"):
            PLACE.output_key("../r", "e1", "out", "a")
        with pytest.raises(InvalidInput, match="output"):
            PLACE.output_key("r", "e1", "a/b", "a")
        with pytest.raises(InvalidInput, match="step_id"):
            PLACE.trigger_output_key(StepRef(DeploymentId("d1"), StepId("s 1")), "ev", "f", "a")

    def test_trigger_key(self) -> None:
        assert (
            PLACE.trigger_output_key(REF, "ev", "file", "a.csv") == "triggers/d1/s1/ev/file/a.csv"
        )


@pytest.fixture
def staging(tmp_path: Path) -> FileStaging:
    return FileStaging(FilestoreTransfers(LocalDirFilestore(tmp_path / "store")), tmp_path / "ex")


@pytest.mark.parametrize("name", ["résumé final.pdf", ".hidden"])
async def test_an_output_file_keeps_its_name_through_the_filestore(
    staging: FileStaging, tmp_path: Path, name: str
) -> None:
    produced = tmp_path / "work" / name
    produced.parent.mkdir()
    produced.write_bytes(b"content")

    published = await staging.publish_outputs(
        {"doc": FileRef(key=str(produced), name=name)},
        lambda output, file: PLACE.output_key("r1", "e1", output, file),
        produced.parent,
    )
    ref = published["doc"]
    assert isinstance(ref, FileRef)
    assert check_key(ref.key).startswith("runs/r1/e1/doc/u=")
    assert ref.name == name and ref.size == 7

    # The next step reads it back under the name the action gave.
    inputs = tmp_path / "next" / "inputs"
    fetched = (await staging.fetch_inputs({"doc": ref}, inputs))["doc"]
    assert isinstance(fetched, FileRef)
    assert Path(fetched.key) == inputs / "doc" / name
    assert fetched.name == name
    assert await asyncio.to_thread(Path(fetched.key).read_bytes) == b"content"


async def test_a_directory_output_keeps_its_name(staging: FileStaging, tmp_path: Path) -> None:
    folder = tmp_path / "work" / "mes données"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("a")

    published = await staging.publish_outputs(
        {"dir": FileRef(key=str(folder), name="", is_directory=True)},
        lambda output, file: PLACE.output_key("r1", "e1", output, file),
        folder.parent,
    )
    ref = published["dir"]
    assert isinstance(ref, FileRef) and ref.is_directory
    assert check_key(ref.key).endswith(".tar") and ref.name == "mes données"

    fetched = (await staging.fetch_inputs({"dir": ref}, tmp_path / "in"))["dir"]
    assert isinstance(fetched, FileRef)
    assert (Path(fetched.key) / "a.txt").read_text() == "a"
    assert Path(fetched.key).name == "mes données"


class TestTransferErrors:
    async def test_a_missing_object_names_the_key(self, tmp_path: Path) -> None:
        files = FilestoreTransfers(LocalDirFilestore(tmp_path))
        with pytest.raises(FileTransferFailed) as raised:
            await files.download("runs/r/e/out/absent", tmp_path / "x")
        assert raised.value.detail == "runs/r/e/out/absent is not in the filestore"

    async def test_an_invalid_key_is_a_transfer_failure(self, tmp_path: Path) -> None:
        files = FilestoreTransfers(LocalDirFilestore(tmp_path))
        with pytest.raises(FileTransferFailed, match="invalid filestore key"):
            await files.download("../etc/passwd", tmp_path / "x")
        source = tmp_path / "source"
        source.write_text("x")
        with pytest.raises(FileTransferFailed, match="invalid filestore key"):
            await files.upload("a b", source)

    async def test_a_backend_failure_is_a_transfer_failure(self, tmp_path: Path) -> None:
        blocker = tmp_path / "store"
        blocker.write_text("a file where the store's directory should be")
        files = FilestoreTransfers(LocalDirFilestore(blocker))
        source = tmp_path / "source"
        source.write_text("x")
        with pytest.raises(FileTransferFailed, match="cannot upload 'k'"):
            await files.upload("k", source)


def test_the_filestore_follows_the_settings(tmp_path: Path) -> None:
    local = Container(settings=Settings.from_env({"RYAX_FILESTORE_DIR": str(tmp_path)})).filestore()
    assert isinstance(local, LocalDirFilestore) and local.root == tmp_path
    env = {
        "RYAX_S3_ENDPOINT": "https://s3:9000",
        "RYAX_S3_ACCESS_KEY": "ak",
        "RYAX_S3_SECRET_KEY": "sk",
        "RYAX_S3_BUCKET": "b",
        "RYAX_S3_REGION": "eu",
    }
    s3 = Container(settings=Settings.from_env(env)).filestore()
    assert isinstance(s3, S3Filestore)
    assert (s3.endpoint, s3.secure, s3.bucket, s3.region) == ("s3:9000", True, "b", "eu")


class TestReusableWorkspaces:
    def test_one_left_as_given_is_taken_again(self, staging: FileStaging) -> None:
        space = staging.reusable_workspace(REF, "e1")
        assert [p.name for p in space.root.iterdir()] == ["work"] and not space.reused
        staging.release(space)
        again = staging.reusable_workspace(REF, "e2")
        assert again.root == space.root and again.reused
        other = staging.reusable_workspace(REF, "e3")  # the first one is taken
        assert other.root.name == "e3" and not other.reused

    @pytest.mark.parametrize("change", ["file in work", "file beside work", "work is a link"])
    def test_one_changed_is_removed(self, staging: FileStaging, change: str) -> None:
        space = staging.reusable_workspace(REF, "e1")
        if change == "file in work":
            (space.work_dir / "left.txt").write_text("x")
        elif change == "file beside work":
            (space.root / "left.txt").write_text("x")
        else:
            space.work_dir.rmdir()
            space.work_dir.symlink_to(space.root.parent)
        staging.release(space)
        assert not space.root.exists()
        assert staging.reusable_workspace(REF, "e2").root.name == "e2"

    def test_one_whose_folder_went_is_not_taken_again(self, staging: FileStaging) -> None:
        space = staging.reusable_workspace(REF, "e1")
        staging.release(space)
        shutil.rmtree(staging.step_dir(REF))  # the backend undeployed the step
        again = staging.reusable_workspace(REF, "e2")
        assert again.root.name == "e2" and again.work_dir.is_dir() and not again.reused

    def test_a_workspace_of_one_execution_is_always_removed(self, staging: FileStaging) -> None:
        space = staging.workspace(REF, "e1")
        staging.release(space)
        assert not space.root.exists()
        assert staging.reusable_workspace(REF, "e2").root.name == "e2"
