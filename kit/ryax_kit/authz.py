"""The authorization contract, client side, for every user-facing service.

Every project-scoped request carries `Authorization: Bearer <token>` and names its project in
the path. The client asks the authorization service
`GET {RYAX_AUTHORIZATION_URL}/authorization/v1/authorize?project=<id or name>&operation=<op>`
(read: viewer, write: developer, manage: owner; trigger: developer, or a project API key) and
caches the answer, so a burst of requests costs one round trip. A revoked token or a removed
member therefore keeps access for at most `ttl_seconds` (default 10 s); refusals (401/403) are
cached for at most 2 s. The authorization service unreachable or failing: 503, never cached.

A project API key (the bearer token of a machine calling the user API) is answered for its own
project and the operation `trigger` only; `Access.api_key_id` says the caller is one, and
`require` refuses such an access for any other operation, whatever the service answered.

Platform-wide routes (no project, e.g. the runner's sites) are for admins: `require_admin`
asks `GET {RYAX_AUTHORIZATION_URL}/authorization/v1/me` who the token is (cached the same way)
and answers 403 unless the service says `is_admin`.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from aiohttp import web

from .web.auth import bearer_token
from .web.errors import HttpError


class Operation(StrEnum):
    READ = "read"
    WRITE = "write"
    MANAGE = "manage"
    #: Call the user API of the project (`/user-api/...`): developers and project API keys.
    TRIGGER = "trigger"


@dataclass(frozen=True, kw_only=True)
class Access:
    user_id: str
    username: str
    is_admin: bool
    project_id: str
    project_name: str
    role: str
    #: Set when the caller is a project API key (it may only `trigger`).
    api_key_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who a token is, platform-wide (no project): for the routes of admins."""

    user_id: str
    username: str
    is_admin: bool


class AuthorizationClient:
    def __init__(
        self,
        base_url: str,
        ttl_seconds: float = 10.0,
        max_entries: int = 10_000,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._ttl = ttl_seconds
        self._max = max_entries
        self._timeout = timeout_seconds
        self._cache: OrderedDict[tuple[str, str, str], tuple[float, Access | HttpError]] = (
            OrderedDict()
        )
        self._session: aiohttp.ClientSession | None = None
        self._callers: OrderedDict[str, tuple[float, Caller | HttpError]] = OrderedDict()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check(self, token: str, project: str, operation: Operation) -> Access:
        """The caller's access to `project`, or an HttpError 401/403 (503 if unreachable)."""
        key = (hashlib.sha256(token.encode()).hexdigest(), project, str(operation))
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            if isinstance(cached[1], HttpError):
                raise cached[1]
            return cached[1]
        result = await self._ask(token, project, operation)
        ttl = self._ttl if isinstance(result, Access) else min(self._ttl, 2.0)
        self._cache[key] = (now + ttl, result)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        if isinstance(result, HttpError):
            raise result
        return result

    async def _ask(self, token: str, project: str, operation: Operation) -> Access | HttpError:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._session.get(
                f"{self._base}/authorization/v1/authorize",
                params={"project": project, "operation": str(operation)},
                headers={"Authorization": f"Bearer {token}"},
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 200:
                    return Access(
                        user_id=body["user_id"],
                        username=body["username"],
                        is_admin=body["is_admin"],
                        project_id=body["project_id"],
                        project_name=body["project_name"],
                        role=body["role"],
                        api_key_id=str(body.get("api_key_id") or ""),
                    )
                if resp.status in (401, 403):
                    return HttpError(
                        resp.status,
                        str(body.get("error", "forbidden")),
                        str(body.get("detail", "no access")),
                    )
                raise HttpError(
                    503,
                    "authorization_unavailable",
                    f"the authorization service answered {resp.status}",
                )
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            raise HttpError(
                503,
                "authorization_unavailable",
                f"the authorization service cannot be reached: {type(exc).__name__}",
            ) from exc

    async def caller(self, token: str) -> Caller:
        """Who the token is, platform-wide (`GET /authorization/v1/me`), cached like `check`;
        an HttpError 401 for an invalid token, 503 when the service cannot answer."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._callers.get(key)
        if cached is None or cached[0] <= now:
            result = await self._ask_me(token)
            ttl = self._ttl if isinstance(result, Caller) else min(self._ttl, 2.0)
            cached = self._callers[key] = (now + ttl, result)
            self._callers.move_to_end(key)
            while len(self._callers) > self._max:
                self._callers.popitem(last=False)
        if isinstance(cached[1], HttpError):
            raise cached[1]
        return cached[1]

    async def _ask_me(self, token: str) -> Caller | HttpError:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._session.get(
                f"{self._base}/authorization/v1/me", headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 200:
                    return Caller(
                        user_id=str(body["id"]),
                        username=str(body["username"]),
                        is_admin=body["is_admin"] is True,
                    )
                if resp.status in (401, 403):
                    return HttpError(
                        resp.status,
                        str(body.get("error", "unauthenticated")),
                        str(body.get("detail", "invalid token")),
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise HttpError(
                503,
                "authorization_unavailable",
                f"the authorization service cannot be reached: {type(exc).__name__}",
            ) from exc
        raise HttpError(
            503, "authorization_unavailable", f"the authorization service answered {resp.status}"
        )


AUTHZ = web.AppKey("authz", AuthorizationClient)


async def require(request: web.Request, operation: Operation, project: str | None = None) -> Access:
    """Check the caller against the project named in the path (`{project}`). A project API key
    passes for `trigger` only."""
    token = bearer_token(request)
    name = project or request.match_info.get("project", "")
    if not name:
        raise HttpError(400, "invalid_input", "project: missing in the path")
    access = await request.app[AUTHZ].check(token, name, operation)
    if access.api_key_id and operation is not Operation.TRIGGER:
        raise HttpError(
            403,
            "forbidden",
            "a project API key only calls the user API (/user-api/...) of its project",
        )
    return access


async def require_admin(request: web.Request) -> Caller:
    """For platform-wide routes (no project, e.g. the runner's sites): the caller if the
    authorization service says it is an admin (`/v1/me`); 401 without a valid token, else 403."""
    caller = await request.app[AUTHZ].caller(bearer_token(request))
    if not caller.is_admin:
        raise HttpError(403, "forbidden", "admins only")
    return caller
