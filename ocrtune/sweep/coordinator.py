"""The coordinator: plan a batch, queue it, wait until every trial of it has a result, plan
the next; resumable at any point because it plans only from results stored in the study.

Resuming (re-running the same command) replays the same loop: the settings must match the
stored ones; RUNNING trials whose worker died are marked lost (or adopted if they had written
their result); every recorded plan slot without a result or a live attempt is queued again;
and only when the latest batch is complete does the strategy plan the next one. A batch is
recorded in the plan log before its trials are queued, so a coordinator killed in between
queues the rest on resume; one killed before recording re-plans the same batch, since
strategies are deterministic functions of the results (random and TPE are seeded). A plan
slot counts once: if it somehow got two results, the first one is the one planned from.

Local slots (``--gpus``/``--parallel``) are a ``WorkerPool`` inside this process; remote
``ocrtune sweep worker`` processes pull from the same queue. With ``--parallel 0`` this
process only coordinates.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.presets.schema import Preset
from ocrtune.sweep.guards import FAILED, Patient
from ocrtune.sweep.launcher import Slot, gone_here, host_id
from ocrtune.sweep.planner import PlannerConfig
from ocrtune.sweep.records import DIRECTION, METRICS_AVAILABLE, finite
from ocrtune.sweep.space import Dim, Space, leaf_kind, load_space, param_dim, parse_space
from ocrtune.sweep.store import TPE, Plan, Store, StoredTrial, check_name, make_pruner
from ocrtune.sweep.strategies import Grid, Hierarchical, Random, Strategy
from ocrtune.sweep.worker import WorkerPool, WorkerSettings, adopt_result
from ocrtune.train.rundir import slug

STRATEGIES = ("hierarchical", "grid", "random", "tpe")
_METHOD = {"bayes": "tpe", "tpe": "tpe", "grid": "grid", "random": "random", "hierarchical": "hierarchical"}
_METRIC_NAMES = {"hmean": "hmean", "val_hmean": "hmean", "val/hmean": "hmean", "val_loss": "val_loss", "val/loss": "val_loss"}
# Settings a resumed sweep may change: the budget (a finished sweep can be extended with more
# stages or trials, or a lower --min-improvement) and TPE's batch width, which follows the local
# slots. Batches already planned are in the plan log; the rest changes what is planned or trained.
_RUNTIME = ("name", "space_file", "batch", "stages", "trials", "min_improvement", "min_improvement_abs",
            "replicates", "replicate_top", "trial_timeout")


@dataclass
class SweepConfig:
    """Everything that defines a sweep; stored in the study so workers and resumes see it."""

    name: str
    preset: str
    base: dict[str, Any]
    strategy: str = "hierarchical"
    metric: str = "hmean"
    epochs: int = 3
    param: str = "models.optimizer.lr"
    low: float = 1e-5
    high: float = 1e-2
    log: bool = True
    points: int = 5
    top: int = 2
    stages: int = 5
    min_improvement: float = 0.01
    min_improvement_abs: float | None = None
    replicates: int = 0
    replicate_top: int = 3
    dims: list[dict[str, Any]] = field(default_factory=list)
    trials: int | None = None
    batch: int = 1
    prune: str | None = None
    min_epochs: int = 1
    seed: int = 0
    data: str | None = None
    objective: str | None = None
    space_file: str | None = None
    trial_timeout: float | None = None

    @property
    def direction(self) -> str:
        return DIRECTION[self.metric]

    @property
    def space(self) -> Space:
        return Space(tuple(Dim(**{**d, "values": tuple(d.get("values") or ())}) for d in self.dims))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def differences(self, stored: Mapping[str, Any]) -> list[str]:
        """Settings that differ from a stored sweep's (``base`` means the resolved preset)."""
        mine = _normal(self.to_dict())
        theirs = _normal(SweepConfig.from_dict(stored).to_dict())
        return [k for k in mine if k not in _RUNTIME and mine[k] != theirs.get(k)]


def parse_range(text: str) -> tuple[float, float]:
    """``--range 1e-5,1e-2`` (or ``1e-5..1e-2``)."""
    parts = [p for p in re.split(r",|\.\.(?=[-+\d.])", text.strip()) if p.strip()]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"expected LOW,HIGH such as 1e-5,1e-2 (got {text!r})", key="--range") from None
    return low, high


