"""Security: a file or directory output must resolve inside the execution's work directory
(links followed), checked on a real file system with the wrapper's own probe; and during an
execution tempfile's directory is the work directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ryax_action_wrapper.domain.errors import InvalidOutputValue
from ryax_action_wrapper.domain.io import IODeclaration, LocalFile, validate_output_set
from ryax_action_wrapper.infrastructure.files import ProcessWorkingDirectory, probe_path

OUTPUTS = (
    IODeclaration.parse(name="report", type="file"),
    IODeclaration.parse(name="folder", type="directory", optional=True),
)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "execution" / "work"
    work.mkdir(parents=True)
    secret = tmp_path / "secret-key"
    secret.write_text("do not publish")
    return work, secret


def validate(work: Path, **returned: object) -> dict[str, object]:
    outputs, _ = validate_output_set(OUTPUTS, returned, work_dir=str(work), probe=probe_path)
    return outputs


def test_security_an_output_inside_the_work_dir_is_accepted(layout: tuple[Path, Path]) -> None:
    work, _ = layout
    (work / "sub").mkdir()
    (work / "sub" / "r.txt").write_text("ok")
    (work / "inner-link").symlink_to(work / "sub" / "r.txt")
    assert validate(work, report="sub/r.txt")["report"] == LocalFile(
        path=str(work / "sub" / "r.txt"), name="r.txt", size=2
    )
    assert validate(work, report="inner-link", folder="sub")["folder"] is not None


def test_security_a_platform_file_returned_as_output_is_refused(
    layout: tuple[Path, Path],
) -> None:
    work, secret = layout
    with pytest.raises(InvalidOutputValue, match=r"output 'report': .*secret-key is outside"):
        validate(work, report=str(secret))
    with pytest.raises(InvalidOutputValue, match=r"outside the execution's work directory"):
        validate(work, report="../../secret-key")
    (work / "r.txt").write_text("ok")
    with pytest.raises(InvalidOutputValue, match="output 'folder': / is outside"):
        validate(work, report="r.txt", folder="/")


def test_security_a_link_out_of_the_work_dir_is_refused(layout: tuple[Path, Path]) -> None:
    work, secret = layout
    (work / "innocent.txt").symlink_to(secret)
    (work / "dir-link").symlink_to(secret.parent)
    with pytest.raises(InvalidOutputValue, match=r"output 'report': .*innocent\.txt is outside"):
        validate(work, report="innocent.txt")
    with pytest.raises(InvalidOutputValue, match=r"is outside"):
        validate(work, report="dir-link/secret-key")


def test_security_tempfile_points_into_the_work_dir_during_an_execution(
    layout: tuple[Path, Path],
) -> None:
    work, _ = layout
    before = tempfile.gettempdir()
    with ProcessWorkingDirectory().entered(str(work)):
        made = Path(tempfile.mkdtemp()) / "out.txt"
        made.write_text("x")
        assert os.environ["TMPDIR"] == str(work)
        assert validate(work, report=str(made))["report"] is not None
    assert tempfile.gettempdir() == before
