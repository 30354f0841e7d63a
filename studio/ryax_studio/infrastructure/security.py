"""The clock and the encryption of project secrets (AES-256-GCM, key derived with HKDF)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..domain.actions import ProjectId

_VERSION = b"\x01"
_NONCE_BYTES = 12


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class AesGcmSecretCipher:
    """Each value is encrypted with a fresh nonce; the project id and secret name are
    authenticated with it, so a ciphertext copied onto another secret does not decrypt."""

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 32:
            raise ValueError("RYAX_SECRET_KEY must be at least 32 characters")
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"ryax-studio",
            info=b"ryax-studio project secrets v1",
        ).derive(secret_key.encode())
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(project_id: ProjectId, name: str) -> bytes:
        return f"{project_id}\x00{name}".encode()

    def encrypt(self, project_id: ProjectId, name: str, value: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), self._aad(project_id, name))
        return _VERSION + nonce + sealed

    def decrypt(self, project_id: ProjectId, name: str, ciphertext: bytes) -> str:
        if ciphertext[:1] != _VERSION:
            raise ValueError(f"secret {name!r}: unknown ciphertext version")
        nonce = ciphertext[1 : 1 + _NONCE_BYTES]
        try:
            plain = self._aead.decrypt(
                nonce, ciphertext[1 + _NONCE_BYTES :], self._aad(project_id, name)
            )
        except InvalidTag as exc:
            raise ValueError(
                f"secret {name!r} cannot be decrypted: wrong RYAX_SECRET_KEY or tampered value"
            ) from exc
        return plain.decode()
