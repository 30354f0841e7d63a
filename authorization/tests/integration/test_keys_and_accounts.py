"""Signing keys, the JWKS, forged tokens, password changes and lockout, through the HTTP API on
the real PostgreSQL (and the kit's authz client, as every other service asks)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ryax_authorization.app import create_app
from ryax_authorization.container import Container
from ryax_authorization.settings import Settings
from ryax_kit.authz import AuthorizationClient, Operation
from ryax_kit.web import HttpError

from .test_api import write_signing_key

pytestmark = pytest.mark.integration
PASSWORD = "admin password for tests"
JWKS = "/authorization/.well-known/jwks.json"


@asynccontextmanager
async def serve(
    database: str, key: Path, *previous: Path, max_failures: int = 3
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(
        database_url=database,
        signing_key_file=key,
        signing_key_previous_files=previous,
        admin_user="admin",
        admin_password=PASSWORD,
        login_max_failures=max_failures,
        login_lock_seconds=60,
    )
    async with TestClient(TestServer(create_app(Container(settings=settings)))) as client:
        yield client


async def login(client: TestClient, user: str = "admin", password: str = PASSWORD) -> str:  # type: ignore[type-arg]
    resp = await client.post(
        "/authorization/v1/login", json={"username": user, "password": password}
    )
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(client: TestClient, token: str) -> int:  # type: ignore[type-arg]
    return (await client.get("/authorization/v1/me", headers=bearer(token))).status


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def test_security_forged_tokens_are_refused_by_the_contract_and_every_service(
    fresh_database: str, tmp_path: Path
) -> None:
    """Tokens with the right claims for the admin, made with a leaked service secret (HS256),
    another Ed25519 key naming the real kid, or no signature: 401 from the authorize call, and
    so from the kit's authz client every other service checks access with."""
    key = write_signing_key(tmp_path / "signing-key.pem")
    async with serve(fresh_database, key) as client:
        token = await login(client)
        created = await client.post(
            "/authorization/v1/projects", headers=bearer(token), json={"name": "demo"}
        )
        assert created.status == 201
        admin_id = (await (await client.get("/authorization/v1/me", headers=bearer(token))).json())[
            "id"
        ]
        kid = jwt.get_unverified_header(token)["kid"]
        now = datetime.now(UTC)
        claims = {
            "sub": admin_id,
            "jti": str(uuid.uuid4()),
            "iss": "ryax-authorization",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(hours=1)).timestamp()),
            "gen": 0,
        }
        leaked = "the-RYAX_SECRET_KEY-of-some-service-0123456789"
        forged = {
            "HS256 with a leaked service secret": jwt.encode(claims, leaked, algorithm="HS256"),
            "HS256 naming our kid": jwt.encode(
                claims, leaked, algorithm="HS256", headers={"kid": kid}
            ),
            "EdDSA with another key naming our kid": jwt.encode(
                claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
            ),
            "alg none": ".".join(
                [
                    _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode()),
                    _b64(json.dumps(claims).encode()),
                    "",
                ]
            ),
        }
        base = str(client.make_url("")).rstrip("/")
        authz = AuthorizationClient(base, ttl_seconds=0)
        try:
            assert (await authz.check(token, "demo", Operation.MANAGE)).role == "owner"
            for what, bad in forged.items():
                resp = await client.get(
                    "/authorization/v1/authorize",
                    params={"project": "demo", "operation": "manage"},
                    headers=bearer(bad),
                )
                assert resp.status == 401, what
                assert (await resp.json())["error"] == "unauthenticated", what
                assert await me_status(client, bad) == 401, what
                with pytest.raises(HttpError) as refused:
                    await authz.check(bad, "demo", Operation.READ)
                assert refused.value.status == 401, what
        finally:
            await authz.close()


async def test_security_the_jwks_serves_public_keys_only(
    fresh_database: str, tmp_path: Path
) -> None:
    key = write_signing_key(tmp_path / "signing-key.pem")
    async with serve(fresh_database, key) as client:
        resp = await client.get(JWKS)  # no token needed
        assert resp.status == 200
        assert "max-age" in resp.headers["Cache-Control"]
        text = await resp.text()
        jwks = json.loads(text)
        token = await login(client)
        (jwk,) = jwks["keys"]
        assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]
        assert (jwk["alg"], jwk["use"], jwk["crv"]) == ("EdDSA", "sig", "Ed25519")
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        raw = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        assert _b64(raw) not in text and "PRIVATE" not in text and '"d"' not in text
        # The public key verifies the token, as any holder of the JWKS could check.
        public = jwt.PyJWK(jwk).key
        assert jwt.decode(token, public, algorithms=["EdDSA"], options={"verify_iss": False})
        spec = await (await client.get("/authorization/openapi.json")).json()
        assert JWKS in spec["paths"]


async def test_rotating_the_signing_key_keeps_old_tokens_until_the_old_key_is_retired(
    fresh_database: str, tmp_path: Path
) -> None:
    old = write_signing_key(tmp_path / "old.pem")
    new = write_signing_key(tmp_path / "new.pem")
    async with serve(fresh_database, old) as client:
        old_token = await login(client)
        old_kid = jwt.get_unverified_header(old_token)["kid"]

    # Step 1: the new key signs, the old one is kept for verification.
    async with serve(fresh_database, new, old) as client:
        assert await me_status(client, old_token) == 200
        new_token = await login(client)
        new_kid = jwt.get_unverified_header(new_token)["kid"]
        assert new_kid != old_kid
        jwks = await (await client.get(JWKS)).json()
        assert [k["kid"] for k in jwks["keys"]] == [new_kid, old_kid]

    # Step 2 (after the old tokens' lifetime): the old key is retired.
    async with serve(fresh_database, new) as client:
        assert await me_status(client, new_token) == 200
        refused = await client.get("/authorization/v1/me", headers=bearer(old_token))
        assert refused.status == 401
        jwks = await (await client.get(JWKS)).json()
        assert [k["kid"] for k in jwks["keys"]] == [new_kid]


