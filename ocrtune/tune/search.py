"""Choose settings from a space (grid, random or TPE) and score them with a ``Scorer``.

Scores are computed exactly as ``evaluate`` computes them: per image, CLEval and IoU counts ->
R, P, H; the image mean is the plain mean in image order (the number validation and
``evaluate`` report as H-mean); the global scores pool the counts. The objective ranks settings
by the CLEval H-mean (the competition's score, the default) or by the IoU@0.5 H-mean (where
line granularity and box tightness show); the other metric is reported beside it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np

from ocrtune.errors import InputError
from ocrtune.sweep.plan.space import Space
from ocrtune.sweep.types import Result
from ocrtune.tune.settings import PostSettings
from ocrtune.tune.stages import ImageCounts

Strategy = Literal["grid", "random", "tpe"]
STRATEGIES: tuple[str, ...] = ("grid", "random", "tpe")
Objective = Literal["cleval", "iou"]
OBJECTIVES: tuple[str, ...] = ("cleval", "iou")
OBJECTIVE_METRIC: dict[str, str] = {"cleval": "CLEval H-mean", "iou": "IoU@0.5 H-mean"}  # what each ranks by
Progress = Callable[[int, int], None]
CHUNK = 10  # settings per round trip to the workers (grid/random): progress, and locality
TPE_BATCH = 8  # TPE proposals per round (constant liar keeps them apart)


class CountsFn(Protocol):
    def __call__(self, settings: Sequence[PostSettings]) -> np.ndarray: ...


@dataclass(frozen=True)
class Scored:
    """One setting's scores (fractions, as ``evaluate`` saves them). ``trial`` 0 is the
    checkpoint's own settings; tried settings count from 1 in the order they were proposed."""

    trial: int
    settings: PostSettings
    params: dict[str, Any]
    hmean: float
    precision: float
    recall: float
    global_hmean: float
    global_precision: float
    global_recall: float
    iou_hmean: float  # IoU@0.5, image mean
    iou_precision: float
    iou_recall: float
    iou_global_hmean: float

    def key(self, objective: Objective) -> tuple[float, ...]:
        """What ranks this setting under ``objective`` (larger is better): the image-mean
        H-mean, then the global one; under ``iou``, then the CLEval H-mean."""
        if objective == "iou":
            return (self.iou_hmean, self.iou_global_hmean, self.hmean)
        return (self.hmean, self.global_hmean)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "params": self.params,
            "settings": self.settings.values(),
            "cleval": {"image_mean": {"hmean": self.hmean, "precision": self.precision, "recall": self.recall},
                       "global": {"hmean": self.global_hmean, "precision": self.global_precision,
                                  "recall": self.global_recall}},
            "iou": {"image_mean": {"hmean": self.iou_hmean, "precision": self.iou_precision,
                                   "recall": self.iou_recall},
                    "global": {"hmean": self.iou_global_hmean}},
        }


@dataclass
class SearchResult:
    current: Scored
    tried: list[Scored]
    strategy: str
    seconds: float
    distinct: int  # different settings among those tried (a repeat reuses its score)
    notes: list[str] = field(default_factory=list)
    objective: Objective = "cleval"

    @property
    def ranked(self) -> list[Scored]:
        """Best first by the objective (``Scored.key``); ties: the earlier trial."""
        return sorted(self.tried, key=lambda s: (tuple(-v for v in s.key(self.objective)), s.trial))

    @property
    def best(self) -> Scored:
        """The best tried setting, or the current one when nothing tried beats it."""
        top = self.ranked[0] if self.tried else self.current
        return top if top.key(self.objective) > self.current.key(self.objective) else self.current


def summarise(counts: np.ndarray) -> tuple[float, ...]:
    """Scored's numbers (CLEval H, P, R image mean, H, P, R global; IoU H, P, R image mean, H
    global) of (images, ``ImageCounts.FIELDS``) counts, as the metrics' accumulators compute them:
    the per-image scores summed in image order with Python floats."""
    rows = [ImageCounts.of_row(row) for row in counts]
    n = len(rows)
    cl = [c.cleval.scores() for c in rows]
    io = [c.iou.scores() for c in rows]

    def mean(per: list[tuple[float, float, float]], k: int) -> float:
        return sum(p[k] for p in per) / n if n else 0.0

    total = ImageCounts.of_row(counts.sum(axis=0)) if n else None
    gr, gp, gh = total.cleval.scores() if total else (0.0, 0.0, 0.0)
    igh = total.iou.pooled()[2] if total else 0.0
    return mean(cl, 2), mean(cl, 1), mean(cl, 0), gh, gp, gr, mean(io, 2), mean(io, 1), mean(io, 0), igh


