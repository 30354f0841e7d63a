"""Seal the stored secrets of deployed workflows again with the current RYAX_SECRET_KEY, so that
the secrets in RYAX_SECRET_KEY_PREVIOUS can be retired (docs/operations.md, "Rotating the
encryption key of data at rest"). Run it with the service's environment, once the service runs
with the new key:

    python -m ryax_runner.reseal --check   # what a previous secret still seals
    python -m ryax_runner.reseal           # seal it again (safe while the service runs)
"""

from __future__ import annotations

import sys

from ryax_kit.crypto import KeyRing
from ryax_kit.reseal import SealedColumn, json_values, main

from .infrastructure.database.serialization import SEALED, SecretBox
from .infrastructure.database.tables import deployments, executions, runs


def columns(ring: KeyRing) -> list[SealedColumn]:
    """Every sealed value the service stores (keep in step with its tables: a new sealed
    column is added here). Deployment definitions hold `{"secret": name, "sealed": value}`."""
    definitions = json_values(ring.sealer(SecretBox.PURPOSE), key="sealed")
    # Password-type outputs and results: `{"$sealed": ...}`, bound to the execution or run.
    passwords = json_values(ring.sealer(SecretBox.VALUES_PURPOSE), SEALED, lambda row: row.id)
    return [
        SealedColumn(deployments, "definition", definitions),
        SealedColumn(executions, "outputs", passwords),
        SealedColumn(executions, "outputs_list", passwords),
        SealedColumn(runs, "results", passwords),
    ]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python -m ryax_runner.reseal", columns=columns))
