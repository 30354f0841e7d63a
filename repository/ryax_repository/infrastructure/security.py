"""Encryption of stored repository credentials: the platform's sealer (ryax_kit.crypto) for the
purpose "repository/git-credentials", each value bound to its repository."""

from __future__ import annotations

import json

from ryax_kit.crypto import KeyRing, Unsealable

from ..domain.errors import CredentialsUnreadable
from ..domain.model import Credentials, RepositoryId

PURPOSE = "repository/git-credentials"


class SealedCredentialCipher:
    """Authenticated encryption: a changed key, an altered value or a value copied onto another
    repository is detected, not misread."""

    def __init__(self, ring: KeyRing) -> None:
        self._sealer = ring.sealer(PURPOSE)

    def encrypt(self, credentials: Credentials, repository_id: RepositoryId) -> str:
        plain = json.dumps(
            {
                "username": credentials.username,
                "password": credentials.password,
                "ssh_key": credentials.ssh_key,
            }
        )
        return self._sealer.seal_text(plain, repository_id)

    def decrypt(self, token: str, repository_id: RepositoryId) -> Credentials:
        try:
            data = json.loads(self._sealer.open_text(token, repository_id))
        except (Unsealable, ValueError) as exc:
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
        return "SealedCredentialCipher(***)"
