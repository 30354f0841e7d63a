"""The authorization contract, client side, for every user-facing service.

Every project-scoped request carries `Authorization: Bearer <token>` and names its project in
the path. The client asks the authorization service
`GET {RYAX_AUTHORIZATION_URL}/authorization/v1/authorize?project=<id or name>&operation=<op>`
(read: viewer, write: developer, manage: owner) and caches the answer, so a burst of requests
costs one round trip. A revoked token or a removed member therefore keeps access for at most
`ttl_seconds` (default 10 s); refusals (401/403) are cached for at most 2 s. The authorization
service unreachable or failing: 503, never cached.
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


@dataclass(frozen=True, kw_only=True)
class Access:
    user_id: str
    username: str
    is_admin: bool
    project_id: str
    project_name: str
    role: str


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


AUTHZ = web.AppKey("authz", AuthorizationClient)


async def require(request: web.Request, operation: Operation, project: str | None = None) -> Access:
    """Check the caller against the project named in the path (`{project}`)."""
    token = bearer_token(request)
    name = project or request.match_info.get("project", "")
    if not name:
        raise HttpError(400, "invalid_input", "project: missing in the path")
    return await request.app[AUTHZ].check(token, name, operation)
