"""Demo objectives for ``ocrtune sweep --objective``: try the sweep machinery in seconds.

``lr_response`` imitates what a short training run scores as a function of the learning
rate (the curve ``bench/bench_sweep.py`` simulates): a peak in log10(lr) with a wider slow-
learning side, a divergence cliff above the optimum (returns NaN, so the trial is recorded
as diverged) and seed-to-seed noise. Per-epoch values are reported, so ``--prune`` works::

    ocrtune sweep --objective ocrtune.sweep.objectives:lr_response --range 2e-5,1e-2 --stages 3

Write your own the same way: ``def f(params, *, epochs, report)`` returning a float (higher
is better for ``--metric hmean``, lower for ``val_loss``); ``report`` and ``epochs`` are
optional keywords.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

LR = "models.optimizer.lr"


def lr_response(params: Mapping[str, Any], *, epochs: int = 3, report: Callable[..., None] | None = None,
                x_opt: float = -3.3, peak: float = 0.9, noise: float = 0.01) -> float:
    """Noisy H-mean-like score of ``models.optimizer.lr`` (optimum 10**x_opt); NaN past the cliff."""
    lr = float(params.get(LR, 1e-3))
    x = math.log10(lr)
    if x > x_opt + 0.7:
        return math.nan
    width = 0.8 if x < x_opt else 0.45
    final = peak * math.exp(-((x - x_opt) ** 2) / (2 * width**2))
    seed = int(params.get("seed", 0))
    rng = np.random.default_rng([seed, int(round((x + 20) * 1e6))])
    value = final
    for e in range(1, epochs + 1):
        value = final * (1 - 0.5 ** (e + 1)) + float(rng.normal(0, noise))
        if report is not None:
            report(e, value, train_loss=2.0 * 0.7**e * (1 + (1 - final)))
    return value
