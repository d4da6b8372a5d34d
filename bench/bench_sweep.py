"""Bench: how well each sweep strategy finds the best learning rate on simulated noisy curves.

Each repeat draws one learning-rate response, shaped like short DBNet runs behave:
score(x = log10 lr) = peak * exp(-(x - x_opt)^2 / (2 w^2)) with a wider left side (too low a
rate trains slowly) than right side, and a divergence cliff: above x_opt + c the run diverges
(score None; TPE is told 0.0, the H-mean of a diverged model, so it can learn the cliff).
Every evaluation adds Gaussian noise of sd ``--noise`` (seed-to-seed spread of short runs).
x_opt ~ U[-4.5, -2.5] lies inside the default range 1e-5..1e-2.

Metrics per strategy over the repeats: distance of the chosen lr from the true optimum in
decades |log10(chosen) - x_opt| (mean, median, p90), the share within 0.1 decade, and regret =
true score at the optimum - true score at the chosen lr, in H-mean points (x100).
The pick is the best observed score, except with replicates (best mean over seeds).

Run: .venv/bin/python bench/bench_sweep.py            (100 repeats, noise 0.005, 0.01, 0.02)
     .venv/bin/python bench/bench_sweep.py --repeats 20 --noise 0.01   (quick look)
     .venv/bin/python bench/bench_sweep.py --noise 0.01 --width-scale 0.5 (narrower peaks)
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ocrtune.sweep.plan.planner import PlannerConfig
from ocrtune.sweep.plan.space import Space, param_dim
from ocrtune.sweep.plan.strategies import Grid, Hierarchical, Random, Strategy
from ocrtune.sweep.types import Result

KEY = "models.optimizer.lr"
LOW, HIGH = 1e-5, 1e-2


@dataclass(frozen=True)
class Curve:
    x_opt: float
    peak: float
    w_left: float
    w_right: float
    cliff: float  # divergence above x_opt + cliff (decades)

    def true(self, lr: float) -> float | None:
        x = math.log10(lr)
        if x > self.x_opt + self.cliff:
            return None
        w = self.w_left if x < self.x_opt else self.w_right
        return self.peak * math.exp(-((x - self.x_opt) ** 2) / (2 * w * w))

    def regret(self, lr: float) -> float:
        t = self.true(lr)
        return 100 * (self.peak - (t if t is not None else 0.0))


def draw_curve(rng: np.random.Generator, width_scale: float = 1.0) -> Curve:
    return Curve(
        x_opt=float(rng.uniform(-4.5, -2.5)),
        peak=float(rng.uniform(0.85, 0.95)),
        w_left=width_scale * float(rng.uniform(0.6, 1.0)),
        w_right=width_scale * float(rng.uniform(0.3, 0.6)),
        cliff=float(rng.uniform(0.4, 1.0)),
    )


def noisy(curve: Curve, noise: float, rng: np.random.Generator) -> Callable[[float], float | None]:
    def f(lr: float) -> float | None:
        t = curve.true(lr)
        return None if t is None else t + float(rng.normal(0.0, noise))

    return f


def run_strategy(s: Strategy, f: Callable[[float], float | None], budget: int | None = None) -> tuple[float, int]:
    """Drive a strategy to the end (or ``budget`` evaluations); return (chosen lr, evaluations)."""
    hist: list[Result] = []
    while True:
        b = s.next_batch(hist)
        if b.done:
            break
        params = b.params if budget is None else b.params[: budget - len(hist)]
        hist += [Result(p, f(p[KEY]), b.index, b.kind) for p in params]
        if budget is not None and len(hist) >= budget:
            break
    choice = s.best(hist)
    assert choice is not None
    return float(choice.params[KEY]), len(hist)


def run_tpe(f: Callable[[float], float | None], budget: int, seed: int) -> list[tuple[float, float]]:
    """Optuna TPE (defaults: 10 random start-up trials), one trial at a time: (lr, score) list."""
    import optuna

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    dist = {KEY: optuna.distributions.FloatDistribution(LOW, HIGH, log=True)}
    out = []
    for _ in range(budget):
        t = study.ask(dist)
        lr = float(t.params[KEY])
        s = f(lr)
        study.tell(t, 0.0 if s is None else s)
        out.append((lr, -math.inf if s is None else s))
    return out


def pick(evals: list[tuple[float, float]], n: int) -> float:
    return max(evals[:n], key=lambda e: e[1])[0]


def hier(stages: int, min_imp: float = 0.0, reps: int = 0, top: int = 3, smooth: float = 1 / 60) -> Callable[[int], Strategy]:
    cfg = PlannerConfig(LOW, HIGH, stages=stages, min_improvement=min_imp, smooth=smooth)
    return lambda seed: Hierarchical(KEY, cfg, replicates=reps, replicate_top=top)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    ap.add_argument("--no-tpe", action="store_true")
    ap.add_argument("--width-scale", type=float, default=1.0, help="scale the peak widths (robustness check)")
    args = ap.parse_args()
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        args.no_tpe = True
    space = Space((param_dim(KEY, LOW, HIGH),))
    grid = {b: Grid(space, points=b) for b in (10, 15, 25)}
    ours: dict[str, tuple[Callable[[int], Strategy], int | None]] = {
        "hierarchical (default, early stop 1%)": (hier(5, 0.01), None),
        "hierarchical, early stop 0.1%": (hier(5, 0.001), None),
        "hierarchical 5 stages (no early stop)": (hier(5), None),
        "hierarchical 5 stages, raw scores (smooth=0)": (hier(5, smooth=0.0), None),
        "hierarchical 4 stages + top-5 x1 replicate": (hier(4, reps=1, top=5), None),
        "hierarchical 3 stages + top-2 x5 replicates": (hier(3, reps=5, top=2), None),
        "log grid 25": (lambda seed: grid[25], None),
        "random 25 (log-uniform)": (lambda seed: Random(space, 25, seed=seed), None),
    }
    budgets = {
        10: {"hierarchical 2 stages": hier(2), "log grid 10": lambda s: grid[10], "random 10": lambda s: Random(space, 25, seed=s)},
        15: {"hierarchical 3 stages": hier(3), "log grid 15": lambda s: grid[15], "random 15": lambda s: Random(space, 25, seed=s)},
    }
    print(f"sweep bench: {args.repeats} repeats per strategy, range {LOW:g}..{HIGH:g}, x_opt ~ U[-4.5, -2.5], "
          f"peak widths x{args.width_scale:g}")
    t_start = time.perf_counter()
    for ni, noise in enumerate(args.noise):
        rows: dict[str, list[tuple[float, float, int]]] = {}
        times: dict[str, float] = {}

        def record(name: str, curve: Curve, lr: float, n: int, dt: float) -> None:
            rows.setdefault(name, []).append((abs(math.log10(lr) - curve.x_opt), curve.regret(lr), n))
            times[name] = times.get(name, 0.0) + dt

        for rep in range(args.repeats):
            curve = draw_curve(np.random.default_rng([7, rep]), args.width_scale)
            for si, (name, (make, budget)) in enumerate(ours.items()):
                t0 = time.perf_counter()
                lr, n = run_strategy(make(rep), noisy(curve, noise, np.random.default_rng([ni, rep, si])), budget)
                record(name, curve, lr, n, time.perf_counter() - t0)
            for b, strategies in budgets.items():
                for sj, (name, make) in enumerate(strategies.items()):
                    t0 = time.perf_counter()
                    lr, n = run_strategy(make(rep), noisy(curve, noise, np.random.default_rng([ni, rep, 100 + b, sj])), b)
                    record(name, curve, lr, n, time.perf_counter() - t0)
            if not args.no_tpe:
                t0 = time.perf_counter()
                ev = run_tpe(noisy(curve, noise, np.random.default_rng([ni, rep, 999])), 25, rep)
                dt = time.perf_counter() - t0
                for b in (10, 15, 25):
                    record(f"TPE {b}" if b != 25 else "TPE 25 (optuna, seeded)", curve, pick(ev, b), b, dt if b == 25 else 0.0)
        print(f"\nnoise sd {noise:g} (H-mean units)")
        print(table(rows, times))
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")


def table(rows: dict[str, list[tuple[float, float, int]]], times: dict[str, float]) -> str:
    head = f"| {'strategy':<45} | evals | dist mean | dist median | dist p90 | within 0.1 | regret mean | regret p90 | time s |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    order = sorted(rows, key=lambda k: (_budget(rows[k]), k))
    for name in order:
        a = np.array(rows[name])
        d, r, n = a[:, 0], a[:, 1], a[:, 2]
        lines.append(
            f"| {name:<45} | {n.mean():5.1f} | {d.mean():9.3f} | {np.median(d):11.3f} | {np.percentile(d, 90):8.3f} "
            f"| {100 * (d <= 0.1).mean():9.0f}% | {r.mean():11.2f} | {np.percentile(r, 90):10.2f} | {times.get(name, 0):6.1f} |"
        )
    return "\n".join(lines)


def _budget(r: list[tuple[float, float, int]]) -> float:
    return round(float(np.mean([x[2] for x in r])))


if __name__ == "__main__":
    main()
