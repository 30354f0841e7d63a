"""`ryax run trigger|list|show|logs|cancel|download`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..api.runner import Run
from ..errors import NotFoundError, PermissionDenied, RyaxError
from ..models import FileRef, LogLine, RunInfo
from .context import ExitCode, Output, OutputOpt, ProjectOpt, command, info, print_json, state
from .output import emit, fields, state_text, table, when

app = typer.Typer(no_args_is_help=True)
RunArg = Annotated[str, typer.Argument(help="Run id.")]


def parse_inputs(items: list[str], inputs_json: str | None) -> dict[str, Any]:
    """`name=text`, `name:=<JSON>` (numbers, booleans, objects) and `name=@path` (a file)."""
    values: dict[str, Any] = {}
    if inputs_json:
        raw = sys.stdin.read() if inputs_json == "-" else _read_json_arg(inputs_json)
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise typer.BadParameter(f"--inputs is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--inputs must be a JSON object")
        values.update(loaded)
    for item in items:
        if "=" in item and item.split("=", 1)[0].endswith(":"):
            name, _, raw = item.partition(":=")
            try:
                values[name] = json.loads(raw)
            except ValueError as exc:
                raise typer.BadParameter(f"{item}: the value after := is not JSON") from exc
        elif "=" in item:
            name, _, value = item.partition("=")
            if value.startswith("@"):
                path = Path(value[1:]).expanduser()
                if not path.is_file():
                    raise typer.BadParameter(f"{item}: no file {path}")
                values[name] = path
            else:
                values[name] = value
        else:
            raise typer.BadParameter(f"{item}: expected NAME=VALUE, NAME:=JSON or NAME=@FILE")
        if not name:
            raise typer.BadParameter(f"{item}: the input name is empty")
    return values


def _read_json_arg(value: str) -> str:
    path = Path(value.removeprefix("@"))
    if value.startswith("@") or (not value.lstrip().startswith("{") and path.is_file()):
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise typer.BadParameter(f"--inputs: cannot read {path}: {exc.strerror}") from exc
    return value


def _output_value(value: Any) -> str:
    if isinstance(value, FileRef):
        size = f", {value.size} bytes" if value.size is not None else ""
        return f"file {value.name}{size}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _show_run(run: Run) -> None:
    info_rows: list[tuple[str, Any]] = [
        ("run", run.id or "-"),
        ("state", state_text(run.state)),
        ("workflow", run.info.workflow_name or run.info.workflow_id),
        ("started", run.info.started_at),
        ("ended", run.info.ended_at),
        ("duration", f"{run.info.duration_seconds:.2f} s" if run.info.duration_seconds else ""),
        ("failed step", run.info.failed_step or ""),
        ("error", run.error or ""),
    ]
    fields([(k, v) for k, v in info_rows if v not in (None, "")])
    if run.info.steps:
        table(
            ["STEP", "STATE", "SITE", "ERROR"],
            [(s.step, state_text(s.state), s.site or "", s.error or "") for s in run.info.steps],
        )
    if run.outputs:
        table(["OUTPUT", "VALUE"], [(k, _output_value(v)) for k, v in run.outputs.items()])


def _download_all(run: Run, dest: Path, *, steps: bool = False) -> None:
    """The results' files, or (`steps`) every file of the run, each step's in its folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(run.files):
        if "." in name and name not in run.outputs:
            if not steps:
                continue
            folder = dest / name.split(".", 1)[0]
            folder.mkdir(exist_ok=True)
            saved = run.download(name, folder)
        else:
            saved = run.download(name, dest)
        info(f"Saved {name} to {saved}")


