"""One output sink: rich tables for people, JSON on stdout for scripts, messages on stderr."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

# Piped output is read by people too: don't squeeze tables into 80 columns there.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no rich wrapping, so it always parses; NaN/inf become null)."""
    print(json.dumps(_finite(data), indent=2, ensure_ascii=False, default=_default, allow_nan=False))


def _finite(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def error(line: str) -> None:
    err_console.print(line, style="red")


def info(line: str) -> None:
    err_console.print(line)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], **kw: Any) -> Table:
    """Values are shown as text, never parsed as markup; pass ``rich.text.Text`` for styling."""
    t = Table(title=Text(title) if title else None, **kw)
    for i, c in enumerate(columns):
        t.add_column(Text(c), no_wrap=i == 0, overflow="fold")
    for r in rows:
        t.add_row(*(x if isinstance(x, Text) else Text(fmt(x)) for x in r))
    return t


def fmt(v: Any) -> str:
    """Short human form of a setting value."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(str(x)) for x in r) + " |" for r in rows]
    return "\n".join(lines)


class ProgressBar:
    """A transient progress bar fed ``bar(done, total)``, opened on the first report, which
    comes once the inputs are checked: an input error before it is one line with nothing
    printed ahead of it. Only on a terminal: in pipes and logs a bar is not drawn anyway, and
    stopping it printed a blank line."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: Progress | None = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not err_console.is_terminal:
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                console=err_console, transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
