"""The report's figures, drawn from a ``Report`` and the trials' learning curves (PNG, one
figure per file).

Every figure says what it shows without the report around it: a title naming the sweep,
labelled axes (the metric with its unit and direction, parameters on a log axis where they
were searched on one), the best trial marked, the baseline where it applies. A figure that
does not apply to the sweep is not drawn (no coarse-to-fine figures for a grid sweep, no
parallel coordinates for one parameter, nothing that needs a score when no trial has one).

matplotlib is imported when figures are drawn, not with ocrtune. Figures are built with
matplotlib's object API (``Figure`` + the Agg canvas), not pyplot: nothing is registered in
pyplot's global figure list, so drawing the figures of a 300-trial sweep leaves no figure
open, and a caller's own pyplot figures are never touched.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ocrtune.presets.compare import is_number
from ocrtune.sweep.report.analysis import fmt_value, short
from ocrtune.sweep.report.benchmark import DOC, HIERARCHICAL, BenchmarkComparison, compare
from ocrtune.sweep.report.model import Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 120
SIZE = (8.0, 5.0)  # inches: 960 x 600 px at DPI
BEST = "#d62728"  # red: the best trial, everywhere
BASE = "#555555"  # grey: the baseline, everywhere
TRIAL = "#1f77b4"  # blue: the other trials
HEAT_BINS = 30

Curves = Mapping[int, Sequence[tuple[int, float]]]


def draw_figures(report: Report, curves: Mapping[int, Sequence[tuple[int, float]]], out_dir: Path) -> dict[str, Path]:
    """Draw every figure that applies to this sweep into out_dir (PNG) and return name -> path."""
    _backend()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plans: list[tuple[str, Callable[[Figure], bool]]] = []
    p = report.progress
    if p is not None and p.stages and report.keys:
        plans.append(("convergence_heatmap", lambda fig: _convergence_heatmap(fig, report)))
        plans.append(("search_path", lambda fig: _search_path(fig, report)))
        if p.grid_equivalent is not None:
            plans.append(("efficiency", lambda fig: _efficiency(fig, report)))
    plans.append(("learning_curves", lambda fig: _learning_curves(fig, report, curves)))
    for name, key in _score_figure_names(report.keys).items():
        plans.append((name, lambda fig, key=key: _score_vs(fig, report, key)))
    if len(report.keys) >= 2:
        plans.append(("parallel_coordinates", lambda fig: _parallel_coordinates(fig, report)))
    drawn: dict[str, Path] = {}
    for name, draw in plans:
        path = out_dir / f"{name}.png"
        if _render(draw, path):
            drawn[name] = path
    return drawn


# --- plumbing --------------------------------------------------------------------------------


def _backend() -> None:
    """Agg, so figures are drawn without a display. Not switched when pyplot is already in use:
    switching it would close the caller's open figures (and these figures need no backend)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


