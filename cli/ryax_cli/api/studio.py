"""Workflows: create, import/export YAML, validate, deploy (the studio service); deployment
states come from the runner."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import yaml

from ..errors import (
    ConflictError,
    DeploymentFailed,
    DeploymentOutdated,
    InvalidWorkflowFile,
    WaitTimeout,
)
from ..models import (
    DEPLOYMENTS,
    WORKFLOW_PROBLEMS,
    WORKFLOWS,
    Deployment,
    Workflow,
    WorkflowProblem,
    WorkflowSummary,
)
from ._base import Group, project_path, seg

SERVICE = "studio"
YAML = "application/yaml"
ZIP = "application/zip"
DeployProgress = Callable[[Deployment], None]


class Workflows(Group):
    """Workflows are named by id or by name: the studio accepts both."""

    def list(self, project: str) -> builtins.list[WorkflowSummary]:
        return WORKFLOWS.read(self._http.get(project_path(SERVICE, project, "workflows")))

    def show(self, project: str, workflow: str) -> Workflow:
        """A workflow with its steps, its problems and its current deployment."""
        return Workflow.from_json(self._http.get(_path(project, workflow)))

    def errors(self, project: str, workflow: str) -> builtins.list[WorkflowProblem]:
        """Every problem that keeps the workflow from being deployed (empty when valid)."""
        return WORKFLOW_PROBLEMS.read(self._http.get(_path(project, workflow, "errors")))

    def create(self, project: str, name: str, *, description: str = "") -> Workflow:
        body = {"name": name, "description": description}
        return Workflow.from_json(
            self._http.post(project_path(SERVICE, project, "workflows"), body)
        )

    def delete(self, project: str, workflow: str) -> None:
        self._http.delete(_path(project, workflow))

    def import_yaml(
        self,
        project: str,
        document: str | bytes,
        *,
        name: str | None = None,
        draft: bool = False,
    ) -> Workflow:
        """Import a workflow from its YAML (`kind: Workflows`), all or nothing.

        The document is parsed here first, so a syntax error is reported with its line before
        any call; the server's validation problems come in `InvalidRequest.problems` (422).
        `name` replaces `spec.human_name`; `draft` keeps a workflow that is not valid yet.
        """
        text = document.decode() if isinstance(document, bytes) else document
        check_yaml(text)
        body = self._http.post(
            project_path(SERVICE, project, "workflows", "import"),
            content=text.encode(),
            headers={"Content-Type": YAML},
            params={"name": name, "draft": draft or None},
        )
        return Workflow.from_json(body)

    def import_zip(
        self, project: str, archive: bytes, *, name: str | None = None, draft: bool = False
    ) -> Workflow:
        """Import a workflow zip (`workflow.yaml` and the static files it names), all or
        nothing; the problems name the file in the zip, the line and the field."""
        body = self._http.post(
            project_path(SERVICE, project, "workflows", "import"),
            content=archive,
            headers={"Content-Type": ZIP},
            params={"name": name, "draft": draft or None},
        )
        return Workflow.from_json(body)

    def export_zip(self, project: str, workflow: str) -> bytes:
        """The workflow zip: `workflow.yaml` and its static files, re-importable."""
        response = self._http.request(
            "GET",
            _path(project, workflow, "export"),
            params={"format": "zip"},
            headers={"Accept": ZIP},
            timeout=600.0,
        )
        return response.content

    def upload_file(
        self,
        project: str,
        workflow: str,
        step: str,
        input_name: str,
        data: bytes,
        filename: str,
    ) -> Workflow:
        """Give a file input a static file (or a directory input a zip/tar of a directory's
        contents), stored by the studio in the filestore."""
        response = self._http.request(
            "POST",
            _path(project, workflow, "steps", seg(step), "inputs", seg(input_name), "file"),
            files={"file": (filename, data, "application/octet-stream")},
            timeout=600.0,
        )
        return Workflow.from_json(response.json())

    def replace_yaml(
        self, project: str, workflow: str, document: str | bytes, *, draft: bool = False
    ) -> Workflow:
        """Replace a workflow's definition with a YAML document (all or nothing)."""
        text = document.decode() if isinstance(document, bytes) else document
        check_yaml(text)
        response = self._http.request(
            "PUT",
            _path(project, workflow, "yaml"),
            content=text.encode(),
            headers={"Content-Type": YAML},
            params={"draft": draft or None},
        )
        return Workflow.from_json(response.json())

    def export(self, project: str, workflow: str) -> str:
        """The workflow as YAML, re-importable."""
        response = self._http.request(
            "GET", _path(project, workflow, "export"), headers={"Accept": YAML}
        )
        return response.text

    def set_step_settings(
        self, project: str, workflow: str, step: str, settings: dict[str, Any]
    ) -> Workflow:
        """Replace a step's settings (timeout_seconds, retries, site_name, node_pool, labels,
        resources, hpc); the studio checks them and names a bad field (400)."""
        return Workflow.from_json(
            self._http.put(_path(project, workflow, "steps", seg(step), "settings"), settings)
        )

    def deployments(self, project: str, workflow: str) -> builtins.list[Deployment]:
        """The workflow's deployments, newest first, in the state the runner reports."""
        return DEPLOYMENTS.read(self._http.get(_path(project, workflow, "deployments")))

    def deployment(self, project: str, workflow: str) -> Deployment | None:
        """The current (newest) deployment of a workflow, None if it was never deployed."""
        found = self.deployments(project, workflow)
        return found[0] if found else None

    def deploy(
        self,
        project: str,
        workflow: str,
        *,
        wait: bool = True,
        timeout: float = 600.0,
        on_progress: DeployProgress | None = None,
        redeploy: bool = False,
    ) -> Deployment:
        """Deploy; with `wait`, poll until it is deployed (or raise `DeploymentFailed`).

        Deploying a workflow that is already deployed (or being deployed) is not an error when
        the workflow did not change since: its current deployment is returned (and waited
        for). When it changed after that deployment was asked for, `DeploymentOutdated`
        (nothing is done). `redeploy`: a deployed workflow is undeployed first (waited for),
        then deployed again: its changes, and the placement the sites give it now, apply.
        """
        path = _path(project, workflow, "deploy")
        try:
            deployment = Deployment.from_json(self._http.post(path))
        except ConflictError:
            current = self.deployment(project, workflow)
            if current is None or current.gone or current.failed:
                raise
            if redeploy:
                self.undeploy(project, workflow, timeout=timeout, on_progress=on_progress)
                deployment = Deployment.from_json(self._http.post(path))
            else:
                self._check_current(project, workflow, current)
                deployment = current
        if on_progress:
            on_progress(deployment)
        if not wait:
            return deployment
        return self.wait_deployed(project, workflow, timeout=timeout, on_progress=on_progress)

    def _check_current(self, project: str, workflow: str, current: Deployment) -> None:
        """`DeploymentOutdated` when the workflow changed after `current` was asked for."""
        changed, asked = self.show(project, workflow).updated_at, current.requested_at
        if changed is None or asked is None or (changed.tzinfo is None) != (asked.tzinfo is None):
            return  # not told, or not comparable
        if changed <= asked:
            return
        raise DeploymentOutdated(
            f"workflow {workflow} is already deployed (deployment {current.id}, "
            f"{current.state}, asked for at {asked.isoformat(timespec='seconds')})"
            f" and was changed after that, at {changed.isoformat(timespec='seconds')}: the "
            "deployment runs it as it was. Deploy it again with --redeploy (undeploys, then "
            "deploys) to apply the changes",
            detail={"deployment": current.raw, "workflow_updated_at": changed.isoformat()},
        )

    def wait_deployed(
        self,
        project: str,
        workflow: str,
        *,
        timeout: float = 600.0,
        on_progress: DeployProgress | None = None,
    ) -> Deployment:
        deadline = self._waiting.clock() + timeout
        while True:
            current = self.deployment(project, workflow)
            if current is not None:
                if on_progress:
                    on_progress(current)
                if current.running:
                    return current
                if current.failed or current.gone:
                    raise DeploymentFailed(
                        f"deployment of workflow {workflow} {current.state}"
                        + (f": {current.reason}" if current.reason else ""),
                        detail=current.raw,
                    )
            if self._waiting.clock() >= deadline:
                state = current.state if current else "not started"
                why = f" ({current.reason})" if current and current.reason else ""
                raise WaitTimeout(
                    f"deployment of workflow {workflow} still {state}{why} after {timeout:.0f} s"
                )
            self._waiting.sleep(self._waiting.interval)

    def undeploy(
        self,
        project: str,
        workflow: str,
        *,
        wait: bool = True,
        timeout: float = 300.0,
        on_progress: DeployProgress | None = None,
    ) -> Deployment | None:
        """Stop the current deployment; not deployed is not an error (nothing to do)."""
        try:
            body = self._http.post(_path(project, workflow, "undeploy"))
        except ConflictError:
            current = self.deployment(project, workflow)
            if current is not None and not (current.gone or current.failed):
                raise
            return current
        deployment = Deployment.from_json(body)
        if on_progress:
            on_progress(deployment)
        if not wait:
            return deployment
        deadline = self._waiting.clock() + timeout
        while True:
            current = self.deployment(project, workflow)
            if current is None or current.gone or current.failed:
                return current
            if on_progress:
                on_progress(current)
            if self._waiting.clock() >= deadline:
                raise WaitTimeout(
                    f"workflow {workflow} still {current.state} after {timeout:.0f} s"
                )
            self._waiting.sleep(self._waiting.interval)


