"""HTTP API of the authorization service (prefix /authorization)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ryax_kit.web import Api, ErrorMapping, HttpError, Param, bearer_token, read_json

from ...application.use_cases import AuthorizationUseCases
from ...domain.errors import (
    AccountLocked,
    DomainError,
)
from ...domain.model import (
    ApiKeyId,
    MachineToken,
    Operation,
    Principal,
    Project,
    ProjectApiKey,
    ProjectId,
    Role,
    TokenId,
    User,
    UserId,
)

api = Api(title="Ryax authorization", prefix="/authorization")
USE_CASES = web.AppKey("use_cases", AuthorizationUseCases)


def _retry_after(exc: Exception) -> dict[str, str] | None:
    if isinstance(exc, AccountLocked):
        return {"Retry-After": str(exc.retry_after_seconds)}
    return None


#: Domain errors -> HTTP answers: by their code (ryax_kit.web.STATUS_BY_CODE: not_found 404...),
#: except those listed here.
ERRORS = ErrorMapping(base=DomainError, statuses={AccountLocked: 429}, headers=_retry_after)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    id: str
    username: str
    is_admin: bool
    created_at: datetime


class LoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserOut


class PasswordIn(Strict):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class UserIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    is_admin: bool = False


class UsersOut(BaseModel):
    users: list[UserOut]


class ProjectIn(Strict):
    name: str = Field(min_length=1, max_length=63)
    owner_id: str | None = Field(
        None, description="its first owner: a user id or a username (default: the caller)"
    )


class MemberOut(BaseModel):
    user_id: str
    username: str = Field(description="empty for a user that no longer exists")
    role: Role


class ProjectOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    role: Role | None = None
    members: list[MemberOut] | None = None


class ProjectsOut(BaseModel):
    projects: list[ProjectOut]


class MemberIn(Strict):
    role: Role


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="shown once, store it now")


class TokensOut(BaseModel):
    tokens: list[TokenOut]


class AccessOut(BaseModel):
    user_id: str
    username: str
    is_admin: bool
    project_id: str
    project_name: str
    role: Role
    api_key_id: str | None = Field(
        default=None,
        description="set when the caller is a project API key: it may only `trigger` (call "
        "the project's user API)",
    )


class ApiKeyIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class ApiKeyOut(BaseModel):
    id: str
    project_id: str
    name: str
    created_at: datetime
    created_by: str | None = Field(description="the user who created it")
    last_used_at: datetime | None = Field(description="to the minute")
    revoked: bool
    revoked_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(
        description="shown once, store it now: `Authorization: Bearer <key>` on the user API"
    )


class ApiKeysOut(BaseModel):
    api_keys: list[ApiKeyOut]


class JwkOut(BaseModel):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(description="the public key, base64url")
    kid: str = Field(description="the key id access tokens name in their header")
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JwksOut(BaseModel):
    keys: list[JwkOut] = Field(description="the current key first, then previous ones")


class MeOut(BaseModel):
    id: str
    username: str
    is_admin: bool
    projects: list[ProjectOut]


def _user(u: User) -> UserOut:
    return UserOut(id=u.id, username=u.username, is_admin=u.is_admin, created_at=u.created_at)


def _project(
    p: Project, role: Role | None = None, names: dict[UserId, str] | None = None
) -> ProjectOut:
    """The project; with its members (and their usernames) when `names` is given."""
    return ProjectOut(
        id=p.id,
        name=p.name,
        created_at=p.created_at,
        role=role,
        members=(
            [MemberOut(user_id=u, username=names.get(u, ""), role=r) for u, r in p.members.items()]
            if names is not None
            else None
        ),
    )


async def _with_members(
    request: web.Request, p: Project, role: Role | None, status: int = 200
) -> web.Response:
    names = await request.app[USE_CASES].member_names(p)
    return _json(_project(p, role, names), status)


def _token(t: MachineToken) -> TokenOut:
    return TokenOut(
        id=t.id,
        name=t.name,
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked_at=t.revoked_at,
    )


def _api_key(k: ProjectApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id,
        project_id=k.project_id,
        name=k.name,
        created_at=k.created_at,
        created_by=k.created_by,
        last_used_at=k.last_used_at,
        revoked=k.revoked,
        revoked_at=k.revoked_at,
    )


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


async def _caller(request: web.Request) -> Principal:
    return await request.app[USE_CASES].authenticate(bearer_token(request))


@api.route(
    "POST",
    "/v1/login",
    summary="Log in: returns an expiring access token",
    tag="sessions",
    body=LoginIn,
    response=LoginOut,
    auth=False,
    errors={
        401: "wrong username or password",
        429: "too many failures in a row: locked for a while (Retry-After)",
    },
)
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, LoginIn)
    result = await request.app[USE_CASES].login(body.username, body.password)
    return _json(
        LoginOut(
            access_token=result.access_token, expires_at=result.expires_at, user=_user(result.user)
        )
    )


@api.route(
    "GET",
    "/.well-known/jwks.json",
    summary=(
        "The public keys that verify access tokens (JWKS, Ed25519 with kid): the current one "
        "and those kept while a key is rotated"
    ),
    tag="sessions",
    response=JwksOut,
    auth=False,
)
async def jwks(request: web.Request) -> web.Response:
    keys = JwksOut.model_validate(request.app[USE_CASES].public_keys())
    response = _json(keys)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@api.route(
    "POST",
    "/v1/logout",
    summary="Revoke the access token used for this call",
    tag="sessions",
    status=204,
)
async def logout(request: web.Request) -> web.Response:
    token = bearer_token(request)
    await request.app[USE_CASES].authenticate(token)
    if not token.startswith("ryax_"):
        await request.app[USE_CASES].logout(token)
    return web.Response(status=204)


@api.route("GET", "/v1/me", summary="The caller and their projects", tag="sessions", response=MeOut)
async def me(request: web.Request) -> web.Response:
    caller = await _caller(request)
    projects = await request.app[USE_CASES].list_projects(caller)
    return _json(
        MeOut(
            id=caller.user_id,
            username=caller.username,
            is_admin=caller.is_admin,
            projects=[_project(p, r) for p, r in projects],
        )
    )


@api.route(
    "PUT",
    "/v1/me/password",
    summary="Change one's own password",
    tag="sessions",
    body=PasswordIn,
    status=204,
    errors={429: "too many wrong old passwords in a row: locked for a while (Retry-After)"},
)
async def change_password(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json(request, PasswordIn)
    await request.app[USE_CASES].change_password(caller, body.old_password, body.new_password)
    return web.Response(status=204)


@api.route(
    "GET",
    "/v1/authorize",
    summary=(
        "The authorization contract: is the caller allowed to do `operation` (read, write, "
        "manage, trigger) in `project` (id or name)? 200 with the effective role, 401 or 403 "
        "otherwise. A project API key may `trigger` its own project only"
    ),
    tag="contract",
    response=AccessOut,
    query=(
        Param("project", "the project: its id or its name", required=True),
        Param(
            "operation",
            "what the caller wants to do",
            default=Operation.READ.value,
            enum=tuple(o.value for o in Operation),
        ),
    ),
)
async def authorize(request: web.Request) -> web.Response:
    token = bearer_token(request)
    project = request.query.get("project", "")
    if not project:
        raise HttpError(400, "invalid_input", "project: query parameter is required")
    try:
        operation = Operation(request.query.get("operation", "read"))
    except ValueError as exc:
        raise HttpError(
            400, "invalid_input", "operation: must be one of read, write, manage, trigger"
        ) from exc
    access = await request.app[USE_CASES].authorize(token, ProjectId(project), operation)
    return _json(
        AccessOut(
            user_id=access.principal.user_id,
            username=access.principal.username,
            is_admin=access.principal.is_admin,
            project_id=access.project_id,
            project_name=access.project_name,
            role=access.role,
            api_key_id=access.principal.api_key_id,
        )
    )


@api.route(
    "POST",
    "/v1/users",
    summary="Create a user (admins)",
    tag="users",
    body=UserIn,
    response=UserOut,
    status=201,
)
async def create_user(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json(request, UserIn)
    user = await request.app[USE_CASES].create_user(
        caller, body.username, body.password, body.is_admin
    )
    return _json(_user(user), 201)


@api.route("GET", "/v1/users", summary="List users (admins)", tag="users", response=UsersOut)
async def list_users(request: web.Request) -> web.Response:
    users = await request.app[USE_CASES].list_users(await _caller(request))
    return _json(UsersOut(users=[_user(u) for u in users]))


@api.route(
    "POST",
    "/v1/projects",
    summary="Create a project (admins); owner_id is a user id or a username (default: you)",
    tag="projects",
    body=ProjectIn,
    response=ProjectOut,
    status=201,
    errors={409: "a project of that name exists"},
)
async def create_project(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json(request, ProjectIn)
    owner = UserId(body.owner_id) if body.owner_id else None
    project = await request.app[USE_CASES].create_project(caller, body.name, owner)
    return await _with_members(request, project, Role.OWNER, 201)


@api.route(
    "GET", "/v1/projects", summary="Projects of the caller", tag="projects", response=ProjectsOut
)
async def list_projects(request: web.Request) -> web.Response:
    projects = await request.app[USE_CASES].list_projects(await _caller(request))
    return _json(ProjectsOut(projects=[_project(p, r) for p, r in projects]))


@api.route(
    "GET",
    "/v1/projects/{project}",
    summary="A project with its members",
    tag="projects",
    response=ProjectOut,
    errors={404: "no such project"},
)
async def get_project(request: web.Request) -> web.Response:
    caller = await _caller(request)
    project = await request.app[USE_CASES].get_project(
        caller, ProjectId(request.match_info["project"])
    )
    return await _with_members(request, project, project.role_of(caller.user_id))


@api.route(
    "PUT",
    "/v1/projects/{project}/members/{user}",
    summary="Add a member or change their role (owners); user is an id or a username",
    tag="projects",
    body=MemberIn,
    response=ProjectOut,
    errors={404: "no such project or user"},
)
async def set_member(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json(request, MemberIn)
    project = await request.app[USE_CASES].set_member(
        caller,
        ProjectId(request.match_info["project"]),
        UserId(request.match_info["user"]),
        body.role,
    )
    return await _with_members(request, project, project.role_of(caller.user_id))


@api.route(
    "DELETE",
    "/v1/projects/{project}/members/{user}",
    summary="Remove a member (owners)",
    tag="projects",
    response=ProjectOut,
    errors={404: "no such project or user"},
)
async def remove_member(request: web.Request) -> web.Response:
    caller = await _caller(request)
    project = await request.app[USE_CASES].remove_member(
        caller, ProjectId(request.match_info["project"]), UserId(request.match_info["user"])
    )
    return await _with_members(request, project, project.role_of(caller.user_id))


@api.route(
    "POST",
    "/v1/tokens",
    summary="Create a machine token (shown once)",
    tag="tokens",
    body=TokenIn,
    response=NewTokenOut,
    status=201,
)
async def create_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json(request, TokenIn)
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    new = await request.app[USE_CASES].create_machine_token(caller, body.name, expires)
    out = _token(new.record)
    return _json(NewTokenOut(**out.model_dump(), token=new.token), 201)


@api.route(
    "GET",
    "/v1/tokens",
    summary="The caller's machine tokens (without their value)",
    tag="tokens",
    response=TokensOut,
)
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[USE_CASES].list_machine_tokens(await _caller(request))
    return _json(TokensOut(tokens=[_token(t) for t in tokens]))


@api.route(
    "DELETE", "/v1/tokens/{token_id}", summary="Revoke a machine token", tag="tokens", status=204
)
async def revoke_token(request: web.Request) -> web.Response:
    caller = await _caller(request)
    await request.app[USE_CASES].revoke_machine_token(
        caller, TokenId(request.match_info["token_id"])
    )
    return web.Response(status=204)


@api.route(
    "POST",
    "/v1/projects/{project}/api-keys",
    summary="Create a project API key (owners, admins): it calls the project's user API and "
    "nothing else; the key is shown once",
    tag="api-keys",
    body=ApiKeyIn,
    response=NewApiKeyOut,
    status=201,
    errors={409: "a key in use has this name"},
)
async def create_api_key(request: web.Request) -> web.Response:
    caller = await _caller(request)
    body = await read_json(request, ApiKeyIn)
    new = await request.app[USE_CASES].create_api_key(
        caller, ProjectId(request.match_info["project"]), body.name
    )
    return _json(NewApiKeyOut(**_api_key(new.record).model_dump(), key=new.key), 201)


@api.route(
    "GET",
    "/v1/projects/{project}/api-keys",
    summary="The project's API keys, revoked ones too, without their value (members)",
    tag="api-keys",
    response=ApiKeysOut,
)
async def list_api_keys(request: web.Request) -> web.Response:
    keys = await request.app[USE_CASES].list_api_keys(
        await _caller(request), ProjectId(request.match_info["project"])
    )
    return _json(ApiKeysOut(api_keys=[_api_key(k) for k in keys]))


@api.route(
    "DELETE",
    "/v1/projects/{project}/api-keys/{key_id}",
    summary="Revoke a project API key (owners, admins): refused from then on",
    tag="api-keys",
    response=ApiKeyOut,
    errors={404: "no such key in this project"},
)
async def revoke_api_key(request: web.Request) -> web.Response:
    key = await request.app[USE_CASES].revoke_api_key(
        await _caller(request),
        ProjectId(request.match_info["project"]),
        ApiKeyId(request.match_info["key_id"]),
    )
    return _json(_api_key(key))
