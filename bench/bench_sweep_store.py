"""Bench: what the sweep machinery adds per trial, on each storage.

Reference: the bare trial processes, i.e. ``python -m ocrtune.sweep.run.trial spec.json`` run one
after another with an instant objective (the demo LR curve, 1 epoch). Then the same number of
trials through a full sweep (a grid over the LR, ``--parallel 1``): coordinator, claims,
heartbeats, result telling and records, on SQLite, a journal file and, when
``OCRTUNE_TEST_POSTGRES`` is set, PostgreSQL. Printed: seconds per trial and the ratio to the
reference. A real training trial takes minutes, so overhead matters only for ``--objective``
sweeps and the tests.

Run: .venv/bin/python bench/bench_sweep_store.py [--trials 20] [--poll 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ocrtune.presets.load import load_preset
from ocrtune.sweep.run.coordinator import Coordinator
from ocrtune.sweep.run.launcher import make_slots, trial_command
from ocrtune.sweep.prepare import SweepRequest, prepare
from ocrtune.sweep.store import Store
from ocrtune.sweep.run.worker import WorkerSettings

OBJECTIVE = "ocrtune.sweep.objectives:lr_response"


def bare(n: int, root: Path) -> float:
    start = time.perf_counter()
    for i in range(n):
        d = root / f"bare{i}"
        d.mkdir(parents=True)
        spec = {"objective": OBJECTIVE, "params": {"models.optimizer.lr": 1e-4 * (1 + i)}, "epochs": 1,
                "metric": "hmean", "base": {}, "name": f"b{i}"}
        (d / "spec.json").write_text(json.dumps(spec))
        subprocess.run(trial_command(d / "spec.json"), check=True, capture_output=True)
    return (time.perf_counter() - start) / n


def swept(n: int, root: Path, storage: str | None, poll: float) -> float:
    preset = load_preset("cpu-demo", ["models.scheduler.eta_min=0"]).preset
    name = f"bench-{uuid.uuid4().hex[:6]}"
    cfg = prepare(SweepRequest(preset="cpu-demo", strategy="grid", range_text="1e-5,1e-3", points=n, epochs=1,
                               name=name, objective=OBJECTIVE), preset)
    store = Store.open(cfg.name, storage, runs_dir=root, create=True, direction="maximize")
    settings = WorkerSettings(sweep_dir=root / "sweeps" / name, poll_s=poll)
    start = time.perf_counter()
    summary = Coordinator(store, cfg, make_slots(None, 1), settings).run()
    took = (time.perf_counter() - start) / n
    assert len(summary.trials) == n, summary.counts
    if storage and storage.startswith("postgres"):
        store.drop()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--poll", type=float, default=0.05)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ref = bare(args.trials, root)
        print(f"{args.trials} trials, poll {args.poll}s, {os.cpu_count()} cores, python {sys.version.split()[0]}")
        print(f"{'storage':<12} {'s/trial':>8} {'x bare':>7}")
        print(f"{'bare':<12} {ref:8.3f} {1.0:7.2f}")
        rows = [("sqlite", None), ("journal", f"journal:{root}/j.log")]
        if os.environ.get("OCRTUNE_TEST_POSTGRES"):
            rows.append(("postgresql", os.environ["OCRTUNE_TEST_POSTGRES"]))
        for label, storage in rows:
            t = swept(args.trials, root / label, storage, args.poll)
            print(f"{label:<12} {t:8.3f} {t / ref:7.2f}")


if __name__ == "__main__":
    main()
