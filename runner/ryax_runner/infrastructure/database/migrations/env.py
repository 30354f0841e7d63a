"""Alembic environment: async engine, migrations applied at service start."""

from ryax_kit.database.migrations import run_env
from ryax_runner.infrastructure.database.tables import metadata

run_env(metadata)