async def test_security_changing_a_password_revokes_the_users_tokens(
    fresh_database: str, tmp_path: Path
) -> None:
    key = write_signing_key(tmp_path / "signing-key.pem")
    async with serve(fresh_database, key) as client:
        admin = await login(client)
        created = await client.post(
            "/authorization/v1/users",
            headers=bearer(admin),
            json={"username": "alice", "password": "alice password 1"},
        )
        assert created.status == 201
        laptop = await login(client, "alice", "alice password 1")
        phone = await login(client, "alice", "alice password 1")
        machine = await client.post(
            "/authorization/v1/tokens", headers=bearer(laptop), json={"name": "ci"}
        )
        machine_token = (await machine.json())["token"]
        assert await me_status(client, machine_token) == 200

        changed = await client.put(
            "/authorization/v1/me/password",
            headers=bearer(phone),
            json={"old_password": "alice password 1", "new_password": "alice password 2"},
        )
        assert changed.status == 204
        for token in (laptop, phone, machine_token):
            resp = await client.get("/authorization/v1/me", headers=bearer(token))
            assert resp.status == 401
            assert "revoked" in (await resp.json())["detail"]
        fresh = await login(client, "alice", "alice password 2")
        assert await me_status(client, fresh) == 200
        assert await me_status(client, admin) == 200  # other users keep their sessions
        listed = await (await client.get("/authorization/v1/tokens", headers=bearer(fresh))).json()
        assert listed["tokens"][0]["revoked_at"] is not None


async def test_security_lockout_answers_the_same_for_unknown_and_real_usernames(
    fresh_database: str, tmp_path: Path
) -> None:
    key = write_signing_key(tmp_path / "signing-key.pem")
    async with serve(fresh_database, key, max_failures=3) as client:
        answers = {}
        for name in ("admin", "nobody-has-this-name"):
            seen = []
            for _ in range(4):
                resp = await client.post(
                    "/authorization/v1/login", json={"username": name, "password": "wrong"}
                )
                body = await resp.json()
                retry = resp.headers.get("Retry-After")
                seen.append((resp.status, body["error"], body["detail"], retry))
            answers[name] = seen
        assert answers["admin"] == answers["nobody-has-this-name"]
        assert [status for status, *_ in answers["admin"]] == [401, 401, 401, 429]
        assert answers["admin"][-1][3] is not None
        # The real account is locked even with its right password, as long as the lock lasts.
        locked = await client.post(
            "/authorization/v1/login", json={"username": "admin", "password": PASSWORD}
        )
        assert locked.status == 429


async def test_security_wrong_old_passwords_lock_the_password_change_as_documented(
    fresh_database: str, tmp_path: Path
) -> None:
    """Found by the OpenAPI fuzzing (tests/fuzz): the lock's 429 was not in the document."""
    key = write_signing_key(tmp_path / "signing-key.pem")
    async with serve(fresh_database, key, max_failures=3) as client:
        token = await login(client)
        statuses = []
        for _ in range(4):
            resp = await client.put(
                "/authorization/v1/me/password",
                headers=bearer(token),
                json={"old_password": "not the password", "new_password": "a new password 1"},
            )
            statuses.append(resp.status)
        assert statuses == [401, 401, 401, 429]
        assert resp.headers.get("Retry-After") is not None
        document = await (await client.get("/authorization/openapi.json")).json()
        answers = document["paths"]["/authorization/v1/me/password"]["put"]["responses"]
        assert "429" in answers and "401" in answers


async def test_text_no_database_keeps_is_a_400_and_a_taken_project_name_a_documented_409(
    fresh_database: str, tmp_path: Path
) -> None:
    """Found by the OpenAPI fuzzing (tests/fuzz): a NUL in an API key's name reached PostgreSQL
    (which refuses it in text): a 500; a taken project name answered an undocumented 409."""
    key = write_signing_key(tmp_path / "signing-key.pem")
    async with serve(fresh_database, key) as client:
        admin = bearer(await login(client))
        created = await client.post(
            "/authorization/v1/projects", headers=admin, json={"name": "team-p"}
        )
        assert created.status == 201
        project = (await created.json())["id"]
        again = await client.post(
            "/authorization/v1/projects", headers=admin, json={"name": "team-p"}
        )
        assert again.status == 409
        for url, body in (
            (f"/authorization/v1/projects/{project}/api-keys", {"name": "ci\u0000"}),
            ("/authorization/v1/projects", {"name": "q\u0000"}),
        ):
            resp = await client.post(url, headers=admin, json=body)
            assert resp.status == 400, url
            assert await resp.json() == {
                "error": "invalid_input",
                "detail": "name: contains a NUL character (U+0000), which cannot be stored",
            }
        document = await (await client.get("/authorization/openapi.json")).json()
        assert "409" in document["paths"]["/authorization/v1/projects"]["post"]["responses"]
