"""`require` and project API keys: whatever the authorization service answers, an API key's
access passes for `trigger` only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ryax_kit.authz import AUTHZ, AuthorizationClient, Operation, require


async def _permissive_contract(request: web.Request) -> web.Response:
    """A contract that (wrongly) lets the key through for any operation."""
    key = request.headers.get("Authorization", "") == "Bearer ryaxpk_key"
    return web.json_response(
        {
            "user_id": "api-key:k1" if key else "u1",
            "username": "api-key:ci" if key else "alice",
            "is_admin": False,
            "project_id": "p1",
            "project_name": "demo",
            "role": "developer",
            "api_key_id": "k1" if key else None,
        }
    )


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    contract = web.Application()
    contract.router.add_get("/authorization/v1/authorize", _permissive_contract)
    contract_server = TestServer(contract)
    await contract_server.start_server()

    async def guarded(request: web.Request) -> web.Response:
        operation = Operation(request.match_info["operation"])
        try:
            access = await require(request, operation)
        except Exception as exc:  # noqa: BLE001 - the test reads the refusal
            return web.json_response({"refused": str(getattr(exc, "detail", exc))}, status=403)
        return web.json_response({"api_key_id": access.api_key_id})

    app = web.Application()
    app[AUTHZ] = AuthorizationClient(str(contract_server.make_url("")).rstrip("/"))
    app.router.add_get("/{project}/{operation}", guarded)
    async with TestClient(TestServer(app)) as c:
        yield c
    await app[AUTHZ].close()
    await contract_server.close()


async def test_an_api_key_passes_for_trigger_only(client: TestClient) -> None:  # type: ignore[type-arg]
    key = {"Authorization": "Bearer ryaxpk_key"}
    ok = await client.get("/demo/trigger", headers=key)
    assert ok.status == 200 and (await ok.json()) == {"api_key_id": "k1"}
    for operation in ("read", "write", "manage"):
        refused = await client.get(f"/demo/{operation}", headers=key)
        assert refused.status == 403
        assert "only calls the user API" in (await refused.json())["refused"]
    user = await client.get("/demo/read", headers={"Authorization": "Bearer alice"})
    assert user.status == 200 and (await user.json()) == {"api_key_id": ""}
