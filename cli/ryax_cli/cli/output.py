"""Tables, values and live progress. Data goes to stdout; progress and messages to stderr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .context import Output, print_json, stderr, stdout

STATE_STYLES = {
    "built": "green",
    "running": "green",
    "deployed": "green",
    "completed": "green",
    "success": "green",
    "succeeded": "green",
    "online": "green",
    "connected": "green",
    "ready": "green",
    "failed": "red",
    "error": "red",
    "offline": "red",
    "cancelled": "yellow",
    "canceled": "yellow",
    "lost": "yellow",
}


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def state_text(state: str | None) -> Text:
    if not state:
        return Text("")
    return Text(state, style=STATE_STYLES.get(state.lower(), "cyan"))


def cell(value: Any) -> Text | str:
    if isinstance(value, Text):
        return value
    if value is None:
        return ""
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    empty: str = "nothing to show",
) -> None:
    materialized = [list(r) for r in rows]
    if not materialized:
        stderr().print(empty, markup=False)
        return
    t = Table(title=title, header_style="bold", show_lines=False, expand=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in materialized:
        t.add_row(*(cell(v) for v in row))
    stdout().print(t)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """Key-value lines; empty values are left out."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key, value in pairs:
        if value is None or (isinstance(value, str | Text) and not str(value)):
            continue
        t.add_row(key, cell(value))
    stdout().print(t)


def emit(output: Output, data: Any, render: Any) -> None:
    """`-o json`: the server's documents as they came; else call `render()`."""
    if output is Output.json:
        print_json(data)
    else:
        render()


class Progress:
    """One line per tracked item: a spinner with its state on a terminal, else one line per
    change of state (CI logs stay readable)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr()
        self.items: dict[str, tuple[str, bool]] = {}
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(
                self._render(), console=self.console, refresh_per_second=8, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self._render(final=True))
            self._live.__exit__(exc_type, exc, tb)

    def update(self, key: str, state: str, *, done: bool = False, note: str = "") -> None:
        text = f"{state} {note}".strip()
        previous = self.items.get(key)
        self.items[key] = (text, done)
        if self._live is not None:
            self._live.update(self._render())
        elif previous is None or previous[0] != text:
            self.console.print(f"{key}: {text}", markup=False, highlight=False)

    def _render(self, final: bool = False) -> Table:
        grid = Table.grid(padding=(0, 1))
        for key, (text, done) in self.items.items():
            first = word = text.split(" ", 1)[0]
            marker: Any
            if done or final:
                ok = STATE_STYLES.get(word.lower()) == "green"
                marker = Text("✓" if ok else "✗", style="green" if ok else "red")
            else:
                marker = Spinner("dots")
            grid.add_row(marker, Text(key, style="bold"), Text(text, style=_style(first)))
        return grid


def _style(state: str) -> str:
    return STATE_STYLES.get(state.lower(), "cyan")
