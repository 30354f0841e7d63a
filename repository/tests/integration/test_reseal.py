"""python -m ryax_repository.reseal: after it, stored credentials open with the new secret alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ryax_kit.crypto import KeyRing
from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_kit.reseal import reseal_all
from ryax_repository.domain.model import Credentials, RepositoryId
from ryax_repository.infrastructure.database import MIGRATIONS
from ryax_repository.infrastructure.database.tables import repositories
from ryax_repository.infrastructure.security import SealedCredentialCipher
from ryax_repository.reseal import columns

pytestmark = pytest.mark.integration
OLD = "the-previous-repository-secret-0123456789"
NEW = "the-current-repository-secret-0123456789"


async def test_reseal_then_credentials_open_with_only_the_new_secret(db_url: str) -> None:
    await ensure_database(db_url)
    await migrate(db_url, MIGRATIONS)
    sealed = SealedCredentialCipher(KeyRing([OLD])).encrypt(
        Credentials(username="bot", password="hunter2"), RepositoryId("r1")
    )
    engine = create_engine(db_url, pool_size=1)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(repositories).values(
                id="r1",
                project_id="p1",
                name="repo",
                url="https://git.example/r",
                auth="basic",
                credentials=sealed,
                created_at=now,
                updated_at=now,
            )
        )
    (report,) = await reseal_all(db_url, columns(KeyRing([NEW, OLD])))
    assert (report.resealed, report.unreadable) == (1, [])
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(repositories.c.credentials))).scalar_one()
    await engine.dispose()
    opened = SealedCredentialCipher(KeyRing([NEW])).decrypt(stored, RepositoryId("r1"))
    assert (opened.username, opened.password) == ("bot", "hunter2")
