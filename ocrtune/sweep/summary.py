"""The sweep's state as one dict for the live view, ``sweep status`` and ``--json``: the best
value, batches, trials, counts, a warning when the scores mean nothing, and an ETA. It only
reads the store, so ``sweep status`` can show a sweep without changing it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from typing import Any, Sequence

from ocrtune.sweep.config import SweepConfig, build_strategy, planning_history
from ocrtune.sweep.launcher import gone_here, host_id
from ocrtune.sweep.records import finite
from ocrtune.sweep.space import Dim
from ocrtune.sweep.store import Plan, Store, StoredTrial


def summarize(store: Store, cfg: SweepConfig, slots: int = 0, trials: Sequence[StoredTrial] | None = None,
              plans: Sequence[Plan] | None = None, grace_s: float = 60.0, observe: bool = False) -> dict[str, Any]:
    """The sweep's state for the live view, ``sweep status`` and ``--json``.

    ``observe`` (``sweep status``, which changes nothing): RUNNING trials whose worker is gone
    are shown as the next run will record them, ``lost`` (see ``presumed_lost``).
    """
    trials = list(store.trials() if trials is None else trials)
    plans = list(store.plans() if plans is None else plans)
    if observe:
        trials = [presumed_lost(t, grace_s) or t for t in trials]
    strategy = build_strategy(cfg)
    history = planning_history(trials)
    choice = strategy.best(history)
    finished = store.finished()
    coord = store.coordinator(grace_s)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    best = None
    if choice is not None:
        match = [t for t in trials if t.is_result and t.score is not None
                 and all(_same(t.params.get(k), v) for k, v in choice.params.items())]
        top = max(match, key=lambda t: t.score if cfg.direction == "maximize" else -t.score, default=None)  # type: ignore[arg-type, operator]
        best = {"params": choice.params, "score": choice.score, "spread": choice.spread, "n": choice.n,
                "trial": top.number if top else None, "run_dir": top.attrs.get("run_dir") if top else None}
    return {
        "name": store.name, "storage": store.url, "strategy": cfg.strategy, "metric": cfg.metric,
        "direction": cfg.direction, "param": cfg.param if cfg.strategy == "hierarchical" else None,
        "keys": [d["key"] for d in cfg.dims], "epochs": cfg.epochs, "preset": cfg.preset,
        "state": "finished" if finished else ("running" if coord else "stopped"),
        "reason": (finished or {}).get("reason") or (plans[-1].reason if plans else None),
        "best": best,
        "warning": _warning(cfg, trials),
        "batches": [_batch_row(p, trials) for p in plans],
        "trials": [_trial_row(t) for t in trials],
        "counts": counts,
        "eta_s": None if finished else eta_s(cfg, trials, plans, slots),
    }


def eta_s(cfg: SweepConfig, trials: Sequence[StoredTrial], plans: Sequence[Plan], slots: int) -> float | None:
    """Seconds left if no stage stops early: trials still to run x mean trial time / workers."""
    done = [t.duration_s for t in trials if t.is_result and t.duration_s]
    running = [t for t in trials if t.state == "running"]
    if not done and running:
        est = [t.duration_s / p["epoch"] * p["epochs"] for t in running
               if t.duration_s and (p := t.attrs.get("progress")) and p.get("epoch")]
        done = est
    if not done:
        return None
    mean = sum(done) / len(done)
    left = sum(1 for t in trials if t.state == "waiting")
    left += sum(max(0.0, 1 - (t.duration_s or 0) / mean) for t in running)
    if cfg.strategy == "hierarchical":
        explore = [p for p in plans if p.kind == "explore"]
        stage = max((p.index for p in explore), default=-1)
        left += max(0, cfg.stages - stage - 1) * cfg.points
        if cfg.replicates and not any(p.kind == "replicate" for p in plans):
            left += cfg.replicates * cfg.replicate_top
    else:
        total = cfg.trials or (math.prod(len(Dim(**{**d, "values": tuple(d.get("values") or ())}).grid(cfg.points))
                                         for d in cfg.dims) if cfg.strategy == "grid" else cfg.points * cfg.stages)
        left += max(0, total - sum(len(p.params) for p in plans))
    workers = max(slots, len({t.attrs.get("worker") for t in running}), 1)
    return left * mean / workers


def presumed_lost(t: StoredTrial, grace_s: float) -> StoredTrial | None:
    """A RUNNING trial as the next coordinator will record it if its worker is gone, else None.

    The rule is the store's reaping rule, read once instead of watched: a worker on this host
    whose process (pid and start time) no longer exists, or one elsewhere whose heartbeat is
    older than ``grace_s`` by this machine's clock (the coordinator measures that on its own
    clock while it watches). Nothing is written: the next run marks it lost and re-queues it.
    """
    a = t.attrs
    if t.state != "running":
        return None
    beat = finite(a.get("heartbeat"))
    if a.get("host") == host_id():
        if a.get("pid") == os.getpid() or not gone_here(a):
            return None
        why = f"worker process {a['pid']} on this host is gone"
    elif beat is not None and time.time() - beat > grace_s:
        why = f"no heartbeat from {str(a.get('host', '?')).split('/')[0]} pid {a.get('pid', '?')} for {time.time() - beat:.0f}s"
    else:
        return None
    note = f"{why}; not running (the next run of the sweep marks it lost and queues it again)"
    # When it died is unknown (the heartbeat is refreshed every 10 s): no duration, not a growing one.
    return replace(t, state="fail", status="lost", attrs={**a, "error": note, "presumed_lost": True})


def _warning(cfg: SweepConfig, trials: Sequence[StoredTrial]) -> str | None:
    """Training sweeps whose trials all scored an H-mean of 0: a best value is still named,
    but it is a tie of runs that found nothing, not a finding."""
    if cfg.objective is not None or cfg.metric != "hmean":
        return None
    scores = [t.score for t in trials if t.is_result and t.score is not None]
    if not scores or max(scores) > 0:
        return None
    return (f"no trial scored above 0 ({len(scores)} scored): the best value means nothing; check the data "
            f"and --epochs ({cfg.epochs} may be too few to find any text)")


def _batch_row(p: Plan, trials: Sequence[StoredTrial]) -> dict[str, Any]:
    mine = [t for t in trials if t.plan == p.seq]
    return {"seq": p.seq, "index": p.index, "stage": p.index + 1, "kind": p.kind, "reason": p.reason,
            "planned": len(p.params),
            "done": len({t.slot for t in mine if t.is_result}), "running": sum(t.state == "running" for t in mine),
            "queued": sum(t.state == "waiting" for t in mine)}


def _trial_row(t: StoredTrial) -> dict[str, Any]:
    a = t.attrs
    keys = ("epochs", "loss_reduction_rate", "stability", "loss_spread", "time_per_epoch_s", "peak_mem_mb",
            "run_dir", "error", "hint", "progress", "worker", "slot", "attempt")
    return {"number": t.number, "plan": t.plan, "slot_index": t.slot, "batch": t.batch, "stage": t.batch + 1, "kind": t.kind,
            "params": t.params, "score": t.score, "status": t.status, "state": t.state,
            "duration_s": None if a.get("presumed_lost") else t.duration_s, **{k: a.get(k) for k in keys}}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b
