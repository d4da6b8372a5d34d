"""Sweep strategies behind one small interface: finished results in, next batch of trials out.

Every strategy is pure and derives its state from the results alone, so the store can stop,
resume or re-queue without saving strategy state: ``next_batch(history)`` on the same
history always gives the same batch. A batch is a set of trials that can run in parallel;
the caller runs it, records a ``Result`` per trial and asks again until ``done``.

TPE is adaptive per trial and needs Optuna's sampler; it lives in the store layer (the only
Optuna importer) behind the same ``next_batch``/``best`` shape.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ocrtune.errors import InputError
from ocrtune.sweep.planner import (
    Direction,
    PlannerConfig,
    Trial,
    best_value,
    goodness,
    plan_stage,
    select_with_replicates,
    top_values,
)
from ocrtune.sweep.space import Space

BatchKind = Literal["explore", "replicate"]


@dataclass(frozen=True)
class Result:
    """A finished trial: the overrides it ran with and its score (None/NaN: diverged/failed).

    ``batch`` and ``kind`` echo the batch that proposed it (the store saves them with the trial).
    """

    params: Mapping[str, Any]
    score: float | None
    batch: int = 0
    kind: BatchKind = "explore"


@dataclass(frozen=True)
class Batch:
    """Trials to run next (empty when ``done``), with why they were chosen or why it stopped."""

    params: tuple[dict[str, Any], ...]
    index: int
    done: bool
    reason: str
    kind: BatchKind = "explore"


@dataclass(frozen=True)
class Choice:
    """The sweep's pick: its overrides, mean score and spread (sample std) over ``n`` runs."""

    params: dict[str, Any]
    score: float
    spread: float
    n: int


class Strategy(ABC):
    """Common interface. ``direction`` says whether a higher score is better."""

    name: str = ""
    direction: Direction = "maximize"

    @abstractmethod
    def next_batch(self, history: Sequence[Result]) -> Batch:
        """The next trials given every finished result so far."""

    def best(self, history: Sequence[Result]) -> Choice | None:
        """The best single result; diverged or failed trials never win."""
        scored = [r for r in history if math.isfinite(goodness(r.score, self.direction))]
        if not scored:
            return None
        r = max(scored, key=lambda r: goodness(r.score, self.direction))
        return Choice(dict(r.params), float(r.score), 0.0, 1)  # type: ignore[arg-type]


class _Fixed(Strategy):
    """A strategy whose full trial list is known up front (grid, random): one batch holding
    every trial not yet found in the history (matched by params, so resuming skips them)."""

    def __init__(self, trials: list[dict[str, Any]], direction: Direction) -> None:
        self.trials = trials
        self.direction = direction

    def next_batch(self, history: Sequence[Result]) -> Batch:
        seen = Counter(_freeze(r.params) for r in history)
        todo = []
        for p in self.trials:
            f = _freeze(p)
            if seen[f]:
                seen[f] -= 1
            else:
                todo.append(p)
        if not todo:
            return Batch((), 1, True, f"all {len(self.trials)} {self.name} trials finished")
        return Batch(tuple(todo), 0, False, f"{len(todo)} of {len(self.trials)} {self.name} trials")


class Grid(_Fixed):
    """Every combination of the space's values; ranges become ``points`` values each
    (log-spaced for log_uniform). ``trials`` keeps only the first N combinations."""

    name = "grid"

    def __init__(self, space: Space, points: int = 5, trials: int | None = None, direction: Direction = "maximize") -> None:
        keys = space.keys
        combos = itertools.product(*(d.grid(points) for d in space.dims))
        out = [dict(zip(keys, c)) for c in itertools.islice(combos, trials)]
        super().__init__(out, direction)


