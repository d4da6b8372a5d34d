"""The sweep's state as a ``SweepSummary`` for the live view, ``sweep status`` and ``--json``:
the best value (with the score it ranks by beside the measured one, and why they differ),
batches, trials, counts, a warning when the scores mean nothing, and an ETA. It only reads the
store, so ``sweep status`` can show a sweep without changing it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from typing import Any, Sequence

from ocrtune.sweep.plan.strategies import Strategy, build_strategy, space_of
from ocrtune.sweep.run.liveness import gone_here, host_id
from ocrtune.sweep.store import Plan, Store, StoredTrial, planning_history, propose_tpe
from ocrtune.sweep.types import (
    BatchRow,
    Best,
    GridSearch,
    HierarchicalSearch,
    Result,
    Status,
    SweepConfig,
    SweepSummary,
    TrialRow,
    finite,
)


def summarize(store: Store, cfg: SweepConfig, slots: int = 0, trials: Sequence[StoredTrial] | None = None,
              plans: Sequence[Plan] | None = None, grace_s: float = 60.0, observe: bool = False) -> SweepSummary:
    """The sweep's state for the live view, ``sweep status`` and ``--json``.

    ``observe`` (``sweep status``, which changes nothing): RUNNING trials whose worker is gone
    are shown as the next run will record them, ``lost`` (see ``presumed_lost``).
    """
    trials = list(store.trials() if trials is None else trials)
    plans = list(store.plans() if plans is None else plans)
    if observe:
        trials = [presumed_lost(t, grace_s) or t for t in trials]
    strategy = build_strategy(cfg, propose_tpe)
    history = planning_history(trials)
    finished = store.finished()
    coord = store.coordinator(grace_s)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    hier = cfg.search if isinstance(cfg.search, HierarchicalSearch) else None
    return SweepSummary(
        name=store.name, storage=store.url, strategy=cfg.strategy, metric=cfg.metric, direction=cfg.direction,
        param=hier.param if hier else None, keys=cfg.keys, derived=[c.key for c in cfg.couplings],
        epochs=cfg.epochs, preset=cfg.preset,
        state="finished" if finished else ("running" if coord else "stopped"),
        reason=(finished or {}).get("reason") or (plans[-1].reason if plans else None),
        best=_best(strategy, history, trials, cfg),
        warning=_warning(cfg, trials),
        batches=[_batch_row(p, trials) for p in plans],
        trials=[_trial_row(t, strategy, history) for t in trials],
        counts=counts,
        eta_s=None if finished else eta_s(cfg, trials, plans, slots),
        couplings=[c.describe() for c in cfg.couplings],
        init=cfg.init,
    )


def _best(strategy: Strategy, history: Sequence[Result], trials: Sequence[StoredTrial], cfg: SweepConfig) -> Best | None:
    """The pick, the trial that measured it, and a line when it is not the top measured score."""
    choice = strategy.best(history)
    if choice is None:
        return None
    sign = 1 if cfg.direction == "maximize" else -1
    scored_ = [t for t in trials if t.is_result and t.score is not None]
    match = [t for t in scored_ if all(_same(t.params.get(k), v) for k, v in choice.params.items())]
    top = max(match, key=lambda t: sign * t.score, default=None)  # type: ignore[operator]
    best_raw = max(scored_, key=lambda t: sign * t.score, default=None)  # type: ignore[operator]
    note = None
    if top is not None and best_raw is not None and sign * best_raw.score > sign * top.score:  # type: ignore[operator]
        if choice.n > 1:
            how = f"the best mean over {choice.n} runs ({choice.score:.4g} +- {choice.spread:.2g})"
        else:
            how = f"its smoothed score {choice.score:.4g} (the runs next to it scored well too)"
        note = (f"picked for {how}; trial {best_raw.number} measured a higher {cfg.metric} "
                f"({best_raw.score:.4g} vs {top.score:.4g}) but its neighbours did not, so that is more likely noise")
    smoothed = choice.score if choice.n == 1 and cfg.strategy == "hierarchical" else None
    score = choice.raw if choice.n == 1 and choice.raw is not None else choice.score
    return Best(params=choice.params, score=score, smoothed=smoothed, spread=choice.spread, n=choice.n,
                trial=top.number if top else None, run_dir=top.attrs.get("run_dir") if top else None, note=note)


def eta_s(cfg: SweepConfig, trials: Sequence[StoredTrial], plans: Sequence[Plan], slots: int) -> float | None:
    """Seconds left if no stage stops early: trials still to run x mean trial time / workers."""
    done = [t.duration_s for t in trials if t.is_result and t.duration_s]
    running = [t for t in trials if t.status == Status.RUNNING]
    if not done and running:
        est = [t.duration_s / p["epoch"] * p["epochs"] for t in running
               if t.duration_s and (p := t.attrs.get("progress")) and p.get("epoch")]
        done = est
    if not done:
        return None
    mean = sum(done) / len(done)
    left = sum(1 for t in trials if t.status == Status.QUEUED)
    left += sum(max(0.0, 1 - (t.duration_s or 0) / mean) for t in running)
    s = cfg.search
    if isinstance(s, HierarchicalSearch):
        explore = [p for p in plans if p.kind == "explore"]
        stage = max((p.index for p in explore), default=-1)
        left += max(0, s.stages - stage - 1) * s.points
        if s.replicates and not any(p.kind == "replicate" for p in plans):
            left += s.replicates * s.replicate_top
    else:
        if isinstance(s, GridSearch):
            total = s.trials or math.prod(len(d.grid(s.points)) for d in space_of(cfg).dims)
        else:
            total = s.trials
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
    if t.status != Status.RUNNING:
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
    return replace(t, state=Status.LOST.store_state, status=Status.LOST, attrs={**a, "error": note, "presumed_lost": True})


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


def _batch_row(p: Plan, trials: Sequence[StoredTrial]) -> BatchRow:
    mine = [t for t in trials if t.plan == p.seq]
    return BatchRow(seq=p.seq, index=p.index, stage=p.index + 1, kind=p.kind, reason=p.reason, planned=len(p.params),
                    done=len({t.slot for t in mine if t.is_result}), running=sum(t.status == Status.RUNNING for t in mine),
                    queued=sum(t.status == Status.QUEUED for t in mine))


_RECORDS = ("epochs", "loss_reduction_rate", "stability", "loss_spread", "time_per_epoch_s", "peak_mem_mb",
            "run_dir", "error", "hint", "progress", "worker", "slot", "attempt", "device")


def _trial_row(t: StoredTrial, strategy: Strategy, history: Sequence[Result]) -> TrialRow:
    a = t.attrs
    smoothed = strategy.smoothed(t.params, history) if t.is_result and t.kind == "explore" else None
    return TrialRow(number=t.number, plan=t.plan, slot_index=t.slot, batch=t.batch, stage=t.batch + 1, kind=t.kind,
                    params=t.params, derived=t.derived, score=t.score, smoothed=smoothed, status=t.status,
                    state=t.state, duration_s=None if a.get("presumed_lost") else t.duration_s,
                    **{k: a.get(k) for k in _RECORDS})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b
