"""Seal the stored project secrets again with the current RYAX_SECRET_KEY, so that the secrets
in RYAX_SECRET_KEY_PREVIOUS can be retired (docs/operations.md, "Rotating the encryption key of
data at rest"). Run it with the service's environment, once the service runs with the new key:

    python -m ryax_studio.reseal --check   # what a previous secret still seals
    python -m ryax_studio.reseal           # seal it again (safe while the service runs)
"""

from __future__ import annotations

import sys

from ryax_kit.crypto import KeyRing
from ryax_kit.reseal import SealedColumn, bytes_values, main

from .infrastructure.database.tables import deployment_values, secrets
from .infrastructure.security import DEPLOYMENT_PURPOSE, PURPOSE


def columns(ring: KeyRing) -> list[SealedColumn]:
    """Every sealed value the service stores (keep in step with its tables: a new sealed
    column is added here)."""
    project_secrets = bytes_values(
        ring.sealer(PURPOSE), lambda row: f"{row.project_id}\x00{row.name}".encode()
    )
    values = bytes_values(ring.sealer(DEPLOYMENT_PURPOSE), lambda row: row.deployment_id.encode())
    # Static values of password-type inputs in workflows and snapshots (`{"sealed": ...}` in
    # `json` documents, which PostgreSQL cannot compare, so not here): a workflow's are sealed
    # again at its next save; a previous secret stays in RYAX_SECRET_KEY_PREVIOUS while
    # snapshots sealed with it are kept (docs/operations.md).
    return [
        SealedColumn(secrets, "ciphertext", project_secrets),
        SealedColumn(deployment_values, "sealed", values),
    ]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m ryax_studio.reseal", columns=columns))
