"""Encryption of data at rest, one scheme for every service.

AES-256-GCM with a key derived for each purpose (HKDF-SHA256 from a root secret, the purpose
as `info`), a fresh 96-bit nonce per value, and an optional *context* authenticated with the
value (e.g. the project and the secret's name), so a ciphertext copied onto another record
does not open. A sealed value is `0x02 | key id (4 bytes) | nonce (12) | ciphertext+tag`.

Each service that stores sealed values has a root secret of its own (`RYAX_SECRET_KEY` in its
environment, different for each service), so a leaked secret of one service opens nothing of
another's; purposes separate the keys within a service.

Rotation: a `KeyRing` holds the current root secret first and the previous ones after it.
Values are always sealed with the current key and opened with whichever key sealed them (found
by its key id); `needs_reseal` tells which values to seal again before a previous secret is
retired, `reseal` seals one again, and `ryax_kit.reseal` does it for a service's stored values
(`python -m ryax_<service>.reseal`). With the environment: `RYAX_SECRET_KEY` (current) and
`RYAX_SECRET_KEY_PREVIOUS` (comma-separated, oldest last). See docs/operations.md, "Rotating
the encryption key of data at rest".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .settings import ConfigurationError, Env

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 2
_NONCE = 12
_KID = 4
MIN_SECRET_LENGTH = 32


class Unsealable(ValueError):
    """The value cannot be opened: sealed with a key no longer in the ring, altered, or sealed
    for another purpose or context. The message never holds key material."""


_SALT = b"ryax-kit-sealer-v2"


def _hkdf_sha256(key: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869), 32 bytes of output: one block of the expand step. Written with
    the standard library so that a service imports `cryptography` (about 9 MiB resident in
    each process) only once it seals or opens a value."""
    pseudo_random_key = hmac.digest(salt, key, "sha256")
    return hmac.digest(pseudo_random_key, info + b"\x01", "sha256")


def _derive(secret: str, purpose: str) -> bytes:
    return _hkdf_sha256(secret.encode("utf-8"), _SALT, purpose.encode())


class KeyRing:
    """Root secrets, the current one first. Each must be at least 32 characters."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("a key ring needs at least one secret")
        for index, secret in enumerate(secrets):
            if len(secret) < MIN_SECRET_LENGTH:
                which = "the current secret" if index == 0 else f"previous secret #{index}"
                raise ValueError(f"{which} must be at least {MIN_SECRET_LENGTH} characters")
        self._secrets = tuple(secrets)

    @classmethod
    def from_env(cls, env: Mapping[str, str], name: str = "RYAX_SECRET_KEY") -> KeyRing:
        current = env.get(name, "")
        previous = [s.strip() for s in env.get(f"{name}_PREVIOUS", "").split(",") if s.strip()]
        return cls([current, *previous])

    @staticmethod
    def read_secrets(e: Env, name: str = "RYAX_SECRET_KEY") -> tuple[str, ...]:
        """`name` (required) and `<name>_PREVIOUS` (comma-separated), each at least 32
        characters: a missing or short one stops the start, naming the variable."""
        current = e.required(name, min_length=MIN_SECRET_LENGTH)
        previous = e.items(f"{name}_PREVIOUS")
        for index, secret in enumerate(previous, start=1):
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigurationError(
                    f"{name}_PREVIOUS: secret #{index} must be at least "
                    f"{MIN_SECRET_LENGTH} characters"
                )
        return (current, *previous)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._secrets)} secrets)"

    def sealer(self, purpose: str) -> Sealer:
        return Sealer(self, purpose)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets


class Sealer:
    """Seals and opens values for one purpose (e.g. "repository/git-credentials")."""

    def __init__(self, ring: KeyRing, purpose: str) -> None:
        if not purpose:
            raise ValueError("a sealer needs a purpose")
        self.purpose = purpose
        keys = [_derive(secret, purpose) for secret in ring.secrets]
        self._current_kid = _kid(keys[0])
        self._keys: dict[bytes, bytes] = {}
        for key in keys:
            self._keys.setdefault(_kid(key), key)
        self._ciphers: dict[bytes, AESGCM] = {}

    def _cipher(self, kid: bytes) -> AESGCM:
        """The AES-GCM cipher of a key id of the ring, made at its first use."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            cipher = self._ciphers[kid] = AESGCM(self._keys[kid])
        return cipher

    def __repr__(self) -> str:
        return f"Sealer({self.purpose!r})"

    def seal(self, plaintext: bytes, context: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = self._cipher(self._current_kid).encrypt(nonce, plaintext, self._aad(context))
        return bytes([VERSION]) + self._current_kid + nonce + sealed

    def open(self, token: bytes, context: bytes = b"") -> bytes:
        if len(token) < 1 + _KID + _NONCE + 16 or token[0] != VERSION:
            raise Unsealable(f"{self.purpose}: not a value sealed by this platform (version)")
        kid, nonce = token[1 : 1 + _KID], token[1 + _KID : 1 + _KID + _NONCE]
        if kid not in self._keys:
            raise Unsealable(
                f"{self.purpose}: sealed with a key that is not configured any more "
                "(was RYAX_SECRET_KEY changed without keeping the old one in "
                "RYAX_SECRET_KEY_PREVIOUS?)"
            )
        from cryptography.exceptions import InvalidTag

        try:
            return self._cipher(kid).decrypt(nonce, token[1 + _KID + _NONCE :], self._aad(context))
        except InvalidTag:
            raise Unsealable(
                f"{self.purpose}: the value was altered or belongs to another record"
            ) from None

    def needs_reseal(self, token: bytes) -> bool:
        """True when `token` was sealed with a previous key (seal it again to retire that key)."""
        return len(token) > _KID and token[1 : 1 + _KID] != self._current_kid

    def reseal(self, token: bytes, context: bytes = b"") -> bytes | None:
        """`token` sealed again with the current key, or None when it already is. Raises
        Unsealable when it cannot be opened (its key is not in the ring, or it was altered)."""
        plaintext = self.open(token, context)
        if not self.needs_reseal(token):
            return None
        return self.seal(plaintext, context)

    def seal_text(self, plaintext: str, context: str = "") -> str:
        """`seal` for text columns: URL-safe base64 of the sealed bytes."""
        return base64.urlsafe_b64encode(self.seal(plaintext.encode(), context.encode())).decode()

    def open_text(self, token: str, context: str = "") -> str:
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise Unsealable(f"{self.purpose}: not a sealed text value") from None
        return self.open(raw, context.encode()).decode()

    def reseal_text(self, token: str, context: str = "") -> str | None:
        """`reseal` for text columns."""
        plaintext = self.open_text(token, context)
        if not self.text_needs_reseal(token):
            return None
        return self.seal_text(plaintext, context)

    def text_needs_reseal(self, token: str) -> bool:
        try:
            return self.needs_reseal(base64.urlsafe_b64decode(token.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            return False

    def _aad(self, context: bytes) -> bytes:
        return self.purpose.encode() + b"\x00" + context


def _kid(key: bytes) -> bytes:
    return hashlib.sha256(b"ryax-kid" + key).digest()[:_KID]
