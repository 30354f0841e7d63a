"""Ports the use cases need; adapters live in infrastructure, fakes in tests."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ..domain.model import (
    MachineToken,
    Project,
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


class AccessTokens(Protocol):
    def issue(self, user_id: UserId, token_id: TokenId, now: datetime) -> tuple[str, datetime]:
        """A signed access token and its expiry."""
        ...

    def decode(self, token: str, now: datetime) -> tuple[UserId, TokenId, datetime]:
        """The user, token id and expiry; raises AuthenticationFailed if invalid or expired."""
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


class RevokedTokenRepository(Protocol):
    async def add(self, token_id: TokenId, expires_at: datetime) -> None: ...
    async def contains(self, token_id: TokenId) -> bool: ...


class UnitOfWork(Protocol):
    users: UserRepository
    projects: ProjectRepository
    machine_tokens: MachineTokenRepository
    revoked_tokens: RevokedTokenRepository

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(self, *args: object) -> None: ...
    async def commit(self) -> None:
        """The only way state is saved; leaving without commit rolls back."""
        ...