class Variables(Group):
    """Project variables, referenced from steps by name: values (shown), secrets (stored
    encrypted, never shown), files (a file or a directory in the filestore). Answers are the
    studio's JSON (`name`, `kind`, `value` of a value, `file` of a file)."""

    def list(self, project: str) -> builtins.list[dict[str, Any]]:
        body = self._http.get(project_path(SERVICE, project, "variables"))
        return list(body["variables"])

    def set_value(self, project: str, name: str, value: Any) -> dict[str, Any]:
        return dict(
            self._http.put(
                project_path(SERVICE, project, "variables", seg(name)),
                {"kind": "value", "value": value},
            )
        )

    def set_secret(self, project: str, name: str, value: str) -> dict[str, Any]:
        return dict(
            self._http.put(
                project_path(SERVICE, project, "variables", seg(name)),
                {"kind": "secret", "value": value},
            )
        )

    def set_file(
        self, project: str, name: str, data: bytes, filename: str, *, directory: bool = False
    ) -> dict[str, Any]:
        response = self._http.request(
            "POST",
            project_path(SERVICE, project, "variables", seg(name), "file"),
            files={"file": (filename, data, "application/octet-stream")},
            params={"directory": directory or None},
            timeout=600.0,
        )
        return dict(response.json())

    def delete(self, project: str, name: str) -> None:
        self._http.delete(project_path(SERVICE, project, "variables", seg(name)))


def _path(project: str, workflow: str, *rest: str) -> str:
    return project_path(SERVICE, project, "workflows", seg(workflow), *rest)


def check_yaml(text: str, *, source: str = "the workflow") -> dict[str, Any]:
    """Parse a workflow document; a syntax error names its line and column."""
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or str(exc)
        raise InvalidWorkflowFile(f"{source} is not valid YAML{where}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise InvalidWorkflowFile(f"{source} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidWorkflowFile(
            f"{source} is not a workflow: expected a YAML mapping with apiVersion, kind and spec"
        )
    return document