def _render(draw: Callable[[Figure], bool], path: Path) -> bool:
    """One figure, saved to ``path`` if ``draw`` put something on it; always released."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    try:
        if not draw(fig):
            return False
        fig.savefig(path, dpi=DPI, facecolor="white")
        return True
    finally:
        fig.clear()


def _score_figure_names(keys: Sequence[str]) -> dict[str, str]:
    """``score_vs_<short key>`` per key; a short name two keys share gets the full key."""
    shorts = [short(k) for k in keys]
    out: dict[str, str] = {}
    for k, s in zip(keys, shorts):
        name = s if shorts.count(s) == 1 else k.replace(".", "_")
        out[f"score_vs_{re.sub(r'[^A-Za-z0-9_-]+', '_', name)}"] = k
    return out


def _title(ax: Axes, r: Report, what: str, sub: str | None = None) -> None:
    ax.set_title(f"Sweep '{r.name}' ({r.strategy}): {what}" + (f"\n{sub}" if sub else ""), fontsize=11)


def _legend_below(fig: Figure, handles: Sequence[Any], ncol: int = 2) -> None:
    """The legend under the plot, outside it: constrained layout makes room, so it never
    covers a point nor the x-axis label."""
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)


def _metric_label(r: Report) -> str:
    if r.metric == "hmean":
        return "validation H-mean (fraction 0-1, higher is better)"
    if r.metric == "val_loss":
        return "validation loss (lower is better)"
    better = "higher" if r.direction == "maximize" else "lower"
    return f"{r.metric} ({r.unit}, {better} is better)"


def _metric_short(r: Report) -> str:
    return {"hmean": "H-mean", "val_loss": "val loss"}.get(r.metric, r.metric)


def _param_label(r: Report, key: str, log: bool) -> str:
    return f"{key} ({'log scale' if log else 'linear scale'})"


def _cmap(r: Report) -> str:
    """Brighter is better in either direction."""
    return "viridis" if r.direction == "maximize" else "viridis_r"


def _better(r: Report, a: float, b: float) -> bool:
    return a > b if r.direction == "maximize" else a < b


def _num(v: Any) -> float | None:
    if not is_number(v):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _is_log(r: Report, key: str, values: Sequence[float]) -> bool:
    return key in r.log_keys and all(v > 0 for v in values)


def _fwd(log: bool) -> Callable[[float], float]:
    return (lambda v: math.log10(v)) if log else (lambda v: v)


def _inv(log: bool) -> Callable[[float], float]:
    return (lambda v: 10.0**v) if log else (lambda v: v)


def _limits(values: Sequence[float], log: bool, pad: float = 0.05) -> tuple[float, float]:
    """Axis limits around ``values`` with ``pad`` of the span on each side (in log space for log)."""
    f, g = _fwd(log), _inv(log)
    t = [f(v) for v in values]
    lo, hi = min(t), max(t)
    span = hi - lo or (abs(lo) * 0.1 if lo else 1.0)
    return g(lo - pad * span), g(hi + pad * span)


def _pick_text(r: Report, key: str) -> str:
    b = r.best
    assert b is not None
    return f"best: trial {b.trial}, {short(key)} = {fmt_value(b.params.get(key))}, {_metric_short(r)} {b.score:.4g}"


# --- 1. convergence heatmap ------------------------------------------------------------------


def _convergence_heatmap(fig: Figure, r: Report) -> bool:
    import numpy as np

    p = r.progress
    assert p is not None
    key = r.keys[0]
    n_stages = len(p.stages)
    rows = [x for x in r.ranking if x.kind == "explore" and 1 <= x.stage <= n_stages and _num(x.params.get(key)) is not None]
    if not rows:
        return False
    log = p.log and p.low > 0
    edges = np.geomspace(p.low, p.high, HEAT_BINS + 1) if log else np.linspace(p.low, p.high, HEAT_BINS + 1)
    grid = np.full((n_stages, HEAT_BINS), np.nan)
    for x in rows:
        v = float(x.params[key])
        i = int(np.clip(np.searchsorted(edges, v, side="right") - 1, 0, HEAT_BINS - 1))
        cell = grid[x.stage - 1, i]
        if math.isnan(cell) or _better(r, x.score, cell):
            grid[x.stage - 1, i] = x.score
    ax = fig.add_subplot()
    import matplotlib

    cmap = matplotlib.colormaps[_cmap(r)].with_extremes(bad="white")
    y_edges = np.arange(n_stages + 1) + 0.5
    mesh = ax.pcolormesh(edges, y_edges, np.ma.masked_invalid(grid), cmap=cmap, edgecolors="#dddddd", linewidth=0.3)
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(f"best {_metric_label(r)} in bin", fontsize=9)
    if log:
        ax.set_xscale("log")
    ax.set_xlim(p.low, p.high)
    ax.set_ylim(n_stages + 0.5, 0.5)  # stage 1 (coarsest) on top
    ax.set_yticks(range(1, n_stages + 1))
    ax.set_ylabel("stage (1 = coarsest)")
    ax.set_xlabel(_param_label(r, key, log))
    at = _pick_stage(r, key, n_stages)
    if r.best is not None and at is not None:
        ax.plot([float(r.best.params[key])], [at], marker="*", markersize=18, color=BEST,
                markeredgecolor="white", markeredgewidth=1.2, linestyle="none", label=_pick_text(r, key))
        _legend_below(fig, ax.get_legend_handles_labels()[0], ncol=1)
    width = (math.log10(p.high) - math.log10(p.low)) / HEAT_BINS if log else (p.high - p.low) / HEAT_BINS
    _title(ax, r, "best score per stage and value bin",
           f"{HEAT_BINS} bins of {width:.3g}{' decades' if log else ''} over [{p.low:g}, {p.high:g}]; blank: not tried")
    return True


# --- 2. search path --------------------------------------------------------------------------


def _search_path(fig: Figure, r: Report) -> bool:
    from matplotlib.lines import Line2D

    p = r.progress
    assert p is not None
    key = r.keys[0]
    log = p.log and p.low > 0
    n_stages = len(p.stages)
    ax = fig.add_subplot()
    if log:  # scale and limits first: the stage labels are placed in display space
        ax.set_xscale("log")
    ax.set_xlim(*_limits([p.low, p.high], log, pad=0.03))
    ax.set_ylim(n_stages + 0.6, 0.4)
    pick = _num(r.best.params.get(key)) if r.best is not None else None
    handles: list[Any] = []
    seg_kw = dict(color="#ff7f0e", alpha=0.35, linewidth=9, solid_capstyle="butt")
    for s in p.stages:
        spans = [(p.low, p.high, len(s.values))] if not s.intervals else s.intervals
        for j, (lo, hi, n) in enumerate(spans):
            ax.plot([lo, hi], [s.stage, s.stage], **seg_kw)
            ax.plot([lo, hi], [s.stage, s.stage], linestyle="none", marker="|", markersize=16, markeredgewidth=1.5,
                    color="#b35900", zorder=2)
            _stage_label(ax, f"+{n}", lo, hi, s.stage, j, log, pick)
    handles.append(Line2D([], [], **seg_kw, marker="|", markersize=12, markeredgecolor="#b35900",
                          label="interval searched (+n new values; stage 1: the whole range)"))
    # every value tried, hollow; scored ones filled with their score's colour
    for s in p.stages:
        ax.plot(s.values, [s.stage] * len(s.values), linestyle="none", marker="o", markersize=7,
                markerfacecolor="none", markeredgecolor="#888888", zorder=3)
    handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="#888888",
                          label="value tried (hollow: no score)"))
    rows = [x for x in r.ranking if x.kind == "explore" and 1 <= x.stage <= n_stages and _num(x.params.get(key)) is not None]
    if rows:
        scores = [x.score for x in rows]
        sc = ax.scatter([float(x.params[key]) for x in rows], [x.stage for x in rows], c=scores, cmap=_cmap(r),
                        s=42, edgecolors="black", linewidths=0.4, zorder=4)
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label(_metric_label(r), fontsize=9)
    base = _num(r.baseline.values.get(key))
    if base is not None and (base > 0 or not log):
        ax.axvline(base, color=BASE, linestyle="--", linewidth=1.2, zorder=2)
        handles.append(Line2D([], [], color=BASE, linestyle="--", label=f"baseline value ({r.baseline.label}): {fmt_value(base)}"))
    if r.best is not None and pick is not None:
        ax.axvline(pick, color=BEST, linewidth=1.6, zorder=2)
        at = _pick_stage(r, key, n_stages)
        if at is not None:
            ax.plot([pick], [at], marker="*", markersize=18, color=BEST, markeredgecolor="white",
                    markeredgewidth=1.2, linestyle="none", zorder=5)
        handles.append(Line2D([], [], color=BEST, marker="*", markersize=12, markeredgecolor="white",
                              label=f"pick: {_pick_text(r, key).removeprefix('best: ')}"))
    ax.set_yticks(range(1, n_stages + 1))
    ax.set_ylabel("stage (1 = coarsest)")
    ax.set_xlabel(_param_label(r, key, log))
    ax.grid(axis="x", which="major", alpha=0.3)
    _legend_below(fig, handles)
    stop = f"stopped: {p.stop_reason}" if p.stop_reason else "still running"
    _title(ax, r, "coarse-to-fine search path", stop)
    return True


def _stage_label(ax: Axes, text: str, lo: float, hi: float, stage: int, j: int, log: bool,
                 pick: float | None) -> None:
    """``+n`` above (or, every other interval, below) the interval's middle; an interval next to
    the pick gets it beside its outer end instead, clear of the pick's line and star."""
    kw = dict(textcoords="offset points", fontsize=8, color="#b35900")
    mid = math.sqrt(lo * hi) if log else (lo + hi) / 2
    clear = 16.0  # points between a label's near edge and the pick: the star's radius and a margin
    if pick is None or abs(_pt(ax, mid, pick)) >= clear + 8:
        ax.annotate(text, (mid, stage), xytext=(0, 7 if j % 2 == 0 else -8), ha="center",
                    va="bottom" if j % 2 == 0 else "top", **kw)
        return
    left = mid < pick
    end = lo if left else hi
    gap = max(5.0, clear - abs(_pt(ax, end, pick)))  # beyond the end marker, and far enough from the pick
    ax.annotate(text, (end, stage), xytext=(-gap if left else gap, 0), ha="right" if left else "left",
                va="center", **kw)


