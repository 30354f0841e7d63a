"""`ryax action list|show|build`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from ..errors import BuildFailed, RyaxError
from ..models import Action, Build
from .context import ExitCode, Output, OutputOpt, ProjectOpt, command, info, print_json, state
from .output import Progress, emit, fields, state_text, table

app = typer.Typer(no_args_is_help=True)


@command(app, "list")
def list_actions(
    store: Annotated[
        bool, typer.Option("--store", help="List the built actions of the studio's store.")
    ] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Actions found in the project's repositories, with their build state."""
    st = state()
    proj = st.project_of(project)
    client = st.client()
    if store:
        built = client.actions.store(proj)
        emit(
            output,
            [a.raw for a in built],
            lambda: table(
                ["ACTION", "VERSION", "KIND", "NAME", "READY", "BUILT-IN"],
                [
                    (
                        a.action_id,
                        a.version,
                        a.kind,
                        a.name,
                        a.ready_at,
                        "yes" if a.builtin else "",
                    )
                    for a in built
                ],
                empty="the store is empty: build actions first",
            ),
        )
        return
    found = client.actions.list(proj)
    emit(
        output,
        [a.raw for a in found],
        lambda: table(
            ["ACTION", "VERSION", "KIND", "NAME", "BUILD", "REPOSITORY"],
            [
                (a.action_id, a.version, a.kind, a.name, state_text(a.build_state), a.repository)
                for a in found
            ],
            empty="no actions: add a repository and scan it",
        ),
    )


@command(app, "show")
def show(
    action: Annotated[str, typer.Argument(help="Action id (technical name or database id).")],
    version: Annotated[
        str | None, typer.Argument(help="Version (default: the latest).", show_default=False)
    ] = None,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """An action: kind, inputs, outputs, build state."""
    st = state()
    found = st.client().actions.show(st.project_of(project), action, version)

    def render() -> None:
        fields(
            [
                ("action", found.action_id),
                ("version", found.version),
                ("kind", found.kind),
                ("name", found.name),
                ("description", found.description),
                ("build", state_text(found.build_state)),
                ("repository", found.repository or ""),
            ]
        )
        io = [("input", i.name, i.type, "yes" if i.optional else "", i.help) for i in found.inputs]
        io += [("output", o.name, o.type, "", o.help) for o in found.outputs]
        table(["", "NAME", "TYPE", "OPTIONAL", "HELP"], io, empty="no inputs or outputs")

    emit(output, found.raw, render)


@command(app, "build")
def build(
    action: Annotated[
        str | None, typer.Argument(help="Action id (omit with --all).", show_default=False)
    ] = None,
    version: Annotated[
        str | None, typer.Argument(help="Version (default: the latest).", show_default=False)
    ] = None,
    all_actions: Annotated[
        bool, typer.Option("--all", help="Build every action not built yet.")
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="Build again even when built or being built (--all: every one)."
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the builds to finish.")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each build.")
    ] = 900.0,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Build actions (dependencies + wrapper, packed); waits with a progress display."""
    st = state()
    proj = st.project_of(project)
    client = st.client()
    if all_actions == bool(action):
        raise typer.BadParameter("give an ACTION or --all (not both)")
    if all_actions:
        targets = [
            a
            for a in _distinct(client.actions.list(proj))
            if a.build_state != "invalid" and (rebuild or a.build_state != "built")
        ]
        if not targets:
            info("every action is already built")
            if output is Output.json:
                print_json([])
            return
    else:
        assert action is not None
        targets = [client.actions.show(proj, action, version)]

    results: list[Build] = []
    failures: list[BuildFailed | RyaxError] = []
    with Progress() as progress:
        started: list[tuple[Action, Build]] = []
        for target in targets:
            key = f"{target.action_id} {target.version}"
            b = client.actions.build(
                proj, target.action_id, target.version, wait=False, force=rebuild
            )
            progress.update(key, b.state, done=b.done)
            started.append((target, b))
        for target, b in started:
            key = f"{target.action_id} {target.version}"
            if not wait:
                results.append(b)
                continue
            try:
                done = client.actions.wait(
                    proj, b, timeout=timeout, on_progress=_reporter(progress, key)
                )
                results.append(done)
                progress.update(key, done.state, done=True)
            except BuildFailed as exc:
                progress.update(key, "failed", done=True)
                failures.append(exc)
    if output is Output.json:
        print_json([b.raw for b in results] + [f.detail for f in failures])
    for failure in failures:
        info(f"ryax: error: {failure}")
        log = getattr(failure, "log", "")
        if log:
            tail = "\n".join(log.rstrip().splitlines()[-20:])
            info(f"--- build log (last lines) ---\n{tail}")
    if failures:
        raise typer.Exit(int(ExitCode.ERROR))
    if wait:
        info(f"{len(results)} action(s) built")


def _reporter(progress: Progress, key: str) -> Callable[[Build], None]:
    def report(build: Build) -> None:
        progress.update(key, build.state, done=build.done)

    return report


def _distinct(actions: list[Action]) -> list[Action]:
    """Each (action, version) once: every version found is built (workflows may pin older
    ones)."""
    seen: dict[tuple[str, str], Action] = {}
    for a in actions:
        seen.setdefault((a.action_id, a.version), a)
    return list(seen.values())
