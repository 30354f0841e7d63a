"""Domain errors. Each carries a stable `code`; the API maps the class to an HTTP status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .problems import Problem


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    """Input that breaks a domain rule (bad name, bad value...)."""

    code = "invalid_input"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class AlreadyExists(DomainError):
    code = "already_exists"


class AuthenticationFailed(DomainError):
    """Wrong credentials, or an expired, revoked or garbled token: always the same answer."""

    code = "unauthenticated"

    def __init__(self, detail: str = "invalid credentials") -> None:
        super().__init__(detail)


class Forbidden(DomainError):
    code = "forbidden"


class Conflict(DomainError):
    code = "conflict"


class TooLarge(DomainError):
    """Over a size limit (a workflow's definition, a value): 413, naming the limit."""

    code = "too_large"


class Unavailable(DomainError):
    """A store the studio needs (the filestore) cannot be used right now: 503."""

    code = "unavailable"


class InvalidWorkflow(DomainError):
    """A workflow that cannot be deployed (or imported): every problem at once."""

    code = "invalid_workflow"

    def __init__(
        self, problems: Sequence[Problem], what: str = "the workflow is not valid"
    ) -> None:
        super().__init__(f"{what}: {len(problems)} problem(s)")
        self.problems = tuple(problems)


class InvalidDocument(DomainError):
    """A document that cannot be read at all (not YAML, aliases, too big, too many steps)."""

    code = "invalid_document"

    def __init__(self, problems: Sequence[Problem], code: str = "invalid_document") -> None:
        super().__init__(
            "; ".join((f"line {p.line}: " if p.line else "") + p.message for p in problems[:5])
        )
        self.problems = tuple(problems)
        self.code = code
