"""Objectives for ``test_sweep_fix_review`` (``--objective tests.test_sweep_fix_objectives:NAME``);
kept apart so a trial process imports nothing but this. No tests here."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping


def timed(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """Sleeps 0.2 s an epoch; reports epoch 2 with its own epoch_time_s of 7 s (which wins)."""
    for e in range(1, epochs + 1):
        time.sleep(0.2)
        report(e, 0.5, **({"epoch_time_s": 7.0} if e == 2 else {}))
    return 0.5
