"""Return the text unchanged; this action is about its logo (logo.jpg holds a PNG image)."""

from typing import Any


def handle(request: dict[str, Any]) -> dict[str, Any]:
    return {"text": request["text"]}
