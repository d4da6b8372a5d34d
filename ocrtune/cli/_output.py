"""One output sink: rich tables for people, JSON on stdout for scripts, messages on stderr."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ocrtune.train.resources import duration

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
    """Progress fed ``bar(done, total)``, with ``bar.stage(text)`` for the slow steps before the
    first report (loading a model, reading a split).

    On a terminal: a transient spinner from the first stage, then a bar with done/total, elapsed,
    ETA and the rate; it vanishes when done, so an input error found while loading is still the
    only line left. In pipes and logs nothing is drawn (stopping a bar printed a blank line):
    a long job prints a plain line every ``every_s`` seconds instead (done/total, rate, ETA),
    and a short one prints nothing."""

    def __init__(self, description: str, unit: str | None = None, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description = description
        self.unit = unit
        self.every_s = every_s
        self._clock = clock
        self.bar: Progress | None = None
        self.task: Any = None
        self._start = self._last = clock()
        self._counting_since: float | None = None  # the first count: rates and ETAs start here
        self._first_done = 0

    def stage(self, text: str) -> None:
        """Say what is happening before there is anything to count (terminal only)."""
        if not err_console.is_terminal:
            return
        self._open(text, None)

    def __call__(self, done: int, total: int) -> None:
        if not err_console.is_terminal:
            self._line(done, total)
            return
        if self.bar is None or self._counting_since is None:
            self._open(self.description, total)
            self._counting_since = self._clock()
        assert self.bar is not None
        self.bar.update(self.task, completed=done, total=total, description=self.description)

    def _open(self, text: str, total: int | None) -> None:
        if self.bar is None:
            columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), _CountColumn(self.unit),
                       TimeElapsedColumn(), _EtaColumn(), _RateColumn(self.unit or "items")]
            self.bar = Progress(*columns, console=err_console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(text, total=total)
        else:
            self.bar.reset(self.task, total=total, description=text)

    def _line(self, done: int, total: int) -> None:
        now = self._clock()
        if self._counting_since is None:
            self._counting_since = now
            self._first_done = done
        if now - self._last < self.every_s or done >= total:
            return
        self._last = now
        parts = [f"{self.description}: {done}/{total}" + (f" {self.unit}" if self.unit else "")]
        elapsed = now - self._counting_since
        counted = done - self._first_done
        if counted > 0 and elapsed > 0:
            rate = counted / elapsed
            parts.append(f"{rate:.2f} {self.unit or 'items'}/s")
            parts.append(f"ETA {duration((total - done) / rate)}")
        else:
            parts.append(f"{duration(now - self._start)} so far")
        info("  ".join(parts))

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


class _CountColumn(ProgressColumn):
    """``12/64 images`` once there is something to count; nothing while a stage runs."""

    def __init__(self, unit: str | None) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}" + (f" {self.unit}" if self.unit else ""),
                    style="progress.download")


class _EtaColumn(TimeRemainingColumn):
    def render(self, task: Task) -> Text:
        if task.total is None or task.time_remaining is None:
            return Text("")
        return Text.assemble("ETA ", super().render(task))


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} {self.unit}/s" if task.total is not None and task.speed else "")

