"""The execution's work directory as the process's current and temporary directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ryax_action_wrapper.infrastructure.files import ProcessWorkingDirectory


def test_an_existing_directory_is_entered_and_left(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "kept.txt").write_text("x")
    before = os.getcwd()
    workdir = ProcessWorkingDirectory()
    for _ in range(3):  # reused by the worker from one execution to the next
        with workdir.entered(str(work)):
            assert os.getcwd() == str(work)
            assert tempfile.gettempdir() == str(work)
        assert os.getcwd() == before
    assert (work / "kept.txt").read_text() == "x"


def test_a_directory_removed_between_executions_is_made_again(tmp_path: Path) -> None:
    work = tmp_path / "deep" / "work"
    previous = os.environ.get("TMPDIR")
    workdir = ProcessWorkingDirectory()
    with workdir.entered(str(work)):
        assert os.getcwd() == str(work)
    shutil.rmtree(tmp_path / "deep")
    with workdir.entered(str(work)):
        assert os.getcwd() == str(work)
        assert os.environ["TMPDIR"] == str(work)
    assert os.environ.get("TMPDIR") == previous
