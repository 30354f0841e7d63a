"""The action wrapper copied into every artefact: found with importlib (ryax-action-wrapper is a
dependency of the builder), identified by its version and a digest of its source."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "ryax_action_wrapper"
_SOURCE_SUFFIXES = (".py", ".pyi", ".proto", ".typed")


@dataclass(frozen=True, kw_only=True)
class WrapperSource:
    package_dir: Path
    version: str
    #: Pinned runtime requirements of the wrapper (grpcio, protobuf...).
    runtime_requirements: tuple[str, ...]
    digest: str

    @property
    def fingerprint(self) -> str:
        """Changes with the wrapper's code, so artefacts are rebuilt with a changed wrapper."""
        return f"{self.version}+{self.digest[:12]}"

    def files(self) -> list[Path]:
        return sorted(
            p
            for p in self.package_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix in _SOURCE_SUFFIXES
        )

    @classmethod
    def locate(cls) -> WrapperSource:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{PACKAGE} is not installed next to the builder")
        package_dir = Path(next(iter(spec.submodule_search_locations)))
        module = importlib.import_module(PACKAGE)
        source = cls(
            package_dir=package_dir,
            version=str(module.__version__),
            runtime_requirements=tuple(module.RUNTIME_REQUIREMENTS),
            digest="",
        )
        digest = hashlib.sha256()
        for path in source.files():
            digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return cls(
            package_dir=package_dir,
            version=source.version,
            runtime_requirements=source.runtime_requirements,
            digest=digest.hexdigest(),
        )
