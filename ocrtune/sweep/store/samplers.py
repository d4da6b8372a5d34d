"""What a sweep takes from Optuna besides storage: pruners (asked between epochs), TPE's
proposals (``propose_tpe``, the ``Proposer`` of ``plan.strategies.TPE``), and the Optuna
distribution of each swept key, so that trials carry real Optuna params."""

from __future__ import annotations

import json
import warnings
from typing import Any, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from ocrtune.errors import InputError
from ocrtune.sweep.plan.space import Dim
from ocrtune.sweep.types import Direction, Result, finite

PRUNERS = ("median", "asha")
MEDIAN_STARTUP = 5

# --- pruners ---------------------------------------------------------------------------------


class _NotBefore(optuna.pruners.BasePruner):
    """Never prunes before ``min_epochs`` epochs are done; then asks the wrapped pruner."""

    def __init__(self, inner: optuna.pruners.BasePruner, min_epochs: int) -> None:
        self.inner, self.min_epochs = inner, min_epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        return step is not None and step >= self.min_epochs and self.inner.prune(study, trial)


def make_pruner(kind: str | None, min_epochs: int = 1) -> optuna.pruners.BasePruner | None:
    """``median`` (below the median of earlier trials at the same epoch, after
    ``MEDIAN_STARTUP`` finished trials) or ``asha`` (successive halving, rungs from
    ``min_epochs`` on, keeping the top third); steps count finished epochs."""
    if kind is None or kind == "none":
        return None
    if kind not in PRUNERS:
        raise InputError(f"must be one of {', '.join(PRUNERS)} (got {kind!r})", key="--prune")
    if min_epochs < 1:
        raise InputError(f"must be >= 1 (got {min_epochs})", key="--min-epochs")
    if kind == "median":
        inner: optuna.pruners.BasePruner = optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=0)
    else:
        inner = optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=3)
    return _NotBefore(inner, min_epochs)


# --- TPE -------------------------------------------------------------------------------------


def propose_tpe(dims: Sequence[Dim], history: Sequence[Result], k: int, seed: int, direction: Direction) -> list[dict[str, Any]]:
    """``k`` TPE proposals from an in-memory study rebuilt from ``history`` (a diverged trial
    counts as the worst score seen), asked with the constant liar so they differ."""
    dists = {d.key: _distribution(d) for d in dims if d.kind != "fixed"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.create_study(direction=direction, sampler=sampler)
    scores = [s for s in (finite(r.score) for r in history) if s is not None]
    worst = (min(scores) if direction == "maximize" else max(scores)) if scores else None
    for r in history:
        internal = {}
        for d in dims:
            if d.key in dists:
                v = _to_internal(d, r.params.get(d.key))
                if v is None or not dists[d.key]._contains(v):
                    break
                internal[d.key] = dists[d.key].to_external_repr(v)
        else:
            value = finite(r.score)
            value = worst if value is None else value
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
            study.add_trial(create_trial(params=internal, distributions=dists, value=value, state=state))
    out = []
    for _ in range(k):
        t = study.ask(dists)
        p = {d.key: (d.values[0] if d.kind == "fixed" else _to_external(d, t.params[d.key])) for d in dims}
        out.append(p)
    return out


def _distribution(d: Dim) -> BaseDistribution:
    """What TPE samples in: ranges as recorded (``param_distribution``), q steps as integer
    step counts, listed values by index (values may be lists)."""
    if d.kind in ("uniform", "log_uniform", "int_uniform"):
        return param_distribution(d)
    if d.kind == "q_uniform":
        steps = d._steps()
        return IntDistribution(int(steps[0]), int(steps[-1]))
    return CategoricalDistribution(list(range(len(d.values))))  # indices: values may be lists


def _to_internal(d: Dim, v: Any) -> Any:
    if v is None:
        return None
    if d.kind == "choice":
        return next((i for i, x in enumerate(d.values) if x == v), None)
    if d.kind == "q_uniform":
        return int(round(float(v) / float(d.q)))  # type: ignore[arg-type]
    return v


def _to_external(d: Dim, v: Any) -> Any:
    if d.kind == "choice":
        return d.values[int(v)]
    if d.kind == "q_uniform":
        return float(f"{int(v) * float(d.q):.12g}")  # type: ignore[arg-type]
    if d.kind == "int_uniform":
        return int(v)
    return float(v)


# --- Optuna-native params --------------------------------------------------------------------


def param_distribution(d: Dim) -> BaseDistribution:
    """The Optuna distribution a swept key is recorded with: the space's range (log where the
    space is log), integer ranges as ints, listed values as categorical choices (values that
    are not plain scalars, such as lists, as their JSON text)."""
    if d.kind in ("uniform", "log_uniform"):
        return FloatDistribution(float(d.low), float(d.high), log=d.kind == "log_uniform")  # type: ignore[arg-type]
    if d.kind == "int_uniform":
        return IntDistribution(int(d.low), int(d.high))  # type: ignore[arg-type]
    if d.kind == "q_uniform":
        steps = d._steps()
        q = float(d.q)  # type: ignore[arg-type]
        return FloatDistribution(_tidy(steps[0] * q), _tidy(steps[-1] * q), step=q)
    return CategoricalDistribution([_choice(v) for v in d.values])


def param_value(d: Dim, dist: BaseDistribution, value: Any) -> tuple[Any, BaseDistribution] | None:
    """(Optuna internal value, distribution) for a trial's value of ``d`` (the distribution
    widened to hold a value a hair outside the range by rounding); None if it cannot be held."""
    if isinstance(dist, CategoricalDistribution):
        v = _choice(value)
        return (dist.to_internal_repr(v), dist) if v in dist.choices else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(dist, FloatDistribution) and dist.step is None and not dist.low <= value <= dist.high:
        lo, hi = min(dist.low, float(value)), max(dist.high, float(value))
        if dist.log and lo <= 0:
            return None
        dist = FloatDistribution(lo, hi, log=dist.log)
    try:
        if not dist._contains(dist.to_internal_repr(value)):
            return None
        return dist.to_internal_repr(value), dist
    except (ValueError, TypeError):
        return None


def _choice(v: Any) -> Any:
    return v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v)


def _tidy(v: float) -> float:
    return float(f"{float(v):.12g}")
