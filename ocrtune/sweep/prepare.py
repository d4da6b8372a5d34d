"""Before a sweep starts: the command's options (a ``SweepRequest``), every swept key, the
weights and the data are checked and turned into a ``SweepConfig``, so a mistake is one
located line before the study exists, not a failed trial each. A worker joining a stored
sweep checks its own data (and the sweep's ``--init`` checkpoint) the same way.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset
from ocrtune.sweep.plan.coupling import couplings_for
from ocrtune.sweep.plan.space import Dim, Space, leaf_kind, load_space, param_dim, parse_space
from ocrtune.sweep.plan.strategies import build_strategy
from ocrtune.sweep.store import check_name, make_pruner, propose_tpe
from ocrtune.sweep.types import (
    DIRECTION,
    METRICS_AVAILABLE,
    STRATEGIES,
    GridSearch,
    HierarchicalSearch,
    RandomSearch,
    Search,
    SweepConfig,
    TPESearch,
)
from ocrtune.train.rundir import slug

if TYPE_CHECKING:
    from ocrtune.model.checkpoint import TrainedWeights

INIT = "--init"
ENCODER_KEY = "models.encoder.model_name"

_METHOD = {"bayes": "tpe", "tpe": "tpe", "grid": "grid", "random": "random", "hierarchical": "hierarchical"}
_METRIC_NAMES = {"hmean": "hmean", "val_hmean": "hmean", "val/hmean": "hmean", "val_loss": "val_loss", "val/loss": "val_loss"}


@dataclass(frozen=True)
class SweepRequest:
    """The ``ocrtune sweep`` options as given (defaults are the command's). ``prepare`` checks
    them together, since many depend on each other (strategy, space, metric, pruning)."""

    preset: str = "cpu-demo"
    strategy: str | None = None
    param: str = "models.optimizer.lr"
    range_text: str = "1e-5,1e-2"
    linear: bool = False
    points: int = 5
    top: int = 2
    stages: int = 5
    min_improvement: str = "1%"
    replicates: int = 0
    replicate_top: int = 3
    epochs: int = 3
    metric: str | None = None
    space_path: Path | None = None
    trials: int | None = None
    prune: str | None = None
    min_epochs: int | None = None  # None: not given (means 1)
    name: str | None = None
    data: str | None = None
    objective: str | None = None
    seed: int = 0
    batch: int | None = None
    trial_timeout: float | None = None
    init: str | None = None  # a run or .ckpt every trial's weights start from (fine-tuning)


def prepare(request: SweepRequest, preset: Preset, slots: int = 1, runs_dir: Path = Path("runs")) -> SweepConfig:
    """Validate every option (and every swept key against the preset) before anything runs.

    A training sweep also checks that the preset's pretrained weights can be loaded here and
    its data, as ``train`` does before a run directory exists, so a wrong ``--data`` is one
    line before the study is created, not a failed trial each. ``--init`` is resolved here
    once (a run -> its checkpoint, under ``runs_dir`` for a bare name) and checked as ``train
    --init`` checks it.
    """
    from ocrtune.sweep.run.trial import load_objective, reserved_keys

    r = request
    if r.name is not None:
        check_name(r.name)
    if r.trial_timeout is not None and not r.trial_timeout > 0:
        raise InputError(f"must be > 0 seconds (got {r.trial_timeout:g})", key="--trial-timeout")
    if r.init is not None and r.objective is not None:
        raise InputError("an --objective sweep trains no model, so there are no weights to start from; drop --init "
                         "or --objective", key=INIT)
    reserved = reserved_keys(data_given=bool(r.data)) if r.objective is None else None
    couple = lambda keys: couplings_for(preset, keys)  # noqa: E731
    space = load_space(r.space_path, base=preset, reserved=reserved, couple=couple) if r.space_path is not None else None
    strategy = r.strategy
    if strategy is None:
        strategy = _METHOD.get(space.method or "", "grid") if space is not None else "hierarchical"
    if strategy not in STRATEGIES:
        raise InputError(f"must be one of {', '.join(STRATEGIES)} (got {strategy!r})", key="--strategy")
    metric = r.metric
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
    if r.epochs < 1:
        raise InputError(f"must be >= 1 (got {r.epochs})", key="--epochs")
    min_epochs = _check_min_epochs(r.min_epochs, r.prune, r.epochs)
    make_pruner(r.prune, min_epochs)
    param, linear = r.param, r.linear
    low, high = parse_range(r.range_text)
    if space is None and strategy != "hierarchical" and leaf_kind(param) == "int":
        if low != int(low) or high != int(high):
            raise InputError(f"{param} is an integer key; give integer ends (got {r.range_text})", key="--range")
        space = parse_space({param: {"distribution": "int_uniform", "min": int(low), "max": int(high)}},
                            base=preset, file="--param", reserved=reserved, couple=couple)
    elif space is None:
        space = Space((param_dim(param, low, high, not linear, preset, reserved=reserved, couple=couple),))
    elif strategy == "hierarchical":
        rng = [d for d in space.dims if d.kind in ("uniform", "log_uniform")]
        if len(space.dims) != 1 or not rng:
            raise InputError("the hierarchical strategy sweeps one float range; use --strategy grid, random or tpe "
                             "for this space", file=space.file, key="--space")
        param, low, high, linear = rng[0].key, float(rng[0].low), float(rng[0].high), rng[0].kind == "uniform"  # type: ignore[arg-type]
    if strategy == "hierarchical" and r.points < 2:
        raise InputError(f"must be >= 2 for the hierarchical strategy, which refines the intervals between "
                         f"the points of a stage (got {r.points})", key="--points")
    rel, absolute = parse_min_improvement(r.min_improvement)
    if r.objective is not None:
        load_objective(r.objective)
    stem = Path(r.preset).stem
    default = f"{stem}-{param.split('.')[-1]}" if strategy == "hierarchical" else f"{stem}-{strategy}"
    search: Search
    if strategy == "hierarchical":
        search = HierarchicalSearch(param=param, low=low, high=high, log=not linear, points=r.points, top=r.top,
                                    stages=r.stages, min_improvement=rel, min_improvement_abs=absolute,
                                    replicates=r.replicates, replicate_top=r.replicate_top)
    elif strategy == "grid":
        search = GridSearch(points=r.points, trials=r.trials)
    elif strategy == "random":
        search = RandomSearch(trials=r.trials if r.trials is not None else r.points * r.stages)
    else:
        search = TPESearch(trials=r.trials if r.trials is not None else r.points * r.stages,
                           batch=max(1, r.batch if r.batch is not None else slots))
    if isinstance(search, (RandomSearch, TPESearch)) and search.trials < 1:
        raise InputError(f"must be >= 1 (got {search.trials})", key="--trials")
    cfg = SweepConfig(
        name=r.name or slug(default), preset=r.preset, base=preset.model_dump(mode="json"), search=search,
        metric=metric, epochs=r.epochs, dims=tuple(_dim_dict(d) for d in space.dims),
        couplings=couple(space.keys), prune=r.prune, min_epochs=min_epochs, seed=r.seed,
        data=str(Path(r.data).resolve()) if r.data else None, objective=r.objective,
        space_file=str(r.space_path) if r.space_path else None, trial_timeout=r.trial_timeout,
    )
    build_strategy(cfg, propose_tpe)  # planner settings are checked here (--points, --range ...)
    if r.objective is None:
        init = None
        if r.init is not None:
            init = read_init(r.init, preset, space.keys, runs_dir)
            cfg = replace(cfg, init=str(init.path))
        check_weights(_model_preset(preset, init), space)
        if slots > 0:  # a coordinate-only sweep's data may exist only on its workers
            check_data(preset, cfg.data, space)  # last: it reads the annotations
    return cfg


def read_init(ref: str, preset: Preset, keys: Sequence[str], runs_dir: Path = Path("runs")) -> TrainedWeights:
    """The checkpoint ``--init`` names (a run -> its best.ckpt, else last.ckpt; the path made
    absolute), read and checked against the preset's encoder as ``train --init`` does. A sweep
    over the encoder is refused: one checkpoint can start only the encoder it holds."""
    from ocrtune.model.init_from import read_init_source

    if ENCODER_KEY in keys:
        raise InputError(f"the sweep's space swaps the encoder ({ENCODER_KEY}), but a checkpoint starts only the "
                         "encoder it holds; sweep the encoder without --init, or fine-tune one encoder", key=INIT)
    return read_init_source(ref, runs_dir, preset)  # a missing source is named as --init's, as train says it


def keep_stored_init(cfg: SweepConfig, stored: SweepConfig | None, preset: Preset) -> SweepConfig:
    """A resume without ``--init`` goes on from the checkpoint the sweep started from (checked
    again: it may have moved since); one with another ``--init`` is left for the settings check
    to name."""
    if cfg.init is not None or cfg.objective or stored is None or stored.init is None:
        return cfg
    read_init(stored.init, preset, cfg.keys)
    return replace(cfg, init=stored.init)


def check_worker_init(config: SweepConfig) -> None:
    """A worker's check of the sweep's ``--init`` checkpoint (stored as an absolute path): it
    must be readable on this machine too, before any trial takes it."""
    if config.init is None or config.objective:
        return
    read_init(config.init, Preset.model_validate(config.base), config.keys)


def _model_preset(preset: Preset, init: TrainedWeights | None) -> Preset:
    """The preset the trials build their model with (no hub download for an encoder the
    checkpoint replaces whole), for the weights check."""
    if init is None:
        return preset
    from ocrtune.model.init_from import preset_for_init

    return preset_for_init(preset, init)


def check_weights(preset: Preset, space: Space | None = None) -> None:
    """A training sweep on ``pretrained: true`` needs hub weights in every trial: refused now,
    in one line, when they cannot be loaded here (not found out by every trial after a minute
    of hub retries)."""
    from ocrtune.train.resources import check_hub_weights

    enc = preset.models.encoder
    swept = {d.key: d for d in (space.dims if space is not None else ())}
    names = swept["models.encoder.model_name"].values if "models.encoder.model_name" in swept else (enc.model_name,)
    pre = swept.get("models.encoder.pretrained")
    pretrained = any(bool(v) for v in pre.values) if pre is not None else enc.pretrained
    if not pretrained or enc.pretrained_path:
        return
    for name in names:
        check_hub_weights(str(name))


def check_worker_data(config: SweepConfig, data: str | None) -> None:
    """``check_data`` for a worker joining a stored training sweep, with its own ``--data``."""
    if config.objective:
        return
    from ocrtune.sweep.plan.strategies import space_of

    check_data(Preset.model_validate(config.base), data or config.data, space_of(config))


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
    """The data check ``fit`` makes before it creates a run directory (``load_data``, the same
    function), made once for the whole sweep, for every data set a trial can get: each
    combination of the swept ``datasets.root`` / ``train`` / ``val``."""
    from ocrtune.train.fit import load_data

    swept = [d for d in (space.dims if space is not None else ()) if d.key in _DATA_KEYS]
    for combo in itertools.product(*(d.values for d in swept)):
        ds = preset.datasets.model_copy(update={d.key.split(".")[1]: v for d, v in zip(swept, combo)})
        load_data(preset.model_copy(update={"datasets": ds}), Path(data) if data else None)


def _dim_dict(d: Dim) -> dict[str, Any]:
    out = asdict(d)
    out["values"] = list(d.values)
    return out
