"""`ocrtune compare A B [C ...]`: what differs between presets, with percentage deltas."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from pathlib import Path

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import console, fmt, markdown_table, print_json, table
from ocrtune.comparable import load_comparable
from ocrtune.presets.compare import DiffRow, diff


def compare(
    refs: Annotated[list[str], typer.Argument(help="Presets (names or paths) or run directories; the first is the reference.")],
    all_: Annotated[bool, typer.Option("--all", help="Also show settings that are equal.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
    set_: SetOption = None,
    presets_dir: PresetsDirOption = None,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")] = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Parameters that differ, each with its % change relative to the first preset.

    Run directories add their outcome (status, best epoch and scores) as run.* rows.
    --set overrides apply to every compared preset.
    """
    loaded = [load_comparable(r, set_ or [], presets_dir or [], runs_dir) for r in refs]
    names = [name for name, _ in loaded]
    rows = diff(loaded, include_equal=all_)
    if as_json:
        print_json(
            {
                "presets": names,
                "rows": [
                    {"key": r.key, "values": dict(zip(names, r.values)), "pct_change": dict(zip(names[1:], r.deltas[1:])), "differs": r.differs}
                    for r in rows
                ],
            }
        )
        return
    cells = [[r.key, *(_cell(r, i, plain=markdown) for i in range(len(names)))] for r in rows]
    if markdown:
        print(markdown_table(["parameter", *names], cells))
        return
    if not rows:
        console.print(f"{' and '.join(names)}: no differing parameters", markup=False)
        return
    title = f"{len(rows)} differing parameter(s) vs {names[0]}" if not all_ else f"all parameters vs {names[0]}"
    console.print(table(title, ["parameter", *names], cells))


def _cell(row: DiffRow, i: int, plain: bool) -> str | Text:
    value, delta = row.values[i], row.deltas[i]
    text = fmt(value)
    if i == 0 or delta is None:
        if i > 0 and row.values[0] != value and not plain:
            return Text(text, style="yellow")
        return text
    arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
    change = f"{arrow} {delta:+.1f}%"
    if plain:
        return f"{text} ({change})"
    colour = "green" if delta > 0 else "red" if delta < 0 else "dim"
    return Text.assemble(text, " ", (change, colour))


