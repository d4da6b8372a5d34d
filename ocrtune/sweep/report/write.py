"""The report's files from one list of blocks: ``report.md``, a self-contained
``report.html`` (figures embedded as data URIs), ``report.json``, ``methods.md`` and
``methods.tex``. Every score difference is in percentage points, every parameter change in
percent."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

from ocrtune.sweep.report.analysis import fmt_pct, fmt_pp, fmt_value, short
from ocrtune.sweep.report.benchmark import compare as compare_benchmark
from ocrtune.sweep.report.model import Report
from ocrtune.train.rundir import write_text_atomic


@dataclass(frozen=True)
class H:
    level: int
    text: str


@dataclass(frozen=True)
class P:
    text: str


@dataclass(frozen=True)
class T:
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Img:
    path: str  # relative to the report folder
    caption: str


Block = Union[H, P, T, Pre, Img]
FIGURE_CAPTIONS = {
    "convergence_heatmap": "Best score per stage and parameter bin: where the search concentrated.",
    "search_path": "Intervals refined at each stage; the final pick highlighted.",
    "efficiency": "Evaluations: this sweep vs a uniform grid of the same resolution (for one log-scale parameter, "
                  "beside it: grid, random and TPE on the simulated benchmark, not this sweep).",
    "learning_curves": "Validation metric per epoch of every trial; the best trial highlighted.",
    "parallel_coordinates": "Each scored trial across the searched parameters, coloured by score.",
}


def blocks(r: Report) -> list[Block]:
    """Every section of the report, in order."""
    out: list[Block] = [H(1, f"Sweep report: {r.name}")]
    base = r.baseline
    score_src = f"{_score(base.score, r)}: {base.score_source}" if base.score is not None else \
        "no score (pass --baseline RUN to compare against a measured run)"
    start = f", each from the weights of {r.init}" if r.init else ""
    out.append(P(f"{r.strategy} sweep of {', '.join(r.keys)} on preset {r.preset}, {r.epochs} epoch(s) per "
                 f"trial ({r.source}{start}), ranked by {r.metric} ({'higher' if r.direction == 'maximize' else 'lower'} is "
                 f"better). State: {r.state}. Baseline: {base.kind} {base.label}, {score_src}."))
    if base.score is not None and base.epochs and base.epochs != r.epochs and r.best is not None \
            and not r.source.startswith("imported"):
        out.append(P(f"Note: the baseline's score was measured after {base.epochs} epoch(s), the trials' after "
                     f"{r.epochs}: the pp differences mix horizons. Train the recommended presets (below) or pass "
                     "--baseline RUN with a run of the same length for a like-for-like comparison."))
    if r.running:
        out.append(P(f"Still running: trial(s) {', '.join(map(str, r.running))}; this report covers the trials "
                     "finished so far."))
    # best vs baseline
    out.append(H(2, "Best vs baseline"))
    if r.best is None:
        out.append(P("No trial has a score yet."))
    else:
        delta = f", {fmt_pp(r.score_delta_pp)} vs {base.label}" if r.score_delta_pp is not None else ""
        out.append(P(f"Best: trial {r.best.trial} (rank {r.best.rank}), {r.metric} {_score(r.best.score, r)}{delta}."))
        if r.best_note:
            out.append(P(f"Why not rank 1: {r.best_note}."))
        out.append(T(["parameter", base.label, "best", "change"],
                     [[k.key + (" (coupled)" if k.coupled else "" if k.swept else " (fixed in the sweep)"),
                       fmt_value(k.baseline), fmt_value(k.best), fmt_pct(k.pct_change)] for k in r.best_vs_baseline]))
    # ranking
    out.append(H(2, "Ranking"))
    keys = r.keys
    out.append(T(["rank", "trial", "stage", *(short(k) for k in keys), r.metric, "smoothed", f"vs {base.label}",
                  "status"],
                 [[x.rank, x.trial, f"{x.stage}{'r' if x.kind == 'replicate' else ''}",
                   *(fmt_value(x.params.get(k)) for k in keys), _score(x.score, r),
                   _score(x.smoothed, r) if x.smoothed is not None else "-", fmt_pp(x.delta_pp), x.status]
                  for x in r.ranking]))
    if r.unscored:
        out.append(P("Trials without a score:"))
        out.append(T(["trial", *(short(k) for k in keys), "status", "reason"],
                     [[u.trial, *(fmt_value(u.params.get(k)) for k in keys), u.status, u.reason] for u in r.unscored]))
    # placement
    out.append(H(2, "Where the values lie"))
    out.append(P("B = baseline, * = best, | = other values tried."))
    out.append(Pre("\n".join(f"{short(p.key):>14}  {p.strip}" for p in r.placement)))
    for k in keys:
        if f"score_vs_{short(k)}" in r.figures:
            out.append(Img(r.figures[f"score_vs_{short(k)}"], f"{r.metric} against {k}; best and baseline marked."))
    # impact
    out.append(H(2, "Parameter impact"))
    for imp in r.impact:
        out.append(P(imp.sentence))
        out.append(T([short(imp.key) + " band", "values", f"mean {r.metric}", "spread", "trials"],
                     [[b.label, f"{fmt_value(b.lo)} .. {fmt_value(b.hi)}", _score(b.mean, r),
                       "-" if b.spread is None else _score(b.spread, r), b.n] for b in imp.bands]))
    if r.importance.values:
        out.append(P("Importance: " + ", ".join(f"{short(k)} {v:.2f}" for k, v in r.importance.values.items())
                     + f" ({r.importance.note})."))
    else:
        out.append(P(f"Importance: not estimated ({r.importance.note})."))
    if "parallel_coordinates" in r.figures:
        out.append(Img(r.figures["parallel_coordinates"], FIGURE_CAPTIONS["parallel_coordinates"]))
    # progress
    p = r.progress
    if p is not None:
        out.append(H(2, "Coarse-to-fine progress"))
        unit = " decades" if p.log else ""
        out.append(T(["stage", "intervals refined", "values tried", "best smoothed score", "change"],
                     [[s.stage, ", ".join(f"{a:.3g}..{b:.3g} x{n}" for a, b, n in s.intervals) or s.reason,
                       ", ".join(f"{v:.3g}" for v in s.values), _score(s.best_so_far, r), fmt_pp(s.improvement_pp)]
                      for s in p.stages]))
        out.append(P("The best smoothed score is recomputed over every trial so far, so it can fall when new "
                     "neighbours of the best value score lower: the stop rule and the pick use it."))
        out.append(P(f"Stopped: {p.stop_reason or 'still running'}."))
        if p.resolution is not None and p.grid_equivalent is not None:
            out.append(P(f"Resolution reached: the pick is bracketed within {p.resolution:.3g}{unit} of the "
                         f"{p.range_width:.3g}{unit} range. {p.evaluations} evaluations vs {p.grid_equivalent} for a "
                         f"uniform grid of equal resolution over the same range."))
        bench = compare_benchmark(r)
        if bench is not None:
            out.append(P(bench.text(r.keys[0] if r.keys else "the parameter")))
        for name in ("search_path", "convergence_heatmap", "efficiency"):
            if name in r.figures:
                out.append(Img(r.figures[name], FIGURE_CAPTIONS[name]))
    # recommendations
    out.append(H(2, "Recommendations"))
    if not r.recommended:
        out.append(P("None: no trial has a score. See the reasons above (sweep status shows each trial's error)."))
    for rec in r.recommended:
        score = "not measured" if rec.score is None else _score(rec.score, r) + (
            f" +- {rec.spread:.3g} over {rec.n} runs" if rec.spread is not None and rec.n > 1 else "")
        out.append(H(3, rec.kind.value))
        out.append(P(f"{', '.join(f'{short(k)} = {fmt_value(v)}' for k, v in rec.values.items())}. Score: {score}. "
                     f"Risk: {rec.risk}. Rule: {rec.rule}."))
        if rec.command:
            out.append(Pre(rec.command))
    if "learning_curves" in r.figures:
        out.append(H(2, "Learning curves"))
        out.append(Img(r.figures["learning_curves"], FIGURE_CAPTIONS["learning_curves"]))
    if r.methods is not None:
        out.append(H(2, "Methods"))
        out.append(P(r.methods.markdown))
    return out


def to_markdown(bs: Sequence[Block]) -> str:
    lines: list[str] = []
    for b in bs:
        if isinstance(b, H):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, P):
            lines += [b.text, ""]
        elif isinstance(b, T):
            lines.append("| " + " | ".join(map(str, b.header)) + " |")
            lines.append("|" + "|".join("---" for _ in b.header) + "|")
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in b.rows]
            lines.append("")
        elif isinstance(b, Pre):
            lines += ["```", b.text, "```", ""]
        elif isinstance(b, Img):
            lines += [f"![{b.caption}]({b.path})", ""]
    return "\n".join(lines)


def to_html(bs: Sequence[Block], folder: Path, title: str) -> str:
    """One file that opens anywhere: figures inlined as base64 PNGs."""
    e = html.escape
    body: list[str] = []
    for b in bs:
        if isinstance(b, H):
            body.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, P):
            body.append(f"<p>{e(b.text)}</p>")
        elif isinstance(b, T):
            head = "".join(f"<th>{e(str(h))}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Pre):
            body.append(f"<pre>{e(b.text)}</pre>")
        elif isinstance(b, Img):
            data = base64.b64encode((folder / b.path).read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{e(b.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{e(b.caption)}</figcaption></figure>")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;"
             "padding:3px 8px;text-align:right}th{background:#f3f3f3}pre{background:#f6f6f6;padding:8px;"
             "overflow-x:auto}img{max-width:100%}figcaption{color:#555;font-size:0.9em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_files(r: Report, folder: Path) -> None:
    """Every file of the report into ``folder`` (figures and presets are already there)."""
    bs = blocks(r)
    write_text_atomic(folder / "report.md", to_markdown(bs))
    write_text_atomic(folder / "report.html", to_html(bs, folder, f"Sweep report: {r.name}"))
    write_text_atomic(folder / "report.json", json.dumps(r.to_json(), indent=2, ensure_ascii=False, default=str) + "\n")
    if r.methods is not None:
        write_text_atomic(folder / "methods.md", r.methods.markdown + "\n")
        write_text_atomic(folder / "methods.tex", r.methods.latex)


def _score(v: float | None, r: Report) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if r.metric == "hmean" else f"{v:.4g}"
