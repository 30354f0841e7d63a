"""Write the input text into a report file."""

import tempfile
from pathlib import Path
from typing import Any


def handle(request: dict[str, Any]) -> dict[str, Any]:
    title = str(request.get("title") or "Report")
    text = str(request["text"])
    # A file output is the path of a file the handler wrote; the wrapper stores it after return.
    report = Path(tempfile.mkdtemp(prefix="make-report-")) / "report.txt"
    report.write_text(f"{title}\n{'=' * len(title)}\n\n{text}\n", encoding="utf-8")
    return {"report": str(report)}