@command(app, "trigger")
def trigger(
    workflow: Annotated[
        str | None,
        typer.Argument(
            help="Workflow id or name, or an endpoint path of the project's user API "
            "(/items/42: its trigger's path, filled in).",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="NAME=TEXT, NAME:=JSON (numbers, booleans, lists) or NAME=@FILE (uploaded).",
            show_default=False,
        ),
    ] = None,
    inputs_json: Annotated[
        str | None,
        typer.Option(
            "--inputs",
            help="A JSON object of inputs, @FILE or - (stdin); -i values are added to it.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the run to end.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 300.0,
    download: Annotated[
        Path | None,
        typer.Option(
            "--download",
            "-d",
            help="Save the run's files (results and step outputs) into this folder.",
            show_default=False,
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            "--path",
            help="Call the user API at this path (/items/42?x=1): the inputs go where the "
            "project's OpenAPI says (query, header, body).",
            show_default=False,
        ),
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            "--method", "-X", help="With a path that answers several methods.", show_default=False
        ),
    ] = None,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Start a run through the workflow's HTTP endpoint, or the user API at a path, and show
    its outputs."""
    st = state()
    if path is None and workflow is not None and workflow.startswith("/"):
        workflow, path = None, workflow
    if (path is None) == (workflow is None):
        raise typer.BadParameter("give a workflow (id or name) or a --path, one of them")
    proj = st.project_of(project)
    values = parse_inputs(inputs or [], inputs_json)
    client = st.client()
    if path is not None:
        if not path.startswith("/"):
            raise typer.BadParameter(f"--path {path!r}: a path starts with /")
        run = client.runs.call_path(proj, path, values, method=method, timeout=timeout)
    else:
        assert workflow is not None
        run = client.runs.trigger(proj, workflow, values, wait=wait, timeout=timeout)
    if wait and not run.done:
        info(f"Run {run.id} is still {run.state}; waiting (up to {timeout:.0f} s)")
        run.wait(timeout)
    if run.done and run.id:
        _complete(run)
    if download is not None and run.done:
        _download_all(run, download, steps=True)
    if output is Output.json:
        data = dict(run.raw)
        data.setdefault("outputs", run.info.outputs)
        print_json(data)
    else:
        _show_run(run)
    if run.done and not run.succeeded:
        raise RunFailedExit(run)


def _complete(run: Run) -> None:
    """The endpoint answers only the results: fetch the run's steps and timings too."""
    results = dict(run.info.outputs)
    try:
        run.refresh()
    except (NotFoundError, PermissionDenied):  # a project API key reads no run: keep the answer
        return
    if results and not run.info.outputs:
        run.info = RunInfo.from_json({**run.raw, "results": results})


class RunFailedExit(RyaxError):
    def __init__(self, run: Run) -> None:
        super().__init__(
            f"run {run.id} {run.state}" + (f": {run.error}" if run.error else ""), detail=run.raw
        )


@command(app, "list")
def list_runs(
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow (id or name).")
    ] = None,
    state_filter: Annotated[
        str | None,
        typer.Option("--state", "-s", help="pending, running, completed, failed or cancelled."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", help="How many (1-500).", min=1, max=500)
    ] = 20,
    cursor: Annotated[
        str | None,
        typer.Option(
            "--cursor", help="The next page (printed after a full page).", show_default=False
        ),
    ] = None,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Runs of the project, newest first."""
    st = state()
    runs, next_cursor = st.client().runs.list(
        st.project_of(project), workflow=workflow, state=state_filter, limit=limit, cursor=cursor
    )

    def render() -> None:
        table(
            ["RUN", "WORKFLOW", "STATE", "STARTED", "DURATION", "ERROR"],
            [
                (
                    r.id,
                    r.info.workflow_name or r.info.workflow_id,
                    state_text(r.state),
                    r.info.started_at,
                    f"{r.info.duration_seconds:.2f} s" if r.info.duration_seconds else "",
                    r.error or "",
                )
                for r in runs
            ],
            empty="no runs",
        )
        if next_cursor:
            info(f"more: --cursor {next_cursor}")

    emit(output, {"runs": [r.raw for r in runs], "next_cursor": next_cursor}, render)


@command(app, "show")
def show(
    run_id: RunArg,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to end first (exit 1 if it fails).")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 300.0,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """A run: state, steps, outputs, error."""
    st = state()
    run = st.client().runs.show(st.project_of(project), run_id)
    if wait:
        run.wait(timeout)
    emit(output, run.raw, lambda: _show_run(run))
    if wait and not run.succeeded:
        raise RunFailedExit(run)


@command(app, "logs")
def logs(
    run_id: RunArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the run ends.")
    ] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Log lines of every step of a run (-o json: one JSON object per line)."""
    st = state()
    lines = st.client().runs.logs(st.project_of(project), run_id, follow=follow)
    for line in lines:
        if output is Output.json:
            sys.stdout.write(json.dumps(line.raw, default=str, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(format_line(line) + "\n")
        sys.stdout.flush()


def format_line(line: LogLine) -> str:
    parts = []
    if line.time is not None:
        parts.append(when(line.time))
    if line.step:
        parts.append(f"[{line.step}]")
    parts.append(line.message)
    return " ".join(parts)


@command(app, "cancel")
def cancel(run_id: RunArg, project: ProjectOpt = None) -> None:
    """Cancel a run that has not ended."""
    st = state()
    run = st.client().runs.cancel(st.project_of(project), run_id)
    info(f"Run {run.id or run_id}: {run.state}")


@command(app, "download")
def download(
    run_id: RunArg,
    name: Annotated[
        str | None,
        typer.Argument(
            help="A result key or STEP.OUTPUT (default: every file of the run).",
            show_default=False,
        ),
    ] = None,
    dest: Annotated[Path, typer.Option("--dest", "-d", help="Folder or file to write.")] = Path(
        "."
    ),
    project: ProjectOpt = None,
) -> None:
    """Download the files of a run: its results' files and its steps' file outputs."""
    st = state()
    run = st.client().runs.show(st.project_of(project), run_id)
    if name is None:
        if not run.files:
            info(f"run {run_id} has no file")
            raise typer.Exit(int(ExitCode.ERROR))
        _download_all(run, dest, steps=True)
        return
    saved = run.download(name, dest)
    info(f"Saved {name} to {saved}")
