"""What ``ocrtune compare`` compares: presets by name or path, and run directories.

A run contributes its resolved ``config.yaml`` (the settings it trained with) plus its outcome
(status, best epoch and scores, wall time) under ``run.*`` keys, so one diff shows both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ocrtune.errors import InputError
from ocrtune.presets.compare import settings
from ocrtune.presets.load import load_preset
from ocrtune.train.rundir import CONFIG, RunDir, find_run, shown_epoch


def is_run_ref(ref: str, runs_dir: Path) -> bool:
    p = Path(ref)
    return (p / CONFIG).is_file() or (runs_dir / ref / CONFIG).is_file()


def run_outcome(run: RunDir) -> dict[str, Any]:
    s = run.read_summary()
    best = s.get("best") or {}
    out: dict[str, Any] = {
        "run.status": s.get("status"),
        "run.epochs": s.get("epochs_completed"),
        "run.best_epoch": shown_epoch(s.get("best_epoch")),
    }
    for k in ("hmean", "precision", "recall", "iou_hmean"):
        out[f"run.best.{k}"] = best.get(k)
    out["run.wall_time_s"] = s.get("wall_time_s")
    return out


def load_comparable(
    ref: str, overrides: Sequence[str] = (), dirs: Sequence[str | Path] = (), runs_dir: Path = Path("runs")
) -> tuple[str, dict[str, Any]]:
    """``(label, flat settings)`` for a preset or a run directory."""
    if is_run_ref(ref, runs_dir):
        run = find_run(ref, runs_dir)
        loaded = load_preset(run.config, overrides, dirs)
        return run.path.name, {**settings(loaded.preset), **run_outcome(run)}
    try:
        loaded = load_preset(ref, overrides, dirs)
    except InputError as e:
        if Path(ref).is_dir():
            raise InputError("neither a preset nor a run directory (no config.yaml)", file=ref) from None
        raise e
    return loaded.name, settings(loaded.preset)
