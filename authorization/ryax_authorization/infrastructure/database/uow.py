"""Unit of work over one SQLAlchemy session: enter opens, commit saves, exit rolls back."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ryax_kit.database import SqlAlchemyUnitOfWorkBase
from ryax_kit.messaging import OutgoingMessage

from ...domain.errors import AlreadyExists, Conflict
from .repositories import (
    SqlAlchemyLoginAttemptRepository,
    SqlAlchemyMachineTokenRepository,
    SqlAlchemyProjectApiKeyRepository,
    SqlAlchemyProjectRepository,
    SqlAlchemyRevokedTokenRepository,
    SqlAlchemyUserRepository,
)

#: Unique names a concurrent request can take between the use case's check and the commit.
_TAKEN = {
    "users_username_key": "user",
    "projects_name_key": "project",
    "project_api_keys_name_in_use": "API key",
}


class SqlAlchemyUnitOfWork(SqlAlchemyUnitOfWorkBase):
    """No outbox: the authorization service publishes no events."""

    users: SqlAlchemyUserRepository
    projects: SqlAlchemyProjectRepository
    machine_tokens: SqlAlchemyMachineTokenRepository
    api_keys: SqlAlchemyProjectApiKeyRepository
    revoked_tokens: SqlAlchemyRevokedTokenRepository
    login_attempts: SqlAlchemyLoginAttemptRepository

    def open_repositories(self, session: AsyncSession) -> None:
        self.users = SqlAlchemyUserRepository(session)
        self.projects = SqlAlchemyProjectRepository(session)
        self.machine_tokens = SqlAlchemyMachineTokenRepository(session)
        self.api_keys = SqlAlchemyProjectApiKeyRepository(session)
        self.revoked_tokens = SqlAlchemyRevokedTokenRepository(session)
        self.login_attempts = SqlAlchemyLoginAttemptRepository(session)

    async def save(self) -> Sequence[OutgoingMessage]:
        await self.users.save()
        await self.projects.save()
        await self.machine_tokens.save()
        await self.api_keys.save()
        await self.login_attempts.save()
        return ()

    def conflict(self, exc: IntegrityError) -> Exception:
        # asyncpg's error (the cause of SQLAlchemy's adapted one) names the constraint.
        constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        if constraint in _TAKEN:
            return AlreadyExists(f"this {_TAKEN[constraint]} name was just taken")
        return Conflict("a concurrent change conflicts with this one, retry")