def parse_min_improvement(text: str) -> tuple[float, float | None]:
    """``1%`` or ``0.01``: relative to the previous best; ``0.005abs``: absolute; ``0``: never stop."""
    s = text.strip().lower().replace(" ", "")
    try:
        if s.endswith("abs"):
            return 0.0, float(s[:-3])
        if s.endswith("%"):
            return float(s[:-1]) / 100, None
        return float(s), None
    except ValueError:
        raise InputError(f"expected a relative value (0.01 or 1%) or an absolute one (0.005abs), got {text!r}",
                         key="--min-improvement") from None


def prepare(preset: Any, preset_name: str, *, strategy: str | None = None, param: str = "models.optimizer.lr",
            range_text: str = "1e-5,1e-2", linear: bool = False, points: int = 5, top: int = 2, stages: int = 5,
            min_improvement: str = "1%", replicates: int = 0, replicate_top: int = 3, epochs: int = 3,
            metric: str | None = None, space_path: Path | None = None, trials: int | None = None,
            prune: str | None = None, min_epochs: int | None = None, name: str | None = None,
            data: str | None = None, objective: str | None = None, seed: int = 0, batch: int | None = None,
            slots: int = 1, trial_timeout: float | None = None) -> SweepConfig:
    """Validate every option (and every swept key against the preset) before anything runs.

    A training sweep also checks its data here, as ``train`` does before a run directory
    exists, so a wrong ``--data`` is one line before the study is created, not a failed trial
    each. ``min_epochs`` is None when ``--min-epochs`` was not given (it means 1).
    """
    from ocrtune.sweep.trial import load_objective, reserved_keys

    if name is not None:
        check_name(name)
    if trial_timeout is not None and not trial_timeout > 0:
        raise InputError(f"must be > 0 seconds (got {trial_timeout:g})", key="--trial-timeout")
    reserved = reserved_keys(data_given=bool(data)) if objective is None else None
    space = load_space(space_path, base=preset, reserved=reserved) if space_path is not None else None
    if strategy is None:
        strategy = _METHOD.get(space.method or "", "grid") if space is not None else "hierarchical"
    if strategy not in STRATEGIES:
        raise InputError(f"must be one of {', '.join(STRATEGIES)} (got {strategy!r})", key="--strategy")
    if metric is None:
        metric = _METRIC_NAMES.get(space.metric or "", "hmean") if space and space.metric else "hmean"
        if space and space.metric and space.metric not in _METRIC_NAMES:
            raise InputError(f"metric {space.metric!r} is not one the sweep records; use hmean or val_loss",
                             file=space.file, key="metric.name")
    if metric not in METRICS_AVAILABLE:
        raise InputError(f"must be one of {', '.join(METRICS_AVAILABLE)} (got {metric!r})", key="--metric")
    if space is not None and space.goal is not None and space.goal != DIRECTION[metric]:
        raise InputError(f"is {space.goal}, but the sweep's metric {metric} is {DIRECTION[metric]}d; drop goal "
                         f"or make it {DIRECTION[metric]}", file=space.file, key="metric.goal")
    if epochs < 1:
        raise InputError(f"must be >= 1 (got {epochs})", key="--epochs")
    min_epochs = _check_min_epochs(min_epochs, prune, epochs)
    make_pruner(prune, min_epochs)
    low, high = parse_range(range_text)
    if space is None and strategy != "hierarchical" and leaf_kind(param) == "int":
        if low != int(low) or high != int(high):
            raise InputError(f"{param} is an integer key; give integer ends (got {range_text})", key="--range")
        space = parse_space({param: {"distribution": "int_uniform", "min": int(low), "max": int(high)}},
                            base=preset, file="--param", reserved=reserved)
    elif space is None:
        space = Space((param_dim(param, low, high, not linear, preset, reserved=reserved),))
    elif strategy == "hierarchical":
        rng = [d for d in space.dims if d.kind in ("uniform", "log_uniform")]
        if len(space.dims) != 1 or not rng:
            raise InputError("the hierarchical strategy sweeps one float range; use --strategy grid, random or tpe "
                             "for this space", file=space.file, key="--space")
        param, low, high, linear = rng[0].key, float(rng[0].low), float(rng[0].high), rng[0].kind == "uniform"  # type: ignore[arg-type]
    if strategy == "hierarchical" and points < 2:
        raise InputError(f"must be >= 2 for the hierarchical strategy, which refines the intervals between "
                         f"the points of a stage (got {points})", key="--points")
    rel, absolute = parse_min_improvement(min_improvement)
    if objective is not None:
        load_objective(objective)
    stem = Path(preset_name).stem
    default = f"{stem}-{param.split('.')[-1]}" if strategy == "hierarchical" else f"{stem}-{strategy}"
    cfg = SweepConfig(
        name=name or slug(default), preset=preset_name, base=preset.model_dump(mode="json"), strategy=strategy,
        metric=metric, epochs=epochs, param=param, low=low, high=high, log=not linear, points=points, top=top,
        stages=stages, min_improvement=rel, min_improvement_abs=absolute, replicates=replicates,
        replicate_top=replicate_top, dims=[_dim_dict(d) for d in space.dims], trials=trials,
        batch=max(1, batch if batch is not None else slots) if strategy == "tpe" else 1, prune=prune, min_epochs=min_epochs, seed=seed,
        data=str(Path(data).resolve()) if data else None, objective=objective,
        space_file=str(space_path) if space_path else None, trial_timeout=trial_timeout,
    )
    build_strategy(cfg)  # planner settings are checked here (--points, --range ...)
    if objective is None:
        check_data(preset, cfg.data, space)  # last: it reads the annotations
    return cfg


