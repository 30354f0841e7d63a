"""What every command shares: settings, the SDK client, error reporting and exit codes."""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from .. import config
from ..errors import (
    ApiError,
    AuthenticationError,
    PermissionDenied,
    RyaxError,
    ServerUnreachable,
)
from ..sdk import Client

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    """Documented in `ryax --help`."""

    OK = 0
    ERROR = 1  # the server refused (validation, not found, conflict...) or an operation failed
    USAGE = 2  # bad options or arguments, no project selected
    UNREACHABLE = 3  # no answer from the server (or its gateway)
    AUTH = 4  # not logged in, wrong credentials, expired token, permission denied


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 error reported by the server or a failed build/deployment/run; "
    "2 usage error (bad option, no project selected); 3 server unreachable; "
    "4 authentication or permission error."
)


class Output(StrEnum):
    table = "table"
    json = "json"


class NotLoggedIn(RyaxError):
    pass


class UsageProblem(RyaxError):
    pass


ProjectOpt = Annotated[
    str | None,
    typer.Option(
        "--project",
        "-p",
        help="Project (id or name). Default: RYAX_PROJECT, else the one `ryax project use` set.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Output,
    typer.Option("--output", "-o", help="Output format.", case_sensitive=False),
]


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    project: str | None = None
    config_file: Path | None = None
    debug: bool = False
    command: str = ""
    settings: config.Settings | None = None
    _client: Client | None = field(default=None, repr=False)

    def load(self) -> config.Settings:
        if self.settings is None:
            self.settings = config.load(
                url=self.url, token=self.token, project=self.project, config=self.config_file
            )
        return self.settings

    def client(self, *, authenticated: bool = True) -> Client:
        settings = self.load()
        if authenticated and not settings.token:
            where = f" to {settings.url}"
            if settings.ignored_token_url:
                where += f" (the saved token is for {settings.ignored_token_url})"
            raise NotLoggedIn(f"not logged in{where}: run `ryax login` or set RYAX_TOKEN")
        if self._client is None:
            self._client = Client(settings.url, settings.token, poll_interval=_poll_interval())
        return self._client

    def project_of(self, option: str | None) -> str:
        project = option or self.load().project
        if not project:
            raise UsageProblem(
                "no project selected: pass --project NAME, set RYAX_PROJECT, "
                "or run `ryax project use NAME`"
            )
        return project

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _poll_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("RYAX_POLL_INTERVAL", "1")))
    except ValueError:
        return 1.0


_STATE: ContextVar[State | None] = ContextVar("ryax_cli_state", default=None)


def set_state(value: State) -> None:
    """Called by the main callback, once per invocation, before the command runs."""
    _STATE.set(value)


def state() -> State:
    current = _STATE.get()
    if current is None:
        current = State()
        _STATE.set(current)
    return current


def stdout() -> Console:
    return Console(soft_wrap=False, highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    stderr().print(message, markup=False)


def exit_code_of(exc: RyaxError) -> ExitCode:
    if isinstance(exc, ServerUnreachable):
        return ExitCode.UNREACHABLE
    if isinstance(exc, AuthenticationError | PermissionDenied | NotLoggedIn):
        return ExitCode.AUTH
    if isinstance(exc, UsageProblem):
        return ExitCode.USAGE
    return ExitCode.ERROR


def hint_of(exc: RyaxError) -> str:
    if isinstance(exc, ServerUnreachable):
        return " (set the URL with --url or RYAX_URL)"
    if isinstance(exc, AuthenticationError) and state().command != "login":
        return " (run `ryax login`)"
    return ""


def report(exc: BaseException, debug: bool) -> None:
    console = stderr()
    if isinstance(exc, RyaxError):
        message = " ".join(str(exc).split()) + hint_of(exc)
    else:
        message = f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"
    console.print(f"ryax: error: {message}", markup=False, highlight=False)
    if isinstance(exc, ApiError):
        for problem in exc.problems:
            console.print(f"  - {problem}", markup=False, highlight=False)
    if not debug:
        return
    if isinstance(exc, RyaxError) and exc.detail is not None:
        detail = exc.detail
        text = detail if isinstance(detail, str) else json.dumps(detail, indent=2, default=str)
        console.print(f"detail: {text}", markup=False)
        if getattr(exc, "log", ""):
            console.print(f"log:\n{exc.log}", markup=False)  # type: ignore[attr-defined]
    console.print("".join(traceback.format_exception(exc)), markup=False)


@contextmanager
def handled() -> Iterator[None]:
    """Turn SDK errors into one line on stderr and the documented exit code."""
    st = state()
    try:
        yield
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except RyaxError as exc:
        report(exc, st.debug)
        raise typer.Exit(int(exit_code_of(exc))) from None
    except KeyboardInterrupt:
        stderr().print("ryax: interrupted", markup=False)
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # `ryax run logs | head`: the reader left; stop quietly (and keep Python from
        # complaining when it flushes stdout at exit).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None
    except Exception as exc:  # noqa: BLE001 - a bug must still end with one line and exit 1
        report(exc, st.debug)
        raise typer.Exit(int(ExitCode.ERROR)) from None
    finally:
        st.close()


def command(
    group: typer.Typer, name: str | None = None, **kwargs: Any
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`group.command(...)` with the error handling of `handled()` around the body."""

    def register(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kw: P.kwargs) -> R:
            state().command = name or fn.__name__
            with handled():
                return fn(*args, **kw)

        group.command(name, **kwargs)(wrapper)
        return fn

    return register
