"""Per-trial figures derived from the epoch rows a trial left behind (no torch, no Optuna).

A training trial leaves ``metrics.csv`` in its run directory; an ``--objective`` trial leaves
``progress.jsonl`` with rows in the same column names. Both are read while the trial runs (the
worker reports each new epoch for pruning and the live view) and once it has ended, so the
analysis gets the same figures whatever produced them:

- ``score``: the best epoch's metric (highest H-mean, lowest val loss), the number the sweep
  ranks by (the store keeps it for completed and pruned trials only). ``best.ckpt`` is chosen
  by H-mean, so with val_loss it may be another epoch.
- ``loss_reduction_rate``: the train loss's mean relative drop per epoch,
  ``1 - (last / first) ** (1 / (epochs - 1))``; 0.2 means it fell 20 % an epoch. A geometric
  mean, because losses fall multiplicatively; None with fewer than two epochs.
- ``stability``: sample standard deviation of the metric over the last ``LAST_EPOCHS`` epochs
  (a run still swinging at the end has an unreliable score); ``loss_spread`` is the same for
  the train loss, relative to its mean.
- ``time_per_epoch_s`` (mean) and ``peak_mem_mb`` (max) from the recorder's columns.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from ocrtune.sweep.types import COLUMN, DIRECTION, finite
from ocrtune.train.rundir import CONFIG, METRICS, RunDir

LAST_EPOCHS = 3
LOG_TAIL = 20  # lines of a failed trial's or fold's log kept in its error
PROGRESS = "progress.jsonl"


def log_tail(path: Path, n: int = LOG_TAIL) -> str:
    """The last ``n`` lines of a child's log ("" when it wrote none)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def score_of(rows: Sequence[dict[str, Any]], metric: str) -> float | None:
    """The best epoch's value of ``metric`` (None when no epoch has a finite one)."""
    vals = [v for v in (finite(r.get(COLUMN[metric])) for r in rows) if v is not None]
    if not vals:
        return None
    return max(vals) if DIRECTION[metric] == "maximize" else min(vals)


def loss_reduction_rate(losses: Sequence[Any]) -> float | None:
    """Mean relative drop per epoch of a positive loss series (None if undefined)."""
    vals = [finite(v) for v in losses]
    if len(vals) < 2 or any(v is None or v <= 0 for v in vals):
        return None
    first, last = vals[0], vals[-1]
    return 1.0 - (last / first) ** (1.0 / (len(vals) - 1))  # type: ignore[operator]


def spread(values: Sequence[Any], last: int = LAST_EPOCHS) -> float | None:
    """Sample std of the last ``last`` finite values (None with fewer than two)."""
    vals = [v for v in (finite(x) for x in values) if v is not None][-last:]
    return statistics.stdev(vals) if len(vals) >= 2 else None


def trial_records(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Everything the analysis wants about one trial, from its epoch rows."""
    col = COLUMN[metric]
    losses = [r.get("train_loss") for r in rows if finite(r.get("train_loss")) is not None]
    loss_sd = spread(losses)
    tail = [finite(x) for x in losses[-LAST_EPOCHS:]]
    loss_mean = statistics.fmean(tail) if tail and None not in tail else None  # type: ignore[arg-type]
    times = [v for v in (finite(r.get("epoch_time_s")) for r in rows) if v is not None]
    mems = [v for v in (finite(r.get("peak_mem_mb")) for r in rows) if v is not None]
    last = finite(rows[-1].get(col)) if rows else None
    return {
        "epochs": len(rows),
        "score": score_of(rows, metric),
        "last_score": last,
        "loss_first": finite(losses[0]) if losses else None,
        "loss_last": finite(losses[-1]) if losses else None,
        "loss_reduction_rate": loss_reduction_rate(losses),
        "stability": spread([r.get(col) for r in rows]),
        "loss_spread": loss_sd / loss_mean if loss_sd is not None and loss_mean else None,
        "time_per_epoch_s": statistics.fmean(times) if times else None,
        "peak_mem_mb": max(mems) if mems else None,
    }


def find_run_dir(trial_dir: Path) -> Path | None:
    """The run directory ``fit`` created under ``<trial_dir>/runs`` (one per trial)."""
    runs = trial_dir / "runs"
    if not runs.is_dir():
        return None
    found = sorted(p for p in runs.iterdir() if p.is_dir() and (p / CONFIG).is_file())
    return found[-1] if found else None


def read_rows(trial_dir: Path) -> list[dict[str, Any]]:
    """Epoch rows so far: the run's ``metrics.csv``, else the objective's ``progress.jsonl``.

    Both are safe to read while the trial writes them (metrics.csv is replaced atomically;
    a progress line is appended whole and a torn last line is skipped).
    """
    run = find_run_dir(trial_dir)
    if run is not None and (run / METRICS).is_file():
        try:
            return RunDir(run).read_metrics()
        except (OSError, ValueError):
            return []
    path = trial_dir / PROGRESS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def progress(rows: Sequence[dict[str, Any]], metric: str) -> list[tuple[int, float | None]]:
    """(epochs completed, metric value) per row, in order: the pruning steps."""
    return [(int(r.get("epoch", i)) + 1, finite(r.get(COLUMN[metric]))) for i, r in enumerate(rows)]
