"""`ryax workflow create|import|export|deploy|undeploy|list|show|delete`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from ..api.studio import check_yaml
from ..errors import ConflictError, InvalidWorkflowFile
from ..models import HTTP_TRIGGERS, Deployment, Workflow
from .context import Output, OutputOpt, ProjectOpt, command, info, print_json, state
from .output import Progress, emit, fields, state_text, table

app = typer.Typer(no_args_is_help=True)
WorkflowArg = Annotated[str, typer.Argument(help="Workflow id or name.")]


def _problems(wf: Workflow) -> None:
    for problem in wf.problems:
        info(f"  - {problem}")


@command(app, "list")
def list_workflows(project: ProjectOpt = None, output: OutputOpt = Output.table) -> None:
    """Workflows of the project."""
    st = state()
    found = st.client().workflows.list(st.project_of(project))
    emit(
        output,
        [w.raw for w in found],
        lambda: table(
            ["NAME", "ID", "DEPLOYMENT", "STEPS", "UPDATED"],
            [
                (
                    w.name,
                    w.id,
                    state_text(w.deployment_state),
                    w.step_count,
                    w.updated_at,
                )
                for w in found
            ],
            empty="no workflows: `ryax workflow import FILE` or `ryax workflow create NAME`",
        ),
    )


@command(app, "show")
def show(
    workflow: WorkflowArg, project: ProjectOpt = None, output: OutputOpt = Output.table
) -> None:
    """A workflow: its steps, validation problems and deployment."""
    st = state()
    proj = st.project_of(project)
    client = st.client()
    wf = client.workflows.show(proj, workflow)

    def render() -> None:
        d = wf.deployment
        fields(
            [
                ("name", wf.name),
                ("id", wf.id),
                ("description", wf.description),
                ("valid", "yes" if wf.valid else f"no ({len(wf.problems)} problem(s))"),
                ("deployment", state_text(d.state) if d else "never deployed"),
                ("reason", d.reason if d and d.reason else ""),
                ("endpoint", endpoint_url(client.url, proj, wf) or ""),
                ("user API", user_api_url(client.url, proj, wf) or ""),
                ("form", form_url(client.url, proj, wf) or ""),
                ("updated", wf.updated_at),
            ]
        )
        table(
            ["STEP", "ACTION", "VERSION"],
            [(s.id, s.action_id, s.version) for s in wf.steps],
            empty="no steps",
        )
        if wf.problems:
            info(f"{len(wf.problems)} problem(s) prevent deploying it:")
            _problems(wf)

    emit(output, wf.raw, render)


@command(app, "create")
def create(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    description: Annotated[str, typer.Option("--description", "-d", help="Description.")] = "",
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create an empty workflow (add steps in the studio or import YAML instead)."""
    st = state()
    wf = st.client().workflows.create(st.project_of(project), name, description=description)
    emit(output, wf.raw, lambda: info(f"Created workflow {wf.name} ({wf.id})"))


@command(app, "import")
def import_(
    file: Annotated[str, typer.Argument(help="Workflow YAML file, or - for the standard input.")],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Name instead of spec.human_name.", show_default=False),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="If the name is taken, replace that workflow's definition."),
    ] = False,
    draft: Annotated[
        bool, typer.Option("--draft", help="Keep it even if it is not valid yet.")
    ] = False,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Import a workflow from YAML (`kind: Workflows`); every problem is listed at once."""
    st = state()
    proj = st.project_of(project)
    if file == "-":
        text, source = sys.stdin.read(), "the standard input"
    else:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidWorkflowFile(f"cannot read {file}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise InvalidWorkflowFile(f"{file} is not a text file (UTF-8)") from exc
        source = file
    document = check_yaml(text, source=source)
    client = st.client()
    verb = "Imported"
    try:
        wf = client.workflows.import_yaml(proj, text, name=name, draft=draft)
    except ConflictError:
        spec = document.get("spec")
        existing = name or (spec.get("human_name") if isinstance(spec, dict) else None)
        if not replace or not existing:
            raise
        wf = client.workflows.replace_yaml(proj, str(existing), text, draft=draft)
        verb = "Replaced"

    def render() -> None:
        info(f"{verb} workflow {wf.name} ({wf.id})")
        if wf.problems:
            info(f"{len(wf.problems)} problem(s) prevent deploying it:")
            _problems(wf)

    emit(output, wf.raw, render)


@command(app, "export")
def export(
    workflow: WorkflowArg,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Write to this file (default: stdout).", show_default=False
        ),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Export a workflow as YAML (re-importable)."""
    st = state()
    text = st.client().workflows.export(st.project_of(project), workflow)
    if file is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        file.write_text(text, encoding="utf-8")
        info(f"Wrote {file}")


