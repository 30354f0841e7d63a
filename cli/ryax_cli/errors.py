"""Exceptions raised by the SDK. Every one is a `RyaxError` with a one-line `message`; API errors
also carry the HTTP status and the server's `{"error", "detail"}` body."""

from __future__ import annotations

from typing import Any


class RyaxError(Exception):
    """Base of every SDK error; `str(error)` is a one-line human message."""

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ServerUnreachable(RyaxError):
    """No HTTP answer at all: connection refused, DNS failure, timeout, TLS failure."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the Ryax server at {url}: {reason}", detail=reason)
        self.url = url


class ApiError(RyaxError):
    """The server answered with an error status."""

    status: int

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any,
        *,
        method: str = "",
        path: str = "",
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.method = method
        self.path = path
        #: the whole JSON error document (it may carry more than error and detail)
        self.body: dict[str, Any] = body or {}
        #: The file the request carried (a workflow document), named before each problem's line.
        self.source: str | None = None
        super().__init__(self._message(error, detail), detail=detail)

    @property
    def problems(self) -> list[str]:
        """Each problem the server listed (an invalid workflow: step, input, line), as text."""
        found = self.body.get("problems")
        if not isinstance(found, list):
            return []
        return [problem_text(p, source=self.source) for p in found]

    def _message(self, error: str, detail: Any) -> str:
        text = detail_text(detail)
        return text if text else f"HTTP {self.status} {error}".strip()


class InvalidRequest(ApiError):
    """4xx other than the ones below: validation errors; the detail names the field."""


class AuthenticationError(ApiError):
    """401: missing, wrong, expired or revoked credentials."""

    def _message(self, error: str, detail: Any) -> str:
        text = detail_text(detail) or "invalid credentials"
        return f"authentication failed: {text}"


class PermissionDenied(ApiError):
    """403: authenticated, but not allowed (not a member of the project, role too low...)."""

    def _message(self, error: str, detail: Any) -> str:
        text = detail_text(detail) or "forbidden"
        return f"permission denied: {text}"


class NotFoundError(ApiError):
    """404: the project, workflow, run... does not exist (or is not visible to the caller)."""

    def _message(self, error: str, detail: Any) -> str:
        text = detail_text(detail) or f"{self.method} {self.path}".strip()
        return f"not found: {text}"


class ConflictError(ApiError):
    """409: already exists, already deployed, state does not allow it."""


class DeploymentOutdated(RyaxError):
    """Deploy of a workflow that is already deployed, and was changed after that deployment
    was asked for: the deployment runs the workflow as it was (deploy again with `redeploy`)."""


class ServerError(ApiError):
    """5xx: a bug or an outage on the server side; the service logs say more."""

    def _message(self, error: str, detail: Any) -> str:
        text = detail_text(detail) or error
        return f"server error (HTTP {self.status}): {text}"


class WaitTimeout(RyaxError):
    """A wait (build, deployment, run) did not reach a final state in time."""


class OperationFailed(RyaxError):
    """A build, deployment or run ended in failure; `log` has what the server reported."""

    def __init__(self, message: str, *, detail: Any = None, log: str = "") -> None:
        super().__init__(message, detail=detail)
        self.log = log


class BuildFailed(OperationFailed):
    pass


class DeploymentFailed(OperationFailed):
    pass


class RunFailed(OperationFailed):
    pass


class InvalidWorkflowFile(RyaxError):
    """A workflow file that is not YAML (or not a mapping), found before calling the server."""


def detail_text(detail: Any) -> str:
    """The server's detail as one line (it may be a string, a list of errors or a mapping)."""
    if detail is None:
        return ""
    if isinstance(detail, str):
        return " ".join(detail.split())
    if isinstance(detail, list):
        return "; ".join(detail_text(item) for item in detail if item is not None)
    if isinstance(detail, dict):
        if "message" in detail and len(detail) <= 3:
            where = detail.get("location") or detail.get("field") or detail.get("step") or ""
            msg = detail_text(detail["message"])
            return f"{where}: {msg}" if where else msg
        return "; ".join(f"{k}: {detail_text(v)}" for k, v in detail.items())
    return str(detail)


_BY_STATUS: dict[int, type[ApiError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFoundError,
    409: ConflictError,
}


def problem_text(problem: Any, *, source: str | None = None) -> str:
    """`line 12, spec.functions[3] (shout).inputs_values.text: message` and the like (with the
    file: `demo.yaml, line 12, ...`; a file inside a zip: `w.zip: workflow.yaml, line 12, ...`)."""
    if not isinstance(problem, dict):
        return str(problem)
    where = []
    if problem.get("file"):
        where.append(f"{source}: {problem['file']}" if source else str(problem["file"]))
        source = None
    if problem.get("line"):
        where.append(f"{source}, line {problem['line']}" if source else f"line {problem['line']}")
    if problem.get("path"):
        where.append(str(problem["path"]))
    elif problem.get("step_id") or problem.get("step"):
        step = problem.get("step_id") or problem.get("step")
        where.append(
            f"step {step}" + (f", input {problem['input']}" if problem.get("input") else "")
        )
    message = detail_text(problem.get("message") or problem.get("detail") or "")
    return f"{', '.join(where)}: {message}" if where else message


def error_for_status(
    status: int,
    error: str,
    detail: Any,
    *,
    method: str = "",
    path: str = "",
    body: dict[str, Any] | None = None,
) -> ApiError:
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else InvalidRequest
    return cls(status, error, detail, method=method, path=path, body=body)