def _pt(ax: Axes, a: float, b: float) -> float:
    """Horizontal distance from data x ``b`` to ``a`` in points, at the axes' current size."""
    (xa, _), (xb, _) = ax.transData.transform([(a, 0.0), (b, 0.0)])
    return float(xa - xb) * 72.0 / ax.figure.dpi


def _pick_stage(r: Report, key: str, n_stages: int) -> int | None:
    """The stage row the pick is drawn on: its own, or for a replicate run the first stage that
    explored its value (replicates come after the stages)."""
    b = r.best
    v = _num(b.params.get(key)) if b is not None else None
    if b is None or v is None:
        return None
    if b.kind == "explore" and 1 <= b.stage <= n_stages:
        return b.stage
    return min((x.stage for x in r.ranking if x.kind == "explore" and 1 <= x.stage <= n_stages
                and _num(x.params.get(key)) is not None and math.isclose(float(x.params[key]), v, rel_tol=1e-6)),
               default=None)


# --- 3. efficiency ---------------------------------------------------------------------------


def _efficiency(fig: Figure, r: Report) -> bool:
    """This sweep's evaluations vs the equal-resolution grid; beside it, where the simulated
    benchmark applies (one log-scale parameter), how close each strategy gets on it."""
    cmp = compare(r)
    if cmp is None or not cmp.applies:  # the benchmark says nothing about this sweep: the bars alone
        ax = fig.add_subplot()
        _title(ax, r, "evaluations vs a uniform grid", _efficiency_bars(ax, r))
        return True
    fig.set_size_inches(SIZE[0] * 1.65, SIZE[1] * 1.1)
    bars, bench = fig.subplots(1, 2, width_ratios=[1.0, 1.3])
    bars.set_title("this sweep vs a uniform grid of equal resolution\n" + _efficiency_bars(bars, r), fontsize=9.5)
    _benchmark_panel(bench, r, cmp)
    fig.suptitle(f"Sweep '{r.name}' ({r.strategy}): evaluations", fontsize=12)
    return True


