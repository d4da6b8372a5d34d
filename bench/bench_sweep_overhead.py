"""Bench: what a training sweep spends besides training, with warm trials (the default: each
trial forked from a zygote that imported torch and read the data once) and cold ones
(``--cold-trials``: a new Python process per trial), in the same process.

Each mode runs the same sweep: a grid of ``--trials`` learning rates over the cpu-demo preset,
``--epochs`` epochs a trial, one slot, on small synthetic receipts (``--images`` at ``--size``
px, trained at ``--train-size`` px). Reference: the trials' own training time, each run's
``summary.json`` ``wall_time_s`` (``fit`` from the Trainer's creation to its last epoch's
files). Printed per mode: the sweep's wall time (``run_sweep`` from its call to its return:
checks, study, zygote start, every trial and its records; the coordinator's own imports are
done before either mode is timed, as a sweep command pays them once in either mode), the
training time summed, their ratio (goal <= 1.10 warm), the time until the first trial
started, and the mean overhead per trial. The per-trial breakdown of a cold trial process (``--breakdown``) times Python's start,
the imports and the steps ``fit`` takes before training, in a fresh process.

Run: .venv/bin/python bench/bench_sweep_overhead.py                 (10 trials, 2 epochs, both modes)
     .venv/bin/python bench/bench_sweep_overhead.py --trials 4 --modes warm
     .venv/bin/python bench/bench_sweep_overhead.py --breakdown      (where a cold trial's time goes)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

LR = "models.optimizer.lr"


def one_sweep(mode: str, data: Path, root: Path, trials: int, epochs: int, train_size: int) -> dict[str, float]:
    from ocrtune.sweep.api import Hooks, Place, run_sweep
    from ocrtune.sweep.prepare import SweepRequest

    name = f"overhead-{mode}-{uuid.uuid4().hex[:6]}"
    request = SweepRequest(preset="cpu-demo", strategy="grid", range_text="3e-4,3e-3", points=trials, epochs=epochs,
                           data=str(data), name=name)
    first: list[float] = []
    hooks = Hooks(event=lambda kind, d: first.append(time.perf_counter()) if kind == "start" and not first else None)
    start = time.perf_counter()
    outcome = run_sweep(request, Place(None, root), sets=[f"datasets.image_size={train_size}"], parallel=1,
                        hooks=hooks, report=False, warm=mode == "warm")
    wall = time.perf_counter() - start
    rows = outcome.summary.trials
    assert len(rows) == trials and all(r.run_dir for r in rows), [(r.status, r.error) for r in rows]
    train = [float(json.loads((Path(r.run_dir) / "summary.json").read_text())["wall_time_s"]) for r in rows]
    # the trial process's own time (result.json, from trial.main's start): runs/<run> -> the trial folder
    process = [float(json.loads((Path(r.run_dir).parent.parent / "result.json").read_text())["wall_time_s"])
               for r in rows]
    return {"wall": wall, "train": sum(train), "first": first[0] - start if first else float("nan"),
            "per_trial": (wall - sum(train)) / trials, "median_train": statistics.median(train),
            "in_trial": (sum(process) - sum(train)) / trials}


def breakdown(data: Path, epochs: int, train_size: int) -> None:
    """A cold trial's phases, timed inside a fresh process (``--phase-child``)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    print(f"  python start (bare interpreter): {time.perf_counter() - start:6.2f} s")
    out = subprocess.run([sys.executable, __file__, "--phase-child", str(data), "--epochs", str(epochs),
                          "--train-size", str(train_size)], check=True, capture_output=True, text=True).stdout
    print(out.rstrip())


