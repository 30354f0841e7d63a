"""`ryax project list|use|show|create|add-member|remove-member|api-key create|list|revoke`."""

from __future__ import annotations

from typing import Annotated

import typer

from .context import Output, OutputOpt, ProjectOpt, command, info, state
from .output import emit, fields, table

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
        table(["USER ID", "ROLE"], [(m.user_id, m.role) for m in found.members], empty="")

    emit(output, found.raw, render)


@command(app, "create")
def create_project(
    name: Annotated[str, typer.Argument(help="Project name.")],
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="Owner's user id (default: you).", show_default=False),
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
