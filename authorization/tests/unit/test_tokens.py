"""Access tokens signed with Ed25519: rotation of the signing key, the JWKS, and forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ryax_authorization.domain.errors import AuthenticationFailed
from ryax_authorization.domain.model import TokenId, UserId
from ryax_authorization.infrastructure.security import JwtAccessTokens, SigningKeys, key_id
from ryax_kit.settings import ConfigurationError

NOW = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tokens(current: Ed25519PrivateKey, *previous: Ed25519PrivateKey) -> JwtAccessTokens:
    return JwtAccessTokens(SigningKeys(current, [p.public_key() for p in previous]), HOUR)


def issue(t: JwtAccessTokens, generation: int = 0) -> str:
    return t.issue(UserId("u1"), TokenId("t1"), generation, NOW)[0]


def test_tokens_are_eddsa_with_the_kid_of_the_signing_key() -> None:
    key = Ed25519PrivateKey.generate()
    t = tokens(key)
    token = issue(t, generation=3)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] == key_id(key.public_key())
    claims = t.decode(token, NOW)
    assert (claims.user_id, claims.token_id, claims.generation) == ("u1", "t1", 3)
    assert claims.expires_at == NOW + HOUR
    with pytest.raises(AuthenticationFailed, match="expired"):
        t.decode(token, NOW + 2 * HOUR)


def test_rotating_the_signing_key_keeps_old_tokens_until_the_old_key_is_retired() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old_token = issue(tokens(old))

    rotated = tokens(new, old)  # new key signs; the old public key still verifies
    assert rotated.decode(old_token, NOW).token_id == "t1"
    new_token = issue(rotated)
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(new.public_key())
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [
        key_id(new.public_key()),
        key_id(old.public_key()),
    ]

    retired = tokens(new)
    assert retired.decode(new_token, NOW).token_id == "t1"
    with pytest.raises(AuthenticationFailed, match="invalid"):
        retired.decode(old_token, NOW)


def test_keys_from_pem_files(tmp_path: Path) -> None:
    current, old1, old2 = (Ed25519PrivateKey.generate() for _ in range(3))
    (tmp_path / "current.pem").write_bytes(private_pem(current))
    (tmp_path / "old.pem").write_bytes(public_pem(old1) + b"\n" + private_pem(old2))
    keys = SigningKeys.from_files(tmp_path / "current.pem", [tmp_path / "old.pem"])
    assert [k["kid"] for k in keys.jwks()["keys"]] == [
        key_id(k.public_key()) for k in (current, old1, old2)
    ]
    assert "current.pem" not in repr(keys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "RYAX_AUTH_SIGNING_KEY_FILE: cannot read"),
        (b"not a key", "RYAX_AUTH_SIGNING_KEY_FILE: .* is not a PEM Ed25519 private key"),
        ("public", "RYAX_AUTH_SIGNING_KEY_FILE: .* is not a PEM Ed25519 private key"),
    ],
)
def test_a_bad_signing_key_file_stops_the_start(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "key.pem"
    if content == "public":
        path.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigurationError, match=f"configuration error: {message}"):
        SigningKeys.from_files(path)


def test_a_bad_previous_key_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "current.pem").write_bytes(private_pem(Ed25519PrivateKey.generate()))
    (tmp_path / "empty.pem").write_text("nothing here\n")
    with pytest.raises(ConfigurationError, match=r"RYAX_AUTH_SIGNING_KEY_PREVIOUS_FILES: .*no PEM"):
        SigningKeys.from_files(tmp_path / "current.pem", [tmp_path / "empty.pem"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(generation: int = 0) -> dict[str, object]:
    return {
        "sub": "u1",
        "jti": "t1",
        "iss": "ryax-authorization",
        "iat": int(NOW.timestamp()),
        "exp": int((NOW + HOUR).timestamp()),
        "gen": generation,
    }


def hs256_by_hand(claims: dict[str, object], secret: bytes, kid: str) -> str:
    """PyJWT itself refuses a PEM key as an HMAC secret: an attacker would not."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(mac)}"


def test_security_forged_tokens_are_refused() -> None:
    """A token made with a leaked service secret (HS256), with another Ed25519 key (even naming
    our kid), with our public key as an HMAC secret, or unsigned (`alg: none`) is refused."""
    key = Ed25519PrivateKey.generate()
    t = tokens(key)
    kid = key_id(key.public_key())
    leaked_service_secret = "a-studio-RYAX_SECRET_KEY-that-leaked-0123456789"
    forged = [
        jwt.encode(_claims(), leaked_service_secret, algorithm="HS256"),
        jwt.encode(_claims(), leaked_service_secret, algorithm="HS256", headers={"kid": kid}),
        jwt.encode(
            _claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
        ),
        jwt.encode(_claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA"),
        # alg confusion: the public key (known to all through the JWKS) as an HMAC secret
        hs256_by_hand(_claims(), public_pem(key), kid),
        ".".join(
            [
                _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode()),
                _b64(json.dumps(_claims()).encode()),
                "",
            ]
        ),
        # a genuine signature over other claims
        issue(t).rsplit(".", 1)[0].rsplit(".", 1)[0]
        + "."
        + _b64(json.dumps({**_claims(), "sub": "admin"}).encode())
        + "."
        + issue(t).rsplit(".", 1)[1],
        "garbage",
        "",
    ]
    for token in forged:
        with pytest.raises(AuthenticationFailed):
            t.decode(token, NOW)


def test_security_jwks_holds_no_private_material() -> None:
    key, old = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    jwks = tokens(key, old).jwks()
    text = json.dumps(jwks)
    for k in jwks["keys"]:
        assert set(k) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (k["kty"], k["crv"], k["alg"], k["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    raw_private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    assert _b64(raw_private) not in text and '"d"' not in text
    assert "PRIVATE" not in text
