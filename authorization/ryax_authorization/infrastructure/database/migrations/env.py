"""Alembic environment: async engine, migrations applied at service start."""

from ryax_authorization.infrastructure.database.tables import metadata
from ryax_kit.database.migrations import run_env

run_env(metadata)
