"""Hierarchical stage planning: placement, no repeats, convergence, early stop, divergence."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrtune.errors import InputError
from ocrtune.sweep.plan.planner import (
    PlannerConfig,
    Trial,
    best_trial,
    best_value,
    initial_values,
    plan_stage,
    select_with_replicates,
    top_values,
)


def curve(x_opt: float, w_left: float = 0.8, w_right: float = 0.4, cliff: float = 0.6):
    """Unimodal in log10(lr), diverging (None) above x_opt + cliff."""

    def f(v: float) -> float | None:
        x = math.log10(v)
        if x > x_opt + cliff:
            return None
        w = w_left if x < x_opt else w_right
        return 0.9 * math.exp(-((x - x_opt) ** 2) / (2 * w * w))

    return f


def run(cfg: PlannerConfig, f) -> tuple[list[Trial], list]:
    hist: list[Trial] = []
    plans = []
    while True:
        p = plan_stage(hist, cfg)
        plans.append(p)
        if p.done:
            return hist, plans
        hist += [Trial(v, f(v), p.stage) for v in p.values]


def test_default_stage0_grid_is_the_documented_one():
    vals = initial_values(PlannerConfig())
    assert vals[0] == 1e-5 and vals[-1] == 1e-2
    assert [float(f"{v:.2g}") for v in vals] == [1e-5, 5.6e-5, 3.2e-4, 1.8e-3, 1e-2]
    assert vals[1] == pytest.approx(5.623e-5, rel=1e-3)
    p = plan_stage([], PlannerConfig())
    assert p.stage == 0 and not p.done and p.values == vals


def test_linear_stage0_and_single_point():
    assert initial_values(PlannerConfig(0.0, 1.0, log=False)) == pytest.approx((0, 0.25, 0.5, 0.75, 1.0))
    assert initial_values(PlannerConfig(1e-4, 1e-2, points=1)) == pytest.approx((1e-3,))


def test_refines_both_sides_of_the_best_point_three_plus_two():
    cfg = PlannerConfig(smooth=0)
    g = initial_values(cfg)
    scores = [0.2, 0.5, 0.9, 0.7, None]  # best at 3.2e-4, better neighbour on the right
    p = plan_stage([Trial(v, s, 0) for v, s in zip(g, scores)], cfg)
    assert p.stage == 1 and len(p.values) == 5
    assert p.intervals == ((g[2], g[3], 3), (g[1], g[2], 2))
    right = [v for v in p.values if g[2] < v < g[3]]
    assert len(right) == 3
    # log-spaced: equal ratios between consecutive points of one interval
    pts = [g[2], *sorted(right), g[3]]
    ratios = [b / a for a, b in zip(pts, pts[1:])]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)


def test_diverged_endpoint_ranks_by_its_finite_side_and_never_wins():
    cfg = PlannerConfig(smooth=0)
    g = initial_values(cfg)
    scores = [0.2, 0.4, 0.6, 0.9, None]  # best next to the cliff
    hist = [Trial(v, s, 0) for v, s in zip(g, scores)]
    p = plan_stage(hist, cfg)
    # both neighbours of the best point; the cliff side gets the smaller share
    assert p.intervals == ((g[2], g[3], 3), (g[3], g[4], 2))
    assert best_trial(hist).value == g[3]
    assert best_trial([Trial(1e-3, None, 0), Trial(1e-4, float("nan"), 0), Trial(1e-5, -5.0, 0)]).score == -5.0
    assert best_value(hist, cfg).value == g[3]


def test_intervals_between_two_diverged_points_are_never_refined():
    cfg = PlannerConfig(smooth=0, top=4)
    g = initial_values(cfg)
    hist = [Trial(v, s, 0) for v, s in zip(g, [0.5, 0.6, None, None, None])]
    p = plan_stage(hist, cfg)
    assert all(b <= g[2] for _, b, _ in p.intervals)
    assert len(p.intervals) == 2 and sum(k for *_, k in p.intervals) == 5


def test_all_diverged_stops_with_reason():
    cfg = PlannerConfig()
    hist = [Trial(v, None, 0) for v in initial_values(cfg)]
    p = plan_stage(hist, cfg)
    assert p.done and p.values == () and "diverged" in p.reason
    assert best_value(hist, cfg) is None and top_values(hist, 3, cfg) == ()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lo_exp=st.floats(-8, 1),
    span=st.floats(0.5, 6),
    points=st.integers(1, 7),
    top=st.integers(1, 3),
    log=st.booleans(),
    direction=st.sampled_from(["maximize", "minimize"]),
    smooth=st.sampled_from([0.0, 1 / 60, 0.2]),
    seed=st.integers(0, 10_000),
)
def test_every_stage_places_new_points_strictly_inside_chosen_gaps(lo_exp, span, points, top, log, direction, smooth, seed):
    low = 10**lo_exp
    high = low * 10**span
    cfg = PlannerConfig(low, high, points=points, top=top, stages=6, log=log,
                        min_improvement=0, direction=direction, smooth=smooth)
    rng = random.Random(seed)
    hist: list[Trial] = []
    while True:
        p = plan_stage(hist, cfg)
        if p.done:
            break
        evaluated = sorted(t.value for t in hist)
        assert len(p.values) == len(set(p.values))
        for v in p.values:
            assert low <= v <= high
            assert all(abs(v - e) > cfg.rel_tol * max(abs(v), abs(e), 0 if log else high - low) for e in evaluated)
        if p.stage > 0:
            assert 1 <= len(p.intervals) <= top
            assert sum(k for *_, k in p.intervals) == len(p.values) == points  # wide ranges: full share
            shares = [k for *_, k in p.intervals]
            assert shares == sorted(shares, reverse=True) and shares[0] - shares[-1] <= 1
            for a, b, k in p.intervals:
                assert a in evaluated and b in evaluated
                assert not any(a < e < b for e in evaluated)  # adjacent evaluated values
                assert sum(a < v < b for v in p.values) == k
        hist += [Trial(v, rng.choice([None, rng.uniform(-1, 1)]) if rng.random() < 0.2 else rng.uniform(-1, 1), p.stage)
                 for v in p.values]
    assert p.stage <= cfg.stages


def test_too_narrow_gaps_get_fewer_points_then_stop():
    # rel_tol 5 % on a range of ratio 2: gaps soon cannot hold 3 distinct values, then none
    cfg = PlannerConfig(1.0, 2.0, rel_tol=0.05, min_improvement=0, stages=10)
    hist, plans = run(cfg, lambda v: -abs(v - 1.37))
    assert any(0 < len(p.values) < 5 for p in plans)
    assert plans[-1].done and plans[-1].reason.startswith("intervals narrower")
    vals = sorted(t.value for t in hist)
    assert all(b - a > cfg.rel_tol * b for a, b in zip(vals, vals[1:]))


@settings(max_examples=60, deadline=None)
@given(x_opt=st.floats(-4.9, -2.1), wl=st.floats(0.3, 1.0), wr=st.floats(0.3, 1.0), cliff=st.floats(0.3, 1.0))
def test_converges_on_a_noiseless_unimodal_curve(x_opt, wl, wr, cliff):
    f = curve(x_opt, wl, wr, cliff)
    raw = PlannerConfig(min_improvement=0, stages=6, smooth=0)
    hist, _ = run(raw, f)
    assert len(hist) == 30
    assert abs(math.log10(best_value(hist, raw).value) - x_opt) < 0.01
    # the best true score never gets worse from stage to stage
    bests = [max(t.score for t in hist if t.stage <= s and t.score is not None) for s in range(6)]
    assert bests == sorted(bests)
    smooth = PlannerConfig(min_improvement=0)  # default smoothing: small bias, still close
    hist, _ = run(smooth, f)
    assert abs(math.log10(best_value(hist, smooth).value) - x_opt) < 0.08


def test_stops_after_the_stage_budget():
    hist, plans = run(PlannerConfig(min_improvement=0), curve(-3.3))
    assert len(hist) == 25 and plans[-1].done and plans[-1].reason == "reached 5 stages"
    assert [p.stage for p in plans] == [0, 1, 2, 3, 4, 5]


def test_early_stop_relative_names_the_stage_and_threshold():
    cfg = PlannerConfig(smooth=0)
    g = initial_values(cfg)
    hist = [Trial(v, s, 0) for v, s in zip(g, [0.2, 0.5, 0.9, 0.7, None])]
    p1 = plan_stage(hist, cfg)
    hist += [Trial(v, 0.905, 1) for v in p1.values]  # +0.56 %: below 1 %
    p2 = plan_stage(hist, cfg)
    assert p2.done and p2.stage == 2 and p2.values == ()
    assert "stage 2 improved" in p2.reason and "min-improvement" in p2.reason and "0.556%" in p2.reason  # counted from 1
    hist[-1] = Trial(hist[-1].value, 0.95, 1)  # +5.6 %: continue
    assert not plan_stage(hist, cfg).done


def test_early_stop_absolute_and_minimize():
    cfg = PlannerConfig(direction="minimize", min_improvement=0, min_improvement_abs=0.05, smooth=0)
    g = initial_values(cfg)
    hist = [Trial(v, s, 0) for v, s in zip(g, [2.0, 1.5, 1.0, 1.2, float("nan")])]
    p1 = plan_stage(hist, cfg)
    assert p1.intervals[0][:2] == (g[2], g[3])  # lower loss is better
    hist += [Trial(v, 0.97, 1) for v in p1.values]
    p2 = plan_stage(hist, cfg)
    assert p2.done and "absolute" in p2.reason
    hist[-1] = Trial(hist[-1].value, 0.9, 1)
    assert not plan_stage(hist, cfg).done


def test_planning_is_deterministic_and_resumable():
    cfg = PlannerConfig(min_improvement=0)
    hist, plans = run(cfg, curve(-3.1))
    shuffled = hist[:]
    random.Random(0).shuffle(shuffled)
    assert plan_stage(shuffled, cfg) == plans[-1]
    # each stage re-plans identically from the stages before it
    for p in plans[:-1]:
        assert plan_stage([t for t in hist if t.stage < p.stage], cfg) == p


def test_replicate_selection_uses_the_mean_and_penalises_divergence():
    sel = select_with_replicates({1e-3: [0.90, 0.80, 0.85], 2e-3: [0.95, 0.70, 0.72], 3e-3: [0.99, None, 0.98]})
    assert sel.value == 1e-3 and sel.mean == pytest.approx(0.85) and sel.n == 3
    assert sel.spread == pytest.approx(0.05)  # sample std of 0.80, 0.85, 0.90
    lo = select_with_replicates({1e-3: [0.5, 0.7], 2e-3: [0.3, 0.4]}, direction="minimize")
    assert lo.value == 2e-3 and lo.mean == pytest.approx(0.35)
    worst = select_with_replicates({1e-3: [None, 0.9], 2e-3: [None, None]})
    assert worst.value == 1e-3 and worst.diverged == 1
    with pytest.raises(ValueError):
        select_with_replicates({})


def test_top_values_and_best_value_use_smoothed_scores():
    cfg = PlannerConfig(1e-4, 1e-2, smooth=0.05)
    # a lucky run among poor neighbours loses to a consistently good cluster
    hist = [Trial(1e-4, 0.5, 0), Trial(1.0e-3, 0.88, 0), Trial(1.05e-3, 0.89, 0), Trial(1.1e-3, 0.88, 0),
            Trial(5.0e-3, 0.80, 0), Trial(5.2e-3, 0.93, 0), Trial(5.4e-3, 0.80, 0)]
    assert best_trial(hist).value == 5.2e-3
    assert 1e-3 <= best_value(hist, cfg).value <= 1.1e-3
    assert set(top_values(hist, 3, cfg)) == {1.0e-3, 1.05e-3, 1.1e-3}
    assert best_value(hist, PlannerConfig(1e-4, 1e-2, smooth=0)).value == 5.2e-3


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"low": 1e-2, "high": 1e-5}, "--range"),
        ({"low": 0.0, "high": 1.0}, "--range"),
        ({"low": -1.0, "high": 1.0, "log": True}, "--range"),
        ({"points": 0}, "--points"),
        ({"top": 0}, "--top"),
        ({"stages": 0}, "--stages"),
        ({"min_improvement": -0.1}, "--min-improvement"),
        ({"direction": "up"}, "direction"),
    ],
)
def test_bad_config_is_an_input_error(kwargs, key):
    with pytest.raises(InputError) as e:
        PlannerConfig(**kwargs)
    assert e.value.problems[0].key == key


def test_values_outside_the_range_are_ignored_for_planning():
    cfg = PlannerConfig(smooth=0)
    hist = [Trial(v, 0.5, 0) for v in initial_values(cfg)] + [Trial(1.0, 0.99, 0)]
    p = plan_stage(hist, cfg)
    assert not p.done and len(p.values) == 5
    assert all(cfg.low <= v <= cfg.high for v in p.values)
