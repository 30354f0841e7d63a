"""Security: pip runs in its sandbox with a clean environment. A local package of the action, with
an in-tree PEP 517 build backend (no download needed), prints the environment it gets and what it
can read into the build log, then fails (pip shows a failing backend's output); the real builder
service (RabbitMQ, S3 server) builds it."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import ryax_action_builder
from ryax_action_builder.container import Container
from ryax_action_builder.infrastructure.proto import builder_events_pb2 as pb
from ryax_kit.filestore import S3Filestore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
REPO = Path(ryax_action_builder.__file__).resolve().parents[2]

BACKEND = """
    import os
    import sys

    def _snoop(*_args, **_kwargs):
        print("ENV-NAMES " + " ".join(sorted(os.environ)), file=sys.stderr)
        for value in os.environ.values():
            print("ENV-VALUE " + value, file=sys.stderr)
        for path in {paths!r}:
            try:
                with open(path, "rb") as source:
                    source.read(1)
                outcome = "ok"
            except OSError as error:
                outcome = type(error).__name__
            print(f"READ {{path}} {{outcome}}", file=sys.stderr)
        print(f"IDS {{os.getuid()}} {{os.getgid()}}", file=sys.stderr)
        raise RuntimeError("snooped")

    get_requires_for_build_wheel = _snoop
    prepare_metadata_for_build_wheel = _snoop
    build_wheel = _snoop
"""
PYPROJECT = """
    [build-system]
    requires = []
    build-backend = "snoop_backend"
    backend-path = ["."]

    [project]
    name = "snoop"
    version = "1.0"
"""


async def test_security_pip_runs_sandboxed_with_a_clean_environment(
    builder: Container,
    answers: Any,
    order_sender: Any,
    filestore: S3Filestore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slugify_files: dict[str, str],
) -> None:
    # Secrets in the builder's own environment must not reach pip.
    monkeypatch.setenv("RYAX_SECRET_KEY", "sekrit-signing-key")
    monkeypatch.setenv("RYAX_S3_SECRET_KEY", "sekrit-s3-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit-aws-key")
    platform_file = tmp_path / "platform" / ".dev" / "secret-key"
    platform_file.parent.mkdir(parents=True)
    platform_file.write_text("sekrit-file")
    platform_file.chmod(0o644)
    cached = builder.settings().cache_dir / "another-build.txt"
    cached.write_text("sekrit-cache")
    outside = [
        str(platform_file),
        str(REPO / ".dev" / "secret-key"),
        str(REPO / "Makefile"),
        str(REPO / "action-builder" / "ryax_action_builder" / "settings.py"),
        str(cached),  # the builder's cache (pip sees the wrapper layer's constraints only)
        f"/proc/{os.getpid()}/environ",  # the builder's own process
        "/etc/shadow",
    ]
    files = {
        **slugify_files,
        "requirements.txt": "./snoop\n",
        "snoop/pyproject.toml": PYPROJECT,
        "snoop/snoop_backend.py": BACKEND.format(paths=outside),
    }

    async def store(key: str, data: bytes) -> None:
        await filestore.write_bytes(key, data, "application/gzip")

    await order_sender(store, "snoop-1", files)
    await answers.wait_for(1, seconds=300)
    assert answers.messages[0].routing_key == "ActionBuildFailed"
    failed = pb.ActionBuildFailed.FromString(answers.messages[0].body)
    log = textwrap.dedent(failed.build_log)

    names_line = next(line for line in log.splitlines() if "ENV-NAMES " in line)
    names = set(names_line.split("ENV-NAMES ", 1)[1].split())
    assert not [n for n in names if n.startswith("RYAX_")], names
    assert "AWS_SECRET_ACCESS_KEY" not in names
    assert "sekrit" not in log
    pip_names = {n for n in names if n.startswith("PIP_")}
    # pip's own (set by the builder) and what pip sets for its build subprocess.
    assert pip_names <= {
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "PIP_NO_INPUT",
        "PIP_BUILD_TRACKER",
        "PIP_REQ_TRACKER",
        "PIP_PYTHON_PATH",
    }, pip_names
    for path in outside:
        assert f"READ {path} FileNotFoundError" in log or f"READ {path} PermissionError" in log, (
            path,
            log,
        )
    ids_line = next(line for line in log.splitlines() if "IDS " in line)
    uid, gid = (int(n) for n in ids_line.split("IDS ", 1)[1].split())
    settings = builder.settings()
    if os.geteuid() == 0:
        assert (uid, gid) == (settings.sandbox_uid, settings.sandbox_gid)
    assert await asyncio.to_thread(platform_file.read_text) == "sekrit-file"
