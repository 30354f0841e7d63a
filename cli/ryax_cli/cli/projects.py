"""`ryax project list|use|show|create|add-member|remove-member|api-key create|list|revoke|
variable set|list|delete`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import RyaxError
from .context import Output, OutputOpt, ProjectOpt, command, info, state
from .output import emit, fields, table
from .workflows import zip_folder

app = typer.Typer(no_args_is_help=True)


@command(app, "list")
def list_projects(output: OutputOpt = Output.table) -> None:
    """Projects you belong to (all of them for admins); * marks the current one."""
    st = state()
    found = st.client().projects.list()
    current = st.load().project

    def render() -> None:
        table(
            ["", "NAME", "ID", "ROLE", "CREATED"],
            [
                ("*" if current in (p.name, p.id) else "", p.name, p.id, p.role, p.created_at)
                for p in found
            ],
            empty="no projects: an admin creates one with `ryax project create NAME`",
        )

    emit(output, [p.raw for p in found], render)


@command(app, "use")
def use_project(project: Annotated[str, typer.Argument(help="Project id or name.")]) -> None:
    """Make PROJECT the current project (saved in the config file)."""
    st = state()
    found = st.client().projects.get(project)
    settings = st.load()
    settings.save(project=found.name, url=settings.file.get("url") or settings.url)
    info(f"Current project: {found.name}")


@command(app, "show")
def show_project(
    project: Annotated[
        str | None, typer.Argument(help="Project id or name (default: current).")
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """A project with its members."""
    st = state()
    found = st.client().projects.get(st.project_of(project))

    def render() -> None:
        fields(
            [
                ("name", found.name),
                ("id", found.id),
                ("your role", found.role or "-"),
                ("created", found.created_at),
            ]
        )
        table(
            ["USER", "USER ID", "ROLE"],
            [(m.username or "(deleted)", m.user_id, m.role) for m in found.members],
            empty="",
        )

    emit(output, found.raw, render)


@command(app, "create")
def create_project(
    name: Annotated[str, typer.Argument(help="Project name.")],
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner", help="Owner's user id or username (default: you).", show_default=False
        ),
    ] = None,
    use: Annotated[bool, typer.Option("--use", help="Make it the current project.")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Create a project (admins only)."""
    st = state()
    created = st.client().projects.create(name, owner=owner)
    if use:
        settings = st.load()
        settings.save(project=created.name, url=settings.file.get("url") or settings.url)
    emit(output, created.raw, lambda: info(f"Created project {created.name} ({created.id})"))


@command(app, "add-member")
def add_member(
    user: Annotated[str, typer.Argument(help="User id or name.")],
    role: Annotated[str, typer.Option("--role", help="owner, developer or viewer.")] = "developer",
    project: ProjectOpt = None,
) -> None:
    """Add a member to the project, or change their role."""
    st = state()
    name = st.project_of(project)
    st.client().projects.set_member(name, user, role)
    info(f"{user} is {role} of {name}")


@command(app, "remove-member")
def remove_member(
    user: Annotated[str, typer.Argument(help="User id or name.")],
    project: ProjectOpt = None,
) -> None:
    """Remove a member from the project."""
    st = state()
    name = st.project_of(project)
    st.client().projects.remove_member(name, user)
    info(f"{user} removed from {name}")


api_keys = typer.Typer(no_args_is_help=True)
app.add_typer(
    api_keys,
    name="api-key",
    help="Project API keys: they call the project's user API (/user-api/...), nothing else.",
)


