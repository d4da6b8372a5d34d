"""The terminal summary of a sweep report (the files hold the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ocrtune.sweep.report.analysis import fmt_pct, fmt_pp, fmt_value, short
from ocrtune.sweep.report.model import Report

TOP = 10


def render_report(r: Report, folder: Path) -> Group:
    parts: list[Any] = []
    b = r.baseline
    base = f"{b.kind} {b.label}" + (f", {r.metric} {b.score:.4f} ({b.score_source})" if b.score is not None
                                     else " (no score: pass --baseline RUN for a measured one)")
    parts.append(Text(f"sweep {r.name}: {r.strategy} over {', '.join(r.keys)}, {len(r.ranking)} scored trial(s), "
                      f"{r.state}; baseline {base}", style="bold"))
    if r.running:
        parts.append(Text(f"still running: trial(s) {', '.join(map(str, r.running))}", style="yellow"))
    if r.best is not None:
        t = Table(title=f"best: trial {r.best.trial}, {r.metric} {r.best.score:.4f}"
                        + (f" ({fmt_pp(r.score_delta_pp)} vs {b.label})" if r.score_delta_pp is not None else ""),
                  title_justify="left")
        for col in ("parameter", b.label, "best", "change"):
            t.add_column(col, no_wrap=True)
        for c in r.best_vs_baseline:
            t.add_row(c.key, fmt_value(c.baseline), fmt_value(c.best), fmt_pct(c.pct_change))
        parts.append(t)
    rank = Table(title=f"top {min(TOP, len(r.ranking))} of {len(r.ranking)}", title_justify="left")
    for col in ("rank", "trial", *(short(k) for k in r.keys), r.metric, f"vs {b.label}", "status"):
        rank.add_column(col, no_wrap=True)
    for x in r.ranking[:TOP]:
        rank.add_row(str(x.rank), str(x.trial), *(fmt_value(x.params.get(k)) for k in r.keys), f"{x.score:.4f}",
                     fmt_pp(x.delta_pp), x.status)
    parts.append(rank)
    if r.unscored:
        parts.append(Text(f"{len(r.unscored)} trial(s) without a score: "
                          + "; ".join(f"{u.trial} {u.status} ({u.reason})" for u in r.unscored[:5])
                          + (" ..." if len(r.unscored) > 5 else "")))
    parts.append(Text("where the values lie (B baseline, * best, | tried):"))
    for p in r.placement:
        parts.append(Text(f"  {short(p.key):>14}  {p.strip}"))
    for imp in r.impact:
        parts.append(Text(imp.sentence))
    parts.append(Text("importance: " + (", ".join(f"{short(k)} {v:.2f}" for k, v in r.importance.values.items())
                                        if r.importance.values else f"not estimated ({r.importance.note})")))
    p = r.progress
    if p is not None and p.resolution is not None and p.grid_equivalent is not None:
        unit = " decades" if p.log else ""
        parts.append(Text(f"resolution {p.resolution:.3g}{unit}: {p.evaluations} evaluations vs {p.grid_equivalent} "
                          "for a uniform grid of equal resolution"))
    for rec in r.recommended:
        score = "not measured" if rec.score is None else f"{rec.score:.4f}"
        parts.append(Text(f"{rec.kind.value}: {', '.join(f'{short(k)}={fmt_value(v)}' for k, v in rec.values.items())}"
                          f"  score {score}; risk: {rec.risk}", style="bold" if rec.kind.value == "best" else ""))
        if rec.command:
            parts.append(Text(f"    {rec.command}"))
    parts.append(Text(f"report: {folder / 'report.md'} ({len(r.figures)} figure(s), report.html, report.json, "
                      "methods.md/.tex, presets/)"))
    return Group(*parts)