def check_worker_data(config: Mapping[str, Any], data: str | None) -> None:
    """``check_data`` for a worker joining a stored training sweep, with its own ``--data``."""
    if config.get("objective"):
        return
    cfg = SweepConfig.from_dict(config)
    check_data(Preset.model_validate(cfg.base), data or cfg.data, cfg.space)


def _check_min_epochs(min_epochs: int | None, prune: str | None, epochs: int) -> int:
    """``--min-epochs`` only holds a pruner back: refused without one, or below 1 (no trial is
    pruned before its first epoch anyway), or above ``--epochs``."""
    if min_epochs is None:
        return 1
    if prune in (None, "none"):
        raise InputError(f"only applies with --prune median or asha (got {min_epochs} without --prune)",
                         key="--min-epochs")
    if min_epochs < 1:
        raise InputError(f"must be >= 1 (got {min_epochs}): no trial is pruned before its first epoch",
                         key="--min-epochs")
    if min_epochs > epochs:
        raise InputError(f"must be <= --epochs {epochs} (got {min_epochs})", key="--min-epochs")
    return min_epochs


_DATA_KEYS = ("datasets.root", "datasets.train", "datasets.val")


def check_data(preset: Preset, data: str | None, space: Space | None = None) -> None:
    """The data check ``fit`` makes before it creates a run directory (the same root
    resolution, the same split reading), made once for the whole sweep, for every data set a
    trial can get: each combination of the swept ``datasets.root`` / ``train`` / ``val``."""
    from ocrtune.train.datamodule import DetectionDataModule
    from ocrtune.train.fit import resolve_data_root

    swept = [d for d in (space.dims if space is not None else ()) if d.key in _DATA_KEYS]
    for combo in itertools.product(*(d.values for d in swept)):
        ds = preset.datasets.model_copy(update={d.key.split(".")[1]: v for d, v in zip(swept, combo)})
        p = preset.model_copy(update={"datasets": ds})
        root = resolve_data_root(p, Path(data) if data else None).resolve()
        DetectionDataModule(root, ds, p.dataloader.batch_size, 0).prepare()


def build_strategy(cfg: SweepConfig) -> Strategy:
    direction = cfg.direction  # type: ignore[assignment]
    budget = cfg.trials or cfg.points * cfg.stages
    if cfg.strategy == "hierarchical":
        pc = PlannerConfig(low=cfg.low, high=cfg.high, points=cfg.points, top=cfg.top, stages=cfg.stages, log=cfg.log,
                           min_improvement=cfg.min_improvement, min_improvement_abs=cfg.min_improvement_abs,
                           direction=direction)  # type: ignore[arg-type]
        return Hierarchical(cfg.param, pc, cfg.replicates, cfg.replicate_top, seed=int(cfg.base.get("seed", 42)))
    if cfg.strategy == "grid":
        return Grid(cfg.space, cfg.points, cfg.trials, direction)  # type: ignore[arg-type]
    if cfg.strategy == "random":
        return Random(cfg.space, budget, cfg.seed, direction)  # type: ignore[arg-type]
    return TPE(cfg.space, budget, cfg.batch, cfg.seed, direction)  # type: ignore[arg-type]


