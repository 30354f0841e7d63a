"""Domain errors. Each carries a stable `code` and a user-facing `detail`."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidDeclaration(DomainError):
    """An input or output declaration the wrapper cannot honour (unknown type, bad default)."""

    code = "invalid_declaration"


class InvalidInputValue(DomainError):
    """A value given for an input does not match its declaration (the detail names the input)."""

    code = "invalid_input"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"input '{name}': {detail}")
        self.name = name


class InvalidOutputValue(DomainError):
    """What the action returned does not match its declared outputs (the detail names them)."""

    code = "invalid_output"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"output '{name}': {detail}" if name else detail)
        self.name = name


class InvalidProgress(DomainError):
    code = "invalid_progress"