def phase_child(data: Path, epochs: int, train_size: int) -> None:
    """In a fresh process: imports, then one trial's ``fit`` with its steps timed."""
    t0 = time.perf_counter()
    import torch  # noqa: F401

    t1 = time.perf_counter()
    import lightning  # noqa: F401

    t2 = time.perf_counter()
    import ocrtune.train.fit as fit_module
    import ocrtune.train.module as module
    from ocrtune.sweep.run import trial

    t3 = time.perf_counter()
    times: dict[str, float] = {}

    def timed(owner, attr, label):
        orig = getattr(owner, attr)

        def wrapper(*a, **kw):
            s = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - s

        setattr(owner, attr, wrapper)

    timed(fit_module, "load_data", "data checks (annotations, image headers)")
    timed(fit_module, "_check_memory", "memory estimate (shape-only model pass)")
    timed(module, "DBNetModule", "model build")
    timed(fit_module, "_check_trainer", "trainer settings check")
    import lightning as L

    timed(L.Trainer, "fit", "Trainer.fit (training)")
    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.types import TrialSpec

    base = load_preset("cpu-demo", [f"datasets.image_size={train_size}"]).preset.model_dump(mode="json")
    with tempfile.TemporaryDirectory() as tmp:
        spec = TrialSpec(name="t", params={LR: 1e-3}, epochs=epochs, metric="hmean", base=base, preset="cpu-demo",
                         data=str(data))
        (Path(tmp) / "spec.json").write_text(json.dumps(spec.to_json()))
        s = time.perf_counter()
        trial.main([str(Path(tmp) / "spec.json")])
        main_s = time.perf_counter() - s
        run = next((Path(tmp) / "runs").iterdir())
        fit_wall = json.loads((run / "summary.json").read_text())["wall_time_s"]
    print(f"  import torch: {t1 - t0:6.2f} s, lightning: {t2 - t1:6.2f} s, ocrtune's training modules: {t3 - t2:6.2f} s")
    for label, v in times.items():
        print(f"  {label}: {v:6.2f} s")
    print(f"  trial.main in all: {main_s:6.2f} s, of which fit's wall_time_s (the reference): {fit_wall:6.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--size", type=int, default=256, help="synthetic receipt size (px)")
    ap.add_argument("--train-size", type=int, default=128, help="datasets.image_size the trials train at")
    ap.add_argument("--modes", default="cold,warm")
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--phase-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase_child:
        phase_child(args.phase_child, args.epochs, args.train_size)
        return
    os.environ.setdefault("OCRTUNE_SWEEP_POLL_S", "0.5")
    from ocrtune.data.synthetic import synthesize
    import ocrtune.sweep.api  # noqa: F401  the coordinator's own imports, paid once by any sweep
    import ocrtune.train.datamodule  # noqa: F401  (its data check imports Lightning), not by either mode

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        data = Path(tmp) / "data"
        synthesize(data, n=args.images, seed=0, size=args.size)
        print(f"cpu-demo at {args.train_size} px, {args.epochs} epoch(s) a trial, {args.trials} trials, one slot; "
              f"{args.images} synthetic receipts of {args.size} px; {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f} at the start")
        if args.breakdown:
            print("where a cold trial's time goes (fresh process):")
            breakdown(data, args.epochs, args.train_size)
        results = {}
        for mode in args.modes.split(","):
            results[mode] = r = one_sweep(mode, data, Path(tmp) / "runs", args.trials, args.epochs, args.train_size)
            print(f"{mode:>4}: sweep {r['wall']:7.1f} s / training {r['train']:7.1f} s = {r['wall'] / r['train']:.3f}x"
                  f"   first trial after {r['first']:5.1f} s, {r['per_trial']:5.2f} s overhead a trial "
                  f"({r['in_trial']:.2f} s of it in the trial process before and after training; "
                  f"median training {r['median_train']:.1f} s)", flush=True)
        if {"cold", "warm"} <= set(results):
            c, w = results["cold"], results["warm"]
            print(f"warm vs cold: sweep wall {w['wall'] / c['wall']:.3f}x; overhead a trial "
                  f"{c['per_trial']:.2f} s -> {w['per_trial']:.2f} s (goal: warm ratio <= 1.10)")
        print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
