"""`python -m ryax_kit.database.upgrade MIGRATIONS [REVISION]`: apply a service's migrations in
a process of their own (`engine.migrate(child=True)`), the database URL in the environment
(`RYAX_MIGRATE_DATABASE_URL`). Exit 0 when done; 1 with the reason on stderr; 2 when called
wrongly."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .engine import URL_VARIABLE, upgrade


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2 or not os.environ.get(URL_VARIABLE):
        sys.stderr.write(
            f"usage: {URL_VARIABLE}=URL python -m ryax_kit.database.upgrade MIGRATIONS [REVISION]\n"
        )
        return 2
    migrations = Path(argv[0])
    revision = argv[1] if len(argv) == 2 else "head"
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    # Which migrations ran, not Alembic's plugin set-up.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    try:
        upgrade(os.environ[URL_VARIABLE], migrations, revision)
    except Exception as error:  # noqa: BLE001 - the parent reports it
        sys.stderr.write(f"{type(error).__name__}: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
