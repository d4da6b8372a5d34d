"""`ocrtune compare A B [C ...]`: what differs between presets, with percentage deltas.

Parameters show their % change vs the first; scores are shown in percent (2 decimals) with
their difference in percentage points; identifiers such as ``seed`` only show the changed
value. The rules are ``ocrtune.presets.compare``'s (``SCORE_KEYS``, ``NO_PERCENT_KEYS``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from pathlib import Path

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import console, fmt, markdown_table, print_json, table
from ocrtune.comparable import load_comparable
from ocrtune.presets.compare import DiffRow, diff, score_percent


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

    Scores (reported.*, run.best.*) are shown in percent with their difference in percentage
    points (pp); a run's best score is measured against a preset's reported one. Identifiers
    such as seed show only the changed value. Run directories add their outcome (status, best
    epoch and scores) as run.* rows. --set overrides apply to every compared preset.
    """
    loaded = [load_comparable(r, set_ or [], presets_dir or [], runs_dir) for r in refs]
    names = [name for name, _ in loaded]
    rows = diff(loaded, include_equal=all_)
    if as_json:
        print_json(
            {
                "presets": names,
                "rows": [_json_row(r, names) for r in rows],
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


def _json_row(r: DiffRow, names: list[str]) -> dict:
    """Raw values as the presets and runs state them; score rows add ``delta_pp``."""
    out: dict = {"key": r.key, "values": dict(zip(names, r.values)), "pct_change": dict(zip(names[1:], r.deltas[1:]))}
    if r.score:
        out["delta_pp"] = dict(zip(names[1:], r.pp[1:]))
        if r.reference is not None:
            out["reference"] = {"key": r.reference[0], "value": r.reference[1]}
    out["differs"] = r.differs
    return out


def _text(row: DiffRow, value: object) -> str:
    if row.score:
        pct = score_percent(row.key, value)
        if pct is not None:
            return f"{pct:.2f}"
    return fmt(value)


def _cell(row: DiffRow, i: int, plain: bool) -> str | Text:
    value = row.values[i]
    text = _text(row, value)
    if i == 0 and row.reference is not None:  # a preset's reported score, what a run is measured against
        ref_key, ref = row.reference
        pct = score_percent(ref_key, ref)
        return f"{pct:.2f} ({ref_key})" if plain else Text(f"{pct:.2f} ({ref_key})", style="dim")
    if row.score:
        delta = row.pp[i] if row.pp else None
        shown = None if delta is None else f"{delta:+.2f} pp"
    else:
        delta = row.deltas[i]
        shown = None if delta is None else f"{delta:+.1f}%"
    if i == 0 or delta is None or shown is None:
        if i > 0 and row.values[0] != value and not plain:
            return Text(text, style="yellow")
        return text
    if shown in ("+0.00 pp", "-0.00 pp", "+0.0%", "-0.0%"):
        arrow = "="
    else:
        arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
    change = f"{arrow} {shown}"
    if plain:
        return f"{text} ({change})"
    colour = "green" if arrow == "▲" else "red" if arrow == "▼" else "dim"
    return Text.assemble(text, " ", (change, colour))
