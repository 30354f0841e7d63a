"""Project secrets at rest: the kit's sealer, bound to the secret's project and name."""

from __future__ import annotations

from collections.abc import Sequence

from ryax_kit.crypto import KeyRing, Unsealable

from ..domain.actions import ProjectId

PURPOSE = "studio/project-secrets"


class AesGcmSecretCipher:
    """SecretCipher over `KeyRing.sealer`: the project id and secret name are authenticated with
    each value, so a ciphertext copied onto another secret does not open."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        self._sealer = KeyRing([secret_key, *previous_keys]).sealer(PURPOSE)

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