def _efficiency_bars(ax: Axes, r: Report) -> str:
    """The two bars; returns the subtitle (resolution reached, and the ratio)."""
    p = r.progress
    assert p is not None and p.grid_equivalent is not None
    labels = [f"this sweep\n(hierarchical, {len(p.stages)} stages)", "uniform grid\nof equal resolution"]
    values = [p.evaluations, p.grid_equivalent]
    bars = ax.bar(labels, values, color=[TRIAL, "#bbbbbb"], width=0.55, edgecolor="black", linewidth=0.6)
    ratio = max(values) / max(1, min(values))
    if ratio > 20:
        ax.set_yscale("log")
        ax.set_ylim(0.8, max(values) * 3)
    else:
        ax.set_ylim(0, max(values) * 1.18)
    for b, v in zip(bars, values):
        ax.annotate(f"{v}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 4), textcoords="offset points",
                    ha="center", va="bottom", fontsize=12, fontweight="bold")
    ax.set_ylabel("evaluations (trials)" + (", log scale" if ratio > 20 else ""))
    unit = " decades" if p.log else ""
    sub = (f"resolution reached: the pick is bracketed within {p.resolution:.3g}{unit}\n"
           f"of the {p.range_width:.3g}{unit} range [{p.low:g}, {p.high:g}]" if p.resolution is not None
           else "resolution not reached")
    if p.evaluations and p.grid_equivalent:
        sub += (f"; {p.grid_equivalent / p.evaluations:.1f}x fewer evaluations than the grid"
                if p.grid_equivalent >= p.evaluations else
                f"; {p.evaluations / p.grid_equivalent:.1f}x more evaluations than the grid")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return sub


