"""Ports the use cases need; adapters live in infrastructure, fakes in tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..domain.model import (
    ApiKeyId,
    LoginAttempts,
    MachineToken,
    Project,
    ProjectApiKey,
    ProjectId,
    TokenId,
    User,
    UserId,
)


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str:
        """A salted slow hash of the password."""
        ...

    def verify(self, password_hash: str, password: str) -> bool:
        """True when the password matches; never raises for a mismatch."""
        ...

    def dummy_verify(self, password: str) -> None:
        """Spend the same time as verify(), for unknown users (no user enumeration)."""
        ...


@dataclass(frozen=True, kw_only=True)
class AccessTokenClaims:
    """What a verified access token says."""

    user_id: UserId
    token_id: TokenId
    #: The user's token generation when it was issued: a password change moves it on.
    generation: int
    expires_at: datetime


class AccessTokens(Protocol):
    def issue(
        self, user_id: UserId, token_id: TokenId, generation: int, now: datetime
    ) -> tuple[str, datetime]:
        """A signed access token and its expiry."""
        ...

    def decode(self, token: str, now: datetime) -> AccessTokenClaims:
        """The verified claims; raises AuthenticationFailed if invalid or expired."""
        ...

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys that verify access tokens (JWKS), never private material."""
        ...


class UserRepository(Protocol):
    async def add(self, user: User) -> None: ...
    async def get(self, user_id: UserId) -> User | None: ...
    async def get_by_username(self, username: str) -> User | None: ...
    async def list_all(self) -> list[User]: ...
    async def count(self) -> int: ...


class ProjectRepository(Protocol):
    async def add(self, project: Project) -> None: ...
    async def get(self, project_id: ProjectId) -> Project | None: ...
    async def get_by_name(self, name: str) -> Project | None: ...
    async def list_all(self) -> list[Project]: ...
    async def list_for_user(self, user_id: UserId) -> list[Project]: ...


class MachineTokenRepository(Protocol):
    async def add(self, token: MachineToken) -> None: ...
    async def get(self, token_id: TokenId) -> MachineToken | None: ...
    async def get_by_hash(self, token_hash: str) -> MachineToken | None: ...
    async def list_for_user(self, user_id: UserId) -> list[MachineToken]: ...
    async def revoke_all_for_user(self, user_id: UserId, now: datetime) -> int:
        """Revoke every usable machine token of the user; how many were revoked."""
        ...


class ProjectApiKeyRepository(Protocol):
    async def add(self, key: ProjectApiKey) -> None: ...
    async def get(self, key_id: ApiKeyId) -> ProjectApiKey | None: ...
    async def get_by_hash(self, key_hash: str) -> ProjectApiKey | None: ...
    async def list_for_project(self, project_id: ProjectId) -> list[ProjectApiKey]:
        """Every key of the project, revoked ones too, oldest first."""
        ...


class LoginAttemptRepository(Protocol):
    """Failed logins by username, whether or not a user has that name."""

    async def get(self, username: str) -> LoginAttempts | None: ...
    async def add(self, attempts: LoginAttempts) -> None: ...
    async def remove(self, username: str) -> None: ...
    async def forget_before(self, before: datetime) -> None:
        """Drop the records whose last failure is older than `before` and that lock nothing."""
        ...


class RevokedTokenRepository(Protocol):
    async def add(self, token_id: TokenId, expires_at: datetime) -> None: ...
    async def contains(self, token_id: TokenId) -> bool: ...


class UnitOfWork(Protocol):
    users: UserRepository
    projects: ProjectRepository
    machine_tokens: MachineTokenRepository
    api_keys: ProjectApiKeyRepository
    revoked_tokens: RevokedTokenRepository
    login_attempts: LoginAttemptRepository

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(self, *args: object) -> None: ...
    async def commit(self) -> None:
        """The only way state is saved; leaving without commit rolls back."""
        ...
