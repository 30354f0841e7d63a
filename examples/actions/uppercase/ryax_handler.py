"""Uppercase a text."""

from typing import Any


def handle(request: dict[str, Any]) -> dict[str, Any]:
    return {"upper": str(request["text"]).upper()}