BENCH_COLOURS = {HIERARCHICAL: TRIAL, "log grid": "#7f7f7f", "random": "#2ca02c", "TPE": "#9467bd"}


def _benchmark_panel(ax: Axes, r: Report, cmp: BenchmarkComparison) -> None:
    """The simulated benchmark's median distance to the optimum per strategy and evaluation
    count, this sweep's count marked: labelled as simulated, not as this sweep's result."""
    ref, h = cmp.reference, cmp.hierarchical
    assert h is not None and cmp.at is not None
    for i, s in enumerate(ref.strategies):
        own = s.name == HIERARCHICAL
        ax.plot([q.evaluations for q in s.points], [q.median for q in s.points], marker="o",
                markersize=6 if own else 4.5, linewidth=2.6 if own else 1.5,
                color=BENCH_COLOURS.get(s.name, f"C{i}"), zorder=4 if own else 3,
                label=f"{s.name}" + (" (every stage, no early stop)" if own else ""))
    counts = ref.counts
    ax.axvline(cmp.evaluations, color="black", linestyle=":", linewidth=1.3, zorder=2,
               label=f"this sweep's count: {cmp.evaluations} evaluations")
    ax.axhline(h.median, color=TRIAL, linestyle="--", linewidth=0.9, alpha=0.7, zorder=2)
    ax.annotate(f"hierarchical at {cmp.at}: {h.median:.3f}", (counts[0] - 1.3, h.median), xytext=(0, 4),
                textcoords="offset points", ha="left", va="bottom", fontsize=8, color=TRIAL)  # left: below the curves
    # top middle: above the curves, which fall from the left; beside the legend
    ax.text(0.26, 0.97, f"evaluations needed to pick as close\n(median) as hierarchical at {cmp.at}:\n"
            + "\n".join(f"  {m.strategy}: {m.shown(cmp.most)}" for m in cmp.matches),
            transform=ax.transAxes, ha="left", va="top", fontsize=8.5,
            bbox=dict(facecolor="white", edgecolor="#bbbbbb", boxstyle="round,pad=0.4"), zorder=6)
    ax.set_xticks(sorted({*counts, cmp.evaluations}) if cmp.evaluations > counts[-1] else counts)
    ax.set_xlim(counts[0] - 1.5, max(counts[-1], cmp.evaluations) + 1.5)
    ax.set_ylim(0, max(q.median for s in ref.strategies for q in s.points) * 1.1)
    ax.set_xlabel("evaluations (trials)")
    ax.set_ylabel("median |log10(pick) - log10(optimum)| (decades)")
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.95)
    ax.set_title(f"SIMULATED benchmark, not this sweep ({DOC}):\n{ref.repeats} noisy learning-rate curves over "
                 f"[{ref.low:g}, {ref.high:g}], noise sd {ref.noise:g}", fontsize=9.5)


# --- 4. learning curves ----------------------------------------------------------------------


