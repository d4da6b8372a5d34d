"""Whether a sweep's trials anneal: the preset's cosine is sized for a full training, so trials
of a few epochs usually stop at a high rate and the sweep ranks un-annealed weights (an lr
sweep then favours low rates). Said once when the sweep starts, with the ``--set`` that fits
the cosine to the trial's epochs; the sweep runs as asked either way. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocrtune.presets.schema import SchedulerConfig
from ocrtune.train.schedule import schedule_note

if TYPE_CHECKING:
    from ocrtune.sweep.types import SweepConfig

LR = "models.optimizer.lr"
#: Steps an epoch are known only once a trial reads its data; with many, the curve's end is the
#: cosine's own (step stepping moves every step), which is what the note reports.
NOMINAL_STEPS = 10_000


def trial_schedule_note(cfg: SweepConfig) -> str | None:
    """One line when a completed trial's last step trains well above ``eta_min``, else None
    (also when the space sweeps the schedule itself, or the sweep trains no model)."""
    if cfg.objective is not None or not cfg.base:
        return None
    if any(k.startswith("models.scheduler.") for k in cfg.keys):
        return None  # the space decides the schedule: each trial's differs
    models = cfg.base.get("models", {})
    sched = SchedulerConfig.model_validate(models.get("scheduler", {}))
    lr = float(models.get("optimizer", {}).get("lr", 1e-3))
    swept = LR in cfg.keys
    return schedule_note(sched, lr, cfg.epochs, NOMINAL_STEPS, subject="each trial",
                         lr_name="its lr" if swept else None, lead=f"trials train {cfg.epochs} epoch(s); ",
                         consequence=", so the sweep ranks weights taken at a high rate")
