"""Tests of proto-registry/registry.py, on temporary copies of the tree (never the real one)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REGISTRY_DIR = Path(__file__).resolve().parent.parent
SERVICES = ["repository", "action-builder", "studio", "runner", "worker", "action-wrapper"]


def load_registry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("proto_registry", REGISTRY_DIR / "registry.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


registry = load_registry()


def copy_registry(destination: Path) -> Path:
    """A repository root holding only a copy of proto-registry/ (protos, manifest, tool)."""
    shutil.copytree(
        REGISTRY_DIR,
        destination / "proto-registry",
        ignore=shutil.ignore_patterns("tests", "__pycache__", ".*_cache"),
    )
    return destination


@pytest.fixture(scope="module")
def generated_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the registry with every service's code generated once (protoc is slow-ish)."""
    root = copy_registry(tmp_path_factory.mktemp("generated"))
    assert registry.main(["generate", "--root", str(root)]) == 0
    return root


@pytest.fixture
def tree(generated_tree: Path, tmp_path: Path) -> Path:
    """A fresh copy of the generated tree, that a test may damage."""
    root = tmp_path / "repo"
    shutil.copytree(generated_tree, root)
    return root


def check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = registry.main(["check", "--root", str(root)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_check_passes_after_generate(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = check(tree, capsys)

    assert code == 0, output
    assert "up to date" in output


def test_check_names_an_edited_consumer_copy(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = "studio/ryax_studio/infrastructure/proto/repository_events_pb2.py"
    with (tree / edited).open("a", encoding="utf-8") as file:
        file.write("# a hand edit\n")

    code, output = check(tree, capsys)

    assert code == 1
    assert f"differs: {edited}" in output
    assert "make protos" in output
    assert output.count("differs:") == 1  # the other copies of the file are untouched


def test_check_names_an_edited_proto_copy(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edited = tree / "worker/ryax_worker/infrastructure/proto/worker_service.proto"
    edited.write_text(edited.read_text(encoding="utf-8").replace("string site_name", "string x"))

    code, output = check(tree, capsys)

    assert code == 1
    assert "differs: worker/ryax_worker/infrastructure/proto/worker_service.proto" in output


def test_check_names_missing_and_extra_files(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proto = tree / "runner/ryax_runner/infrastructure/proto"
    (proto / "worker_service_pb2_grpc.pyi").unlink()
    (proto / "old_events_pb2.py").write_text("# left over\n")
    (proto / "__pycache__").mkdir(exist_ok=True)
    (proto / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"ignored")

    code, output = check(tree, capsys)

    assert code == 1
    assert "missing: runner/ryax_runner/infrastructure/proto/worker_service_pb2_grpc.pyi" in output
    assert "extra:   runner/ryax_runner/infrastructure/proto/old_events_pb2.py" in output
    assert "__pycache__" not in output


def test_check_names_files_of_a_service_dropped_from_the_manifest(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tree / "proto-registry/manifest.yaml"
    text = manifest.read_text(encoding="utf-8")
    manifest.write_text(text.replace("consumers: [action-builder, studio]", "consumers: [studio]"))

    code, output = check(tree, capsys)

    assert code == 1
    folder = "action-builder/ryax_action_builder/infrastructure/proto"
    assert f"extra:   {folder}/repository_events_pb2.py" in output
    assert f"extra:   {folder}/builder_events_pb2.py" not in output


def test_generate_is_deterministic_and_repairs(
    tree: Path, generated_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = tree / "studio/ryax_studio/infrastructure/proto/runner_events_pb2.pyi"
    edited.write_text("broken\n")
    (edited.parent / "stale_pb2.py").write_text("# stale\n")

    assert registry.main(["generate", "--root", str(tree)]) == 0

    def snapshot(root: Path) -> dict[str, bytes]:
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and "proto-registry" not in path.parts
        }

    assert snapshot(tree) == snapshot(generated_tree)
    assert check(tree, capsys)[0] == 0


def test_generated_copies_are_marked_and_grpc_only_where_needed(tree: Path) -> None:
    studio = tree / "studio/ryax_studio/infrastructure/proto"
    header = (studio / "repository_events.proto").read_text(encoding="utf-8").splitlines()[0]
    worker = {path.name for path in (tree / "worker/ryax_worker/infrastructure/proto").iterdir()}

    assert header == (
        "// GENERATED COPY of proto-registry/repository/repository_events.proto -- DO NOT EDIT."
    )
    assert not list(studio.glob("*_grpc.py"))  # event files declare no gRPC service
    assert {"worker_service_pb2_grpc.py", "action_service_pb2_grpc.pyi"} <= worker
    for service in SERVICES:  # the only __init__.py files created are the proto packages'
        inits = sorted(p.relative_to(tree).as_posix() for p in (tree / service).rglob("*.py"))
        package = f"ryax_{service.replace('-', '_')}"
        assert [i for i in inits if i.endswith("__init__.py")] == [
            f"{service}/{package}/infrastructure/proto/__init__.py"
        ]


def test_generated_packages_import_together(tree: Path) -> None:
    script = f"""
import importlib, pkgutil, sys
services = {SERVICES!r}
sys.path[:0] = [{str(tree)!r} + "/" + service for service in services]
for service in services:
    package = importlib.import_module(f"ryax_{{service.replace('-', '_')}}.infrastructure.proto")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{{package.__name__}}.{{module.name}}")
from ryax_runner.infrastructure.proto import worker_service_pb2 as runner_side
from ryax_worker.infrastructure.proto import worker_service_pb2 as worker_side
from ryax_worker.infrastructure.proto import worker_service_pb2_grpc
sent = worker_side.WorkerMessage(
    report_seq=7,
    new_run=worker_side.NewRun(step_id="s", outputs={{"f": worker_side.Value(
        file=worker_side.FileRef(key="k", size=5 * 2**40))}}),
)
received = runner_side.WorkerMessage.FromString(sent.SerializeToString())
assert received.new_run.outputs["f"].file.size == 5 * 2**40
assert worker_service_pb2_grpc.WorkerServiceStub
print("ok")
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"


def test_cli_check_exit_code_uses_the_default_root(tree: Path) -> None:
    script = tree / "proto-registry/registry.py"
    (tree / "runner/ryax_runner/infrastructure/proto/__init__.py").unlink()

    completed = subprocess.run(
        [sys.executable, str(script), "check"], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 1
    assert "missing: runner/ryax_runner/infrastructure/proto/__init__.py" in completed.stderr
    assert "make protos" in completed.stderr


@pytest.mark.parametrize(
    ("original", "replacement", "message"),
    [
        (
            'import "google/protobuf/timestamp.proto";',
            'import "google/protobuf/timestamp.proto";\nimport "runner/runner_events.proto";',
            "imports runner/runner_events.proto; only google/protobuf/* may be imported",
        ),
        ("package ryax.studio.v1;", "package ryax.studio;", "package must be ryax.studio.v1"),
        ("message Trigger {", "message Trigger {\n  Missing bad = 99;", "Missing"),
    ],
)
def test_an_invalid_proto_is_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    original: str,
    replacement: str,
    message: str,
) -> None:
    root = copy_registry(tmp_path)
    proto = root / "proto-registry/studio/studio_events.proto"
    text = proto.read_text(encoding="utf-8")
    assert original in text
    proto.write_text(text.replace(original, replacement, 1))

    code = registry.main(["generate", "--root", str(root)])

    assert code == 2
    assert message in capsys.readouterr().err
    assert not (root / "studio").exists()


def test_an_unlisted_proto_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_registry(tmp_path)
    (root / "proto-registry/runner/extra.proto").write_text('syntax = "proto3";\n')

    assert registry.main(["check", "--root", str(root)]) == 2
    assert "proto-registry/runner/extra.proto: not listed in manifest.yaml" in (
        capsys.readouterr().err
    )


def test_colliding_names_in_one_service_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_registry(tmp_path)
    proto = root / "proto-registry/runner/runner_events.proto"
    proto.write_text(proto.read_text(encoding="utf-8") + "\nmessage Value {}\n")

    assert registry.main(["generate", "--root", str(root)]) == 2
    assert "conflicts with another file copied into runner" in capsys.readouterr().err
