"""Raise an error that carries a message and an HTTP status code."""

from dataclasses import dataclass
from typing import Any


@dataclass
class RyaxException(Exception):
    """The published user-defined error (name, `message` and `code` as Ryax documents them)."""

    message: str
    code: int


def handle(request: dict[str, Any]) -> dict[str, Any]:
    raise RyaxException(message=str(request["message"]), code=int(request["code"]))
