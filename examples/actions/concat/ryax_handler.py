"""Join two texts."""

from typing import Any


def handle(request: dict[str, Any]) -> dict[str, Any]:
    separator = request.get("separator")
    separator = " " if separator is None else str(separator)
    return {"text": f"{request['left']}{separator}{request['right']}"}
