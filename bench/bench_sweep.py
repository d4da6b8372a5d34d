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
     .venv/bin/python bench/bench_sweep.py --write-reference   (the report's reference file)

``--write-reference`` measures hierarchical search (every stage, no early stop), the log grid,
random search and TPE at 5, 10, 15, 20 and 25 evaluations, at noise 0.01 (``--noise`` picks
another), and writes their median and p90 distance and within-0.1-decade share to
ocrtune/sweep/report/sweep_benchmark.json (or the path given), the package data the sweep
report's efficiency figure reads (``ocrtune.sweep.report.benchmark``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ocrtune.sweep.plan.planner import PlannerConfig
from ocrtune.sweep.report.benchmark import REFERENCE_FILE, RefPoint, RefStrategy, SweepBenchmark
from ocrtune.sweep.plan.space import Space, param_dim
from ocrtune.sweep.plan.strategies import Grid, Hierarchical, Random, Strategy
from ocrtune.sweep.types import Result

KEY = "models.optimizer.lr"
LOW, HIGH = 1e-5, 1e-2
X_OPT = (-4.5, -2.5)
REFERENCE = Path(__file__).resolve().parents[1] / "ocrtune" / "sweep" / "report" / REFERENCE_FILE
REFERENCE_COUNTS = (5, 10, 15, 20, 25)
REFERENCE_REPEATS = 300  # 3x the tables' curves (the first 100 are theirs): steadier medians and shares


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
        x_opt=float(rng.uniform(*X_OPT)),
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
    ap.add_argument("--repeats", type=int, default=None, help="curves (default 100; 300 with --write-reference)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    ap.add_argument("--no-tpe", action="store_true")
    ap.add_argument("--width-scale", type=float, default=1.0, help="scale the peak widths (robustness check)")
    ap.add_argument("--write-reference", nargs="?", const=REFERENCE, type=Path, default=None, metavar="PATH",
                    help=f"measure the report's reference (noise 0.01 unless --noise) and write it (default {REFERENCE})")
    args = ap.parse_args()
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        args.no_tpe = True
    if args.write_reference is not None:
        if args.no_tpe or args.width_scale != 1.0:
            ap.error("--write-reference needs optuna (TPE) and the default peak widths")
        noise = args.noise[0] if args.noise != ap.get_default("noise") else 0.01
        write_reference(args.write_reference, args.repeats or REFERENCE_REPEATS, noise)
        return
    args.repeats = args.repeats or 100
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


def measure_reference(repeats: int, noise: float) -> SweepBenchmark:
    """Every strategy at every count of REFERENCE_COUNTS on the same ``repeats`` curves (the
    tables' curves): hierarchical with as many stages as the count allows (5 points each, no
    early stop), a log grid of that many points, the first N of a seeded random run and of a
    seeded TPE run."""
    import optuna

    space = Space((param_dim(KEY, LOW, HIGH),))
    most = max(REFERENCE_COUNTS)
    dist: dict[tuple[str, int], list[float]] = {}
    for rep in range(repeats):
        curve = draw_curve(np.random.default_rng([7, rep]))

        def record(name: str, n: int, lr: float) -> None:
            dist.setdefault((name, n), []).append(abs(math.log10(lr) - curve.x_opt))

        for n in REFERENCE_COUNTS:
            assert n % 5 == 0
            lr, used = run_strategy(hier(n // 5)(rep), noisy(curve, noise, np.random.default_rng([50, rep, n, 0])))
            assert used == n, (n, used)  # every stage adds 5 values: no early stop, no short stage
            record("hierarchical", n, lr)
            lr, _ = run_strategy(Grid(space, points=n), noisy(curve, noise, np.random.default_rng([50, rep, n, 1])))
            record("log grid", n, lr)
        ev_random = [(lr, s) for lr, s in _evaluations(Random(space, most, seed=rep),
                                                       noisy(curve, noise, np.random.default_rng([50, rep, 2])))]
        ev_tpe = run_tpe(noisy(curve, noise, np.random.default_rng([50, rep, 3])), most, rep)
        for n in REFERENCE_COUNTS:
            record("random", n, pick(ev_random, n))
            record("TPE", n, pick(ev_tpe, n))
    how = {
        "hierarchical": "ocrtune's Hierarchical strategy, N/5 stages of 5 values (no early stop), smoothed pick",
        "log grid": "Grid of N log-spaced values over the range, best observed score",
        "random": "the first N of a seeded log-uniform Random run, best observed score",
        "TPE": "the first N of a seeded Optuna TPESampler run (10 random start-up trials; diverged = 0.0), "
               "best observed score",
    }
    strategies = tuple(
        RefStrategy(name, text, tuple(
            RefPoint(n, round(float(np.median(d)), 4), round(float(np.percentile(d, 90)), 4),
                     round(float(np.mean(np.array(d) <= 0.1)), 4))
            for n in REFERENCE_COUNTS for d in [dist[(name, n)]]))
        for name, text in how.items())
    cmd = ".venv/bin/python bench/bench_sweep.py --write-reference" + (f" --noise {noise:g}" if noise != 0.01 else "") \
        + (f" --repeats {repeats}" if repeats != REFERENCE_REPEATS else "")
    return SweepBenchmark(noise, LOW, HIGH, X_OPT, repeats, optuna.__version__, datetime.date.today().isoformat(),
                          cmd, strategies)


def _evaluations(s: Strategy, f: Callable[[float], float | None]) -> list[tuple[float, float]]:
    """Every (lr, score) a fixed strategy runs, in order; a diverged run scores -inf."""
    out: list[tuple[float, float]] = []
    hist: list[Result] = []
    while not (b := s.next_batch(hist)).done:
        for p in b.params:
            v = f(p[KEY])
            hist.append(Result(p, v, b.index, b.kind))
            out.append((float(p[KEY]), -math.inf if v is None else v))
    return out


def write_reference(path: Path, repeats: int, noise: float) -> None:
    from ocrtune.train.rundir import write_text_atomic

    t0 = time.perf_counter()
    ref = measure_reference(repeats, noise)
    write_text_atomic(path, json.dumps(ref.to_json(), indent=1) + "\n")
    print(f"sweep benchmark reference: {repeats} curves, noise sd {noise:g}, range {LOW:g}..{HIGH:g}, "
          f"optuna {ref.optuna} ({time.perf_counter() - t0:.1f} s) -> {path}")
    head = "| strategy     | evals | dist median | dist p90 | within 0.1 |"
    print(head + "\n|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for s in ref.strategies:
        for q in s.points:
            print(f"| {s.name:<12} | {q.evaluations:5d} | {q.median:11.3f} | {q.p90:8.3f} | {100 * q.within_0_1:9.0f}% |")


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
