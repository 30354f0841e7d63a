"""Domain errors. Each carries a stable `code`; the API maps the class to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    """Input that breaks a domain rule (too short password, bad name...)."""

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


class NotDeployed(Conflict):
    """The workflow exists but is not deployed (any more, or not yet)."""

    code = "not_deployed"


class Unavailable(DomainError):
    """The service is shutting down or cannot take the request now."""

    code = "unavailable"


class TooLarge(DomainError):
    code = "too_large"
