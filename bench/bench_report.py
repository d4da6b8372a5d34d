"""Time `ocrtune sweep report` on a 300-trial sweep, against `sweep status` (reading the same
study) in the same process.

The study is written directly through the store (plan, claim, per-epoch values, finish), as
a finished two-key random sweep of 300 trials with 10 epochs each, so the bench measures the
report, not training. Figures: seconds for status (the reference), for the whole report, and
for its parts (analysis, figures, files), and the ratio report / status.

    .venv/bin/python bench/bench_report.py [--trials 300] [--epochs 10]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ocrtune.presets.load import load_preset
from ocrtune.sweep.prepare import SweepRequest, prepare
from ocrtune.sweep.store import Store
from ocrtune.sweep.types import Batch, RandomSearch, Status

LR, THRESH = "models.optimizer.lr", "models.head.postprocess.thresh"


def make_sweep(root: Path, trials: int, epochs: int) -> str:
    preset = load_preset("cpu-demo").preset
    space = root / "space.yaml"
    space.write_text(f"{LR}: {{distribution: log_uniform, min: 1.0e-5, max: 1.0e-2}}\n"
                     f"{THRESH}: {{distribution: uniform, min: 0.1, max: 0.6}}\n")
    cfg = prepare(SweepRequest(preset="cpu-demo", strategy="random", space_path=space, trials=trials, epochs=epochs,
                               name="bench", objective="ocrtune.sweep.objectives:lr_response"), preset)
    assert isinstance(cfg.search, RandomSearch)
    rng = np.random.default_rng(0)
    store = Store.open(cfg.name, None, runs_dir=root / "runs", create=True)
    try:
        store.set_config(cfg)
        params = [{LR: float(10 ** rng.uniform(-5, -2)), THRESH: float(rng.uniform(0.1, 0.6))} for _ in range(trials)]
        plan = store.add_plan(Batch(tuple(params), 0, False, f"{trials} random trials"))
        for slot in range(trials):
            store.enqueue(plan, slot)
        for slot in range(trials):
            t = store.claim()
            assert t is not None
            x = math.log10(t.params[LR])
            final = 0.9 * math.exp(-((x + 3.3) ** 2) / 0.8) - 0.3 * (t.params[THRESH] - 0.3) ** 2
            for e in range(1, epochs + 1):
                store.report(t.trial_id, e, final * (1 - 0.5 ** e) + float(rng.normal(0, 0.005)))
            if x > -2.4:
                store.finish(t.trial_id, Status.DIVERGED, None, {"error": "loss is NaN"})
            else:
                store.finish(t.trial_id, Status.COMPLETED, final, {"epochs": epochs, "stability": 0.003,
                                                                    "time_per_epoch_s": 1.0})
        store.set_finished({"reason": "bench", "at": "now"})
    finally:
        store.close()
    return cfg.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    from ocrtune.sweep.api import Place, sweep_status
    from ocrtune.sweep.report import build as build_mod
    from ocrtune.sweep.report import figures as figures_mod
    from ocrtune.sweep.report import write as write_mod

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        name = make_sweep(root, args.trials, args.epochs)
        made = time.perf_counter() - t0
        parts: dict[str, float] = {}

        def timed(label: str, fn):  # type: ignore[no-untyped-def]
            def wrapper(*a, **k):  # type: ignore[no-untyped-def]
                s = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    parts[label] = parts.get(label, 0.0) + time.perf_counter() - s
            return wrapper

        build_mod.build_report = timed("analysis", build_mod.build_report)  # type: ignore[assignment]
        figures_mod.draw_figures = timed("figures", figures_mod.draw_figures)  # type: ignore[assignment]
        build_mod.write_files = timed("files (md, html, json, methods)", write_mod.write_files)  # type: ignore[assignment]
        place = Place(None, root / "runs")
        s = time.perf_counter()
        summary = sweep_status(name, place)
        ref = time.perf_counter() - s
        s = time.perf_counter()
        report, folder = build_mod.make_report(build_mod.ReportRequest(name, None, None, None, root / "runs"))
        took = time.perf_counter() - s
        print(f"{args.trials} trials x {args.epochs} epochs (study written in {made:.1f} s), python {sys.version.split()[0]}")
        print(f"{'step':<34} {'s':>7} {'x status':>9}")
        print(f"{'sweep status (reference)':<34} {ref:7.2f} {1.0:9.2f}")
        for label, v in parts.items():
            print(f"{'  ' + label:<34} {v:7.2f} {v / ref:9.2f}")
        print(f"{'sweep report (all)':<34} {took:7.2f} {took / ref:9.2f}")
        print(f"{len(summary.trials)} trials, {len(report.ranking)} ranked, {len(report.figures)} figures, "
              f"report.html {(folder / 'report.html').stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
