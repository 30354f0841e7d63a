"""Unit of work over one SQLAlchemy session: enter opens, commit saves, exit rolls back."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .repositories import (
    SqlAlchemyMachineTokenRepository,
    SqlAlchemyProjectRepository,
    SqlAlchemyRevokedTokenRepository,
    SqlAlchemyUserRepository,
)


class SqlAlchemyUnitOfWork:
    users: SqlAlchemyUserRepository
    projects: SqlAlchemyProjectRepository
    machine_tokens: SqlAlchemyMachineTokenRepository
    revoked_tokens: SqlAlchemyRevokedTokenRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> SqlAlchemyUnitOfWork:
        self._session = self._session_factory()
        self.users = SqlAlchemyUserRepository(self._session)
        self.projects = SqlAlchemyProjectRepository(self._session)
        self.machine_tokens = SqlAlchemyMachineTokenRepository(self._session)
        self.revoked_tokens = SqlAlchemyRevokedTokenRepository(self._session)
        return self

    async def __aexit__(self, *args: object) -> None:
        assert self._session is not None
        try:
            await self._session.rollback()
        finally:
            await self._session.close()
            self._session = None

    async def commit(self) -> None:
        assert self._session is not None
        await self.users.save()
        await self.projects.save()
        await self.machine_tokens.save()
        await self._session.commit()
