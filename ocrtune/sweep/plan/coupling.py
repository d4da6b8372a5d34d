"""Settings that follow a swept key (``Coupling``): decided once, before the study exists.

The one rule today: while ``models.optimizer.lr`` is swept and ``models.scheduler.eta_min`` is
not, a cosine schedule's eta_min keeps the preset's eta_min/lr ratio in every trial (baseline:
1e-5 / 4e-4 = 0.025). A fixed eta_min would make every learning rate at or below it invalid
(the default range starts at 1e-5, baseline's eta_min) and would change the schedule's shape
from trial to trial. To keep eta_min fixed instead, put it in the space
(``models.scheduler.eta_min: {value: 1e-6}``): a swept or fixed key is never coupled.
"""

from __future__ import annotations

from typing import Sequence

from ocrtune.presets.schema import Preset
from ocrtune.sweep.types import Coupling

LR = "models.optimizer.lr"
ETA_MIN = "models.scheduler.eta_min"


def couplings_for(preset: Preset, keys: Sequence[str]) -> tuple[Coupling, ...]:
    """The couplings a sweep of ``keys`` on ``preset`` gets (empty when none applies)."""
    sched = preset.models.scheduler
    if LR in keys and ETA_MIN not in keys and sched.name == "cosine" and sched.eta_min > 0:
        return (Coupling(ETA_MIN, LR, sched.eta_min / preset.models.optimizer.lr),)
    return ()