@command(api_keys, "create")
def create_api_key(
    name: Annotated[str, typer.Argument(help="A name for the key (who or what uses it).")],
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a project API key (owners, admins). The key is shown once: store it now."""
    st = state()
    proj = st.project_of(project)
    created = st.client().api_keys.create(proj, name)

    def render() -> None:
        info(f"Created API key {created.name} ({created.id}) of project {proj}.")
        info("The key is shown once, store it now; call the user API with")
        info(f"  Authorization: Bearer <key>   on {st.load().url}/user-api/{proj}/...")
        typer.echo(created.key or "")

    emit(output, created.raw, render)


@command(api_keys, "list")
def list_api_keys(project: ProjectOpt = None, output: OutputOpt = Output.table) -> None:
    """The project's API keys (revoked ones too), without their value."""
    st = state()
    found = st.client().api_keys.list(st.project_of(project))

    def render() -> None:
        table(
            ["NAME", "ID", "CREATED", "LAST USED", "REVOKED"],
            [
                (k.name, k.id, k.created_at, k.last_used_at or "never", k.revoked_at or "")
                for k in found
            ],
            empty="no API keys: an owner creates one with `ryax project api-key create NAME`",
        )

    emit(output, [k.raw for k in found], render)


@command(api_keys, "revoke")
def revoke_api_key(
    key: Annotated[str, typer.Argument(help="The key's id, or its name.")],
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Revoke a project API key (owners, admins): refused from then on (within 10 s)."""
    st = state()
    revoked = st.client().api_keys.revoke(st.project_of(project), key)
    emit(output, revoked.raw, lambda: info(f"Revoked API key {revoked.name} ({revoked.id})"))


variables = typer.Typer(no_args_is_help=True)
app.add_typer(
    variables,
    name="variable",
    help="Project variables: values, secrets and files that steps refer to by name "
    "({project_variable_value: NAME} in a workflow).",
)


@command(variables, "set")
def set_variable(
    name: Annotated[str, typer.Argument(help="The variable's name.")],
    value: Annotated[
        str | None,
        typer.Argument(
            help="The value (a string; with --json, any JSON value).", show_default=False
        ),
    ] = None,
    secret: Annotated[
        bool,
        typer.Option(
            "--secret",
            help="A secret: stored encrypted, never shown (read from the standard input when "
            "no VALUE is given, so it stays out of the shell's history).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="VALUE is JSON (a number...).")] = False,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="A file variable: this file, or a folder (a directory variable).",
            show_default=False,
        ),
    ] = None,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create or replace a project variable."""
    st = state()
    proj = st.project_of(project)
    client = st.client()
    if sum((file is not None, secret, as_json)) > 1:
        raise RyaxError("give one of --secret, --json, --file")
    if file is not None:
        if value is not None:
            raise RyaxError("a file variable takes --file only, not a VALUE")
        if file.is_dir():
            data, filename = zip_folder(file), f"{file.resolve().name}.zip"
        else:
            try:
                data, filename = file.read_bytes(), file.name
            except OSError as exc:
                raise RyaxError(f"cannot read {file}: {exc.strerror}") from exc
        found = client.variables.set_file(proj, name, data, filename, directory=file.is_dir())
    elif secret:
        text = value if value is not None else sys.stdin.read().rstrip("\n")
        found = client.variables.set_secret(proj, name, text)
    else:
        if value is None:
            raise RyaxError("give a VALUE (or --secret, or --file)")
        parsed: Any = value
        if as_json:
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise RyaxError(f"VALUE is not JSON: {exc}") from exc
        found = client.variables.set_value(proj, name, parsed)
    emit(output, found, lambda: info(f"Set {found['kind']} variable {name} of project {proj}"))


def _shown(v: dict[str, Any]) -> str:
    if v.get("kind") == "secret":
        return "(secret)"
    if v.get("file"):
        f = v["file"]
        what = "directory" if f.get("directory") else "file"
        return f"{what} {f['name']} ({f['size']} bytes)"
    return json.dumps(v.get("value"), ensure_ascii=False)


@command(variables, "list")
def list_variables(project: ProjectOpt = None, output: OutputOpt = Output.table) -> None:
    """The project's variables (a secret's value is never shown)."""
    st = state()
    found = st.client().variables.list(st.project_of(project))
    emit(
        output,
        found,
        lambda: table(
            ["NAME", "KIND", "VALUE", "UPDATED"],
            [(v["name"], v["kind"], _shown(v), v["updated_at"]) for v in found],
            empty="no variables: `ryax project variable set NAME VALUE` adds one",
        ),
    )


@command(variables, "delete")
def delete_variable(
    name: Annotated[str, typer.Argument(help="The variable's name.")],
    project: ProjectOpt = None,
) -> None:
    """Delete a project variable (steps naming it then show an error)."""
    st = state()
    proj = st.project_of(project)
    st.client().variables.delete(proj, name)
    info(f"Deleted variable {name} of project {proj}")
