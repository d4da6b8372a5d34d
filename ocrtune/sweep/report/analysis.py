"""From a sweep's stored results to the analysis people write by hand: ranking against a
baseline in percentage points, how each parameter moved (in percent), where the values lie,
low/mid/high bands per parameter, the coarse-to-fine progress with its honest efficiency
figure, three recommended configurations with their risks, and a methods paragraph.

Pure: a ``ReportInput`` in, a ``Report`` out (no files, no Optuna, no plotting).

Rules worth knowing (docs/reports.md has them for users):

- **stable**: among the values explored, the one with the best smoothed score minus its
  ``stability`` (the std of its last epochs): the smoothed score already averages a value
  with its close neighbours, so a value whose neighbours also score well and whose last
  epochs are steady wins; a lone lucky run or a still-swinging one does not. Strategies that
  do not smooth use a Gaussian-weighted mean over nearby trials (width 0.1 of each
  normalised range) in its place.
- **hybrid**: the baseline and the best blended at weight 0.5 with ``presets blend``'s
  arithmetic, geometric for log-scale parameters.
- **resolution**: the width of the bracket formed by the pick's nearest explored neighbours
  (decades on a log scale); a uniform grid brackets its best point within two spacings, so a
  grid of equal resolution has spacing ``resolution / 2`` and needs
  ``range / (resolution / 2) + 1`` evaluations.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ocrtune.presets.compare import blend_values, change, diff, flatten, is_number
from ocrtune.sweep.plan.planner import PlannerConfig, Trial, plan_stage, smoothed_scores
from ocrtune.sweep.plan.strategies import planner_config
from ocrtune.sweep.report.model import (
    Band,
    Baseline,
    Impact,
    Importance,
    Methods,
    ParamChange,
    Placement,
    Progress,
    RankRow,
    RecKind,
    Recommendation,
    Report,
    StageRow,
    UnscoredRow,
)
from ocrtune.sweep.types import HierarchicalSearch, ImportedSearch, Status, SweepConfig, SweepSummary, TrialRow

STRIP_WIDTH = 48
KERNEL = 0.1  # neighbourhood width for strategies that do not smooth (fraction of each range)
SHARP_PP = 1.0  # neighbours this many pp below the best: a sharp optimum
MIN_IMPORTANCE_TRIALS = 10


@dataclass(frozen=True)
class ReportInput:
    """Everything the analysis reads: the stored settings and summary, the baseline, per-trial
    learning curves (epoch, metric) and Optuna's importance estimate."""

    cfg: SweepConfig
    summary: SweepSummary
    baseline: Baseline
    importance: Importance
    curves: Mapping[int, Sequence[tuple[int, float]]] = field(default_factory=dict)
    max_epochs: int | None = None


def build_report(inp: ReportInput) -> Report:
    cfg, s = inp.cfg, inp.summary
    sign = 1.0 if cfg.direction == "maximize" else -1.0
    log_keys = [d["key"] for d in cfg.dims if d["kind"] == "log_uniform"]
    scored_rows = [t for t in s.trials if t.status.is_scored and t.score is not None]
    ranking = [
        RankRow(rank=i + 1, trial=t.number, params=t.params, score=float(t.score), smoothed=t.smoothed,  # type: ignore[arg-type]
                delta_pp=delta_pp(t.score, inp.baseline.score, cfg.metric), status=t.status.value, stage=t.stage,
                kind=t.kind)
        for i, t in enumerate(sorted(scored_rows, key=lambda t: (-sign * float(t.score), t.number)))  # type: ignore[arg-type]
    ]
    unscored = [UnscoredRow(t.number, t.params, t.status.value, _reason(t)) for t in s.trials
                if not t.status.is_scored and not t.status.is_live]
    running = [t.number for t in s.trials if t.status == Status.RUNNING]
    best_row = next((r for r in ranking if s.best and r.trial == s.best.trial), ranking[0] if ranking else None)
    best_trial = next((t for t in s.trials if best_row and t.number == best_row.trial), None)
    best_values = {**(best_trial.params if best_trial else {}), **(best_trial.derived if best_trial else {})}
    if s.best is not None:
        best_values.update(s.best.params)
    best_values.pop("seed", None)  # a replicate's seed: the pick is the value, over every seed
    changes = _changes(inp, best_values)
    best_score = s.best.score if s.best else None
    placement = [_placement(d, inp.baseline.values.get(d["key"]), best_values.get(d["key"]), s.trials)
                 for d in cfg.dims]
    explored = [t for t in scored_rows if t.kind == "explore"]  # replicates would weigh their values twice
    impact = [_impact(d, explored, cfg) for d in cfg.dims]
    progress = _progress(cfg, s) if isinstance(cfg.search, HierarchicalSearch) else None
    recommended = _recommend(inp, best_row, best_values, scored_rows, log_keys, changes)
    hours = sum(t.duration_s or 0.0 for t in s.trials if not t.status.is_live) / 3600
    device = "GPU" if any("cuda" in str(t.device or "").lower() or "gpu" in str(t.device or "").lower()
                          for t in s.trials) else "CPU"
    report = Report(
        name=s.name, storage=s.storage, strategy=s.strategy, metric=s.metric, direction=s.direction,
        unit="fraction" if s.metric == "hmean" else "loss", preset=s.preset, keys=list(cfg.keys), log_keys=log_keys,
        epochs=cfg.epochs, max_epochs=inp.max_epochs, state=s.state, running=running, source=_source(cfg),
        baseline=inp.baseline, best=best_row, best_note=s.best.note if s.best else None, best_vs_baseline=changes,
        score_delta_pp=delta_pp(best_score, inp.baseline.score, cfg.metric),
        ranking=ranking, unscored=unscored, placement=placement, impact=impact, importance=inp.importance,
        progress=progress, recommended=recommended, compute_hours=hours, device=device, init=cfg.init,
    )
    return replace(report, methods=methods_text(report))


