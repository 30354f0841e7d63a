"""Typed routes that feed an OpenAPI 3.1 document, so the document cannot drift from the code.

    api = Api(title="Ryax runner", prefix="/runner")

    @api.route("GET", "/v1/projects/{project}/runs", summary="List runs", tag="runs",
               response=RunList, query=(Param("state", "only runs in this state"),))
    async def list_runs(request: web.Request) -> web.Response: ...

Path parameters come from the path (a router pattern such as `{key:.+}` is documented as
`{key}`). Every operation documents its error answers with the shared `Error` schema: 400, 401
and 403 (with a token), 404 when its path names an object (a parameter other than `project`),
413 when it takes a body, and those the route lists.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^{}]*)?\}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. not_found"},
        "detail": {"description": "what is wrong and where"},
    },
}


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    description: str
    type: Literal["string", "integer", "boolean", "number"] = "string"
    required: bool = False
    default: Any = None
    enum: tuple[str, ...] = ()

    def openapi(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.default is not None:
            schema["default"] = self.default
        if self.enum:
            schema["enum"] = list(self.enum)
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": schema,
        }


@dataclass(frozen=True, kw_only=True)
class RouteDoc:
    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    query: tuple[Param, ...] = ()
    #: A body that is not JSON: its media type (a string body, e.g. application/yaml) ...
    body_media: str | None = None
    #: ... or the whole OpenAPI `content` object (e.g. multipart/form-data with its fields).
    body_content: Mapping[str, Any] | None = None
    #: False when the route also accepts an empty body (OpenAPI `requestBody.required`).
    body_required: bool = True
    #: An answer that is not JSON (e.g. application/yaml, application/octet-stream) ...
    response_media: str | None = None
    #: ... and its schema (default: a string); for text/event-stream, the schema of one event.
    response_schema: Mapping[str, Any] | None = None
    #: ... or the whole OpenAPI `content` object of the success answer (several media types).
    response_content: Mapping[str, Any] | None = None
    #: Other success answers: status -> (description, JSON model or None).
    more_responses: Mapping[int, tuple[str, type[BaseModel] | None]] = field(default_factory=dict)
    errors: Mapping[int, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)
def openapi_path(path: str) -> str:
    """`/files/{key:.+}` (the router's pattern) -> `/files/{key}` (OpenAPI); a route's own
    pattern, so cached (the body limit asks at every request)."""
    return _PATH_PARAM.sub(r"{\1}", path)


@dataclass
class Api:
    """Collects routes with their schemas and serves them with an OpenAPI document."""

    title: str
    prefix: str
    version: str = "1.0.0"
    description: str = ""
    docs: list[RouteDoc] = field(default_factory=list)
    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: bool = True,
        query: Sequence[Param] = (),
        body_media: str | None = None,
        body_content: Mapping[str, Any] | None = None,
        body_required: bool = True,
        response_media: str | None = None,
        response_schema: Mapping[str, Any] | None = None,
        response_content: Mapping[str, Any] | None = None,
        more_responses: Mapping[int, tuple[str, type[BaseModel] | None]] | None = None,
        errors: Mapping[int, str] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.route(method, self.prefix + path)(handler)
            self.docs.append(
                RouteDoc(
                    method=method.lower(),
                    path=self.prefix + path,
                    summary=summary,
                    tag=tag,
                    body=body,
                    response=response,
                    status=status,
                    auth=auth,
                    query=tuple(query),
                    body_media=body_media,
                    body_content=body_content,
                    body_required=body_required,
                    response_media=response_media,
                    response_schema=response_schema,
                    response_content=response_content,
                    more_responses=dict(more_responses or {}),
                    errors=dict(errors or {}),
                )
            )
            return handler

        return register

    def openapi(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

        def ref(model: type[BaseModel]) -> dict[str, str]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        def error(text: str) -> dict[str, Any]:
            return {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }

        for d in self.docs:
            path = openapi_path(d.path)
            op: dict[str, Any] = {
                "summary": d.summary,
                "tags": [d.tag],
                "operationId": _operation_id(d.method, path),
                "responses": {},
            }
            path_names = _PATH_PARAM.findall(d.path)
            params: list[dict[str, Any]] = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in path_names
            ]
            params += [p.openapi() for p in d.query]
            if params:
                op["parameters"] = params
            content: dict[str, Any] | None = None
            if d.body_content is not None:
                content = dict(d.body_content)
            elif d.body_media is not None:
                content = {d.body_media: {"schema": {"type": "string"}}}
            elif d.body is not None:
                content = {"application/json": {"schema": ref(d.body)}}
            if content is not None:
                op["requestBody"] = {"required": d.body_required, "content": content}
            ok: dict[str, Any] = {"description": "success"}
            if d.response_content is not None:
                ok["content"] = dict(d.response_content)
            elif d.response_media is not None:
                schema = dict(d.response_schema or {"type": "string"})
                ok["content"] = {d.response_media: {"schema": schema}}
            elif d.response is not None:
                ok["content"] = {"application/json": {"schema": ref(d.response)}}
            op["responses"][str(d.status)] = ok
            for code, (text, model) in d.more_responses.items():
                more: dict[str, Any] = {"description": text}
                if model is not None:
                    more["content"] = {"application/json": {"schema": ref(model)}}
                op["responses"][str(code)] = more
            op["responses"]["400"] = error("invalid input, the detail names the field")
            if d.auth:
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = error("missing, invalid or expired token")
                op["responses"]["403"] = error("no access to this project")
            objects = [name for name in path_names if name != "project"]
            if objects:
                op["responses"]["404"] = error(f"no such {' or '.join(objects)}")
            if content is not None:
                op["responses"]["413"] = error("the body is over this route's limit")
            for code, text in d.errors.items():
                op["responses"][str(code)] = error(text)
            paths.setdefault(path, {})[d.method] = op
        info: dict[str, Any] = {"title": self.title, "version": self.version}
        if self.description:
            info["description"] = self.description
        return {
            "openapi": "3.1.0",
            "info": info,
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
        }


def _operation_id(method: str, path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path) if w]
    return "_".join([method, *words])
