"""The user API: each deployed HTTP API trigger (`httpapijson`) served at
`/user-api/<project><path>` with its method, success code and timeout, and its fields read from
the body, the path, the query or the headers (each field's `origin`).

Pure rules, no I/O: the route a trigger declares (`route_of`, refused with a reason naming the
setting), two routes claiming the same method and path (`conflict`), which route a request
takes (`RouteTable.match`), and the value of a field given as text in the path, the query or a
header (`text_value`). The HTTP adapter is `infrastructure/api/user_api.py`.

A form of the built-in `postgw` trigger (`domain/forms.py`) takes a route of the same table: its
path answers GET (the form) and POST (a submission), so it conflicts with an API route of
either method on the same path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from .deployment import Deployment, DeploymentState
from .errors import InvalidInput
from .forms import DEFAULT_FORM_TIMEOUT_SECONDS, FORM_TRIGGER, form_type_problem
from .values import FILE_TYPES, Value, parse_text
from .workflow import IO, StaticInput, WorkflowDefinition

ORIGINS = ("body", "path", "query", "header")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SUCCESS_CODES = (200, 201)
DEFAULT_TIMEOUT_SECONDS = 60
#: Paths the user API itself serves in every project (GET): a trigger may not take them.
RESERVED_PATHS = ("/openapi.json", "/docs", "/_login", "/_logout")
#: The methods a form's path answers: GET shows it, POST submits it.
FORM_METHODS = ("GET", "POST")
#: Headers that carry the caller's credentials: never handed to a run.
FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
MAX_PATH_LENGTH = 1024


class RouteRefused(InvalidInput):
    """The trigger's settings do not make a route (the deployment fails with this reason)."""


@dataclass(frozen=True, kw_only=True)
class Route:
    """What one deployed HTTP API trigger serves."""

    path: str  # the template, as written (normalised: no trailing slash but for "/")
    method: str
    #: Each segment of the path: ("lit", text) or ("param", field name).
    segments: tuple[tuple[str, str], ...]
    success_code: int = 200
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    #: The trigger's fields by origin (a field without origin is read from the body).
    fields: tuple[IO, ...] = ()
    #: A form portal (`postgw`): GET shows the form, POST submits it (`method` is POST).
    form: bool = False

    @property
    def methods(self) -> tuple[str, ...]:
        return FORM_METHODS if self.form else (self.method,)

    def origin(self, io: IO) -> str:
        return io.origin or "body"

    def of_origin(self, origin: str) -> tuple[IO, ...]:
        return tuple(f for f in self.fields if self.origin(f) == origin)

    @property
    def shape(self) -> tuple[str, ...]:
        """What two routes must not share (with the method): literals, and `{}` for params."""
        return tuple("{}" if kind == "param" else text for kind, text in self.segments)

    @property
    def literal_count(self) -> int:
        return sum(1 for kind, _ in self.segments if kind == "lit")


def split_path(path: str) -> tuple[str, ...]:
    """A request or template path -> its segments (no empty ones: `/a//b/` is `a`, `b`)."""
    return tuple(s for s in path.split("/") if s)


def _static(definition: WorkflowDefinition, name: str) -> Value:
    step = definition.step(definition.trigger.step_id)
    source = step.source(name)
    if isinstance(source, StaticInput):
        return source.value
    return None