class Random(_Fixed):
    """``trials`` independent draws from the space. Trial ``i`` uses its own generator seeded
    by ``(seed, i)``, so any trial can be re-created alone and a longer run extends a shorter."""

    name = "random"

    def __init__(self, space: Space, trials: int, seed: int = 0, direction: Direction = "maximize") -> None:
        out = []
        for i in range(trials):
            rng = np.random.default_rng([seed, i])
            out.append({d.key: d.sample(rng) for d in space.dims})
        super().__init__(out, direction)


class Hierarchical(Strategy):
    """Coarse-to-fine search over one key (see ``planner``); each stage is one batch.

    With ``replicates`` R > 0, once the stages stop, the ``replicate_top`` best values are
    re-run with R new seeds (``seed + 1 .. seed + R``) in one more batch, and the pick is
    the value with the best mean over all its runs: one short run is too noisy to trust.
    """

    name = "hierarchical"

    def __init__(self, key: str, config: PlannerConfig, replicates: int = 0, replicate_top: int = 3, seed: int = 42) -> None:
        if replicates < 0:
            raise InputError(f"must be >= 0 (got {replicates})", key="--replicates")
        if replicate_top < 1:
            raise InputError(f"must be >= 1 (got {replicate_top})", key="--replicate-top")
        self.key, self.config, self.direction = key, config, config.direction
        self.replicates, self.replicate_top, self.seed = replicates, replicate_top, seed

    def trials(self, history: Sequence[Result]) -> list[Trial]:
        """The explore results as planner trials."""
        return [Trial(float(r.params[self.key]), r.score, r.batch) for r in history if r.kind == "explore"]

    def next_batch(self, history: Sequence[Result]) -> Batch:
        """Explore stages while the planner goes on, then replicate the top values. Both
        follow from the history alone, so a finished sweep resumed with a larger budget
        (more stages, a lower --min-improvement, more replicates) explores further and then
        replicates whichever top values still lack runs."""
        trials = self.trials(history)
        plan = plan_stage(trials, self.config)
        if not plan.done:
            return Batch(tuple({self.key: v} for v in plan.values), plan.stage, False, plan.reason)
        missing = self.missing_replicates(history, trials)
        if missing:
            n = len({p[self.key] for p in missing})
            why = f"{plan.reason}; re-running {n} of the top {self.replicate_top} values with {self.replicates} new seeds"
            return Batch(missing, plan.stage, False, why, "replicate")
        reps = any(r.kind == "replicate" for r in history)
        return Batch((), plan.stage + (1 if reps else 0), True, "replicates finished" if reps else plan.reason)

    def missing_replicates(self, history: Sequence[Result], trials: Sequence[Trial]) -> tuple[dict[str, Any], ...]:
        """(value, seed) runs the replicate rule asks for that no result has yet."""
        if not self.replicates:
            return ()
        have = {(float(r.params[self.key]), r.params.get("seed")) for r in history if r.kind == "replicate"}
        tops = top_values(trials, self.replicate_top, self.config)
        return tuple({self.key: v, "seed": self.seed + r} for v in tops for r in range(1, self.replicates + 1)
                     if (float(v), self.seed + r) not in have)

    def best(self, history: Sequence[Result]) -> Choice | None:
        """Without replicates: the best smoothed score (``planner.best_value``); with them:
        the best mean over each candidate's runs (``planner.select_with_replicates``)."""
        reps = [r for r in history if r.kind == "replicate"]
        if not reps:
            t = best_value(self.trials(history), self.config)
            if t is None:
                return None
            return Choice({self.key: t.value}, float(t.score), 0.0, 1)  # type: ignore[arg-type]
        values = sorted({float(r.params[self.key]) for r in reps})
        runs: dict[float, list[float | None]] = {v: [] for v in values}
        for r in history:
            v = float(r.params[self.key])
            if v in runs:
                runs[v].append(r.score)
        sel = select_with_replicates(runs, self.direction)
        if not math.isfinite(sel.mean):
            return None
        return Choice({self.key: sel.value}, sel.mean, sel.spread, sel.n)


def _freeze(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))
