"""The unit of work on the real PostgreSQL: commit saves, leaving without commit rolls back, a
name taken by a concurrent request is the same answer as one taken before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ryax_authorization.domain.errors import AlreadyExists
from ryax_authorization.domain.model import User, UserId
from ryax_authorization.infrastructure.database.tables import MIGRATIONS
from ryax_authorization.infrastructure.database.uow import SqlAlchemyUnitOfWork
from ryax_kit.database import create_engine, ensure_database, migrate

pytestmark = pytest.mark.integration


@pytest.fixture
async def sessions(fresh_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    engine = create_engine(fresh_database, pool_size=2)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


def _user(user_id: str, username: str) -> User:
    return User(
        id=UserId(user_id), username=username, password_hash="h", created_at=datetime.now(UTC)
    )


async def test_commit_saves_and_exit_rolls_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with SqlAlchemyUnitOfWork(sessions) as uow:
        await uow.users.add(_user("u1", "alice"))
        await uow.commit()
    async with SqlAlchemyUnitOfWork(sessions) as uow:
        await uow.users.add(_user("u2", "bob"))
    async with SqlAlchemyUnitOfWork(sessions) as uow:
        assert [u.username for u in await uow.users.list_all()] == ["alice"]


async def test_a_username_taken_concurrently_is_already_exists(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with SqlAlchemyUnitOfWork(sessions) as first, SqlAlchemyUnitOfWork(sessions) as second:
        assert await first.users.get_by_username("alice") is None
        assert await second.users.get_by_username("alice") is None
        await first.users.add(_user("u1", "alice"))
        await first.commit()
        await second.users.add(_user("u2", "alice"))
        with pytest.raises(AlreadyExists, match="user name was just taken"):
            await second.commit()