def _learning_curves(fig: Figure, r: Report, curves: Curves) -> bool:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    clean = {n: [(int(e), float(v)) for e, v in c if _num(v) is not None] for n, c in curves.items()}
    clean = {n: c for n, c in clean.items() if c}
    longest = max((len(c) for c in clean.values()), default=0)
    if longest < 2:  # one epoch per trial: no curve to show (score_vs_* shows those scores)
        return False
    best = r.best.trial if r.best is not None else None
    others = [c for n, c in clean.items() if n != best]
    ax = fig.add_subplot()
    alpha = max(0.12, min(0.6, 6.0 / max(1, len(others))))
    if others:
        ax.add_collection(LineCollection([c for c in others if len(c) > 1], colors=TRIAL, linewidths=0.8, alpha=alpha))
        if longest <= 5:  # short runs: the points themselves, or one-epoch runs would show nothing
            xs = [e for c in others for e, _ in c]
            ys = [v for c in others for _, v in c]
            ax.scatter(xs, ys, s=10, color=TRIAL, alpha=alpha, linewidths=0)
    handles: list[Any] = [Line2D([], [], color=TRIAL, linewidth=0.8, alpha=max(alpha, 0.4),
                                 label=f"other trials (n={len(others)})")]
    if best is not None and best in clean:
        e, v = zip(*clean[best])
        ax.plot(e, v, color=BEST, linewidth=2.8, marker="o", markersize=5, zorder=5)
        assert r.best is not None
        vals = ", ".join(f"{short(k)} = {fmt_value(r.best.params[k])}" for k in r.keys[:3] if k in r.best.params)
        handles.append(Line2D([], [], color=BEST, linewidth=2.8, marker="o",
                              label=f"best: trial {best} ({vals}), {_metric_short(r)} {r.best.score:.4g}"))
    ax.autoscale_view()
    all_e = [e for c in clean.values() for e, _ in c]
    ax.set_xlim(min(all_e) - 0.3, max(all_e) + 0.3)
    if max(all_e) - min(all_e) <= 15:
        ax.set_xticks(range(min(all_e), max(all_e) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(_metric_label(r))
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    _title(ax, r, "learning curves", f"{len(clean)} trials, up to {max(all_e)} epoch(s) each "
           f"(the sweep trained {r.epochs})")
    return True


# --- 5. score vs one parameter ---------------------------------------------------------------


def _score_vs(fig: Figure, r: Report, key: str) -> bool:
    import numpy as np
    from matplotlib.lines import Line2D

    rows = [x for x in r.ranking if key in x.params]
    if not rows:
        return False
    place = next((pl for pl in r.placement if pl.key == key), None)
    numeric = all(_num(x.params[key]) is not None for x in rows)
    ax = fig.add_subplot()
    handles: list[Any] = []
    best_row = r.best if r.best is not None and key in r.best.params else None
    if numeric:
        xs = [float(x.params[key]) for x in rows]
        extent = list(xs)
        if place is not None and place.low is not None and place.high is not None:
            extent += [place.low, place.high]
        base = _num(r.baseline.values.get(key))
        if base is not None:
            extent.append(base)
        log = _is_log(r, key, extent)
        stages = sorted({x.stage for x in rows if x.kind == "explore"})
        if r.progress is not None and len(stages) > 1:  # hierarchical: which stage found what
            import matplotlib

            cmap = matplotlib.colormaps["plasma"]
            groups = [(f"stage {st}", [x for x in rows if x.kind == "explore" and x.stage == st],
                       cmap(0.1 + 0.7 * i / max(1, len(stages) - 1))) for i, st in enumerate(stages)]
            for label, sel, col in groups:
                if sel:
                    ax.scatter([float(x.params[key]) for x in sel], [x.score for x in sel], s=36, color=col,
                               edgecolors="black", linewidths=0.4, zorder=3, label=label)
            reps = [x for x in rows if x.kind != "explore"]
            if reps:  # re-runs of the top values, the pick's among them: hollow, on top of the best's star
                ax.scatter([float(x.params[key]) for x in reps], [x.score for x in reps], s=46, marker="D",
                           facecolors="none", edgecolors="#006400", linewidths=1.5, zorder=7,
                           label=f"replicate runs (re-run seeds, n={len(reps)})")
            handles = list(ax.get_legend_handles_labels()[0])
        else:
            ax.scatter(xs, [x.score for x in rows], s=30, color=TRIAL, alpha=0.75 if len(rows) > 50 else 0.9,
                       edgecolors="black", linewidths=0.3, zorder=3)
            handles.append(Line2D([], [], linestyle="none", marker="o", color=TRIAL, markeredgecolor="black",
                                  markeredgewidth=0.3, label=f"scored trial (n={len(rows)})"))
        if place is not None and place.low is not None and place.high is not None:
            ax.axvspan(place.low, place.high, color="#f4f4f4", zorder=0)
            handles.append(Line2D([], [], color="#e4e4e4", linewidth=8, label="searched range"))
        if base is not None and (base > 0 or not log):
            ax.axvline(base, color=BASE, linestyle="--", linewidth=1.3, zorder=2)
            handles.append(Line2D([], [], color=BASE, linestyle="--",
                                  label=f"baseline value ({r.baseline.label}): {fmt_value(base)}"))
        unscored = [_num(u.params.get(key)) for u in r.unscored]
        unscored_x = [v for v in unscored if v is not None and (v > 0 or not log)]
        if unscored_x:
            ax.scatter(unscored_x, [0.03] * len(unscored_x), transform=ax.get_xaxis_transform(), marker="x",
                       color=BEST, s=40, zorder=4)
            handles.append(Line2D([], [], linestyle="none", marker="x", color=BEST,
                                  label=f"no score (diverged/failed, n={len(unscored_x)})"))
        if best_row is not None:
            bx = _num(best_row.params[key])
            if bx is not None:
                ax.plot([bx], [best_row.score], marker="*", markersize=20, color=BEST, markeredgecolor="white",
                        markeredgewidth=1.2, linestyle="none", zorder=6)
        if log:
            ax.set_xscale("log")
        ax.set_xlim(*_limits(extent, log))
        ax.set_xlabel(_param_label(r, key, log))
    else:
        cats = sorted({x.params[key] for x in rows}, key=lambda v: (0, float(v)) if is_number(v) else (1, str(v)))
        pos = {c: i for i, c in enumerate(cats)}
        groups = [[x.score for x in rows if x.params[key] == c] for c in cats]
        ax.boxplot(groups, positions=range(len(cats)), widths=0.5, showfliers=False, patch_artist=True,
                   boxprops=dict(facecolor="#e8eef6", edgecolor="#7f9ccf"), medianprops=dict(color=TRIAL))
        rng = np.random.default_rng(0)
        jitter = rng.uniform(-0.12, 0.12, len(rows))
        ax.scatter([pos[x.params[key]] + j for x, j in zip(rows, jitter)], [x.score for x in rows], s=26,
                   color=TRIAL, edgecolors="black", linewidths=0.3, zorder=3)
        handles.append(Line2D([], [], linestyle="none", marker="o", color=TRIAL, markeredgecolor="black",
                              markeredgewidth=0.3, label=f"scored trial (n={len(rows)})"))
        base_v = r.baseline.values.get(key)
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels([f"{c}\n(baseline)" if c == base_v else str(c) for c in cats])
        ax.set_xlim(-0.6, len(cats) - 0.4)
        ax.set_xlabel(f"{key} (categories)")
        at_best = next((j for x, j in zip(rows, jitter) if best_row is not None and x.trial == best_row.trial), 0.0)
        if best_row is not None and best_row.params[key] in pos:
            ax.plot([pos[best_row.params[key]] + at_best], [best_row.score], marker="*", markersize=20, color=BEST,
                    markeredgecolor="white", markeredgewidth=1.2, linestyle="none", zorder=6)
    if best_row is not None:
        handles.append(Line2D([], [], linestyle="none", marker="*", markersize=14, color=BEST, markeredgecolor="white",
                              label=_pick_text(r, key)))
    bs = _num(r.baseline.score)
    if bs is not None:
        ax.axhline(bs, color=BASE, linestyle="-.", linewidth=1.1, zorder=2)
        handles.append(Line2D([], [], color=BASE, linestyle="-.",
                              label=f"baseline score ({r.baseline.label}): {bs:.4g}"))
    ax.set_ylabel(_metric_label(r))
    ax.grid(alpha=0.3)
    _legend_below(fig, handles)
    _title(ax, r, f"{_metric_short(r)} vs {short(key)}", f"{len(rows)} scored trials")
    return True


def _nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    """The range's ends and round values between them (decades on a log axis), none crowding an end."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    if hi <= lo:
        return [lo]
    inner = LogLocator(base=10, numticks=8).tick_values(lo, hi) if log else MaxNLocator(5).tick_values(lo, hi)
    f = _fwd(log)
    span = f(hi) - f(lo)
    keep = [float(v) for v in inner if lo < v < hi and min(f(v) - f(lo), f(hi) - f(v)) > 0.07 * span]
    return [lo, *keep, hi]


# --- 6. parallel coordinates -----------------------------------------------------------------


def _parallel_coordinates(fig: Figure, r: Report) -> bool:
    import matplotlib
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    rows = [x for x in r.ranking if all(k in x.params for k in r.keys)]
    if not rows:
        return False
    axes: list[tuple[Callable[[Any], float], list[tuple[float, str]], str]] = []  # position fn, tick labels, name
    for k in r.keys:
        vals = [x.params[k] for x in rows]
        place = next((pl for pl in r.placement if pl.key == k), None)
        if all(_num(v) is not None for v in vals):
            fv = [float(v) for v in vals]
            lo = place.low if place is not None and place.low is not None else min(fv)
            hi = place.high if place is not None and place.high is not None else max(fv)
            lo, hi = min(lo, *fv), max(hi, *fv)
            log = _is_log(r, k, [lo, hi, *fv])
            f = _fwd(log)

            def at(v: Any, lo: float = lo, hi: float = hi, f: Callable[[float], float] = f) -> float:
                return (f(float(v)) - f(lo)) / (f(hi) - f(lo)) if f(hi) > f(lo) else 0.5

            ticks = [(at(v), f"{v:g}") for v in _nice_ticks(lo, hi, log)]
            axes.append((at, ticks, f"{short(k)}\n({'log' if log else 'linear'})"))
        else:
            cats = sorted({v for v in vals}, key=lambda v: (0, float(v)) if is_number(v) else (1, str(v)))
            idx = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
            axes.append((lambda v, idx=idx: idx[v], [(idx[c], str(c)) for c in cats], f"{short(k)}\n(categories)"))
    sign = 1.0 if r.direction == "maximize" else -1.0
    rows.sort(key=lambda x: sign * x.score)  # worst first: the best lines end on top
    lines = [[(j, ax_[0](x.params[k])) for j, (k, ax_) in enumerate(zip(r.keys, axes))] for x in rows]
    scores = np.array([x.score for x in rows])
    norm = matplotlib.colors.Normalize(scores.min(), scores.max() if scores.max() > scores.min() else scores.min() + 1e-9)
    ax = fig.add_subplot()
    lc = LineCollection(lines, cmap=_cmap(r), norm=norm, linewidths=1.2 if len(rows) < 60 else 0.7,
                        alpha=0.85 if len(rows) < 60 else 0.5)
    lc.set_array(scores)
    ax.add_collection(lc)
    cb = fig.colorbar(lc, ax=ax, pad=0.02)
    cb.set_label(_metric_label(r), fontsize=9)
    n = len(r.keys)
    for j, (_, ticks, _name) in enumerate(axes):
        ax.axvline(j, color="black", linewidth=1.0, zorder=1)
        side = 1.0 if j == n - 1 and n > 1 else -1.0  # the last axis: ticks and labels on its right, off the lines
        for y, label in ticks:
            ax.plot([j, j + side * 0.025], [y, y], color="black", linewidth=0.8, zorder=8)
            ax.text(j + side * 0.035, y, label, ha="left" if side > 0 else "right", va="center", fontsize=7.5,
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=0.5), zorder=8)
    handles: list[Any] = []
    if r.best is not None and all(k in r.best.params for k in r.keys):
        try:
            pts = [(j, axes[j][0](r.best.params[k])) for j, k in enumerate(r.keys)]
        except KeyError:
            pts = []
        if pts:
            ax.plot(*zip(*pts), color=BEST, linewidth=3.0, zorder=5, solid_capstyle="round")
            ax.plot(*zip(*pts), linestyle="none", marker="*", markersize=15, color=BEST, markeredgecolor="white",
                    zorder=6)
            vals = ", ".join(f"{short(k)} = {fmt_value(r.best.params[k])}" for k in r.keys)
            handles.append(Line2D([], [], color=BEST, linewidth=3, marker="*", markeredgecolor="white",
                                  label=f"best: trial {r.best.trial} ({vals}), {_metric_short(r)} {r.best.score:.4g}"))
    ax.set_xlim(-0.12 - 0.1 * (n - 1), n - 1 + 0.12 + 0.1 * (n - 1))
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(n))
    ax.set_xticklabels([a[2] for a in axes])
    ax.set_yticks([])
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    if handles:
        _legend_below(fig, handles, ncol=1)
    _title(ax, r, "parallel coordinates", f"{len(rows)} scored trials, coloured by {_metric_short(r)}; "
           "each axis spans its searched range, low at the bottom")
    return True
