"""Objectives with known optima for sweep tests (``--objective tests.sweep.curves:NAME``).

They are imported in each trial's own process, from the directory the sweep runs in (the
repository root in these tests), so they import nothing from the test modules.
"""

from __future__ import annotations

import errno
import math
import os
from typing import Any, Callable, Mapping

LR = "models.optimizer.lr"
ETA_MIN = "models.scheduler.eta_min"
THRESH = "models.head.postprocess.thresh"
OPT_LOG10_LR = -3.3


def peak(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """Noiseless single peak at lr = 10**-3.3, rising per epoch. Returns NaN (diverged) when a
    coupled eta_min arrived that is not below lr (a schedule training would refuse)."""
    lr = float(params[LR])
    if ETA_MIN in params and not float(params[ETA_MIN]) < lr:
        return math.nan
    x = math.log10(lr)
    final = 0.9 * math.exp(-((x - OPT_LOG10_LR) ** 2) / (2 * 0.6**2))
    value = final
    for e in range(1, epochs + 1):
        value = final * (1 - 0.5 ** (e + 1))
        report(e, value, train_loss=2.0 * 0.7**e)
    return value


def two_keys(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """Best at lr = 1e-3 and thresh = 0.3; lr matters more than thresh."""
    x = math.log10(float(params[LR]))
    t = float(params[THRESH])
    value = 0.0
    for e in range(1, epochs + 1):
        value = (0.9 - 0.2 * (x + 3) ** 2 - 0.5 * (t - 0.3) ** 2) * (1 - 0.5 ** (e + 1))
        report(e, value)
    return value


def flat(params: Mapping[str, Any], *, epochs: int) -> float:
    """Every value scores 0, like an H-mean after one short epoch."""
    return 0.0


def disk_full(params: Mapping[str, Any], *, epochs: int) -> float:
    """Fails with ENOSPC while the file ``$OCRTUNE_TEST_DISK_FULL`` exists, like a trial whose
    checkpoint write found the disk full; scores like ``peak`` otherwise."""
    flag = os.environ.get("OCRTUNE_TEST_DISK_FULL")
    if flag and os.path.exists(flag):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(flag + ".ckpt"))
    return 0.9 * math.exp(-((math.log10(float(params[LR])) - OPT_LOG10_LR) ** 2) / 0.72)


def cliff(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """``peak`` with a divergence cliff: NaN (diverged) above lr = 10**-2.2."""
    if math.log10(float(params[LR])) > -2.2:
        return math.nan
    return peak(params, epochs=epochs, report=report)
