"""The `ryax` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from . import actions, auth, projects, repositories, runs, sites, workflows
from .context import EXIT_CODES_HELP, State, set_state

app = typer.Typer(
    name="ryax",
    help=(
        "Ryax from the command line: repositories, actions, workflows, runs and sites.\n\n"
        "Configuration: --url/--token/--project options, else RYAX_URL, RYAX_TOKEN, "
        "RYAX_PROJECT, else the config file (RYAX_CONFIG, default ~/.config/ryax/config.toml, "
        "written by `ryax login` and `ryax project use`).\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ryax {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Gateway URL (RYAX_URL; default http://127.0.0.1:8080).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Access or machine token (RYAX_TOKEN).", show_default=False),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", "-p", help="Project for this command (RYAX_PROJECT).", show_default=False
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Config file (RYAX_CONFIG).", show_default=False),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the server's detail and tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    set_state(State(url=url, token=token, project=project, config_file=config_file, debug=debug))


auth.register(app)
app.add_typer(auth.users, name="user", help="Users (admins).")
app.add_typer(auth.config_app, name="config", help="Show the effective configuration.")
app.add_typer(projects.app, name="project", help="Projects: list, select, create, members.")
app.add_typer(repositories.app, name="repository", help="Git repositories of actions.")
app.add_typer(actions.app, name="action", help="Actions: list, show, build.")
app.add_typer(workflows.app, name="workflow", help="Workflows: import, export, deploy...")
app.add_typer(runs.app, name="run", help="Runs: trigger, list, show, logs, cancel.")
app.add_typer(sites.app, name="site", help="Sites where actions run.")


def main() -> None:
    app(prog_name="ryax")
