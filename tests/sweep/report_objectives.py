"""Objectives whose shape the report tests know (``--objective tests.sweep.report_objectives:NAME``).

Imported in each trial's own process from the repository root, so they import nothing from the
test modules.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

LR = "models.optimizer.lr"
SPIKE_LOG10_LR = -3.5  # a lone high score: both grid neighbours score far lower
PLATEAU_LOG10_LR = (-2.8, -2.2)  # a broad plateau scoring slightly lower than the spike
SPIKE, PLATEAU, ELSEWHERE = 0.90, 0.88, 0.60


def spike_and_plateau(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """SPIKE at lr = 10**-3.5 only (within 0.05 decade), PLATEAU over lr in 10**(-2.8..-2.2),
    ELSEWHERE everywhere else; the same value every epoch (steady: stability 0)."""
    x = math.log10(float(params[LR]))
    if abs(x - SPIKE_LOG10_LR) < 0.05:
        value = SPIKE
    elif PLATEAU_LOG10_LR[0] < x < PLATEAU_LOG10_LR[1]:
        value = PLATEAU
    else:
        value = ELSEWHERE
    for e in range(1, epochs + 1):
        report(e, value)
    return value