def _source(cfg: SweepConfig) -> str:
    if isinstance(cfg.search, ImportedSearch):
        return f"imported from {cfg.search.source}"
    return f"objective {cfg.objective}" if cfg.objective else "training"


def _changes(inp: ReportInput, best_values: Mapping[str, Any]) -> list[ParamChange]:
    """Every setting in which the best configuration (the sweep's preset with the best values)
    differs from the baseline, by the engine ``ocrtune compare`` uses: the swept keys, the
    coupled ones, and what the sweep kept fixed but the baseline has otherwise."""
    cfg = inp.cfg
    best_flat = {k: v for k, v in flatten(cfg.base).items() if not k.startswith(("reported", "description"))}
    best_flat.update(best_values)
    base_flat = {k: v for k, v in inp.baseline.values.items() if not k.startswith(("reported", "description"))}
    derived = {c.key for c in cfg.couplings}
    rows = diff([(inp.baseline.label, base_flat), ("best", best_flat)])
    order = {k: i for i, k in enumerate([*cfg.keys, *derived])}
    out = [ParamChange(r.key, r.values[0], r.values[1], change(r.key, r.values[0], r.values[1]),
                       coupled=r.key in derived, swept=r.key in cfg.keys) for r in rows if r.key != "seed"]
    return sorted(out, key=lambda c: (order.get(c.key, len(order)), c.key))


# --- numbers ---------------------------------------------------------------------------------


def delta_pp(score: float | None, base: float | None, metric: str) -> float | None:
    """Score difference in percentage points (H-mean fractions x 100); None for a loss or
    when either side is missing."""
    if score is None or base is None or metric != "hmean":
        return None
    return (float(score) - float(base)) * 100.0


def fmt_pp(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f} pp"


def fmt_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def short(key: str) -> str:
    return key.split(".")[-1]


