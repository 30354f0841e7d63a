"""PostgreSQL: tables, repositories, the unit of work, and the Alembic migrations."""

from pathlib import Path

#: The Alembic scripts, applied at start (`ryax_kit.database.migrate(url, MIGRATIONS)`).
MIGRATIONS = Path(__file__).parent / "migrations"
