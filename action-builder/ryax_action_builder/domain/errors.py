"""Domain errors. Each carries a stable `code` and a user-facing `detail`."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BuildRefused(DomainError):
    """The action cannot be built here, for a reason the user can fix or must know (unsafe
    archive, unsupported runtime, binary dependencies, bad requirements...). The build answers
    ActionBuildFailed with `detail` as its reason."""

    code = "build_refused"


class UnsafeArchive(BuildRefused):
    code = "unsafe_archive"
