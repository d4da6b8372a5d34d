"""What a sweep report says, as data: every section of ``report.md`` / ``report.html`` /
``report.json`` and every figure is drawn from one ``Report`` (``analysis.build_report``).

Scores are in the sweep metric's own unit (H-mean as a fraction 0..1, or a val loss);
differences of scores are in percentage points (``*_pp``: +0.07 pp is a gain of 0.0007 in
H-mean); changes of parameters are in percent (``pct_change``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal


@dataclass(frozen=True)
class Baseline:
    """What the sweep is measured against: a preset (default: the sweep's own) or a run.
    ``score`` is in the metric's unit; ``score_source`` says where it came from (the run's
    measured best, the preset's ``reported`` value, or None when there is none)."""

    label: str
    kind: Literal["preset", "run"]
    values: dict[str, Any]  # every setting of the baseline (flattened dotted keys)
    score: float | None
    score_source: str | None
    epochs: int | None = None  # how many epochs its score was measured after, when known


@dataclass(frozen=True)
class RankRow:
    rank: int
    trial: int
    params: dict[str, Any]
    score: float
    smoothed: float | None
    delta_pp: float | None  # vs the baseline score
    status: str
    stage: int
    kind: str


@dataclass(frozen=True)
class UnscoredRow:
    trial: int
    params: dict[str, Any]
    status: str
    reason: str


@dataclass(frozen=True)
class ParamChange:
    """One parameter, baseline vs best (``pct_change`` as ``ocrtune compare`` computes it)."""

    key: str
    baseline: Any
    best: Any
    pct_change: float | None
    coupled: bool = False
    swept: bool = True  # False: a setting the sweep kept fixed (its preset, --set) that the baseline has otherwise


@dataclass(frozen=True)
class Placement:
    """Where the values of one parameter lie in its searched range."""

    key: str
    low: float | None
    high: float | None
    log: bool
    baseline: Any
    best: Any
    tried: list[Any]
    strip: str  # a one-line picture for the terminal: B baseline, * best, | tried


@dataclass(frozen=True)
class Band:
    label: str  # low / mid / high, or a categorical value
    lo: Any
    hi: Any
    mean: float | None
    spread: float | None  # sample std over the band's trials
    n: int


@dataclass(frozen=True)
class Impact:
    key: str
    bands: list[Band]
    sentence: str


@dataclass(frozen=True)
class Importance:
    """Optuna's importance estimate (fANOVA-style, ``optuna.importance``), or why it is absent."""

    values: dict[str, float] | None
    note: str


@dataclass(frozen=True)
class StageRow:
    stage: int
    intervals: list[tuple[float, float, int]]  # refined (low, high, new points); empty for stage 1
    values: list[float]
    best_so_far: float | None  # best smoothed score after this stage
    improvement_pp: float | None  # vs the stage before
    reason: str


@dataclass(frozen=True)
class Progress:
    """Coarse-to-fine progress of a hierarchical sweep, and its honest efficiency figure:
    ``evaluations`` vs ``grid_equivalent`` evaluations for a uniform log (or linear) grid of
    the same resolution over the same range."""

    stages: list[StageRow]
    stop_reason: str | None
    low: float
    high: float
    log: bool
    range_width: float  # decades (log) or parameter units (linear)
    resolution: float | None  # width of the final bracket around the pick, same units
    evaluations: int
    grid_equivalent: int | None


class RecKind(str, Enum):
    BEST = "best"
    STABLE = "stable"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class Recommendation:
    kind: RecKind
    values: dict[str, Any]
    score: float | None  # None: not measured
    spread: float | None
    n: int
    risk: str
    rule: str  # how it was chosen
    trial: int | None = None
    preset: str | None = None  # path of the written preset
    command: str | None = None  # ready train command


@dataclass(frozen=True)
class Methods:
    markdown: str
    latex: str


@dataclass(frozen=True)
class Report:
    name: str
    storage: str
    strategy: str
    metric: str
    direction: Literal["maximize", "minimize"]
    unit: str  # "fraction" (H-mean) or "loss"
    preset: str
    keys: list[str]
    log_keys: list[str]
    epochs: int
    max_epochs: int | None
    state: str
    running: list[int]  # trials still running
    source: str  # what produced the scores: "training", "objective module:fn" or "imported from FILE"
    baseline: Baseline
    best: RankRow | None
    best_note: str | None  # why the pick is not the top measured score, when it is not
    best_vs_baseline: list[ParamChange]
    score_delta_pp: float | None
    ranking: list[RankRow]
    unscored: list[UnscoredRow]
    placement: list[Placement]
    impact: list[Impact]
    importance: Importance
    progress: Progress | None
    recommended: list[Recommendation]
    compute_hours: float
    device: str  # "GPU" or "CPU"
    methods: Methods | None = None
    figures: dict[str, str] = field(default_factory=dict)  # name -> path (relative to the report folder)
    init: str | None = None  # the checkpoint every trial started from (the sweep's --init)

    def to_json(self) -> dict[str, Any]:
        """``recommended`` maps each recommendation's name to its preset file (as the report's
        readers expect); the full records are under ``recommendations``."""
        out = _plain(asdict(self))
        out["recommendations"] = out.pop("recommended")
        out["recommended"] = {r.kind.value: r.preset for r in self.recommended}
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and v != v:
        return None
    return v
