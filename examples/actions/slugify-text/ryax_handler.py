"""Slugify a text with python-slugify (a PyPI dependency pinned in requirements.txt)."""

from typing import Any

from slugify import slugify


def handle(request: dict[str, Any]) -> dict[str, Any]:
    return {"slug": slugify(str(request["text"]))}
