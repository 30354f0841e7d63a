"""Runs, logs, sites and HTTP-endpoint triggers (the runner service)."""

from __future__ import annotations

import builtins
import json
import mimetypes
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._http import SseEvent
from ..errors import ApiError, RunFailed, RyaxError, WaitTimeout
from ..models import LOG_LINES, PROJECTS, SITES, FileRef, LogLine, RunInfo, RunPage, Site
from ._base import Group, project_path, seg
from .studio import Workflows

SERVICE = "runner"
RUN_HEADER = "Ryax-Run-Id"


class Run:
    """A run of a workflow: refresh it, wait for it, read its outputs, download its files."""

    def __init__(self, runs: Runs, project: str, info: RunInfo) -> None:
        self._runs = runs
        self.project = project
        self.info = info

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, state={self.state!r})"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        return self.info.state

    @property
    def done(self) -> bool:
        return self.info.done

    @property
    def succeeded(self) -> bool:
        return self.info.succeeded

    @property
    def error(self) -> str | None:
        return self.info.error

    @property
    def outputs(self) -> dict[str, Any]:
        """The workflow's results (file outputs are `FileRef`s: see `download`)."""
        return {
            name: FileRef.from_json(value) if FileRef.looks_like(value) else value
            for name, value in self.info.outputs.items()
        }

    @property
    def raw(self) -> dict[str, Any]:
        return self.info.raw

    def refresh(self) -> Run:
        if not self.id:
            raise RyaxError("this run has no id to follow (the trigger answered without one)")
        self.info = self._runs.show(self.project, self.id).info
        return self

    def wait(self, timeout: float = 300.0, *, raise_on_failure: bool = False) -> Run:
        """Poll until the run completes, fails or is cancelled."""
        waiting = self._runs._waiting
        deadline = waiting.clock() + timeout
        while not self.done:
            if waiting.clock() >= deadline:
                raise WaitTimeout(f"run {self.id} still {self.state} after {timeout:.0f} s")
            waiting.sleep(waiting.interval)
            self.refresh()
        if raise_on_failure and not self.succeeded:
            raise RunFailed(
                f"run {self.id} {self.state}" + (f": {self.error}" if self.error else ""),
                detail=self.raw,
            )
        return self

    @property
    def files(self) -> dict[str, FileRef]:
        """Every file of the run: the workflow's results by key, and each step's file outputs
        as `step.output` (the step outputs are known after `refresh()` or `Runs.show`)."""
        found = {k: v for k, v in self.outputs.items() if isinstance(v, FileRef)}
        for step in self.info.steps:
            for name, value in step.outputs.items():
                if FileRef.looks_like(value):
                    found[f"{step.step}.{name}"] = FileRef.from_json(value)
        return found

    def download(self, output: str, dest: Path) -> Path:
        """Save a file (a result key or `step.output`); `dest` may be a folder (the file keeps
        its name)."""
        value = self.files.get(output)
        if value is None:
            known = ", ".join(sorted(self.files)) or "none"
            raise RyaxError(f"run {self.id} has no file {output!r} (its files: {known})")
        return self._runs.download(self.project, self.id, output, value, dest)

    def logs(self, *, follow: bool = False) -> Iterator[LogLine]:
        return self._runs.logs(self.project, self.id, follow=follow)

    def cancel(self) -> Run:
        self.info = self._runs.cancel(self.project, self.id).info
        return self


