"""Seal the stored git credentials again with the current RYAX_SECRET_KEY, so that the secrets in
RYAX_SECRET_KEY_PREVIOUS can be retired (docs/operations.md, "Rotating the encryption key of
data at rest"). Run it with the service's environment, once the service runs with the new key:

    python -m ryax_repository.reseal --check   # what a previous secret still seals
    python -m ryax_repository.reseal           # seal it again (safe while the service runs)
"""

from __future__ import annotations

import sys

from ryax_kit.crypto import KeyRing
from ryax_kit.reseal import SealedColumn, main, text_values

from .infrastructure.database.tables import repositories
from .infrastructure.security import PURPOSE


def columns(ring: KeyRing) -> list[SealedColumn]:
    """Every sealed value the service stores (keep in step with its tables)."""
    credentials = text_values(ring.sealer(PURPOSE), lambda row: str(row.id))
    return [SealedColumn(repositories, "credentials", credentials)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m ryax_repository.reseal", columns=columns))
