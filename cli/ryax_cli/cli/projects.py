"""`ryax project list|use|show|create|add-member|remove-member`."""

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
