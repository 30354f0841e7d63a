"""The runner's record: tables, migrations, the write-behind recorder and the reads."""

from pathlib import Path

#: The Alembic migrations, applied at start (`ryax_kit.database.migrate`).
MIGRATIONS = Path(__file__).parent / "migrations"
