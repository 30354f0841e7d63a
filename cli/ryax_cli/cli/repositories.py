"""`ryax repository add|list|scan|upload|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..models import ScanResult
from .context import ExitCode, Output, OutputOpt, ProjectOpt, command, info, state
from .output import emit, state_text, table

app = typer.Typer(no_args_is_help=True)


def repository_url(url: str) -> str:
    """A local folder is sent as its absolute path (the server must allow local repositories)."""
    if "://" in url or url.startswith("git@"):
        return url
    path = Path(url).expanduser()
    return str(path.resolve()) if path.exists() else url


def default_name(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail.removesuffix(".git") or "actions"


@command(app, "add")
def add(
    url: Annotated[str, typer.Argument(help="Git URL, or a local folder where allowed.")],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Name (default: from the URL).", show_default=False),
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", "-b", help="Branch or tag.", show_default=False)
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", help="User for a private repository.", show_default=False),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Password or access token for a private repository.",
            show_default=False,
        ),
    ] = None,
    scan: Annotated[bool, typer.Option("--scan", help="Scan it right away.")] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Register a git repository of actions in the project."""
    st = state()
    proj = st.project_of(project)
    client = st.client()
    target = repository_url(url)
    extra = {k: v for k, v in (("username", username), ("password", password)) if v}
    repo = client.repositories.add(
        proj, name or default_name(target), target, branch=branch, **extra
    )
    info(f"Added repository {repo.name} ({repo.id}) -> {repo.url or target}")
    if scan:
        result = client.repositories.scan(proj, repo.id)
        _show_scan(result, output)
    elif output is Output.json:
        emit(output, repo.raw, lambda: None)


@command(app, "list")
def list_repositories(project: ProjectOpt = None, output: OutputOpt = Output.table) -> None:
    """Repositories of the project."""
    st = state()
    found = st.client().repositories.list(st.project_of(project))
    emit(
        output,
        [r.raw for r in found],
        lambda: table(
            ["NAME", "ID", "URL", "BRANCH", "LAST COMMIT", "LAST SCAN"],
            [
                (
                    r.name,
                    r.id,
                    r.url,
                    r.branch or r.last_scan_branch,
                    (r.last_commit or "")[:12],
                    r.last_scan_at,
                )
                for r in found
            ],
            empty="no repositories: add one with `ryax repository add URL`",
        ),
    )


@command(app, "scan")
def scan(
    repository: Annotated[str, typer.Argument(help="Repository id or name.")],
    build: Annotated[
        bool, typer.Option("--build", help="Also request a build of every new valid action.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace sources whose content changed under one version."),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a metadata file is invalid.")
    ] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Fetch the repository and find its actions (every invalid file is reported)."""
    st = state()
    result = st.client().repositories.scan(
        st.project_of(project), repository, force=force, build=build
    )
    _show_scan(result, output)
    if strict and result.problems:
        raise typer.Exit(int(ExitCode.ERROR))


@command(app, "upload")
def upload(
    source: Annotated[
        Path, typer.Argument(help="An action folder, or a .tar.gz / .zip archive.", exists=True)
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Name of the upload.", show_default=False)
    ] = None,
    build: Annotated[
        bool, typer.Option("--build", help="Also request a build of every new valid action.")
    ] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Upload actions without git (a folder is packed here) and scan them."""
    st = state()
    result = st.client().repositories.upload(st.project_of(project), source, name=name, build=build)
    _show_scan(result, output)


@command(app, "delete")
def delete(
    repository: Annotated[str, typer.Argument(help="Repository id or name.")],
    project: ProjectOpt = None,
) -> None:
    """Remove a repository from the project."""
    st = state()
    st.client().repositories.delete(st.project_of(project), repository)
    info(f"Deleted repository {repository}")


def _show_scan(result: ScanResult, output: Output) -> None:
    def render() -> None:
        table(
            ["PATH", "ACTION", "VERSION", "KIND", "FOUND", "STATE"],
            [
                (a.path, a.action_id, a.version, a.kind, a.status, state_text(a.build_state))
                for a in result.actions
            ],
            title="Actions found",
            empty="no action found (no ryax_metadata.yaml)",
        )
        for warning in result.warnings:
            where = f"{warning.path}: " if warning.path else ""
            info(f"warning: {where}{warning.message}")
        for problem in result.problems:
            where = f"{problem.path}: " if problem.path else ""
            info(f"error: {where}{problem.message}")
        summary = f"{len(result.actions)} action(s) found"
        if result.problems:
            summary += f", {len(result.problems)} error(s)"
        if result.build_ids:
            summary += f", {len(result.build_ids)} build(s) requested"
        info(summary)

    emit(output, result.raw, render)
