"""Print the inputs to the run log."""

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("print-publisher")

MAX_LINES = 20


def handle(request: dict[str, Any]) -> dict[str, Any]:
    for name in ("text", "total"):
        if request.get(name) is not None:
            print(f"{name}: {request[name]}", flush=True)
    if request.get("report") is not None:
        path = Path(request["report"])
        with path.open(encoding="utf-8", errors="replace") as lines:
            head = [line.rstrip("\n") for _, line in zip(range(MAX_LINES), lines, strict=False)]
        print(f"report {path.name}:", *head, sep="\n  ", flush=True)
    log.info("published %d value(s)", sum(request.get(n) is not None for n in request))
    return {}
