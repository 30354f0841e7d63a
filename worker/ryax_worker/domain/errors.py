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


class DeploymentFailed(DomainError):
    """A step could not be deployed: the reason is reported to the runner as is."""

    code = "deployment_failed"


class ActionUnavailable(DomainError):
    """The step has no running action instance (never deployed, undeployed, or it kept dying)."""

    code = "action_unavailable"


class ActionCrashed(DomainError):
    """The action's process died while it was running an execution or a trigger."""

    code = "action_crashed"


class FileTransferFailed(DomainError):
    """An input could not be fetched or an output could not be stored."""

    code = "file_transfer_failed"


class TransferNotGranted(FileTransferFailed):
    """The runner did not grant the transfer (presigned mode): it refused the object
    (PERMISSION_DENIED: it does not, or no longer, expect it from this site, e.g. it restarted)
    or could not be reached to ask. About the runner's state, not the file: a held file whose
    publication failed so is not lost (the runner asks again when it needs it)."""

    code = "transfer_not_granted"


class OutputRefused(DomainError):
    """A file or directory output the worker will not publish: it does not resolve inside the
    execution's work directory (a platform file, a link leading out of it...)."""

    code = "output_refused"

    def __init__(self, output: str, path: str, why: str = "") -> None:
        super().__init__(
            f"output '{output}': {path} is outside the execution's work directory"
            + (f" ({why})" if why else "")
        )
        self.output = output
