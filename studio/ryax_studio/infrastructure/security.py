"""Secrets at rest, with the kit's sealer: project secrets (bound to the project and name), the
static values of password-type inputs in workflows and snapshots (bound to the project), and the
values a deployment was requested with (bound to the deployment)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ryax_kit.crypto import KeyRing, Unsealable

from ..domain.actions import JsonValue, ProjectId

PURPOSE = "studio/project-secrets"
VALUES_PURPOSE = "studio/password-values"
DEPLOYMENT_PURPOSE = "studio/deployment-values"


class AesGcmSecretCipher:
    """SecretCipher over `KeyRing.sealer`: the project id and secret name are authenticated with
    each value, so a ciphertext copied onto another secret does not open."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        ring = KeyRing([secret_key, *previous_keys])
        self._sealer = ring.sealer(PURPOSE)
        self._values = ring.sealer(VALUES_PURPOSE)
        self._deployments = ring.sealer(DEPLOYMENT_PURPOSE)

    @staticmethod
    def _context(project_id: ProjectId, name: str) -> bytes:
        return f"{project_id}\x00{name}".encode()

    def encrypt(self, project_id: ProjectId, name: str, value: str) -> bytes:
        return self._sealer.seal(value.encode(), self._context(project_id, name))

    def decrypt(self, project_id: ProjectId, name: str, ciphertext: bytes) -> str:
        try:
            plain = self._sealer.open(ciphertext, self._context(project_id, name))
        except Unsealable as exc:
            raise ValueError(
                f"secret {name!r} cannot be decrypted: wrong RYAX_SECRET_KEY or tampered value"
            ) from exc
        return plain.decode()

    # -- the static value of a password-type input (workflow and snapshot documents) ------------
    def seal_value(self, project_id: str, value: JsonValue) -> str:
        return self._values.seal_text(json.dumps(value, ensure_ascii=False), project_id)

    def open_value(self, project_id: str, token: str) -> JsonValue:
        opened: JsonValue = json.loads(self._values.open_text(token, project_id))
        return opened

    # -- the values a deployment was requested with ------------------------------------------
    def seal_deployment_values(
        self, deployment_id: str, values: Mapping[tuple[str, str], JsonValue]
    ) -> bytes:
        doc = [[step, name, value] for (step, name), value in values.items()]
        return self._deployments.seal(json.dumps(doc).encode(), deployment_id.encode())

    def open_deployment_values(
        self, deployment_id: str, sealed: bytes
    ) -> dict[tuple[str, str], JsonValue]:
        doc = json.loads(self._deployments.open(sealed, deployment_id.encode()))
        return {(step, name): value for step, name, value in doc}
