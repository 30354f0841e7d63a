"""A step that does nothing: the benchmarks' unit of work (bench/README.md)."""

from typing import Any


def handle(request: dict[str, Any]) -> dict[str, Any]:
    return {"value": request["value"]}
