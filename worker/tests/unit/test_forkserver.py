"""Which artefacts share a fork server (runtime_key), on folders laid out as the builder does."""

from __future__ import annotations

import json
from pathlib import Path

from ryax_worker.infrastructure.local.forkserver import runtime_key


def artefact(
    root: Path,
    name: str,
    *,
    protobuf: str = "7.36.2",
    wrapper: str = "# wrapper\n",
    code: str = "def handle(r): return {}\n",
    run_sh: str = '#!/bin/sh\nexec python3 -m ryax_action_wrapper "$@"\n',
    forkable: bool = True,
) -> Path:
    folder = root / name
    package = folder / "wrapper" / "ryax_action_wrapper"
    (package / "infrastructure").mkdir(parents=True)
    (package / "__init__.py").write_text(wrapper)
    if forkable:
        (package / "infrastructure" / "forkserver.py").write_text("# fork server\n")
    (folder / "run.sh").write_text(run_sh)
    (folder / "code").mkdir()
    (folder / "code" / "ryax_handler.py").write_text(code)
    deps = folder / "deps"
    for dist in ("grpcio-1.85.1", f"protobuf-{protobuf}", "six-1.17.0"):
        (deps / f"{dist}.dist-info").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"python": "3.11"}))
    return folder


def test_same_runtime_whatever_the_code_and_other_dependencies(tmp_path: Path) -> None:
    a = artefact(tmp_path, "a")
    b = artefact(tmp_path, "b", code="def handle(r): return {'x': 1}\n")
    (b / "deps" / "requests-2.32.0.dist-info").mkdir()
    assert runtime_key(a) is not None
    assert runtime_key(a) == runtime_key(b)


def test_another_runtime_when_the_wrapper_its_dependencies_or_run_sh_differ(
    tmp_path: Path,
) -> None:
    base = runtime_key(artefact(tmp_path, "base"))
    assert runtime_key(artefact(tmp_path, "protobuf", protobuf="6.0.0")) != base
    assert runtime_key(artefact(tmp_path, "wrapper", wrapper="# wrapper 2\n")) != base
    assert (
        runtime_key(artefact(tmp_path, "run", run_sh="#!/bin/sh\nexec python3.12 -m x\n")) != base
    )


def test_an_artefact_from_a_wrapper_without_fork_server_is_not_forked(tmp_path: Path) -> None:
    assert runtime_key(artefact(tmp_path, "old", forkable=False)) is None
    assert runtime_key(tmp_path / "missing") is None
