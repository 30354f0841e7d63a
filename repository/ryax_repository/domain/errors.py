"""Domain errors. Each carries a stable `code`; the API maps the class to an HTTP status."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    """Input that breaks a domain rule (bad URL, unknown branch, refused address...)."""

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
    """An upload, a repository or an action folder exceeds a configured size limit."""

    code = "too_large"


class UnsafeArchive(DomainError):
    """An uploaded archive holds entries that could escape its folder; nothing was extracted."""

    code = "unsafe_archive"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the archive was refused: " + "; ".join(problems))
        self.problems = problems


class ScanFailed(DomainError):
    """The source could not be fetched (git error, timeout, unreadable folder)."""

    code = "scan_failed"


class CredentialsUnreadable(DomainError):
    """Stored credentials cannot be decrypted (RYAX_SECRET_KEY changed): enter them again."""

    code = "credentials_unreadable"
