"""Clock and the encryption of stored repository credentials (Fernet, key from RYAX_SECRET_KEY)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..domain.errors import CredentialsUnreadable
from ..domain.model import Credentials

MIN_SECRET_LENGTH = 32


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def derive_fernet_key(secret: str) -> bytes:
    """A dedicated key for this purpose, derived (HKDF-SHA256) from the platform secret."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"ryax-repository", info=b"git-credentials-v1"
    )
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode("utf-8")))


class FernetCredentialCipher:
    """Authenticated encryption: a changed key or altered ciphertext is detected, not misread."""

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(f"RYAX_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
        self._fernet = Fernet(derive_fernet_key(secret_key))

    def encrypt(self, credentials: Credentials) -> str:
        plain = json.dumps(
            {
                "username": credentials.username,
                "password": credentials.password,
                "ssh_key": credentials.ssh_key,
            }
        )
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> Credentials:
        try:
            data = json.loads(self._fernet.decrypt(token.encode("ascii")))
        except (InvalidToken, ValueError) as exc:
            raise CredentialsUnreadable(
                "the stored credentials of this repository cannot be decrypted (was "
                "RYAX_SECRET_KEY changed?); delete and add the repository again"
            ) from exc
        return Credentials(
            username=data.get("username"),
            password=data.get("password"),
            ssh_key=data.get("ssh_key"),
        )

    def __repr__(self) -> str:
        return "FernetCredentialCipher(***)"
