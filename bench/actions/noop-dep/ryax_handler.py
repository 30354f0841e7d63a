"""The no-op step with one small dependency (six, pure Python, no dependencies of its own)."""

from typing import Any

import six


def handle(request: dict[str, Any]) -> dict[str, Any]:
    return {"value": six.ensure_str(request["value"])}
