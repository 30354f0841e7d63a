"""Alembic environment: the kit's (async engine, one process at a time)."""

from ryax_kit.database.migrations import run_env
from ryax_repository.infrastructure.database.tables import metadata

run_env(metadata)
