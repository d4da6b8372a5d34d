"""Objectives for the sweep tests (``--objective tests.sweep_objectives:NAME``).

Each call can be logged to ``$OCRTUNE_TEST_CALLS`` (one JSON line at start and end, with pid,
CUDA_VISIBLE_DEVICES and time) so tests can check that nothing ran twice, that trials
overlapped under ``--parallel`` and that GPU slots were pinned. ``$OCRTUNE_TEST_SLEEP`` seconds
of sleep per epoch make trials slow enough to be killed mid-stage.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Callable, Mapping

LR = "models.optimizer.lr"


def _log(event: str, params: Mapping[str, Any]) -> None:
    path = os.environ.get("OCRTUNE_TEST_CALLS")
    if not path:
        return
    row = {"event": event, "params": dict(params), "pid": os.getpid(), "t": time.time(),
           "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def curve(lr: float) -> float:
    """Noiseless unimodal response in log10(lr), peak 0.9 at 10**-3.3; NaN above 10**-2.6."""
    x = math.log10(lr)
    if x > -2.6:
        return math.nan
    return 0.9 * math.exp(-((x + 3.3) ** 2) / (2 * 0.64))


def logged(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """The curve, reported per epoch (rising towards it), with logging and optional sleep."""
    _log("start", params)
    sleep = float(os.environ.get("OCRTUNE_TEST_SLEEP", "0"))
    final = curve(float(params[LR]))
    for e in range(1, epochs + 1):
        time.sleep(sleep)
        if not math.isnan(final):
            report(e, final * e / epochs, train_loss=2.0 / e)
    _log("end", params)
    return final


def slow_when_bad(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """Like ``logged`` without sleep for good rates. Weak ones (score < 0.5) sleep 0.5 s before
    each epoch and, after reporting epoch 2 or later, wait up to 20 s for the pruner to stop them:
    whether they are pruned does not depend on how busy the machine is (a pruner that never
    stops them lets them complete, 20 s an epoch later)."""
    _log("start", params)
    final = curve(float(params[LR]))
    for e in range(1, epochs + 1):
        if final < 0.5:
            time.sleep(0.5)
        report(e, final * e / epochs, train_loss=2.0 / e)
        if final < 0.5 and 2 <= e < epochs:
            end = time.monotonic() + 20.0
            while time.monotonic() < end:  # the worker terminates this process meanwhile
                time.sleep(0.05)
    _log("end", params)
    return final


def crash(params: Mapping[str, Any]) -> float:
    """Dies hard (as a segfault or the OOM killer would): no result file is written."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


def t_max(params: Mapping[str, Any]) -> float:
    """An integer key: best at T_max 22."""
    return -abs(int(params["models.scheduler.T_max"]) - 22)


def curve_only(params: Mapping[str, Any]) -> float:
    return curve(float(params[LR]))


def troubled(params: Mapping[str, Any]) -> float:
    """Fails above lr 3e-3 with a ValueError, runs out of memory below 3e-5, else the curve."""
    lr = float(params[LR])
    if lr > 3e-3:
        raise ValueError(f"synthetic failure at lr={lr:g}\nsecond line of the error")
    if lr < 3e-5:
        raise MemoryError("synthetic out of memory")
    return curve(lr)


def not_a_number(params: Mapping[str, Any]) -> Any:
    return "high"


def quadratic(params: Mapping[str, Any]) -> float:
    """Two keys for grid/random/TPE: best at lr=1e-3, thresh=0.3."""
    x = math.log10(float(params[LR])) + 3
    y = float(params.get("models.head.postprocess.thresh", 0.3)) - 0.3
    return 1.0 - x * x - 10 * y * y


def hang(params: Mapping[str, Any], *, report: Callable[..., None]) -> float:
    """Reports one epoch, then hangs (a deadlocked data loader, a stuck collective)."""
    report(1, 0.5, train_loss=1.0)
    print("epoch 1 done; now hanging", flush=True)
    time.sleep(120)
    return 0.5


def timed(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """Sleeps 0.2 s an epoch; reports epoch 2 with its own epoch_time_s of 7 s (which wins)."""
    for e in range(1, epochs + 1):
        time.sleep(0.2)
        report(e, 0.5, **({"epoch_time_s": 7.0} if e == 2 else {}))
    return 0.5


def makes_run_dir(params: Mapping[str, Any], *, trial_dir: Any) -> float:
    """Leaves a run directory the way ``fit`` does (``runs/<name>/config.yaml``)."""
    from pathlib import Path

    run = Path(trial_dir) / "runs" / "2024-01-01-x"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    return 0.5


def first_value(params: Mapping[str, Any]) -> float:
    """Scores the first swept value: an objective for any key (no learning rate needed)."""
    _log("start", params)
    return float(next(iter(params.values())))
