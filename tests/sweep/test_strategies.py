"""Sweep strategies: grid enumerates, random is seeded, hierarchical stages and replicates."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ocrtune.errors import InputError
from ocrtune.sweep.plan.planner import PlannerConfig, top_values
from ocrtune.sweep.plan.space import parse_space
from ocrtune.sweep.plan.strategies import Grid, Hierarchical, Random
from ocrtune.sweep.types import Batch, Result

LR = "models.optimizer.lr"

SPACE = parse_space({
    LR: {"distribution": "log_uniform", "min": 1e-4, "max": 1e-2},
    "models.scheduler.T_max": {"values": [20, 22, 24]},
    "models.head.postprocess.thresh": {"min": 0.2, "max": 0.4},
    "models.optimizer.weight_decay": {"value": 1e-4},
})


def drive(strategy, f, limit: int = 20) -> tuple[list[Result], list[Batch]]:
    hist: list[Result] = []
    batches = []
    for _ in range(limit):
        b = strategy.next_batch(hist)
        batches.append(b)
        if b.done:
            return hist, batches
        hist += [Result(p, f(p), b.index, b.kind) for p in b.params]
    raise AssertionError("strategy never finished")


def lr_curve(x_opt: float = -3.3, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)

    def f(p):
        x = math.log10(p[LR])
        if x > x_opt + 0.6:
            return None
        return 0.9 * math.exp(-((x - x_opt) ** 2) / (2 * 0.64)) + rng.normal(0, noise)

    return f


def test_grid_enumerates_the_full_product_once():
    g = Grid(SPACE, points=3)
    b = g.next_batch([])
    assert not b.done and len(b.params) == 3 * 3 * 3 * 1
    combos = {(p[LR], p["models.scheduler.T_max"], p["models.head.postprocess.thresh"]) for p in b.params}
    assert combos == set(itertools.product((1e-4, 1e-3, 1e-2), (20, 22, 24), (0.2, 0.3, 0.4)))
    assert all(p["models.optimizer.weight_decay"] == 1e-4 for p in b.params)
    assert len(Grid(SPACE, points=3, trials=5).next_batch([]).params) == 5


def test_grid_resumes_without_repeats_and_finishes():
    g = Grid(SPACE, points=2)
    allp = g.next_batch([]).params
    done = [Result(p, 0.5) for p in allp[:5]]
    rest = g.next_batch(done)
    assert rest.params == allp[5:]
    final = g.next_batch(done + [Result(p, None) for p in rest.params])
    assert final.done and final.params == () and "finished" in final.reason


def test_random_is_seeded_in_range_and_extends():
    a = Random(SPACE, 30, seed=3).next_batch([]).params
    assert a == Random(SPACE, 30, seed=3).next_batch([]).params
    assert a != Random(SPACE, 30, seed=4).next_batch([]).params
    assert Random(SPACE, 10, seed=3).next_batch([]).params == a[:10]  # a longer run extends a shorter
    for p in a:
        assert 1e-4 <= p[LR] <= 1e-2 and 0.2 <= p["models.head.postprocess.thresh"] <= 0.4
        assert p["models.scheduler.T_max"] in (20, 22, 24) and p["models.optimizer.weight_decay"] == 1e-4
    assert len({p[LR] for p in a}) == 30


def test_best_skips_diverged_results():
    g = Grid(SPACE, points=2)
    ps = g.next_batch([]).params
    hist = [Result(ps[0], None), Result(ps[1], float("nan")), Result(ps[2], 0.4), Result(ps[3], 0.6)]
    c = g.best(hist)
    assert c is not None and c.params == ps[3] and c.score == 0.6 and c.n == 1
    assert g.best([Result(ps[0], None)]) is None
    low = Grid(SPACE, points=2, direction="minimize")
    assert low.best(hist).params == ps[2]


def test_hierarchical_runs_stages_of_five_and_finds_the_optimum():
    h = Hierarchical(LR, PlannerConfig(min_improvement=0))
    hist, batches = drive(h, lr_curve(-3.3))
    assert [len(b.params) for b in batches] == [5, 5, 5, 5, 5, 0]
    assert [b.index for b in batches[:-1]] == [0, 1, 2, 3, 4]
    assert all(set(p) == {LR} for b in batches for p in b.params)
    assert batches[-1].done and batches[-1].reason == "reached 5 stages"
    best = h.best(hist)
    assert abs(math.log10(best.params[LR]) + 3.3) < 0.05 and best.n == 1
    # resuming from any prefix of whole batches gives the same next batch
    seen = 0
    for b in batches[:-1]:
        assert h.next_batch(hist[:seen]) == b
        seen += len(b.params)


def test_hierarchical_replicates_rerun_the_top_values_with_new_seeds():
    h = Hierarchical(LR, PlannerConfig(stages=3, min_improvement=0), replicates=2, replicate_top=3, seed=42)
    hist, batches = drive(h, lr_curve(-3.0, noise=0.01, seed=1))
    rep = batches[-2]
    assert rep.kind == "replicate" and len(rep.params) == 6
    assert sorted({p["seed"] for p in rep.params}) == [43, 44]
    tops = {p[LR] for p in rep.params}
    explored = {r.params[LR] for r in hist if r.kind == "explore"}
    assert len(tops) == 3 and tops <= explored
    assert batches[-1].done and batches[-1].reason == "replicates finished"
    best = h.best(hist)
    assert best.params[LR] in tops and best.n == 3 and best.spread > 0
    runs = [r.score for r in hist if r.params[LR] == best.params[LR]]
    assert best.score == pytest.approx(np.mean(runs))


def test_hierarchical_with_everything_diverged_stops_and_picks_nothing():
    h = Hierarchical(LR, PlannerConfig(), replicates=2)
    hist, batches = drive(h, lambda p: None)
    assert len(hist) == 5 and batches[-1].done and "diverged" in batches[-1].reason
    assert h.best(hist) is None


def test_hierarchical_rejects_bad_replicate_settings():
    with pytest.raises(InputError, match="--replicates: must be >= 0"):
        Hierarchical(LR, PlannerConfig(), replicates=-1)
    with pytest.raises(InputError, match="--replicate-top"):
        Hierarchical(LR, PlannerConfig(), replicate_top=0)


def test_hierarchical_extended_after_replicates_explores_then_replicates_what_is_missing():
    f = lr_curve(-3.0, noise=0.01, seed=1)
    short = Hierarchical(LR, PlannerConfig(stages=2, min_improvement=0), replicates=1, replicate_top=2, seed=42)
    hist, batches = drive(short, f)
    assert [b.kind for b in batches] == ["explore", "explore", "replicate", "explore"] and batches[-1].done
    assert short.next_batch(hist).done  # resuming with the same settings plans nothing
    # resumed with one more stage and a second replicate seed
    longer = Hierarchical(LR, PlannerConfig(stages=3, min_improvement=0), replicates=2, replicate_top=2, seed=42)
    b = longer.next_batch(hist)
    assert (b.kind, b.index, b.done, len(b.params)) == ("explore", 2, False, 5)
    hist += [Result(p, f(p), b.index, b.kind) for p in b.params]
    rep = longer.next_batch(hist)
    assert rep.kind == "replicate" and not rep.done
    have = {(r.params[LR], r.params["seed"]) for r in hist if r.kind == "replicate"}
    want = {(v, s) for v in top_values(longer.trials(hist), 2, longer.config) for s in (43, 44)}
    assert {(p[LR], p["seed"]) for p in rep.params} == want - have  # only the runs still missing
    hist += [Result(p, f(p), rep.index, rep.kind) for p in rep.params]
    assert longer.next_batch(hist).done and longer.best(hist).n == 3