class Coordinator:
    """Drives one sweep to its end (or until Ctrl-C) and returns ``summarize``'s dict."""

    def __init__(self, store: Store, cfg: SweepConfig, slots: Sequence[Slot], settings: WorkerSettings,
                 on_event: Callable[[str, Mapping[str, Any]], None] | None = None) -> None:
        self.store, self.cfg, self.slots, self.settings = store, cfg, list(slots), settings
        self.strategy = build_strategy(cfg)
        self.on_event = on_event
        self.stop = threading.Event()
        self._last_beat = 0.0
        self._last_plan: tuple[Any, ...] | None = None

    def attach(self) -> None:
        """Store the settings (new sweep) or check them against the stored ones (resume)."""
        stored = self.store.config()
        if stored is not None:
            diff = self.cfg.differences(stored)
            if diff:
                raise InputError(f"sweep {self.cfg.name!r} exists with different settings ({', '.join(diff)}); "
                                 "re-run it with the same options or pick another --name", key="--name")
        self.store.set_config(self.cfg.to_dict())  # budget settings may have grown
        self.store.set_finished(None)  # re-checked below; a larger budget may plan more

    def run(self, on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        self.store.claim_coordinator(self.settings.grace_s)
        pool = None
        try:
            self.attach()
            pool = WorkerPool(self.store, self.cfg.to_dict(), self.slots, self.settings, stop=self.stop,
                              on_event=self.on_event, until_finished=False)
            pool.start()
            self._loop(on_update)
        finally:
            self.stop.set()
            if pool is not None:
                pool.join()
            self.store.release_coordinator()
        summary = summarize(self.store, self.cfg, len(self.slots))
        if on_update:
            on_update(summary)
        return summary

    def _loop(self, on_update: Callable[[dict[str, Any]], None] | None) -> None:
        """Steps until the sweep is finished. A step that fails on the store is tried again
        next poll, like a worker's writes; only ``grace_s`` of failures in a row stop it."""
        calls = Patient(self.settings.grace_s, self.settings.poll_s)
        self._last_beat, self._last_plan = 0.0, None
        while (done := calls.call(lambda: self._step(on_update))) is not True:
            if done is FAILED or done is False:
                time.sleep(self.settings.poll_s)

    def _step(self, on_update: Callable[[dict[str, Any]], None] | None) -> bool | None:
        """One round: True when finished, False to wait a poll, None to go on at once."""
        if time.monotonic() - self._last_beat > 5:
            self.store.coordinator_beat()
            self._last_beat = time.monotonic()
        self.store.reap_stale(self.settings.grace_s, adopt=adopt_result)
        trials, plans = self.store.trials(), self.store.plans()
        filled = fill_missing(self.store, plans, trials)
        if filled or any(t.is_live for t in trials):
            if on_update:
                on_update(summarize(self.store, self.cfg, len(self.slots), trials, plans))
            return False
        batch = self.strategy.next_batch(planning_history(trials))
        if batch.done:
            self.store.set_finished({"reason": batch.reason, "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
            return True
        key = (batch.index, batch.kind, batch.params)
        if plans and key == (plans[-1].index, plans[-1].kind, plans[-1].params) or key == self._last_plan:
            raise OcrtuneError(f"the {self.cfg.strategy} strategy planned the same batch twice ({batch.reason})")
        plan = self.store.add_plan(batch)
        self._last_plan = key
        for slot in range(len(plan.params)):
            self.store.enqueue(plan, slot)
        return None


def planning_history(trials: Sequence[StoredTrial]) -> list[Any]:
    """One result per plan slot (the first), in plan order: what strategies plan from."""
    seen: set[tuple[int, int]] = set()
    out = []
    for t in sorted(trials, key=lambda t: (t.plan if t.plan is not None else -1, t.slot or 0, t.number)):
        if t.plan is None or not t.is_result or (t.plan, t.slot or 0) in seen:
            continue
        seen.add((t.plan, t.slot or 0))
        out.append(t.result())
    return out


def fill_missing(store: Store, plans: Sequence[Plan], trials: Sequence[StoredTrial]) -> int:
    """Queue every plan slot that has neither a result nor a live attempt; returns how many."""
    covered = {(t.plan, t.slot) for t in trials if t.is_live or t.is_result}
    attempts: dict[tuple[int | None, int | None], int] = {}
    for t in trials:
        attempts[(t.plan, t.slot)] = attempts.get((t.plan, t.slot), 0) + 1
    n = 0
    for plan in plans:
        for slot in range(len(plan.params)):
            if (plan.seq, slot) not in covered:
                store.enqueue(plan, slot, attempt=attempts.get((plan.seq, slot), 0) + 1)
                n += 1
    return n


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


def _dim_dict(d: Dim) -> dict[str, Any]:
    out = asdict(d)
    out["values"] = list(d.values)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def _normal(v: Any) -> Any:
    """Tuples as lists, so stored (JSON) and fresh settings compare equal."""
    if isinstance(v, Mapping):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    return v
