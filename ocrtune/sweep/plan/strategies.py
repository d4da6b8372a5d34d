"""Sweep strategies behind one small interface: finished results in, next batch of trials out.

Every strategy is pure and derives its state from the results alone, so the store can stop,
resume or re-queue without saving strategy state: ``next_batch(history)`` on the same
history always gives the same batch. A batch is a set of trials that can run in parallel;
the caller runs it, records a ``Result`` per trial and asks again until ``done``.

TPE is adaptive per trial and needs Optuna's sampler: the strategy here plans batches and
asks a ``Proposer`` for the points; the store layer (the only Optuna importer) provides one.
``build_strategy`` turns a stored ``SweepConfig`` into its strategy.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from ocrtune.errors import InputError
from ocrtune.sweep.plan.planner import (
    PlannerConfig,
    Trial,
    best_value,
    goodness,
    plan_stage,
    same_value,
    select_with_replicates,
    smoothed_scores,
    top_values,
)
from ocrtune.sweep.plan.space import Dim, Space
from ocrtune.sweep.types import (
    Batch,
    Choice,
    Direction,
    GridSearch,
    HierarchicalSearch,
    ImportedSearch,
    RandomSearch,
    Result,
    SweepConfig,
    TPESearch,
)


class Proposer(Protocol):
    """Proposes ``k`` new points from the results so far (TPE: ``store.samplers.propose_tpe``)."""

    def __call__(self, dims: Sequence[Dim], history: Sequence[Result], k: int, seed: int,
                 direction: Direction) -> list[dict[str, Any]]: ...


def space_of(cfg: SweepConfig) -> Space:
    """The stored space (``dims`` as JSON) as ``Dim`` objects."""
    return Space(tuple(Dim(**{**d, "values": tuple(d.get("values") or ())}) for d in cfg.dims))


def planner_config(cfg: SweepConfig) -> PlannerConfig:
    """The planner settings of a hierarchical sweep."""
    s = cfg.search
    assert isinstance(s, HierarchicalSearch)
    return PlannerConfig(low=s.low, high=s.high, points=s.points, top=s.top, stages=s.stages, log=s.log,
                         min_improvement=s.min_improvement, min_improvement_abs=s.min_improvement_abs,
                         direction=cfg.direction)


def build_strategy(cfg: SweepConfig, proposer: Proposer | None = None) -> Strategy:
    """The strategy a stored sweep plans with (TPE needs a ``proposer``)."""
    s = cfg.search
    if isinstance(s, HierarchicalSearch):
        return Hierarchical(s.param, planner_config(cfg), s.replicates, s.replicate_top,
                            seed=int(cfg.base.get("seed", 42)))
    if isinstance(s, GridSearch):
        return Grid(space_of(cfg), s.points, s.trials, cfg.direction)
    if isinstance(s, RandomSearch):
        return Random(space_of(cfg), s.trials, cfg.seed, cfg.direction)
    if isinstance(s, ImportedSearch):
        return Imported(s.source, cfg.direction)
    assert isinstance(s, TPESearch)
    if proposer is None:
        raise ValueError("the TPE strategy needs a proposer (ocrtune.sweep.store.propose_tpe)")
    return TPE(space_of(cfg), s.trials, proposer, s.batch, cfg.seed, cfg.direction)


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
        return Choice(dict(r.params), float(r.score), 0.0, 1, float(r.score))  # type: ignore[arg-type]

    def smoothed(self, params: Mapping[str, Any], history: Sequence[Result]) -> float | None:
        """The score this strategy ranks ``params`` by, when it is not the measured one."""
        return None


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


class Imported(Strategy):
    """Results imported from elsewhere: nothing to plan; the best is the best measured score."""

    name = "imported"

    def __init__(self, source: str, direction: Direction = "maximize") -> None:
        self.source, self.direction = source, direction

    def next_batch(self, history: Sequence[Result]) -> Batch:
        return Batch((), 0, True, f"imported from {self.source}")


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
            smooth = self.smoothed({self.key: t.value}, history)
            return Choice({self.key: t.value}, smooth if smooth is not None else float(t.score), 0.0,  # type: ignore[arg-type]
                          1, float(t.score))  # type: ignore[arg-type]
        values = sorted({float(r.params[self.key]) for r in reps})
        # replicates: the pick is the best mean; ``raw`` is its best single run
        runs: dict[float, list[float | None]] = {v: [] for v in values}
        for r in history:
            v = float(r.params[self.key])
            if v in runs:
                runs[v].append(r.score)
        sel = select_with_replicates(runs, self.direction)
        if not math.isfinite(sel.mean):
            return None
        finite_runs = [s for s in runs[sel.value] if s is not None and math.isfinite(s)]
        raw = max(finite_runs, key=lambda s: goodness(s, self.direction)) if finite_runs else None
        return Choice({self.key: sel.value}, sel.mean, sel.spread, sel.n, raw)

    def smoothed(self, params: Mapping[str, Any], history: Sequence[Result]) -> float | None:
        """The kernel-smoothed score of the explored value ``params[key]`` (``planner``)."""
        if self.key not in params:
            return None
        v = float(params[self.key])
        for value, score in smoothed_scores(self.trials(history), self.config):
            if same_value(value, v, self.config):
                return score
        return None


def _freeze(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items()))


class TPE(Strategy):
    """TPE behind the strategy interface: ``batch`` proposals at a time from the ``proposer``.

    The proposer is seeded with (seed, number of results), so a resumed sweep proposes exactly
    what it would have; a diverged trial counts as the worst score seen, so TPE learns the cliff.
    """

    name = "tpe"

    def __init__(self, space: Space, trials: int, proposer: Proposer, batch: int = 1, seed: int = 0,
                 direction: Direction = "maximize") -> None:
        if trials < 1:
            raise InputError(f"must be >= 1 (got {trials})", key="--trials")
        self.space, self.trials, self.batch, self.seed, self.direction = space, trials, max(1, batch), seed, direction
        self.proposer = proposer

    def next_batch(self, history: Sequence[Result]) -> Batch:
        n = len(history)
        index = -(-n // self.batch)
        if n >= self.trials:
            return Batch((), index, True, f"all {self.trials} TPE trials finished")
        k = min(self.batch, self.trials - n)
        params = self.proposer(self.space.dims, history, k, (self.seed * 1_000_003 + n) % 2**31, self.direction)
        return Batch(tuple(params), index, False, f"TPE trials {n + 1}-{n + k} of {self.trials}")