def _reason(t: TrialRow) -> str:
    """The error's telling line: the last ``SomeError: ...`` line of a traceback (a message
    may span lines), else its last line."""
    lines = [line.strip() for line in str(t.error or "").strip().splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b:?", line)]
    return (named or lines or [t.status.value])[-1]


# --- where the values lie --------------------------------------------------------------------


def _numeric_range(d: Mapping[str, Any]) -> tuple[float, float] | None:
    if d.get("low") is not None and d.get("high") is not None:
        return float(d["low"]), float(d["high"])
    vals = [v for v in d.get("values") or () if is_number(v)]
    return (float(min(vals)), float(max(vals))) if len(vals) >= 2 else None


def _placement(d: Mapping[str, Any], base: Any, best: Any, trials: Sequence[TrialRow]) -> Placement:
    key, log = d["key"], d["kind"] == "log_uniform"
    tried = sorted({t.params[key] for t in trials if key in t.params and not t.status.is_live}, key=_order)
    rng = _numeric_range(d)
    strip = ""
    if rng is not None:
        lo, hi = rng
        cells = [" "] * STRIP_WIDTH

        def at(v: Any) -> int | None:
            if not is_number(v) or (log and v <= 0):
                return None
            x = _unit(float(v), lo, hi, log)
            return min(STRIP_WIDTH - 1, max(0, int(round(x * (STRIP_WIDTH - 1)))))

        for v in tried:
            i = at(v)
            if i is not None:
                cells[i] = "|"
        for v, mark in ((base, "B"), (best, "*")):
            i = at(v)
            if i is not None:
                cells[i] = mark
        strip = f"{fmt_value(lo)} [{''.join(cells)}] {fmt_value(hi)}"
        if is_number(base) and not lo <= base <= hi:
            strip += f"  (baseline {fmt_value(base)} outside)"
    else:
        strip = "  ".join(f"{'*' if v == best else 'B' if v == base else ''}{v}" for v in tried)
    return Placement(key, rng[0] if rng else None, rng[1] if rng else None, log, base, best, tried, strip)


def _unit(v: float, lo: float, hi: float, log: bool) -> float:
    if log:
        return (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) if hi > lo else 0.0
    return (v - lo) / (hi - lo) if hi > lo else 0.0


def _order(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if is_number(v) else (1, str(v))


# --- parameter impact ------------------------------------------------------------------------


def _impact(d: Mapping[str, Any], rows: Sequence[TrialRow], cfg: SweepConfig) -> Impact:
    key = d["key"]
    pts = [(t.params[key], float(t.score)) for t in rows if key in t.params and t.score is not None]  # type: ignore[arg-type]
    ranged = d["kind"] in ("uniform", "log_uniform", "int_uniform", "q_uniform")  # listed values are categories
    numeric = ranged and all(is_number(v) for v, _ in pts)
    bands: list[Band] = []
    if numeric and len({v for v, _ in pts}) >= 3:
        vals = np.array([float(v) for v, _ in pts])
        logv = d["kind"] == "log_uniform" and bool((vals > 0).all())
        q1, q2 = np.quantile(np.log10(vals) if logv else vals, [1 / 3, 2 / 3])
        if logv:
            q1, q2 = 10**q1, 10**q2
        groups = {"low": [p for p in pts if p[0] <= q1], "mid": [p for p in pts if q1 < p[0] <= q2],
                  "high": [p for p in pts if p[0] > q2]}
        for label, g in groups.items():
            bands.append(_band(label, g))
    else:
        for v in sorted({v for v, _ in pts}, key=_order):
            bands.append(_band(str(v), [p for p in pts if p[0] == v]))
    return Impact(key, bands, _impact_sentence(key, bands, cfg, numeric))


def _band(label: str, pts: Sequence[tuple[Any, float]]) -> Band:
    scores = [s for _, s in pts]
    values = [v for v, _ in pts]
    lo = min(values, key=_order) if values else None
    hi = max(values, key=_order) if values else None
    spread = round(statistics.stdev(scores), 12) if len(scores) > 1 else None  # equal scores: 0, not 1e-16
    return Band(label, lo, hi, statistics.fmean(scores) if scores else None, spread, len(scores))


def _impact_sentence(key: str, bands: Sequence[Band], cfg: SweepConfig, numeric: bool) -> str:
    name = short(key)
    filled = [b for b in bands if b.mean is not None]
    if len(filled) < 2:
        return f"{name}: too few scored trials to compare ranges."
    sign = 1 if cfg.direction == "maximize" else -1
    top = max(filled, key=lambda b: sign * b.mean)  # type: ignore[operator]
    others = [b for b in filled if b is not top]
    unit = "pp" if cfg.metric == "hmean" else ""

    def gap(b: Band) -> str:
        d = abs(top.mean - b.mean) * (100 if cfg.metric == "hmean" else 1)  # type: ignore[operator]
        if cfg.metric == "hmean":
            return f"{b.label} {d:.2f} {unit} lower ({b.mean:.4g}, n={b.n})"
        return f"{b.label} {d:.4g} {'lower' if cfg.direction == 'maximize' else 'higher'} ({b.mean:.4g}, n={b.n})"
    what = f"{top.label}-{name} runs ({fmt_value(top.lo)} to {fmt_value(top.hi)})" if numeric else \
        f"runs with {name} = {top.label}"
    word = "scored best" if cfg.direction == "maximize" else "reached the lowest loss"
    return (f"{what[0].upper() + what[1:]} {word} on average: {top.mean:.4g}"
            + (f" +- {top.spread:.2g}" if top.spread is not None else "") + f" (n={top.n}); "
            + ", ".join(gap(b) for b in others) + ".")


# --- coarse-to-fine progress -----------------------------------------------------------------


def _progress(cfg: SweepConfig, s: SweepSummary) -> Progress:
    h = cfg.search
    assert isinstance(h, HierarchicalSearch)
    pc = planner_config(cfg)
    explore = [t for t in s.trials if t.kind == "explore" and t.status.is_result]
    trials = [Trial(float(t.params[h.param]), t.score, t.batch) for t in explore]
    n_stages = 1 + max((t.stage for t in trials), default=-1)
    rows: list[StageRow] = []
    prev: float | None = None
    for k in range(n_stages):
        plan = plan_stage([t for t in trials if t.stage < k], pc)  # replays the planner: same intervals
        values = sorted({t.value for t in trials if t.stage == k})
        smooth = [v for _, v in smoothed_scores([t for t in trials if t.stage <= k], pc) if v is not None]
        best = (max(smooth) if cfg.direction == "maximize" else min(smooth)) if smooth else None
        imp = delta_pp(best, prev, cfg.metric) if k and best is not None and prev is not None else None
        rows.append(StageRow(k + 1, [tuple(i) for i in plan.intervals], values, best, imp, plan.reason))  # type: ignore[misc]
        prev = best
    to_t = (lambda v: math.log10(v)) if h.log else (lambda v: v)
    width = to_t(h.high) - to_t(h.low)
    resolution = grid = None
    picked = s.best.params.get(h.param) if s.best else None
    tried = sorted({t.value for t in trials})
    if picked is not None and len(tried) >= 2:
        i = min(range(len(tried)), key=lambda j: abs(to_t(tried[j]) - to_t(float(picked))))
        left, right = tried[max(0, i - 1)], tried[min(len(tried) - 1, i + 1)]
        resolution = to_t(right) - to_t(left)
        if i == 0 or i == len(tried) - 1:
            resolution *= 2  # at an end of the range: one neighbour, the bracket is twice its gap
        grid = int(math.ceil(width / (resolution / 2) - 1e-9)) + 1 if resolution > 0 else None
    return Progress(rows, _stop_reason(s, trials, pc), h.low, h.high, h.log, width, resolution, len(explore), grid)


def _stop_reason(s: SweepSummary, trials: Sequence[Trial], pc: PlannerConfig) -> str | None:
    """Why the coarse-to-fine search stopped (the planner's own answer, replayed), with the
    replicate runs that followed it: the sweep's last reason alone would say "replicates
    finished" and hide the stop rule. None while it still runs."""
    final = plan_stage(trials, pc)
    if final.done:
        reps = sum(1 for t in s.trials if t.kind == "replicate" and t.status.is_result)
        return final.reason + (f"; then {reps} replicate run(s) of the top value(s) with new seeds" if reps else "")
    if s.state == "running":
        return None
    return s.reason if s.state == "finished" else "stopped before the planner finished (re-run the sweep to resume)"


# --- recommendations -------------------------------------------------------------------------


def _recommend(inp: ReportInput, best_row: RankRow | None, best_values: Mapping[str, Any],
               rows: Sequence[TrialRow], log_keys: Sequence[str], changes: Sequence[ParamChange]) -> list[Recommendation]:
    cfg, s = inp.cfg, inp.summary
    if best_row is None:
        return []
    sign = 1.0 if cfg.direction == "maximize" else -1.0
    horizon = (f"measured after {cfg.epochs} of the preset's {inp.max_epochs} epochs: only reached at a short "
               f"horizon, the order may change in a full run") if inp.max_epochs and cfg.epochs < inp.max_epochs else ""
    smooth = isinstance(cfg.search, HierarchicalSearch)
    # best
    neighbours = _neighbour_gap(best_row, rows, cfg)
    risks = [r for r in (horizon, f"its nearest neighbours{' (smoothed)' if smooth else ''} score {neighbours:.2f} pp lower: a sharp optimum"
                         if neighbours is not None and neighbours > SHARP_PP else "",
                         "one run: short runs differ by about 1 pp from seed to seed"
                         if s.best is not None and s.best.n <= 1 else "") if r]
    best = Recommendation(RecKind.BEST, dict(best_values), s.best.score if s.best else best_row.score,
                          s.best.spread if s.best and s.best.n > 1 else None, s.best.n if s.best else 1,
                          "; ".join(risks) or "none noted",
                          "the sweep's pick" + (" (best smoothed score)" if s.best and s.best.smoothed is not None
                                                else " (best mean over replicates)" if s.best and s.best.n > 1
                                                else " (best measured score)"), best_row.trial)
    # stable
    def steadiness(t: TrialRow) -> float:
        local = t.smoothed if t.smoothed is not None else _kernel_mean(t, rows, cfg)
        return sign * float(local) - float(t.stability or 0.0)

    explored = [t for t in rows if t.kind == "explore"] or list(rows)
    steady = max(explored, key=lambda t: (steadiness(t), sign * float(t.score)))  # type: ignore[arg-type]
    steady_values = {**steady.params, **steady.derived}
    steady_values.pop("seed", None)
    gap = delta_pp(best_row.score, steady.score, cfg.metric)
    same = steady.number == best_row.trial or all(best_values.get(k) == v for k, v in steady.params.items())
    stable = Recommendation(
        RecKind.STABLE, steady_values, steady.score, None, 1,
        "the same value as best: its neighbours and its last epochs agree" if same else
        "; ".join(x for x in (f"{abs(gap):.2f} pp below the best trial" if gap is not None else "", horizon) if x),
        ("best smoothed score minus the std of its last epochs (stability)" if smooth else
         "best Gaussian-weighted mean of nearby trials (width 0.1 of each range) minus the std of its last epochs"),
        steady.number)
    # hybrid: every setting in which best and baseline differ, blended
    hybrid_values: dict[str, Any] = {}
    for c in changes:
        b, v = c.baseline, c.best
        if is_number(b) and is_number(v):
            bv = blend_values({c.key: b}, {c.key: v}, 0.5, log=c.key in log_keys or (c.coupled and b > 0 and v > 0))
            hybrid_values[c.key] = bv[0].value if bv else v
        elif v is not None:
            hybrid_values[c.key] = v
    hybrid = Recommendation(RecKind.HYBRID, hybrid_values, None, None, 0,
                            f"not measured: halfway between {inp.baseline.label} and the best trial",
                            f"{inp.baseline.label} (the baseline) and best blended at weight 0.5 in every setting where "
                            "they differ (geometric for log-scale parameters)")
    return [best, stable, hybrid]


def _neighbour_gap(best: RankRow, rows: Sequence[TrialRow], cfg: SweepConfig) -> float | None:
    """How far (pp) the best's closest explored neighbours on each side score below it, mean."""
    if cfg.metric != "hmean" or len(cfg.keys) != 1:
        return None
    key = cfg.keys[0]
    v = best.params.get(key)
    if not is_number(v):
        return None
    # smoothed where the strategy smooths: the pick was made to look past single noisy runs
    pts = sorted((float(t.params[key]), float(t.smoothed if t.smoothed is not None else t.score))  # type: ignore[arg-type]
                 for t in rows if t.kind == "explore" and is_number(t.params.get(key)) and t.score is not None)
    own = next((s_ for x, s_ in pts if x == v), best.score)
    left = [s for x, s in pts if x < v]
    right = [s for x, s in pts if x > v]
    near = [side[-1] if side is left else side[0] for side in (left, right) if side]
    if not near:
        return None
    return (own - statistics.fmean(near)) * 100


def _kernel_mean(t: TrialRow, rows: Sequence[TrialRow], cfg: SweepConfig) -> float:
    """Gaussian-weighted mean score of the trials near ``t`` (each range normalised to 0..1)."""
    dims = [d for d in cfg.dims if _numeric_range(d) is not None]

    def pos(r: TrialRow) -> list[float]:
        out = []
        for d in dims:
            lo, hi = _numeric_range(d)  # type: ignore[misc]
            v = r.params.get(d["key"])
            out.append(_unit(float(v), lo, hi, d["kind"] == "log_uniform") if is_number(v) else 0.0)
        return out

    me = pos(t)
    w_sum = s_sum = 0.0
    for r in rows:
        if r.score is None:
            continue
        d2 = sum((a - b) ** 2 for a, b in zip(me, pos(r)))
        w = math.exp(-d2 / (2 * KERNEL**2))
        w_sum += w
        s_sum += w * float(r.score)
    return s_sum / w_sum if w_sum else float(t.score or 0.0)


# --- methods ---------------------------------------------------------------------------------


def methods_text(r: Report) -> Methods:
    """A methods paragraph with the sweep's real numbers, in Markdown and in LaTeX."""
    keys = ", ".join(r.keys)
    n = len(r.ranking) + len(r.unscored)
    if r.source == "training":
        metric = "CLEval H-mean on the validation split" if r.metric == "hmean" else "validation loss"
    elif r.source.startswith("objective"):
        metric = f"value of the {r.source}"
    else:
        metric = f"{r.metric} ({r.source})"
    parts = []
    p = r.progress
    if p is not None:
        scale = "log-spaced" if p.log else "evenly spaced"
        unit = " decades" if p.log else ""
        stages = len(p.stages)
        pts = len(p.stages[0].values) if p.stages else 0
        later = (f", then {stages - 1} refinement stage(s), each placing new values inside the best-ranked "
                 "intervals between evaluated values (ranked by a kernel-smoothed score, width 1/60 of the range)"
                 if stages > 1 else " (no refinement stage ran)")
        parts.append(
            f"We tuned {keys} with a hierarchical coarse-to-fine search over [{p.low:g}, {p.high:g}] "
            f"({p.range_width:.3g}{unit}): a first stage of {pts} {scale} values{later}.")
        parts.append(f"The search stopped because: {p.stop_reason or 'it was still running'}.")
        if p.resolution is not None and p.grid_equivalent is not None:
            parts.append(f"It ran {p.evaluations} evaluations and located the optimum within a bracket of "
                         f"{p.resolution:.3g}{unit}; a uniform grid of equal resolution over the same range needs "
                         f"{p.grid_equivalent} evaluations ({p.evaluations} vs {p.grid_equivalent}).")
    elif r.source.startswith("imported"):
        parts.append(f"We compared {n} runs of {keys} {r.source}.")
    else:
        article = "an" if r.strategy[:1] in "aeiou" else "a"
        name = {"tpe": "TPE (tree-structured Parzen estimator)", "grid": "grid", "random": "random"}.get(r.strategy,
                                                                                                       r.strategy)
        parts.append(f"We tuned {_space_text(r)} with {article if r.strategy != 'tpe' else 'a'} {name} search "
                     f"({n} trials).")
    if r.source.startswith("imported"):
        parts.append(f"Each run was scored by its {metric}; the file records {r.compute_hours:.3g} hours of runtime.")
    else:
        start = (f", starting from the weights in {_init_label(r.init)} (every tensor whose name and shape "
                 "matched; a fresh optimizer and schedule)," if r.init else "")
        parts.append(f"Each trial trained for {r.epochs} epoch(s){start} and was scored by its best epoch's {metric}; "
                     f"the sweep used {r.compute_hours:.3g} {r.device}-hours in all.")
    best = next((x for x in r.recommended if x.kind == RecKind.BEST), None)
    if best is not None and r.best is not None:
        values = ", ".join(f"{short(k)} = {fmt_value(v)}" for k, v in best.values.items() if k in r.keys)
        # two uncertainties, both stated: where the value lies (half its bracket) and how its
        # score varies from seed to seed (the replicates' spread)
        unc = f" (located to within +-{p.resolution / 2:.2g}{' decades' if p.log else ''})" \
            if p is not None and p.resolution is not None else ""
        score = best.score if best.score is not None else r.best.score
        fmt = "{:.4f}" if r.metric == "hmean" else "{:.4g}"
        scoring = f"a mean of {fmt.format(score)} +- {fmt.format(best.spread)} over {best.n} runs" \
            if best.spread is not None and best.n > 1 else fmt.format(score)
        delta = f", {fmt_pp(r.score_delta_pp)} against {r.baseline.label}" if r.score_delta_pp is not None else ""
        parts.append(f"The chosen configuration is {values}{unc}, scoring {scoring}{delta}.")
    md = " ".join(parts)
    return Methods(md, _latex(md))


def _init_label(path: str) -> str:
    """``.../<run>/checkpoints/best.ckpt`` -> ``best.ckpt of run <run>``: what a reader knows it by."""
    p = Path(path)
    if p.parent.name == "checkpoints" and p.parent.parent.name:
        return f"{p.name} of run {p.parent.parent.name}"
    return p.name


def _space_text(r: Report) -> str:
    """Each searched key with its range (or its values) and how many distinct values were tried."""
    parts = []
    for pl in r.placement:
        where = (f"over [{pl.low:g}, {pl.high:g}]{' on a log scale' if pl.log else ''}" if pl.low is not None
                 else "among " + ", ".join(fmt_value(v) for v in pl.tried))
        parts.append(f"{pl.key} {where} ({len(pl.tried)} value(s) tried)")
    return " and ".join(parts) if len(parts) <= 2 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _latex(text: str) -> str:
    out = text
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("+-", r"$\pm$"), ("[", "["), ("]", "]")):
        out = out.replace(a, b)
    return out + "\n"
