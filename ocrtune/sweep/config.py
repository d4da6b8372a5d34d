"""The sweep's settings (``SweepConfig``), stored in the study so that workers, resumes and
``sweep status`` all see the same sweep, and what they build: the strategy, and the history
it plans from (one result per plan slot). Also the parsers of the options whose text becomes
a setting (``--range``, ``--min-improvement``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

from ocrtune.errors import InputError
from ocrtune.sweep.planner import PlannerConfig
from ocrtune.sweep.records import DIRECTION
from ocrtune.sweep.space import Dim, Space
from ocrtune.sweep.store import TPE, StoredTrial
from ocrtune.sweep.strategies import Grid, Hierarchical, Random, Strategy

STRATEGIES = ("hierarchical", "grid", "random", "tpe")
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


def _normal(v: Any) -> Any:
    """Tuples as lists, so stored (JSON) and fresh settings compare equal."""
    if isinstance(v, Mapping):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    return v
