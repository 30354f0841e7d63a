"""Password hashing (argon2id) and access tokens signed with Ed25519 (JWT, alg EdDSA, `kid`).

Only this service holds the private key (RYAX_AUTH_SIGNING_KEY_FILE). The public keys, the
current one and the previous ones kept while a key is rotated, are served as a JWKS
(`SigningKeys.jwks`); a token verifies only with the key its `kid` names and only as EdDSA, so a
token signed HS256 with any shared secret, with another Ed25519 key, or with `alg: none` is
refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ryax_kit.settings import ConfigurationError

from ..application.ports import AccessTokenClaims
from ..domain.errors import AuthenticationFailed
from ..domain.model import TokenId, UserId

ALGORITHM = "EdDSA"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s.*?-----END \1-----", re.DOTALL)


class Argon2PasswordHasher:
    def __init__(self) -> None:
        self._argon = Argon2()
        self._dummy = self._argon.hash("dummy password used to equalise timing")

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def dummy_verify(self, password: str) -> None:
        self.verify(self._dummy, password)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the public key: stable, and says nothing but the key."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(_raw_public(key))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    key: Ed25519PublicKey

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64url(_raw_public(self.key)),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }


class SigningKeys:
    """The private key that signs new tokens, and the public keys that verify them: the
    current one first, then the previous ones (old tokens verify until they expire)."""

    def __init__(
        self, current: Ed25519PrivateKey, previous: Sequence[Ed25519PublicKey] = ()
    ) -> None:
        self._private = current
        self.current = VerificationKey(key_id(current.public_key()), current.public_key())
        self._verification: dict[str, VerificationKey] = {self.current.kid: self.current}
        for key in previous:
            self._verification.setdefault(key_id(key), VerificationKey(key_id(key), key))

    def __repr__(self) -> str:
        return f"SigningKeys(kid={self.current.kid!r}, {len(self._verification)} public keys)"

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._private

    def verification_key(self, kid: object) -> VerificationKey | None:
        return self._verification.get(kid) if isinstance(kid, str) else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Public keys only: kty, crv, x, kid, alg, use."""
        return {"keys": [k.jwk() for k in self._verification.values()]}

    @classmethod
    def from_files(cls, current: Path, previous: Sequence[Path] = ()) -> SigningKeys:
        """RYAX_AUTH_SIGNING_KEY_FILE: one PEM Ed25519 private key (PKCS#8). Each of
        RYAX_AUTH_SIGNING_KEY_PREVIOUS_FILES: one or more PEM keys, public or private (only
        their public part is kept). A bad file stops the start, naming the variable."""
        private = _load_private(current)
        keys: list[Ed25519PublicKey] = []
        for path in previous:
            keys.extend(_load_public_keys(path))
        return cls(private, keys)


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def _load_private(path: Path) -> Ed25519PrivateKey:
    variable = "RYAX_AUTH_SIGNING_KEY_FILE"
    try:
        key = serialization.load_pem_private_key(_read(path, variable), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(
            f"{variable}: {path} is not a PEM Ed25519 private key without passphrase "
            "(openssl genpkey -algorithm ed25519 -out signing-key.pem)"
        )
    return key


def _load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    variable = "RYAX_AUTH_SIGNING_KEY_PREVIOUS_FILES"
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(_read(path, variable))]
    keys: list[Ed25519PublicKey] = []
    for block in blocks:
        loaded: Any
        try:
            if b"PRIVATE KEY" in block.split(b"\n", 1)[0]:
                loaded = serialization.load_pem_private_key(block, password=None).public_key()
            else:
                loaded = serialization.load_pem_public_key(block)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            loaded = None
        if not isinstance(loaded, Ed25519PublicKey):
            raise ConfigurationError(
                f"{variable}: {path} holds a PEM block that is not an Ed25519 key"
            )
        keys.append(loaded)
    if not keys:
        raise ConfigurationError(f"{variable}: {path} holds no PEM key")
    return keys


class JwtAccessTokens:
    """Access tokens: EdDSA-signed JWT with the signing key's `kid`, a unique id (so logout can
    revoke one) and the user's token generation (a password change revokes them all)."""

    issuer = "ryax-authorization"

    def __init__(self, keys: SigningKeys, lifetime: timedelta) -> None:
        self._keys = keys
        self._lifetime = lifetime

    @classmethod
    def from_files(
        cls, current: Path, previous: Sequence[Path], lifetime: timedelta
    ) -> JwtAccessTokens:
        return cls(SigningKeys.from_files(current, previous), lifetime)

    def issue(
        self, user_id: UserId, token_id: TokenId, generation: int, now: datetime
    ) -> tuple[str, datetime]:
        expires_at = now + self._lifetime
        claims = {
            "sub": user_id,
            "jti": token_id,
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "gen": generation,
        }
        token = jwt.encode(
            claims,
            self._keys.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self._keys.current.kid},
        )
        return token, expires_at

    def decode(self, token: str, now: datetime) -> AccessTokenClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.verification_key(header.get("kid"))
            # Only EdDSA, only with a key of ours named by its kid: no HS256 with a shared
            # secret, no `none`, no key chosen by the token.
            if header.get("alg") != ALGORITHM or key is None:
                raise AuthenticationFailed("invalid or revoked token")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                options={"verify_exp": False, "require": ["sub", "jti", "exp", "iat", "gen"]},
            )
            expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
            generation = int(claims["gen"])
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthenticationFailed("invalid or revoked token") from exc
        if now >= expires_at:
            raise AuthenticationFailed("token expired")
        return AccessTokenClaims(
            user_id=UserId(str(claims["sub"])),
            token_id=TokenId(str(claims["jti"])),
            generation=generation,
            expires_at=expires_at,
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.jwks()