class Runs(Group):
    def __init__(self, http: Any, waiting: Any, workflows: Workflows) -> None:
        super().__init__(http, waiting)
        self._workflows = workflows

    # ---------------------------------------------------------------- reading
    def list(
        self,
        project: str,
        *,
        workflow: str | None = None,
        state: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[builtins.list[Run], str | None]:
        """Runs, newest first, and the cursor of the next page (None on the last page).

        `workflow` is an id or a name; `state` one of pending, running, completed, failed,
        cancelled.
        """
        workflow_id = self._workflows.show(project, workflow).id if workflow else None
        body = self._http.get(
            project_path(SERVICE, project, "runs"),
            params={"workflow_id": workflow_id, "state": state, "limit": limit, "cursor": cursor},
        )
        page = RunPage.from_json(body)
        return [Run(self, project, info) for info in page.runs], page.next_cursor

    def show(self, project: str, run_id: str) -> Run:
        """A run with its steps (inputs, outputs, errors, timings)."""
        body = self._http.get(project_path(SERVICE, project, "runs", seg(run_id)))
        return Run(self, project, RunInfo.from_json(body))

    def cancel(self, project: str, run_id: str) -> Run:
        body = self._http.post(project_path(SERVICE, project, "runs", seg(run_id), "cancel"))
        return Run(self, project, RunInfo.from_json(body))

    def logs(
        self, project: str, run_id: str, *, follow: bool = False, page_size: int = 1000
    ) -> Iterator[LogLine]:
        """Log lines of every step, in order; with `follow`, stream them live until the run
        ends (server-sent events)."""
        base = project_path(SERVICE, project, "runs", seg(run_id), "logs")
        if follow:
            for event in self._http.sse(base + "/stream"):
                if event.event == "end":
                    return
                yield from _lines_of_event(event)
            return
        after = 0
        while True:
            body = self._http.get(base, params={"after_id": after, "limit": page_size})
            page = LOG_LINES.read(body)
            for line in page:
                yield line
                if line.id is not None:
                    after = max(after, line.id)
            if len(page) < page_size or not after:
                return

    def download(self, project: str, run_id: str, output: str, ref: FileRef, dest: Path) -> Path:
        """Save a file output; `dest` may be a folder (the file keeps its name)."""
        target = dest / (ref.name or output) if dest.is_dir() else dest
        url = ref.url or project_path(
            SERVICE, project, "runs", seg(run_id), "files", quote(ref.key)
        )
        tmp = target.with_name(target.name + ".part")
        try:
            with tmp.open("wb") as fh:
                self._http.download(url, fh)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    # ---------------------------------------------------------------- triggering
    def trigger(
        self,
        project: str,
        workflow: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        timeout: float = 300.0,
    ) -> Run:
        """Start a run through the HTTP endpoint of a deployed workflow (its id or name).

        A `Path` value is uploaded as a file (multipart); other values go as JSON. With `wait`
        the endpoint answers when the run ends (within `timeout`, else the run goes on and
        `.wait()` follows it); without, it answers at once with the run id. A run that fails
        is returned with its state and error, not raised (see `Run.wait(raise_on_failure)`).
        """
        path = project_path(SERVICE, project, "endpoints", seg(workflow))
        params: dict[str, Any] = {"mode": "sync" if wait else "async"}
        if wait:
            params["timeout"] = f"{timeout:g}"
        values = dict(inputs or {})
        with ExitStack() as stack:
            files = {
                name: (
                    value.name,
                    stack.enter_context(value.open("rb")),
                    mimetypes.guess_type(value.name)[0] or "application/octet-stream",
                )
                for name, value in values.items()
                if isinstance(value, Path)
            }
            kwargs: dict[str, Any] = {"params": params, "timeout": timeout + 30.0}
            if files:
                kwargs["files"] = files
                kwargs["data"] = {
                    name: value if isinstance(value, str) else json.dumps(value)
                    for name, value in values.items()
                    if name not in files
                }
            else:
                kwargs["json_body"] = values
            try:
                response = self._http.request("POST", path, **kwargs)
            except ApiError as exc:
                # A run that failed (the action's HTTP status) or did not end in time still
                # is a run: return it, with what the answer said.
                run_id = exc.body.get("run_id")
                if not run_id:
                    raise
                return self._run_after_error(project, str(run_id), exc)
        return Run(self, project, _run_of_trigger(response))

    def _run_after_error(self, project: str, run_id: str, exc: ApiError) -> Run:
        try:
            run = self.show(project, run_id)
        except ApiError:
            state = "running" if exc.error == "timeout" else "failed"
            info = {"id": run_id, "state": state, "reason": exc.message}
            return Run(self, project, RunInfo.from_json(info))
        if run.done and not run.succeeded and not run.error:
            run.info = RunInfo.from_json({**run.raw, "reason": exc.message})
        return run


class Sites(Group):
    def list(self, project: str | None = None) -> builtins.list[Site]:
        """Sites (workers) of the platform, with their state and node pools.

        The runner lists them through a project; without one, the caller's first project is
        used (every project sees the same sites).
        """
        if project is None:
            projects = PROJECTS.read(self._http.get("/authorization/v1/projects"))
            if not projects:
                raise RyaxError("sites are listed through a project: you belong to none")
            project = projects[0].name
        return SITES.read(self._http.get(project_path(SERVICE, project, "sites")))


def _run_of_trigger(response: Any) -> RunInfo:
    """The endpoint's answer, which no OpenAPI schema describes (it is the workflow's own):
    asynchronous, 202 with `{"run_id", "state", "status_url"}`; else the run's results, its id
    in the `Ryax-Run-Id` header."""
    body = response.json() if response.content else {}
    if response.status_code == 202:
        return RunInfo.from_json({**body, "id": str(body.get("run_id", ""))})
    run_id = response.headers.get(RUN_HEADER, "")
    return RunInfo.from_json({"id": run_id, "state": "completed", "results": body})


def _lines_of_event(event: SseEvent) -> Iterator[LogLine]:
    """The stream sends `log` events (a LogLineOut without its id), then `end`."""
    if event.event != "log":
        return
    try:
        data = json.loads(event.data)
    except ValueError as exc:
        raise RyaxError(f"unexpected log event from the server: {event.data[:200]}") from exc
    yield LogLine.from_json(data)
