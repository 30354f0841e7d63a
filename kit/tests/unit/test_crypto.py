from __future__ import annotations

import subprocess
import sys

import pytest

from ryax_kit import crypto
from ryax_kit.crypto import KeyRing, Unsealable

OLD = "old-secret-0123456789-0123456789-abcdef"
NEW = "new-secret-0123456789-0123456789-abcdef"


def test_seal_and_open_with_context() -> None:
    sealer = KeyRing([NEW]).sealer("studio/project-secrets")
    token = sealer.seal(b"hunter2", b"project-1\x00db-password")
    assert b"hunter2" not in token
    assert sealer.open(token, b"project-1\x00db-password") == b"hunter2"
    assert sealer.seal(b"hunter2") != sealer.seal(b"hunter2")  # a fresh nonce each time


def test_a_value_moved_to_another_record_or_purpose_does_not_open() -> None:
    ring = KeyRing([NEW])
    token = ring.sealer("a").seal(b"v", b"record-1")
    with pytest.raises(Unsealable, match="altered or belongs to another record"):
        ring.sealer("a").open(token, b"record-2")
    with pytest.raises(Unsealable):
        ring.sealer("b").open(token, b"record-1")


def test_tampering_is_detected() -> None:
    sealer = KeyRing([NEW]).sealer("p")
    token = bytearray(sealer.seal(b"value"))
    token[-1] ^= 1
    with pytest.raises(Unsealable):
        sealer.open(bytes(token))
    with pytest.raises(Unsealable, match="version"):
        sealer.open(b"\x01short")


def test_rotation_reads_old_values_and_says_which_to_reseal() -> None:
    old_token = KeyRing([OLD]).sealer("p").seal(b"v")
    rotated = KeyRing([NEW, OLD]).sealer("p")
    assert rotated.open(old_token) == b"v"
    assert rotated.needs_reseal(old_token)
    fresh = rotated.seal(b"v")
    assert not rotated.needs_reseal(fresh)
    retired = KeyRing([NEW]).sealer("p")
    assert retired.open(fresh) == b"v"
    with pytest.raises(Unsealable, match="RYAX_SECRET_KEY_PREVIOUS"):
        retired.open(old_token)


def test_text_values() -> None:
    sealer = KeyRing([NEW]).sealer("repository/git-credentials")
    token = sealer.seal_text('{"password": "x"}', "repo-1")
    assert token.isascii() and "password" not in token
    assert sealer.open_text(token, "repo-1") == '{"password": "x"}'
    with pytest.raises(Unsealable):
        sealer.open_text("not base64 !!", "repo-1")


def test_key_ring_from_env_and_rules() -> None:
    ring = KeyRing.from_env({"RYAX_SECRET_KEY": NEW, "RYAX_SECRET_KEY_PREVIOUS": f" {OLD} ,"})
    assert ring.secrets == (NEW, OLD)
    assert NEW not in repr(ring) and NEW not in repr(ring.sealer("p"))
    with pytest.raises(ValueError, match="current secret must be at least 32"):
        KeyRing(["short"])
    with pytest.raises(ValueError, match="previous secret #1"):
        KeyRing([NEW, "short"])


def test_read_secrets_names_the_variable() -> None:
    from ryax_kit.settings import ConfigurationError, Env

    assert KeyRing.read_secrets(Env({"RYAX_SECRET_KEY": NEW})) == (NEW,)
    both = Env({"RYAX_SECRET_KEY": NEW, "RYAX_SECRET_KEY_PREVIOUS": OLD})
    assert KeyRing(KeyRing.read_secrets(both)).secrets == (NEW, OLD)
    with pytest.raises(ConfigurationError, match="RYAX_SECRET_KEY is required"):
        KeyRing.read_secrets(Env({}))
    with pytest.raises(ConfigurationError, match="RYAX_SECRET_KEY_PREVIOUS: secret #1"):
        KeyRing.read_secrets(Env({"RYAX_SECRET_KEY": NEW, "RYAX_SECRET_KEY_PREVIOUS": "x"}))


def test_reseal_seals_again_only_what_a_previous_key_sealed() -> None:
    old_token = KeyRing([OLD]).sealer("p").seal(b"v", b"ctx")
    rotated = KeyRing([NEW, OLD]).sealer("p")
    again = rotated.reseal(old_token, b"ctx")
    assert again is not None and not rotated.needs_reseal(again)
    assert KeyRing([NEW]).sealer("p").open(again, b"ctx") == b"v"
    assert rotated.reseal(again, b"ctx") is None
    with pytest.raises(Unsealable):
        rotated.reseal(old_token, b"other record")
    text = KeyRing([OLD]).sealer("p").seal_text("secret", "r1")
    new_text = rotated.reseal_text(text, "r1")
    assert new_text is not None and KeyRing([NEW]).sealer("p").open_text(new_text, "r1") == "secret"
    assert rotated.reseal_text(new_text, "r1") is None


def test_key_derivation_is_rfc_5869_hkdf() -> None:
    # The standard-library HKDF gives the keys `cryptography`'s HKDF gave (values sealed
    # before still open), and the RFC's own test case 1 (with its salt, key and info).
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for secret, purpose in [("s" * 32, "runner/deployment-secrets"), ("é" * 40, "")]:
        expected = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"ryax-kit-sealer-v2", info=purpose.encode()
        ).derive(secret.encode("utf-8"))
        assert crypto._derive(secret, purpose) == expected
    ikm, salt, info = bytes.fromhex("0b" * 22), bytes(range(13)), bytes(range(0xF0, 0xFA))
    assert crypto._hkdf_sha256(ikm, salt, info) == bytes.fromhex(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
    )


def test_the_cipher_library_is_loaded_at_the_first_seal_only() -> None:
    code = (
        "import sys; from ryax_kit.crypto import KeyRing; "
        "s = KeyRing(['k' * 32]).sealer('p'); "
        "before = 'cryptography' in sys.modules; "
        "assert s.open(s.seal(b'x')) == b'x'; "
        "print(before, 'cryptography' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
