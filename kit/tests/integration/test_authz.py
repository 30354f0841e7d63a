"""The authz client against an authorization contract served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ryax_kit.authz import Access, AuthorizationClient, Operation
from ryax_kit.web import HttpError


class Contract:
    """What the authorization service answers: alice may read `demo`, nothing else."""

    def __init__(self) -> None:
        self.calls = 0
        self.status_override: int | None = None

    async def authorize(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.status_override is not None:
            return web.json_response({"error": "boom"}, status=self.status_override)
        token = request.headers.get("Authorization", "")
        if token != "Bearer alice":
            return web.json_response(
                {"error": "unauthenticated", "detail": "bad token"}, status=401
            )
        project = request.query["project"]
        if project != "demo" or request.query["operation"] != "read":
            return web.json_response({"error": "forbidden", "detail": "not a member"}, status=403)
        return web.json_response(
            {
                "user_id": "u1",
                "username": "alice",
                "is_admin": False,
                "project_id": "p1",
                "project_name": "demo",
                "role": "viewer",
            }
        )


@pytest.fixture
async def contract() -> AsyncIterator[tuple[Contract, str]]:
    c = Contract()
    app = web.Application()
    app.router.add_get("/authorization/v1/authorize", c.authorize)
    server = TestServer(app)
    await server.start_server()
    yield c, str(server.make_url("")).rstrip("/")
    await server.close()


async def test_access_is_granted_and_cached(contract: tuple[Contract, str]) -> None:
    c, url = contract
    client = AuthorizationClient(url, ttl_seconds=60)
    access = await client.check("alice", "demo", Operation.READ)
    assert access == Access(
        user_id="u1",
        username="alice",
        is_admin=False,
        project_id="p1",
        project_name="demo",
        role="viewer",
    )
    await client.check("alice", "demo", Operation.READ)
    assert c.calls == 1
    await client.close()


async def test_refusals_pass_through_with_their_code(contract: tuple[Contract, str]) -> None:
    _, url = contract
    client = AuthorizationClient(url)
    with pytest.raises(HttpError) as unauth:
        await client.check("mallory", "demo", Operation.READ)
    assert (unauth.value.status, unauth.value.error) == (401, "unauthenticated")
    with pytest.raises(HttpError) as forbidden:
        await client.check("alice", "demo", Operation.WRITE)
    assert (forbidden.value.status, forbidden.value.error) == (403, "forbidden")
    await client.close()


async def test_refusals_are_cached_briefly_only(contract: tuple[Contract, str]) -> None:
    c, url = contract
    client = AuthorizationClient(url, ttl_seconds=0.05)
    for _ in range(2):
        with pytest.raises(HttpError):
            await client.check("alice", "other", Operation.READ)
    assert c.calls == 1
    import asyncio

    await asyncio.sleep(0.06)
    with pytest.raises(HttpError):
        await client.check("alice", "other", Operation.READ)
    assert c.calls == 2
    await client.close()


async def test_a_failing_or_unreachable_authorization_service_is_503_and_not_cached(
    contract: tuple[Contract, str],
) -> None:
    c, url = contract
    client = AuthorizationClient(url)
    c.status_override = 500
    with pytest.raises(HttpError) as failing:
        await client.check("alice", "demo", Operation.READ)
    assert failing.value.status == 503
    c.status_override = None
    assert (await client.check("alice", "demo", Operation.READ)).role == "viewer"
    await client.close()

    gone = AuthorizationClient("http://127.0.0.1:9", timeout_seconds=1)
    with pytest.raises(HttpError) as unreachable:
        await gone.check("alice", "demo", Operation.READ)
    assert unreachable.value.status == 503
    assert "alice" not in unreachable.value.detail
    await gone.close()


async def test_the_cache_is_bounded(contract: tuple[Contract, str]) -> None:
    _, url = contract
    client = AuthorizationClient(url, max_entries=3)
    for project in ("a", "b", "c", "d", "e"):
        with pytest.raises(HttpError):
            await client.check("alice", project, Operation.READ)
    assert len(client._cache) == 3
    await client.close()
