"""Hierarchical (coarse-to-fine) stage planning for one numeric parameter.

Finished points with scores go in, the next stage's points come out. Everything here is pure
and deterministic, so a resumed sweep re-plans exactly the same stages from stored results:
stage ``k`` is planned only from trials of stages ``< k``.

Interval ranking rule (why): after each stage the evaluated values are sorted and every gap
between two adjacent values is an interval. Intervals are ranked by the score of their
*better* endpoint, ties broken by the *worse* endpoint (for two finite endpoints that is the
same order as their mean; a diverged endpoint counts as worst). On a unimodal response the
optimum lies next to the best point, so the better endpoint finds the right bracket even when
the other side fell off a divergence cliff; averaging both endpoints instead would let one
diverged or unlucky neighbour hide the best point. The tie-break decides which side of the
best point gets the larger share (3 of 5 points), and prefers the side away from the cliff.
Intervals whose endpoints both diverged are never refined.

Noise (why smoothing): short runs differ by about 1 H-mean point from seed to seed, which is
more than the true difference between learning rates a tenth of a decade apart. Ranking by
raw scores makes late stages chase lucky runs, and picking the raw best keeps the luckiest
one. So "score" above means a kernel-smoothed score: a Gaussian-weighted mean over the finite
points, with width ``smooth`` x the (log) range, 1/60 by default (0.05 decade on 1e-5..1e-2,
about the spacing after two refinements): coarse stage-0 points keep their own score, points
packed around the optimum share their noise. The final pick (``best_value``) and the
replicate candidates use the same smoothed score, and so does the early stop (a stage must
raise the best *smoothed* score): one notion of "best" throughout, and a lucky single run
neither wins nor keeps the sweep going. ``smooth=0`` gives the raw rule everywhere.
``bench/bench_sweep.py`` measures both.

Ties: a stage whose finite scores are all equal (every H-mean 0 after one short epoch) gives
the intervals no order, so the sweep stops and says so instead of refining an arbitrary one.

Scores: ``None`` or NaN means the trial diverged or failed; it scores worst in either
direction and never wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ocrtune.errors import InputError
from ocrtune.sweep.types import Direction


@dataclass(frozen=True)
class Trial:
    """One finished evaluation. ``score`` is None (or NaN) when it diverged or failed."""

    value: float
    score: float | None
    stage: int


@dataclass(frozen=True)
class PlannerConfig:
    """Settings of a hierarchical sweep (the ``ocrtune sweep`` options of the same names).

    A stage must improve the best score by at least ``min_improvement`` (relative to the
    previous best) *and*, when set, by ``min_improvement_abs``; otherwise the sweep stops.
    Set ``min_improvement=0`` to use only the absolute threshold, or both to 0/None to
    never stop early.
    """

    low: float = 1e-5
    high: float = 1e-2
    points: int = 5
    top: int = 2
    stages: int = 5
    log: bool = True
    min_improvement: float = 0.01
    min_improvement_abs: float | None = None
    direction: Direction = "maximize"
    rel_tol: float = 1e-6
    smooth: float = 1 / 60

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise InputError(f"must be LOW..HIGH with LOW < HIGH (got {self.low:g}..{self.high:g})", key="--range")
        if self.log and self.low <= 0:
            raise InputError(f"a log-scale range must be > 0 (got {self.low:g}..{self.high:g})", key="--range")
        for name in ("points", "top", "stages"):
            if getattr(self, name) < 1:
                raise InputError(f"must be >= 1 (got {getattr(self, name)})", key=f"--{name}")
        if self.min_improvement < 0 or (self.min_improvement_abs or 0) < 0:
            raise InputError("must be >= 0", key="--min-improvement")
        if self.direction not in ("maximize", "minimize"):
            raise InputError(f"must be maximize or minimize (got {self.direction!r})", key="direction")
        if not 0 <= self.smooth < 1:
            raise InputError(f"must be in [0, 1) (got {self.smooth:g})", key="smooth")
        if not 0 < self.rel_tol < 0.5:
            raise InputError(f"must be in (0, 0.5) (got {self.rel_tol:g})", key="rel_tol")

    @property
    def budget(self) -> int:
        """Evaluations if no stage stops early (replicates not included)."""
        return self.points * self.stages


@dataclass(frozen=True)
class StagePlan:
    """The next stage: its values (empty when ``done``) and why it was chosen or why it stops.

    ``intervals`` lists ``(low, high, n)``: each refined interval and how many new points
    it received (empty for stage 0).
    """

    values: tuple[float, ...]
    stage: int
    done: bool
    reason: str
    intervals: tuple[tuple[float, float, int], ...] = field(default=())


@dataclass(frozen=True)
class Selection:
    """A chosen value with the mean and spread (sample std) of its ``n`` scores."""

    value: float
    mean: float
    spread: float
    n: int
    diverged: int = 0


# --- public functions ------------------------------------------------------------------------


def initial_values(cfg: PlannerConfig) -> tuple[float, ...]:
    """Stage 0: ``points`` values spaced evenly (in log or linear space) from low to high."""
    if cfg.points == 1:
        return (_from_t(_mid(_to_t(cfg.low, cfg), _to_t(cfg.high, cfg)), cfg),)
    t0, t1 = _to_t(cfg.low, cfg), _to_t(cfg.high, cfg)
    step = (t1 - t0) / (cfg.points - 1)
    vals = [_from_t(t0 + i * step, cfg) for i in range(cfg.points)]
    vals[0], vals[-1] = cfg.low, cfg.high  # exact ends, no rounding drift
    return tuple(vals)


def plan_stage(history: Sequence[Trial], cfg: PlannerConfig) -> StagePlan:
    """Plan the stage after the last one in ``history`` (stage 0 when it is empty)."""
    stage = 1 + max((t.stage for t in history), default=-1)
    if stage == 0:
        return StagePlan(initial_values(cfg), 0, False, f"initial {'log' if cfg.log else 'linear'} grid")
    if stage >= cfg.stages:
        return StagePlan((), stage, True, f"reached {cfg.stages} stages")
    done = [t for t in history if t.stage < stage]
    points = _smoothed(_points(done, cfg), cfg)
    if not any(math.isfinite(g) for _, g in points):
        return StagePlan((), stage, True, "every evaluated value diverged or failed: see the trials' errors "
                         "(sweep status); if they diverged, try a lower range")
    tie = _tie(done, stage)
    if tie:
        return StagePlan((), stage, True, tie)
    stop = _early_stop(done, stage, cfg)
    if stop:
        return StagePlan((), stage, True, stop)
    return _refine(points, stage, cfg)


def best_trial(history: Iterable[Trial], direction: Direction = "maximize") -> Trial | None:
    """The best finished trial (diverged ones never win); None if there is none."""
    best: Trial | None = None
    best_g = -math.inf
    for t in history:
        g = goodness(t.score, direction)
        if best is None or g > best_g:
            best, best_g = t, g
    return best


def top_values(history: Sequence[Trial], k: int, cfg: PlannerConfig) -> tuple[float, ...]:
    """The ``k`` best distinct evaluated values by smoothed score (finite only), best first.

    These are the candidates re-run with new seeds when ``--replicates`` is set.
    """
    pts = [p for p in _smoothed(_points(history, cfg), cfg) if math.isfinite(p[1])]
    pts.sort(key=lambda p: (-p[1], p[0]))
    return tuple(v for v, _ in pts[:k])


def smoothed_scores(history: Sequence[Trial], cfg: PlannerConfig) -> list[tuple[float, float | None]]:
    """(value, smoothed score) for every distinct evaluated value, in the metric's own units
    (None where every run of the value diverged): what the pick and the stop rule rank by."""
    sign = 1.0 if cfg.direction == "maximize" else -1.0  # rounded: a far neighbour's 1e-198 is not news
    return [(v, round(sign * g, 12) if math.isfinite(g) else None) for v, g in _smoothed(_points(history, cfg), cfg)]


def same_value(a: float, b: float, cfg: PlannerConfig) -> bool:
    """Whether two evaluated values count as one (``rel_tol``)."""
    return _close(a, b, cfg)


def best_value(history: Sequence[Trial], cfg: PlannerConfig) -> Trial | None:
    """The sweep's pick: the evaluated value with the best smoothed score, returned as its
    best raw trial (so the score shown is one that was measured). None if all diverged."""
    tops = top_values(history, 1, cfg)
    if not tops:
        return None
    return best_trial([t for t in history if _close(t.value, tops[0], cfg)], cfg.direction)


def select_with_replicates(
    results_by_value: Mapping[float, Sequence[float | None]], direction: Direction = "maximize"
) -> Selection:
    """Choose the value with the best mean over its runs (original seed plus replicates).

    A value where any run diverged ranks below every value whose runs all finished (a
    learning rate that sometimes diverges is a bad pick whatever its mean); among those,
    fewer divergences first, then the mean of the finished runs.
    """
    if not results_by_value:
        raise ValueError("no results to select from")
    rows: list[tuple[tuple[float, float, float], Selection]] = []
    for value, scores in results_by_value.items():
        finite = [float(s) for s in scores if s is not None and math.isfinite(s)]
        n_div = len(scores) - len(finite)
        if finite:
            mean = sum(finite) / len(finite)
            var = sum((s - mean) ** 2 for s in finite) / (len(finite) - 1) if len(finite) > 1 else 0.0
            sel = Selection(float(value), mean, math.sqrt(var), len(scores), n_div)
            g = goodness(mean, direction)
        else:
            sel = Selection(float(value), math.nan, math.nan, len(scores), n_div)
            g = -math.inf
        frac = n_div / len(scores) if scores else 1.0
        rows.append(((frac, -g, float(value)), sel))
    rows.sort(key=lambda r: r[0])
    return rows[0][1]


def goodness(score: float | None, direction: Direction) -> float:
    """Score mapped so that higher is better; diverged or failed is ``-inf``."""
    if score is None or not math.isfinite(score):
        return -math.inf
    return float(score) if direction == "maximize" else -float(score)


# --- internals -------------------------------------------------------------------------------


def _to_t(v: float, cfg: PlannerConfig) -> float:
    return math.log10(v) if cfg.log else v


def _from_t(t: float, cfg: PlannerConfig) -> float:
    return 10.0**t if cfg.log else t


def _mid(a: float, b: float) -> float:
    return (a + b) / 2


def _close(a: float, b: float, cfg: PlannerConfig) -> bool:
    """Same value within ``rel_tol``: relative to the values on a log scale, to the range on a
    linear one (so values near zero are not all distinct)."""
    scale = max(abs(a), abs(b)) if cfg.log else (cfg.high - cfg.low)
    return abs(a - b) <= cfg.rel_tol * scale


def _in_range(v: float, cfg: PlannerConfig) -> bool:
    lo, hi = cfg.low, cfg.high
    return (lo <= v or _close(v, lo, cfg)) and (v <= hi or _close(v, hi, cfg))


def _points(trials: Iterable[Trial], cfg: PlannerConfig) -> list[tuple[float, float, int]]:
    """Distinct evaluated values inside [low, high], sorted: (value, goodness, finished runs).

    Repeated runs of one value (replicates, re-queued trials) merge: the mean of the finite
    scores, or -inf if none finished.
    """
    groups: list[tuple[float, list[float]]] = []
    for t in sorted(trials, key=lambda t: t.value):
        if not _in_range(t.value, cfg):
            continue
        g = goodness(t.score, cfg.direction)
        if groups and _close(groups[-1][0], t.value, cfg):
            groups[-1][1].append(g)
        else:
            groups.append((t.value, [g]))
    out = []
    for v, gs in groups:
        finite = [g for g in gs if math.isfinite(g)]
        out.append((v, sum(finite) / len(finite) if finite else -math.inf, len(finite)))
    return out


def _smoothed(points: list[tuple[float, float, int]], cfg: PlannerConfig) -> list[tuple[float, float]]:
    """(value, smoothed goodness): a Gaussian-weighted mean over finite points, each weighted
    by its number of finished runs. Diverged points stay -inf and do not blur their
    neighbours (a cliff is not a low score to average in)."""
    h = cfg.smooth * (_to_t(cfg.high, cfg) - _to_t(cfg.low, cfg))
    fin = [(_to_t(v, cfg), g, n) for v, g, n in points if math.isfinite(g)]
    out = []
    for v, g, _ in points:
        if h <= 0 or not math.isfinite(g):
            out.append((v, g))
            continue
        t = _to_t(v, cfg)
        w = [n * math.exp(-(((t - u) / h) ** 2) / 2) for u, _, n in fin]
        out.append((v, sum(wi * gi for wi, (_, gi, _) in zip(w, fin)) / sum(w)))
    return out


def _best_smoothed(trials: Sequence[Trial], cfg: PlannerConfig) -> float:
    return max((g for _, g in _smoothed(_points(trials, cfg), cfg)), default=-math.inf)


def _tie(done: Sequence[Trial], stage: int) -> str:
    """Reason to stop when every finite score so far is the same, else ''."""
    scores = [float(t.score) for t in done if t.score is not None and math.isfinite(t.score)]
    if len(scores) < 2 or max(scores) - min(scores) > 1e-12 * max(1.0, abs(max(scores))):
        return ""
    return (f"every value scored the same ({scores[0]:.4g}) after stage {stage}: nothing to rank, so the sweep "
            "stops instead of refining an arbitrary interval; train longer (--epochs) or rank by --metric val_loss")


def _early_stop(done: Sequence[Trial], stage: int, cfg: PlannerConfig) -> str:
    """Reason to stop if the last stage did not raise the best smoothed score enough, else ''
    (a text for people: stages counted from 1)."""
    last = stage - 1
    if last < 1:
        return ""
    before = _best_smoothed([t for t in done if t.stage < last], cfg)
    after = _best_smoothed([t for t in done if t.stage <= last], cfg)
    if not math.isfinite(before):
        return ""
    gain = after - before
    rel_need = cfg.min_improvement * abs(before)
    if cfg.min_improvement > 0 and gain < rel_need:
        return (
            f"stage {last + 1} improved the best (smoothed) score by {_pct(gain, before)} "
            f"< --min-improvement {cfg.min_improvement:.3g} ({cfg.min_improvement * 100:.3g}%)"
        )
    if cfg.min_improvement_abs is not None and cfg.min_improvement_abs > 0 and gain < cfg.min_improvement_abs:
        return (f"stage {last + 1} improved the best (smoothed) score by {gain:.4g} < --min-improvement "
                f"{cfg.min_improvement_abs:g} (absolute)")
    return ""


def _pct(gain: float, before: float) -> str:
    if before == 0:
        return f"{gain:.4g}"
    return f"{gain / abs(before) * 100:.3g}%"


def _refine(points: list[tuple[float, float]], stage: int, cfg: PlannerConfig) -> StagePlan:
    """Rank the gaps between adjacent values and place new points strictly inside the best."""
    ranked = []
    for i in range(len(points) - 1):
        (a, ga), (b, gb) = points[i], points[i + 1]
        if not (math.isfinite(ga) or math.isfinite(gb)):
            continue  # both sides diverged: nothing to find in between
        ranked.append(((-max(ga, gb), -min(ga, gb), a), a, b))
    ranked.sort(key=lambda r: r[0])
    chosen = ranked[: cfg.top]
    if not chosen:
        return StagePlan((), stage, True, "no interval left to refine")
    n = len(chosen)
    shares = [cfg.points // n + (1 if i < cfg.points % n else 0) for i in range(n)]
    taken = [v for v, _ in points]
    values: list[float] = []
    intervals: list[tuple[float, float, int]] = []
    for (_, a, b), share in zip(chosen, shares):
        new = _fit_inside(a, b, share, taken, cfg)
        if new:
            values += new
            taken += new
            intervals.append((a, b, len(new)))
    if not values:
        return StagePlan((), stage, True, "intervals narrower than the value tolerance; nothing new to try")
    desc = ", ".join(f"{a:.3g}..{b:.3g} x{k}" for a, b, k in intervals)
    return StagePlan(tuple(values), stage, False, f"refine {desc}", tuple(intervals))


def _fit_inside(a: float, b: float, share: int, taken: Sequence[float], cfg: PlannerConfig) -> list[float]:
    """``share`` evenly spaced values strictly inside (a, b), fewer if the gap is too narrow
    for them to be distinct from each other and from every value already evaluated."""
    ta, tb = _to_t(a, cfg), _to_t(b, cfg)
    for k in range(share, 0, -1):
        step = (tb - ta) / (k + 1)
        new = [_from_t(ta + j * step, cfg) for j in range(1, k + 1)]
        if all(a < v < b for v in new) and _distinct(new, taken, cfg):
            return new
    return []


def _distinct(new: Sequence[float], taken: Sequence[float], cfg: PlannerConfig) -> bool:
    for i, v in enumerate(new):
        if any(_close(v, w, cfg) for w in taken) or any(_close(v, w, cfg) for w in new[:i]):
            return False
    return True
