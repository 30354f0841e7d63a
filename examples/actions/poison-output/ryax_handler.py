"""Return an output value that is hard to store, on demand (see ryax_metadata.yaml)."""

from typing import Any

HUGE_BYTES = 10 * 1024 * 1024
KINDS = ("ok", "nul", "surrogate", "huge", "nan")


def handle(request: dict[str, Any]) -> dict[str, Any]:
    kind = str(request.get("kind") or "ok")
    text, number = "plain text", 1.5
    if kind == "nul":
        text = "before\x00after"
    elif kind == "surrogate":
        text = "lone \ud800 surrogate"
    elif kind == "huge":
        text = "x" * HUGE_BYTES
    elif kind == "nan":
        number = float("nan")
    elif kind != "ok":
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return {"text_value": text, "number_value": number}
