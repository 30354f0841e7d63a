"""python -m ryax_studio.reseal: after it, project secrets open with the new secret alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ryax_kit.crypto import KeyRing
from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_kit.reseal import reseal_all
from ryax_studio.domain.actions import ProjectId
from ryax_studio.infrastructure.database.tables import MIGRATIONS, secrets
from ryax_studio.infrastructure.security import AesGcmSecretCipher
from ryax_studio.reseal import columns

pytestmark = pytest.mark.integration
OLD = "the-previous-studio-secret-0123456789-ab"
NEW = "the-current-studio-secret-0123456789-abc"


async def test_reseal_then_project_secrets_open_with_only_the_new_secret(
    fresh_database: str,
) -> None:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    sealed = AesGcmSecretCipher(OLD).encrypt(ProjectId("p1"), "db-password", "hunter2")
    engine = create_engine(fresh_database, pool_size=1)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(secrets).values(
                project_id="p1",
                name="db-password",
                ciphertext=sealed,
                created_at=now,
                updated_at=now,
            )
        )
    report, *others = await reseal_all(fresh_database, columns(KeyRing([NEW, OLD])))
    assert not any(o.unreadable or o.resealed for o in others)  # the other sealed columns
    assert (report.resealed, report.unreadable) == (1, [])
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(secrets.c.ciphertext))).scalar_one()
    await engine.dispose()
    assert AesGcmSecretCipher(NEW).decrypt(ProjectId("p1"), "db-password", stored) == "hunter2"