class _Scores:
    """Scores of settings, each computed once: settings the detections cannot tell apart
    (``PostSettings.effective``) share one."""

    def __init__(self, counts: CountsFn) -> None:
        self.counts = counts
        self.memo: dict[tuple, tuple[float, ...]] = {}

    def __call__(self, settings: Sequence[PostSettings]) -> list[tuple[float, ...]]:
        new: dict[tuple, PostSettings] = {}
        for s in settings:
            if s.effective not in self.memo:
                new.setdefault(s.effective, s)
        if new:
            for e, c in zip(new, self.counts(list(new.values()))):
                self.memo[e] = summarise(c)
        return [self.memo[s.effective] for s in settings]


def grid_params(space: Space, points: int, trials: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every combination, ranges at ``points`` values each; over ``trials``, fewer points per
    range (down to 2), then an evenly spread subset of the combinations."""
    notes = []
    n = points
    combos = _grid(space, n)
    while trials is not None and len(combos) > trials and n > 2 and any(d.kind not in ("fixed", "choice") for d in space.dims):
        n -= 1
        combos = _grid(space, n)
    if n != points:
        notes.append(f"grid: {n} values per range (not {points}) to stay within --trials {trials}")
    if trials is not None and len(combos) > trials:
        pick = np.unique(np.round(np.linspace(0, len(combos) - 1, trials)).astype(int))
        notes.append(f"grid: {len(pick)} of {len(combos)} combinations, evenly spread (--trials {trials})")
        combos = [combos[i] for i in pick]
    return combos, notes


def _grid(space: Space, n: int) -> list[dict[str, Any]]:
    keys = space.keys
    return [dict(zip(keys, c)) for c in itertools.product(*(d.grid(n) for d in space.dims))]


def random_params(space: Space, trials: int, seed: int) -> list[dict[str, Any]]:
    """Trial ``i`` draws from its own generator ``(seed, i)``, as the sweep's random strategy."""
    return [{d.key: d.sample(np.random.default_rng([seed, i])) for d in space.dims} for i in range(trials)]


def _locality(s: PostSettings) -> tuple:
    """Order that keeps a threshold's contours and a ratio's boxes in the workers' caches."""
    return (s.use_polygon, s.thresh, s.ratio, s.min_size, s.box_thresh, s.max_candidates)


def search(counts: CountsFn, current: PostSettings, space: Space, strategy: str = "grid", trials: int | None = None,
           points: int = 5, seed: int = 0, progress: Progress | None = None,
           objective: Objective = "cleval") -> SearchResult:
    """Score the current settings, then the strategy's settings; ``trials`` caps how many;
    ``objective`` ranks them (and guides TPE)."""
    if strategy not in STRATEGIES:
        raise InputError(f"must be one of {', '.join(STRATEGIES)} (got {strategy!r})", key="--strategy")
    if objective not in OBJECTIVES:
        raise InputError(f"must be one of {', '.join(OBJECTIVES)} (got {objective!r})", key="--objective")
    if trials is not None and trials < 1:
        raise InputError(f"must be >= 1 (got {trials})", key="--trials")
    start = time.perf_counter()
    notes: list[str] = []
    if strategy == "grid":
        params, notes = grid_params(space, points, trials)
    elif strategy == "random":
        params = random_params(space, trials or 100, seed)
    else:
        params = []
    total = len(params) if strategy != "tpe" else (trials or 100)
    scores = _Scores(counts)
    base = Scored(0, current, {}, *scores([current])[0])
    tried: list[Scored] = []

    def record(settings: Sequence[PostSettings], params: Sequence[dict[str, Any]], numbers: Sequence[int]) -> None:
        for s, p, n, v in zip(settings, params, numbers, scores(settings)):
            tried.append(Scored(n, s, dict(p), *v))
        if progress:
            progress(len(tried), total)

    if progress:
        progress(0, total)
    if strategy == "tpe":
        _tpe(record, tried, current, space, total, seed, objective)
    else:
        settings = [current.with_params(p) for p in params]
        # Scored in an order that keeps the workers' stages warm, numbered in proposal order.
        order = sorted(range(len(settings)), key=lambda i: _locality(settings[i]))
        for lo in range(0, len(order), CHUNK):
            idx = order[lo : lo + CHUNK]
            record([settings[i] for i in idx], [params[i] for i in idx], [i + 1 for i in idx])
        tried.sort(key=lambda t: t.trial)
    distinct = len({t.settings.effective for t in tried})
    return SearchResult(base, tried, strategy, time.perf_counter() - start, distinct, notes, objective)


def _tpe(record: Callable[..., None], tried: list[Scored], current: PostSettings, space: Space, total: int,
         seed: int, objective: Objective) -> None:
    """Rounds of ``TPE_BATCH`` proposals from Optuna's TPE, told every score so far (the
    objective's image-mean H-mean)."""
    from ocrtune.sweep.store.samplers import propose_tpe

    while len(tried) < total:
        k = min(TPE_BATCH, total - len(tried))
        history = [Result(t.params, t.key(objective)[0]) for t in tried]
        # A new seed per round: a sampler rebuilt with the same seed repeats its random start.
        params = propose_tpe(space.dims, history, k, seed + len(history), "maximize")
        record([current.with_params(p) for p in params], params, range(len(tried) + 1, len(tried) + k + 1))
