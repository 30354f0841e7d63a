"""Serving content users uploaded (logos, files): a browser must never run or re-interpret it."""

from __future__ import annotations

from collections.abc import Mapping

#: Headers for user content shown inside the web UI, never run: an SVG opened on its own gets no
#: script, no plugin and no other origin's resources, and no browser guesses another type.
UNTRUSTED_CONTENT_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    "Cache-Control": "private, max-age=300",
}
