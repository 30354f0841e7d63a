"""python -m ryax_runner.reseal: after it, deployed workflows' secrets open with the new secret
alone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from ryax_kit.crypto import KeyRing
from ryax_kit.database import create_engine, ensure_database, migrate
from ryax_kit.reseal import reseal_all
from ryax_runner.infrastructure.database import MIGRATIONS
from ryax_runner.infrastructure.database.serialization import SecretBox
from ryax_runner.infrastructure.database.tables import deployments
from ryax_runner.reseal import columns

pytestmark = pytest.mark.integration
OLD = "the-previous-runner-secret-0123456789-ab"
NEW = "the-current-runner-secret-0123456789-abc"


async def test_reseal_then_deployment_secrets_open_with_only_the_new_secret(
    fresh_database: str,
) -> None:
    await ensure_database(fresh_database)
    await migrate(fresh_database, MIGRATIONS)
    definition = {
        "steps": [
            {"inputs": {"password": {"secret": "db", "sealed": SecretBox(OLD).seal("hunter2")}}},
            {"inputs": {"n": {"static": 1}}},
        ]
    }
    engine = create_engine(fresh_database, pool_size=1)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(deployments).values(
                id="d1",
                project_id="p1",
                workflow_id="w1",
                workflow_name="wf",
                snapshot_id="s1",
                requested_by="u1",
                definition=definition,
                state="deployed",
                reason="",
                state_seq=1,
                steps={},
                created_at=now,
                updated_at=now,
            )
        )
    report, *others = await reseal_all(fresh_database, columns(KeyRing([NEW, OLD])))
    assert not any(o.unreadable or o.resealed for o in others)  # the other sealed columns
    assert (report.resealed, report.unreadable) == (1, [])
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(deployments.c.definition))).scalar_one()
    await engine.dispose()
    sealed = stored["steps"][0]["inputs"]["password"]["sealed"]
    assert SecretBox(NEW).open(sealed) == "hunter2"
    assert stored["steps"][1] == definition["steps"][1]
