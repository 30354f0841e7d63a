"""Password hashing (argon2id) and signed access tokens (HS256 JWT)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError

from ..domain.errors import AuthenticationFailed
from ..domain.model import TokenId, UserId


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


class JwtAccessTokens:
    """Access tokens: HS256-signed, with a unique id so logout can revoke one."""

    issuer = "ryax-authorization"

    def __init__(self, secret: str, lifetime: timedelta) -> None:
        if len(secret) < 32:
            raise ValueError("RYAX_SECRET_KEY must be at least 32 characters")
        self._secret = secret
        self._lifetime = lifetime

    def issue(self, user_id: UserId, token_id: TokenId, now: datetime) -> tuple[str, datetime]:
        expires_at = now + self._lifetime
        claims = {
            "sub": user_id,
            "jti": token_id,
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires_at

    def decode(self, token: str, now: datetime) -> tuple[UserId, TokenId, datetime]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self.issuer,
                options={"verify_exp": False, "require": ["sub", "jti", "exp"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("invalid or revoked token") from exc
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        if now >= expires_at:
            raise AuthenticationFailed("token expired")
        return UserId(str(claims["sub"])), TokenId(str(claims["jti"])), expires_at