def route_of(definition: WorkflowDefinition) -> Route | None:
    """The route of a deployed HTTP API trigger; None when it declares no path (served only by
    the endpoint by workflow name). RouteRefused names the setting that cannot be served."""
    trigger = definition.trigger
    form = trigger.builtin == FORM_TRIGGER
    if not (trigger.http_endpoint or form):
        return None
    raw_path = _static(definition, "path")
    if raw_path is None or (isinstance(raw_path, str) and not raw_path.strip()):
        if form:
            raise RouteRefused("path", "a form needs the path it is served at, e.g. /feedback")
        return None
    if not isinstance(raw_path, str):
        raise RouteRefused("path", "must be text, e.g. /items/{id}")
    path = raw_path.strip()
    if not path.startswith("/"):
        raise RouteRefused("path", f"{path!r} must start with /")
    if len(path) > MAX_PATH_LENGTH:
        raise RouteRefused("path", f"longer than {MAX_PATH_LENGTH} characters")
    if "?" in path or "#" in path or "\\" in path:
        raise RouteRefused("path", f"{path!r}: no ?, # or \\ in an endpoint path")
    segments: list[tuple[str, str]] = []
    for segment in split_path(path):
        m = _PARAM.match(segment)
        if m:
            if any(kind == "param" and name == m.group(1) for kind, name in segments):
                raise RouteRefused("path", f"{path!r}: the parameter {{{m.group(1)}}} is twice")
            segments.append(("param", m.group(1)))
        elif "{" in segment or "}" in segment:
            raise RouteRefused(
                "path",
                f"{path!r}: segment {segment!r}: a path parameter is a whole segment, "
                "{name} with name a field of origin path",
            )
        elif segment in (".", ".."):
            raise RouteRefused("path", f"{path!r}: no . or .. segments")
        else:
            segments.append(("lit", unquote(segment)))
    normalised = "/" + "/".join(text if kind == "lit" else f"{{{text}}}" for kind, text in segments)
    if normalised in RESERVED_PATHS:
        raise RouteRefused(
            "path",
            f"{normalised} is served by the user API itself (the project's OpenAPI, the "
            "form login)",
        )
    if form:
        return _form_route(definition, normalised, tuple(segments))
    method = _static(definition, "method") or "POST"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise RouteRefused("method", f"{method!r}: one of {', '.join(METHODS)}")
    code = _static(definition, "success_code")
    success = 200 if code is None else _whole(code)
    if success not in SUCCESS_CODES:
        raise RouteRefused("success_code", f"{code!r}: 200 or 201 (202 answers a late run)")
    timeout = _static(definition, "timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_SECONDS
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise RouteRefused("timeout", f"{timeout!r}: a whole number of seconds, 0 or more")
    params = {name for kind, name in segments if kind == "param"}
    for io in trigger.fields:
        origin = io.origin or "body"
        where = f"output {io.name}"
        if origin not in ORIGINS:
            raise RouteRefused(where, f"origin {origin!r}: one of {', '.join(ORIGINS)}")
        if origin != "body" and io.type in FILE_TYPES:
            raise RouteRefused(
                where, f"a {io.type} comes in the body (multipart), not from the {origin}"
            )
        if origin == "path" and io.name not in params:
            raise RouteRefused(
                where, f"origin path, but the path {normalised} has no {{{io.name}}}"
            )
        if origin == "header" and header_name(io.name) in FORBIDDEN_HEADERS:
            raise RouteRefused(
                where, "this header carries the caller's credentials: it is never given to a run"
            )
    path_fields = {f.name for f in trigger.fields if (f.origin or "body") == "path"}
    missing = sorted(params - path_fields)
    if missing:
        raise RouteRefused(
            "path", f"{{{missing[0]}}} is not an output of origin path of the trigger"
        )
    tags = _static(definition, "tags")
    return Route(
        path=normalised,
        method=method.upper(),
        segments=tuple(segments),
        success_code=success,
        timeout_seconds=int(timeout),
        summary=str(_static(definition, "summary") or ""),
        description=str(_static(definition, "description") or ""),
        tags=tuple(t.strip() for t in str(tags or "").split(",") if t.strip()),
        fields=trigger.fields,
    )


def _form_route(
    definition: WorkflowDefinition, path: str, segments: tuple[tuple[str, str], ...]
) -> Route:
    """The route of a form: a path without parameters, every field from the form."""
    if any(kind == "param" for kind, _ in segments):
        raise RouteRefused("path", f"{path!r}: a form's path has no {{parameters}}")
    timeout = _static(definition, "timeout")
    if timeout is None:
        timeout = DEFAULT_FORM_TIMEOUT_SECONDS
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise RouteRefused("timeout", f"{timeout!r}: a whole number of seconds, 0 or more")
    for io in definition.trigger.fields:
        why = form_type_problem(io)
        if why:
            raise RouteRefused(f"output {io.name}", why)
    return Route(
        path=path,
        method="POST",
        segments=segments,
        timeout_seconds=int(timeout),
        summary=str(_static(definition, "title") or ""),
        description=str(_static(definition, "description") or ""),
        fields=definition.trigger.fields,
        form=True,
    )


def _whole(value: Value) -> int:
    """A status code given as a number or as text ("201"); 0 if it is neither."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def conflict(route: Route, others: Iterable[tuple[str, Route]]) -> str | None:
    """Why `route` cannot be served next to `others` (label, route), or None."""
    for label, other in others:
        shared = [m for m in route.methods if m in other.methods]
        if shared and other.shape == route.shape:
            what = "the form " if other.form else ""
            return f"{shared[0]} {route.path} is already served by {label} ({what}{other.path})"
    return None


def serves(d: Deployment) -> bool:
    """A deployment that holds its route: not going away, not failed."""
    return not d.is_gone and d.state is not DeploymentState.FAILED


def user_api_refusal(d: Deployment, deployments: Iterable[Deployment]) -> str | None:
    """Why deployment `d` cannot be served on the user API (a bad setting of its trigger, or
    its method and path taken by another workflow of the project), or None. Another
    deployment of the same workflow (a redeploy) does not count: it goes away."""
    try:
        route = route_of(d.definition)
    except RouteRefused as exc:
        return f"user API: {exc.detail}"
    if route is None:
        return None
    others = []
    for other in deployments:
        if other.id == d.id or other.project_id != d.project_id or not serves(other):
            continue
        if other.workflow_id == d.workflow_id:
            continue
        try:
            other_route = route_of(other.definition)
        except RouteRefused:
            continue
        if other_route is not None:
            label = f"workflow {other.workflow_name} (deployment {other.id})"
            others.append((label, other_route))
    why = conflict(route, others)
    return f"user API: {why}" if why else None


def header_name(field_name: str) -> str:
    """The header a field of origin header is read from: its name, `_` as `-`, any case."""
    return field_name.replace("_", "-").lower()


@dataclass
class Match:
    route_key: str
    route: Route
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class RouteTable:
    """The routes of one project; of the routes whose path matches a request, segments are
    compared from the left and a literal beats a parameter (/items/special over /items/{id})."""

    routes: dict[str, Route] = field(default_factory=dict)

    def match(self, method: str, raw_path: str) -> Match | list[str] | None:
        """The match; else the methods the path is served with (405); else None (404).
        `raw_path` is still percent-encoded: each segment is decoded after the split, so an
        encoded / stays inside its parameter."""
        wanted = tuple(unquote(s) for s in split_path(raw_path))
        candidates: list[Match] = []
        for key, route in self.routes.items():
            params = _match(route, wanted)
            if params is not None:
                candidates.append(Match(key, route, params))
        if not candidates:
            return None
        same = [c for c in candidates if method.upper() in c.route.methods]
        if not same:
            return sorted({m for c in candidates for m in c.route.methods})
        return max(same, key=lambda c: _rank(c.route))


def _rank(route: Route) -> tuple[int, ...]:
    return tuple(1 if kind == "lit" else 0 for kind, _ in route.segments)


def _match(route: Route, segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(segments) != len(route.segments):
        return None
    params: dict[str, str] = {}
    for (kind, text), given in zip(route.segments, segments, strict=True):
        if kind == "lit":
            if text != given:
                return None
        else:
            params[text] = given
    return params


def text_value(io: IO, origin: str, text: str) -> Value:
    """A field given as text (path, query, header) -> a value of its type; InvalidInput names
    the field and where it came from."""
    return parse_text(io.type, f"{io.name} (from the {origin})", text, io.enum_values)


def pick_headers(route: Route, headers: Mapping[str, str]) -> dict[str, str]:
    """The texts of the header fields present (header names compared in any case, `_` and `-`
    alike)."""
    by_name: dict[str, str] = {}
    for name, value in headers.items():
        by_name.setdefault(name.replace("_", "-").lower(), value)
    return {
        io.name: by_name[header_name(io.name)]
        for io in route.of_origin("header")
        if header_name(io.name) in by_name
    }
