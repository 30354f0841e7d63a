"""Filestore keys: one rule for every service, and the encoding of user-chosen text into a key
segment. Standard library only, so a domain may build its keys (ryax_kit.filestore's module
docstring explains the rule)."""

from __future__ import annotations

import hashlib
import re

MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=-]*")
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # what encode_segment leaves alone
_UNESCAPED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,16})$")


class InvalidKey(ValueError):
    """The key breaks the key rule (see the module docstring): a caller's mistake, not a
    filestore failure, hence not a FilestoreError."""

    def __init__(self, key: object, reason: str) -> None:
        super().__init__(f"invalid filestore key {_show(key)}: {reason}")
        self.key = key
        self.reason = reason


def _show(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 200 else text[:197] + "..."


def check_key(key: str) -> str:
    """The key itself when it follows the key rule, else InvalidKey naming it and why."""
    if not isinstance(key, str):
        raise InvalidKey(key, "not a string")
    if not key:
        raise InvalidKey(key, "empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(key, f"longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise InvalidKey(key, "absolute (a key is a relative path)")
    if "\\" in key:
        raise InvalidKey(key, "backslash")
    if "\x00" in key:
        raise InvalidKey(key, "NUL character")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(key, f"{segment!r} segment")
        if len(segment) > MAX_SEGMENT_BYTES:
            raise InvalidKey(key, f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
        if not _SEGMENT.fullmatch(segment):
            raise InvalidKey(
                key,
                f"segment {_show(segment)} is not [A-Za-z0-9_][A-Za-z0-9._=-]* "
                "(put user text through encode_segment)",
            )
    return key


def encode_segment(text: str) -> str:
    """One valid key segment for any non-empty text (a user's file name, say); distinct texts
    give distinct segments.

    A plain segment (`[A-Za-z0-9_][A-Za-z0-9._-]*`, at most 255 bytes) is returned as it is:
    `report.pdf` stays `report.pdf`. Anything else becomes `u=` followed by its UTF-8 bytes,
    each byte outside `[A-Za-z0-9._-]` written `=XX`: `my file.txt` -> `u=my=20file.txt`,
    `.bashrc` -> `u=.bashrc`. When that is longer than 255 bytes it becomes
    `h=<sha256 of the text>` plus the text's extension when it has a short alphanumeric one.
    Plain segments never contain `=`, so the three forms cannot meet.
    """
    if not isinstance(text, str) or not text:
        raise InvalidKey(text, "an empty name cannot be a key segment")
    if len(text) <= MAX_SEGMENT_BYTES and _PLAIN_SEGMENT.fullmatch(text):
        return text
    # surrogatepass: a name decoded with surrogateescape keeps its own bytes, distinct from
    # the UTF-8 of any proper text.
    data = text.encode("utf-8", "surrogatepass")
    escaped = "u=" + "".join(chr(b) if b in _UNESCAPED else f"={b:02X}" for b in data)
    if len(escaped) <= MAX_SEGMENT_BYTES:
        return escaped
    extension = _EXTENSION.search(text)
    return "h=" + hashlib.sha256(data).hexdigest() + (extension.group(0) if extension else "")
