"""`ryax login`, `logout`, `whoami`, `ryax user ...`, `ryax config show`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .context import Output, OutputOpt, UsageProblem, command, info, state
from .output import emit, fields, table, when

users = typer.Typer(no_args_is_help=True)
config_app = typer.Typer(no_args_is_help=True)


def register(app: typer.Typer) -> None:
    command(app, "login")(login)
    command(app, "logout")(logout)
    command(app, "whoami")(whoami)


def _read_password(password: str | None, from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageProblem("--password-stdin: nothing was read from the standard input")
        return value
    if password:
        return password
    if os.environ.get("RYAX_PASSWORD"):
        return os.environ["RYAX_PASSWORD"]
    if not sys.stdin.isatty():
        raise UsageProblem("no password: use --password-stdin, RYAX_PASSWORD or a terminal")
    return str(typer.prompt(prompt, hide_input=True))


def login(
    username: Annotated[
        str | None, typer.Argument(help="User name (prompted when missing).", show_default=False)
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Password (visible to other local users in the process list: prefer "
            "--password-stdin, RYAX_PASSWORD or the prompt).",
            show_default=False,
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the standard input.")
    ] = False,
) -> None:
    """Log in and save the URL and token in the config file (mode 600)."""
    st = state()
    settings = st.load()
    if not username:
        if not sys.stdin.isatty():
            raise UsageProblem("missing USERNAME")
        username = str(typer.prompt("User"))
    secret = _read_password(password, password_stdin, "Password")
    client = st.client(authenticated=False)
    session = client.login(username, secret)
    changes: dict[str, str | None] = {"url": settings.url, "token": session.access_token}
    project = settings.file.get("project")
    if not project:
        projects = client.projects.list()
        if len(projects) == 1:
            changes["project"] = project = projects[0].name
    elif settings.file.get("url") not in (None, settings.url):
        changes["project"] = project = None  # a project of another server means nothing here
    settings.save(**changes)
    expires = f", token valid until {when(session.expires_at)}" if session.expires_at else ""
    current = f"; current project: {project}" if project else ""
    info(f"Logged in to {settings.url} as {session.user.username}{expires}{current}")


def logout() -> None:
    """Revoke the token and remove it from the config file."""
    st = state()
    settings = st.load()
    if settings.token:
        client = st.client()
        try:
            client.logout()
        finally:
            if settings.file.get("token"):
                settings.save(token=None)
    elif settings.file.get("token"):
        settings.save(token=None)
    info(f"Logged out of {settings.url}")


def whoami(output: OutputOpt = Output.table) -> None:
    """The logged-in user and their projects."""
    me = state().client().me()

    def render() -> None:
        fields(
            [
                ("user", me.username),
                ("id", me.id),
                ("admin", "yes" if me.is_admin else "no"),
                ("projects", ", ".join(f"{p.name} ({p.role})" for p in me.projects) or "-"),
            ]
        )

    emit(output, me.raw, render)


@command(users, "list")
def list_users(output: OutputOpt = Output.table) -> None:
    """List users (admins only)."""
    found = state().client().users.list()
    emit(
        output,
        [u.raw for u in found],
        lambda: table(
            ["USERNAME", "ID", "ADMIN", "CREATED"],
            [(u.username, u.id, "yes" if u.is_admin else "", u.created_at) for u in found],
            empty="no users",
        ),
    )


@command(users, "create")
def create_user(
    username: Annotated[str, typer.Argument(help="New user's name.")],
    password: Annotated[
        str | None, typer.Option("--password", help="Their password.", show_default=False)
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the standard input.")
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make them an administrator.")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create a user (admins only)."""
    secret = _read_password(password, password_stdin, f"Password for {username}")
    user = state().client().users.create(username, secret, is_admin=admin)
    emit(output, user.raw, lambda: info(f"Created user {user.username} ({user.id})"))


@command(config_app, "show")
def show_config(output: OutputOpt = Output.table) -> None:
    """The effective URL, token (masked) and project, and where each comes from."""
    settings = state().load()
    token = settings.token
    masked = f"{token[:6]}…{token[-4:]}" if token and len(token) > 16 else ("set" if token else "")
    data = {
        "url": settings.url,
        "token": masked or None,
        "project": settings.project,
        "config_file": str(settings.path),
        "sources": settings.sources,
    }
    emit(
        output,
        data,
        lambda: fields(
            [
                ("url", f"{settings.url}  [{settings.sources.get('url', '')}]"),
                ("token", f"{masked or '-'}  [{settings.sources.get('token', 'none')}]"),
                (
                    "project",
                    f"{settings.project or '-'}  [{settings.sources.get('project', 'none')}]",
                ),
                ("config file", str(settings.path)),
            ]
        ),
    )
