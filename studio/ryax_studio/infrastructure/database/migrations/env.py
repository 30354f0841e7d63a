"""Alembic environment: the kit's, over the studio's tables (migrations applied at start)."""

from ryax_kit.database.migrations import run_env
from ryax_studio.infrastructure.database.tables import metadata

run_env(metadata)
