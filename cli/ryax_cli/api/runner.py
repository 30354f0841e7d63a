"""Runs, logs, sites and HTTP-endpoint triggers (the runner service)."""

from __future__ import annotations

import builtins
import json
import mimetypes
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from .._http import SseEvent
from ..errors import (
    ApiError,
    NotFoundError,
    PermissionDenied,
    RunFailed,
    RyaxError,
    WaitTimeout,
)
from ..models import (
    LOG_LINES,
    PROJECTS,
    SITES,
    FileRef,
    LogLine,
    RunInfo,
    RunPage,
    Site,
    SiteCredential,
)
from ._base import Group, project_path, seg
from .studio import Workflows

SERVICE = "runner"
#: The platform's sites (admins).
SITES_PATH = f"/{SERVICE}/v1/sites"
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
        try:
            self.info = self._runs.show(self.project, self.id).info
        except PermissionDenied:
            # A project API key reads no run, only the result link of the calls it made.
            if not self.raw.get("result_link"):
                raise
            self.info = self._runs.result(self.project, self.id).info
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

    def result(self, project: str, run_id: str) -> Run:
        """The result of a user API call, through its result link (what a project API key may
        read): the workflow's results once completed, else the run's state; no steps."""
        link = project_path(SERVICE, project, "results", seg(run_id))
        try:
            response = self._http.request("GET", link)
        except ApiError as exc:
            if exc.body.get("run_id") != run_id:
                raise
            state = "cancelled" if exc.error == "run_cancelled" else "failed"
            doc = {
                "id": run_id,
                "state": state,
                "reason": exc.message,
                "failed_step_id": exc.body.get("step_id"),
                "result_link": link,
            }
            return Run(self, project, RunInfo.from_json(doc))
        return Run(self, project, _run_of_trigger(response, result_link=link))

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
        """Start a run through the HTTP endpoint of a deployed workflow (its id or name), or
        through the user API when `workflow` is an endpoint path (`/items/42`, see
        `call_path`).

        A `Path` value is uploaded as a file (multipart); other values go as JSON. With `wait`
        the endpoint answers when the run ends (within `timeout`, else the run goes on and
        `.wait()` follows it); without, it answers at once with the run id. A run that fails
        is returned with its state and error, not raised (see `Run.wait(raise_on_failure)`).
        """
        if workflow.startswith("/"):
            return self.call_path(project, workflow, inputs, timeout=timeout)
        path = project_path(SERVICE, project, "endpoints", seg(workflow))
        params: dict[str, Any] = {"mode": "sync" if wait else "async"}
        if wait:
            params["timeout"] = f"{timeout:g}"
        return self._post_inputs(project, path, dict(inputs or {}), params, timeout)

    def call_path(
        self,
        project: str,
        path: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        method: str | None = None,
        timeout: float = 300.0,
    ) -> Run:
        """Call the project's user API: `path` as the trigger declares it, filled in
        (`/items/42`, a query string allowed). The project's OpenAPI document
        (`/user-api/<project>/openapi.json`) tells the method (else `method`) and where each
        input goes: a query parameter, a header, or the body (JSON, multipart with `Path`
        values). The trigger's own timeout rules the answer: the results, or the run id (202)
        that `.wait()` follows."""
        path, _, query = path.partition("?")
        base = f"/user-api/{seg(project)}"
        spec = self._http.get(f"{base}/openapi.json")
        method, operation = _operation_for(spec, path, method, project)
        values = dict(inputs or {})
        params: dict[str, Any] = dict(_query_pairs(query))
        headers: dict[str, str] = {}
        for parameter in operation.get("parameters", []):
            name, where = parameter.get("name"), parameter.get("in")
            key = name if name in values else str(name).replace("-", "_")
            if where not in ("query", "header") or key not in values:
                continue
            value = values.pop(key)
            if where == "query":
                params[name] = value if isinstance(value, str) else json.dumps(value)
            else:
                headers[name] = value if isinstance(value, str) else json.dumps(value)
        return self._post_inputs(
            project, base + path, values, params, timeout, method=method, headers=headers
        )

    def _post_inputs(
        self,
        project: str,
        path: str,
        values: dict[str, Any],
        params: dict[str, Any],
        timeout: float,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> Run:
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
            if headers:
                kwargs["headers"] = headers
            if files:
                kwargs["files"] = files
                kwargs["data"] = {
                    name: value if isinstance(value, str) else json.dumps(value)
                    for name, value in values.items()
                    if name not in files
                }
            elif values or method not in ("GET", "DELETE"):
                kwargs["json_body"] = values
            try:
                response = self._http.request(method, path, **kwargs)
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

    # -- administration (admins): the platform's sites, their credentials --------------------

    def all(self, archived: bool = False) -> builtins.list[Site]:
        """Every site of the platform (admins), archived ones too if asked."""
        params = {"archived": "true"} if archived else None
        return SITES.read(self._http.get(SITES_PATH, params))

    def create(self, name: str, kind: str = "local") -> SiteCredential:
        """Create a site (admins): its credential (the worker's RYAX_SITE_CREDENTIAL) is in
        `.credential`, shown only now."""
        return SiteCredential.from_json(self._http.post(SITES_PATH, {"name": name, "type": kind}))

    def show(self, site: str) -> Site:
        """One site (admins), by name or id, archived or not."""
        return Site.from_json(self._http.get(f"{SITES_PATH}/{seg(site)}"))

    def rotate(self, site: str) -> SiteCredential:
        """A new credential (admins), shown only now: the old one stops working and the
        connected worker is cut off."""
        return SiteCredential.from_json(self._http.post(f"{SITES_PATH}/{seg(site)}/credential"))

    def revoke(self, site: str) -> Site:
        """Revoke the credential (admins): no worker can connect until one is issued again."""
        return Site.from_json(self._http.delete(f"{SITES_PATH}/{seg(site)}/credential"))

    def archive(self, site: str) -> Site:
        """Archive the site (admins): credential revoked, offline for good, kept in the record."""
        return Site.from_json(self._http.post(f"{SITES_PATH}/{seg(site)}/archive"))


def _operation_for(
    spec: Any, path: str, method: str | None, project: str
) -> tuple[str, dict[str, Any]]:
    """The user API operation whose path template matches `path` (literal segments first),
    with its method: the one given, else the only one the path answers."""
    wanted = [s for s in path.split("/") if s]
    found: list[tuple[tuple[int, ...], str, dict[str, Any]]] = []
    for template, item in (spec.get("paths") or {}).items():
        parts = [s for s in str(template).split("/") if s]
        if len(parts) != len(wanted):
            continue
        rank = []
        for part, given in zip(parts, wanted, strict=True):
            literal = not (part.startswith("{") and part.endswith("}"))
            if literal and part != unquote(given):
                break
            rank.append(1 if literal else 0)
        else:
            for verb, operation in item.items():
                found.append((tuple(rank), verb.upper(), operation))
    if not found:
        known = ", ".join(sorted(spec.get("paths") or {})) or "none deployed"
        raise NotFoundError(
            404, "not_found", f"no endpoint {path} in project {project} (its paths: {known})"
        )
    best = max(rank for rank, _, _ in found)
    methods = {verb: op for rank, verb, op in found if rank == best}
    if method:
        if method.upper() not in methods:
            raise RyaxError(f"{path} answers {', '.join(sorted(methods))}, not {method.upper()}")
        return method.upper(), methods[method.upper()]
    if len(methods) > 1:
        raise RyaxError(f"{path} answers {', '.join(sorted(methods))}: choose one with --method")
    return next(iter(methods.items()))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in parse_qsl(query, keep_blank_values=True)]


def _run_of_trigger(response: Any, *, result_link: str | None = None) -> RunInfo:
    """The endpoint's answer, which no OpenAPI schema describes (it is the workflow's own):
    asynchronous, 202 with `{"run_id", "state", "status_url"}` (the user API:
    `{"workflow_run_id", "result_link", "run_id", "state"}`); else the run's results, its id
    in the `Ryax-Run-Id` header."""
    body = response.json() if response.content else {}
    link = {"result_link": result_link} if result_link else {}
    if response.status_code == 202:
        return RunInfo.from_json({**body, **link, "id": str(body.get("run_id", ""))})
    run_id = response.headers.get(RUN_HEADER, "")
    return RunInfo.from_json({"id": run_id, "state": "completed", "results": body, **link})


def _lines_of_event(event: SseEvent) -> Iterator[LogLine]:
    """The stream sends `log` events (a LogLineOut without its id), then `end`."""
    if event.event != "log":
        return
    try:
        data = json.loads(event.data)
    except ValueError as exc:
        raise RyaxError(f"unexpected log event from the server: {event.data[:200]}") from exc
    yield LogLine.from_json(data)