def endpoint_url(base: str, project: str, wf: Workflow) -> str | None:
    """Where the runner serves a workflow started by the HTTP endpoint trigger."""
    if not wf.http_endpoint:
        return None
    return (
        f"{base}/runner/v1/projects/{quote(project, safe='')}/endpoints/{quote(wf.name, safe='')}"
    )


def user_api_url(base: str, project: str, wf: Workflow) -> str | None:
    """`METHOD <url>` where the user API serves the workflow's HTTP API trigger (its `path`),
    or None when the trigger declares no path."""
    trigger = next((s for s in wf.steps if s.action_id in HTTP_TRIGGERS), None)
    if trigger is None:
        return None
    path = (trigger.inputs.get("path") or {}).get("static")
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    method = (trigger.inputs.get("method") or {}).get("static") or "POST"
    return f"{str(method).upper()} {base}/user-api/{quote(project, safe='')}{path}"


def form_url(base: str, project: str, wf: Workflow) -> str | None:
    """The page where the workflow's form portal (`postgw`) is served, or None."""
    trigger = next((s for s in wf.steps if s.action_id == "postgw"), None)
    if trigger is None:
        return None
    path = (trigger.inputs.get("path") or {}).get("static")
    if not isinstance(path, str) or not path.strip().startswith("/"):
        return None
    return f"{base}/user-api/{quote(project, safe='')}{path.strip()}"


def _progress_key(workflow: str) -> str:
    return f"workflow {workflow}"


@command(app, "deploy")
def deploy(
    workflow: WorkflowArg,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until it is running.")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 600.0,
    project: ProjectOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Deploy a workflow on the sites (waits until every step runs)."""
    st = state()
    proj = st.project_of(project)
    client = st.client()
    key = _progress_key(workflow)
    with Progress() as progress:

        def show(d: Deployment) -> None:
            note = f"({d.reason})" if d.reason else ""
            progress.update(key, d.state, done=d.running or d.failed, note=note)

        deployment = client.workflows.deploy(
            proj, workflow, wait=wait, timeout=timeout, on_progress=show
        )
    if output is Output.json:
        print_json(deployment.raw)
    elif wait:
        shown = client.workflows.show(proj, workflow)
        url = endpoint_url(client.url, proj, shown)
        where = f"; endpoint: POST {url}" if url else ""
        served = user_api_url(client.url, proj, shown)
        where += f"; user API: {served}" if served else ""
        page = form_url(client.url, proj, shown)
        where += f"; form: {page}" if page else ""
        info(f"Workflow {workflow} is {deployment.state}{where}")


@command(app, "undeploy")
def undeploy(
    workflow: WorkflowArg,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until it is stopped.")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 300.0,
    project: ProjectOpt = None,
) -> None:
    """Stop a deployed workflow."""
    st = state()
    proj = st.project_of(project)
    key = _progress_key(workflow)
    with Progress() as progress:

        def show(d: Deployment) -> None:
            progress.update(key, d.state)

        st.client().workflows.undeploy(proj, workflow, wait=wait, timeout=timeout, on_progress=show)
    info(f"Workflow {workflow} undeployed")


@command(app, "delete")
def delete(workflow: WorkflowArg, project: ProjectOpt = None) -> None:
    """Delete a workflow (undeploy it first)."""
    st = state()
    st.client().workflows.delete(st.project_of(project), workflow)
    info(f"Deleted workflow {workflow}")


@command(app, "errors")
def errors(
    workflow: WorkflowArg, project: ProjectOpt = None, output: OutputOpt = Output.table
) -> None:
    """What prevents deploying a workflow (nothing printed when it is valid)."""
    st = state()
    found = st.client().workflows.errors(st.project_of(project), workflow)
    emit(
        output,
        [p.raw for p in found],
        lambda: table(
            ["STEP", "INPUT", "PROBLEM"],
            [(p.step or "", p.input or "", p.message) for p in found],
            empty="valid: nothing prevents deploying it",
        ),
    )
