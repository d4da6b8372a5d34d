"""Before a sweep starts: every option, every swept key and the data are checked and turned into
a ``SweepConfig``, so a mistake is one located line before the study exists, not a failed
trial each. A worker joining a stored sweep checks its own data the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset
from ocrtune.sweep.config import STRATEGIES, SweepConfig, build_strategy, parse_min_improvement, parse_range
from ocrtune.sweep.records import DIRECTION, METRICS_AVAILABLE
from ocrtune.sweep.space import Dim, Space, leaf_kind, load_space, param_dim, parse_space
from ocrtune.sweep.store import check_name, make_pruner
from ocrtune.train.rundir import slug

_METHOD = {"bayes": "tpe", "tpe": "tpe", "grid": "grid", "random": "random", "hierarchical": "hierarchical"}
_METRIC_NAMES = {"hmean": "hmean", "val_hmean": "hmean", "val/hmean": "hmean", "val_loss": "val_loss", "val/loss": "val_loss"}


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
    if objective is None and slots > 0:  # a coordinate-only sweep's data may exist only on its workers
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
