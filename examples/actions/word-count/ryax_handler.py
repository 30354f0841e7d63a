"""Count the words of a text file."""

import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


def progress(fraction: float, message: str) -> None:
    """Report progress through the `ryax` module the action wrapper provides; a no-op elsewhere."""
    try:
        import ryax  # type: ignore[import-not-found]
    except ImportError:
        return
    ryax.progress(fraction, message)


def handle(request: dict[str, Any]) -> dict[str, Any]:
    # A file input arrives as the local path of the file.
    text = Path(request["document"]).read_text(encoding="utf-8")
    progress(0.1, "file read")
    counts = Counter(word.lower() for word in WORD.findall(text))
    progress(0.8, f"{len(counts)} distinct words")
    output = Path(tempfile.mkdtemp(prefix="word-count-")) / "counts.tsv"
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    output.write_text("".join(f"{word}\t{count}\n" for word, count in rows), encoding="utf-8")
    return {"counts": str(output), "total": sum(counts.values())}
